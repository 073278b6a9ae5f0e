import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { type AdaptiveKState, checkAdaptiveKState } from '@specstream/speculative';

/**
 * Adaptive k between runs. A fresh policy spends several of a short reply's iterations probing
 * k values that turn out worse (on the shipped pair on wasm a fresh policy reached 0.92–0.97 of
 * the best fixed k over 96 tokens, one kept across replies 0.99), so `generate` keeps what the
 * policy learned in a small JSON file, one entry per model pair, weights, backend, threads and
 * CPU, and the next run with the same setting starts from it.
 */
export interface KStateFile {
  version: 1;
  entries: Record<string, { state: AdaptiveKState; updatedAt: string }>;
}

/** At most this many settings are kept; the least recently updated go first. */
const MAX_ENTRIES = 32;

export interface KMemory {
  path: string;
  key: string;
  /** What the last run with this key learned, if any. */
  state?: AdaptiveKState;
  /** Why an existing file was not used (it is then rewritten). */
  warning?: string;
  /** The newest state learned in this run, saved by saveKMemory. */
  learned?: AdaptiveKState;
}

/**
 * --k-state, else SPECSTREAM_K_STATE, else $XDG_CACHE_HOME/specstream/adaptive-k.json, else
 * $HOME/.cache/specstream/adaptive-k.json; undefined (nothing kept) for 'none' or when the
 * environment names no home.
 */
export function kStatePath(flag: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  const named = flag ?? env.SPECSTREAM_K_STATE;
  if (named !== undefined && named !== '') return named === 'none' ? undefined : named;
  const cache = env.XDG_CACHE_HOME || (env.HOME ? join(env.HOME, '.cache') : undefined);
  return cache === undefined ? undefined : join(cache, 'specstream', 'adaptive-k.json');
}

/** The setting a state belongs to: timings differ with any of these. */
export function kStateKey(parts: {
  target: string;
  drafter: string;
  weights: string;
  backend: string;
  threads: string | undefined;
}): string {
  const cpu = cpus();
  return JSON.stringify({
    ...parts,
    threads: parts.threads ?? 'default',
    cpu: `${cpu[0]?.model ?? '?'} ×${cpu.length}`,
  });
}

async function readStateFile(path: string): Promise<{ file?: KStateFile; warning?: string }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
    return { warning: `cannot read it (${(error as Error).message})` };
  }
  let file: KStateFile;
  try {
    file = JSON.parse(text) as KStateFile;
  } catch (error) {
    return { warning: `it is not JSON (${(error as Error).message})` };
  }
  if (
    typeof file !== 'object' ||
    file === null ||
    file.version !== 1 ||
    typeof file.entries !== 'object' ||
    file.entries === null
  )
    return { warning: 'it is not a version 1 adaptive-k state file' };
  return { file };
}

/** Reads the state kept for `key`; a missing file is no state, a damaged one a warning. */
export async function openKMemory(path: string, key: string): Promise<KMemory> {
  const { file, warning } = await readStateFile(path);
  const entry = file?.entries[key];
  if (entry === undefined) return { path, key, warning };
  try {
    return { path, key, state: checkAdaptiveKState(entry.state) };
  } catch (error) {
    return { path, key, warning: `its entry for this setting is damaged (${(error as Error).message})` };
  }
}

/**
 * Writes the learned state under its key, keeping the other entries (the newest MAX_ENTRIES),
 * through a temporary file and a rename so that a reader never sees half a file. Resolves to a
 * warning instead of throwing: a cache that cannot be written must not fail the command.
 */
export async function saveKMemory(memory: KMemory): Promise<string | undefined> {
  if (memory.learned === undefined) return undefined;
  try {
    const { file } = await readStateFile(memory.path);
    const entries = { ...(file?.entries ?? {}) };
    entries[memory.key] = { state: memory.learned, updatedAt: new Date().toISOString() };
    const kept = Object.entries(entries)
      .sort(([, a], [, b]) => b.updatedAt.localeCompare(a.updatedAt))
      .slice(0, MAX_ENTRIES);
    const out: KStateFile = { version: 1, entries: Object.fromEntries(kept) };
    await mkdir(dirname(memory.path), { recursive: true });
    const temporary = `${memory.path}.${process.pid}.tmp`;
    await writeFile(temporary, `${JSON.stringify(out, null, 1)}\n`);
    await rename(temporary, memory.path);
    return undefined;
  } catch (error) {
    return `cannot save adaptive k's state to ${memory.path}: ${(error as Error).message}`;
  }
}
