// Shared by the GGUF tests: model folders made from the shared fixtures (which ship no
// tokenizer.json of their own, so the tokenizer fixture is put beside their weights).
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CausalLm } from '@specstream/core';
import { FIXTURES_DIR } from './fixtures.js';

export const TOKENIZER_JSON = join(FIXTURES_DIR, 'tokenizer', 'tokenizer.json');

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `specstream-${prefix}-`));
}

export function removeDir(dir: string | undefined): void {
  if (dir) rmSync(dir, { recursive: true, force: true });
}

/** `<parent>/<name>`: the fixture's config and weights (linked) and the tokenizer fixture. */
export function fixtureFolder(parent: string, name: string): string {
  const dir = join(parent, name);
  mkdirSync(dir);
  for (const file of ['config.json', 'model.safetensors'])
    symlinkSync(join(FIXTURES_DIR, name, file), join(dir, file));
  copyFileSync(TOKENIZER_JSON, join(dir, 'tokenizer.json'));
  return dir;
}

/** Logits of every position of every row, in one extendStep. */
export function fullLogits(model: CausalLm, ids: number[][]): Float32Array {
  const state = model.createState({ batch: ids.length, maxLength: ids[0].length });
  const { logits } = model.extendStep(state, ids);
  const values = logits.dataSync() as Float32Array;
  logits.dispose();
  model.disposeState(state);
  return values;
}
