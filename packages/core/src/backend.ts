import * as tf from '@tensorflow/tfjs-core';
import { CANDIDATES, type Candidate, firstLine } from './backend/candidates.js';
import { InvalidArgumentError } from './errors.js';
import { getLogger } from './log.js';

/**
 * Backend selection. `initBackend` picks the fastest tfjs backend that can
 * actually start here (or the one asked for), makes it current, and logs what
 * it chose and why the faster ones were passed over.
 */

export const BACKEND_NAMES = ['tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];
export type BackendRequest = BackendName | 'auto';

export interface SkippedBackend {
  /** npm package that was tried. */
  readonly candidate: string;
  readonly reason: string;
}

export interface BackendChoice {
  readonly name: BackendName;
  /** npm package that provided the backend. */
  readonly source: string;
  /** Faster candidates that could not start, in the order they were tried. */
  readonly skipped: readonly SkippedBackend[];
}

export interface InitBackendOptions {
  /** Wins over the SPECSTREAM_BACKEND variable; default 'auto'. */
  backend?: BackendRequest;
}

const VALID_REQUESTS: readonly string[] = [...BACKEND_NAMES, 'auto'];

let cached: { request: BackendRequest; choice: BackendChoice } | undefined;
// tfjs has one global current backend, so selections must not interleave.
let queue: Promise<unknown> = Promise.resolve();

export function initBackend(options: InitBackendOptions = {}): Promise<BackendChoice> {
  const selection = queue.then(() => selectUnlessCached(requestedBackend(options.backend)));
  queue = selection.catch(() => undefined);
  return selection;
}

/** The backend the last successful `initBackend` made current, if any. */
export function currentBackend(): BackendName | undefined {
  return cached?.choice.name;
}

function requestedBackend(option: string | undefined): BackendRequest {
  const fromEnv = globalThis.process?.env?.SPECSTREAM_BACKEND || undefined;
  const [value, origin] =
    option !== undefined
      ? [option, 'option `backend`']
      : fromEnv !== undefined
        ? [fromEnv, 'SPECSTREAM_BACKEND']
        : ['auto', 'default'];
  if (VALID_REQUESTS.includes(value)) return value as BackendRequest;
  throw new InvalidArgumentError(
    `unknown backend '${value}' (from ${origin}); valid names: ${VALID_REQUESTS.join(', ')}`,
  );
}

async function selectUnlessCached(request: BackendRequest): Promise<BackendChoice> {
  if (cached?.request === request) return cached.choice;
  const choice = await select(request);
  cached = { request, choice };
  return choice;
}

async function select(request: BackendRequest): Promise<BackendChoice> {
  silenceTfjs();
  const candidates = request === 'auto' ? CANDIDATES : CANDIDATES.filter((c) => c.backend === request);
  // tfjs reports no backend as undefined before the first one is set.
  const previous = (tf.getBackend() as string | null | undefined) ?? null;
  const skipped: SkippedBackend[] = [];
  for (const candidate of candidates) {
    const reason = await tryStart(candidate);
    if (reason === undefined) return announce(candidate, skipped);
    skipped.push({ candidate: candidate.source, reason });
  }
  await restoreBackend(previous);
  throw nothingStarted(request, skipped);
}

// Prod mode turns tfjs's own log.warn calls (kernel re-registration, the
// "install tfjs-node" hint, backend init failures) into no-ops; it must be on
// before the first backend package is imported.
function silenceTfjs(): void {
  if (!tf.env().getBool('PROD')) tf.enableProdMode();
}

async function tryStart(candidate: Candidate): Promise<string | undefined> {
  try {
    await candidate.start();
    return undefined;
  } catch (error) {
    return firstLine(error);
  }
}

function announce(candidate: Candidate, skipped: SkippedBackend[]): BackendChoice {
  const choice: BackendChoice = Object.freeze({
    name: candidate.backend,
    source: candidate.source,
    skipped: Object.freeze(skipped.map((s) => Object.freeze(s))),
  });
  getLogger('core').info(
    { backend: choice.name, source: choice.source, skipped: choice.skipped },
    'backend selected',
  );
  return choice;
}

// A failed tf.setBackend leaves tfjs pointing at the backend that failed, so
// put back whatever was current before this attempt.
async function restoreBackend(previous: string | null): Promise<void> {
  if (previous !== null && tf.getBackend() !== previous) await tf.setBackend(previous);
}

function nothingStarted(request: BackendRequest, skipped: SkippedBackend[]): Error {
  const reasons = skipped.map((s) => `${s.candidate}: ${s.reason}`).join('; ');
  if (request === 'auto') return new Error(`no tfjs backend could start: ${reasons}`);
  return new InvalidArgumentError(`backend '${request}' cannot start here: ${reasons}`);
}

/**
 * Grows the backend's heap once to hold `bytes` more, before a large load.
 * On wasm, the heap otherwise grows step by step as tensors arrive, and each
 * step may overshoot by up to ~96 MB (emscripten's growth rule) and copy the
 * whole heap; one exact reservation, freed at once, is reused by the tensors
 * that follow. Other backends need nothing.
 */
export function reserveBackendMemory(bytes: number): void {
  if (tf.getBackend() !== 'wasm' || !(bytes > 0)) return;
  const module = (tf.backend() as unknown as { wasm: { _malloc(n: number): number; _free(p: number): void } })
    .wasm;
  const pointer = module._malloc(bytes);
  if (pointer !== 0) module._free(pointer);
}
