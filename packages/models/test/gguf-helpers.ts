// Shared by the GGUF tests: model folders made from the shared fixtures (which ship no
// tokenizer.json of their own, so the tokenizer fixture is put beside their weights).
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CausalLm } from '@specstream/core';
import { FIXTURES_DIR, readFixtureJson } from './fixtures.js';

export const TOKENIZER_JSON = join(FIXTURES_DIR, 'tokenizer', 'tokenizer.json');

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `specstream-${prefix}-`));
}

export function removeDir(dir: string | undefined): void {
  if (dir) rmSync(dir, { recursive: true, force: true });
}

/**
 * `<parent>/<folder>`: the fixture's config and weights (linked) and the tokenizer fixture;
 * `config` fields, when given, replace the fixture's in a copy of its config.json.
 */
export function fixtureFolder(
  parent: string,
  name: string,
  config?: Record<string, unknown>,
  folder = name,
): string {
  const dir = join(parent, folder);
  mkdirSync(dir);
  symlinkSync(join(FIXTURES_DIR, name, 'model.safetensors'), join(dir, 'model.safetensors'));
  if (config) {
    const merged = { ...readFixtureJson(`${name}/config.json`), ...config };
    writeFileSync(join(dir, 'config.json'), JSON.stringify(merged));
  } else {
    symlinkSync(join(FIXTURES_DIR, name, 'config.json'), join(dir, 'config.json'));
  }
  copyFileSync(TOKENIZER_JSON, join(dir, 'tokenizer.json'));
  return dir;
}

/** Linear rope scaling ×2, in transformers v5's form (rope_parameters), for the llama fixture. */
export const LINEAR_ROPE = { rope_parameters: { rope_theta: 10000, rope_type: 'linear', factor: 2 } };

/** Logits of every position of every row, in one extendStep. */
export function fullLogits(model: CausalLm, ids: number[][]): Float32Array {
  const state = model.createState({ batch: ids.length, maxLength: ids[0].length });
  const { logits } = model.extendStep(state, ids);
  const values = logits.dataSync() as Float32Array;
  logits.dispose();
  model.disposeState(state);
  return values;
}
