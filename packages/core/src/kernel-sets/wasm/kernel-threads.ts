import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { getLogger } from '../../log.js';
import type { WeightArena } from './weight-arena.js';

/**
 * Worker threads that run core's kernels over the weight arena alongside the
 * calling thread. A kernel cuts its work into chunks (disjoint column ranges
 * of a product, a few per thread) and every thread, this one included, claims
 * chunks one at a time until none is left: a thread that starts late (a
 * worker still waking up, or descheduled because the machine has more
 * runnable threads than cores) simply claims fewer, and this thread never
 * waits for a worker that has nothing in hand, only for chunks already
 * claimed. tfjs-backend-wasm runs single-threaded in Node; on this project's
 * 2-core machine two threads made a GPT-2-sized one-row product 1.25× faster
 * (memory 30 → 37 GB/s) and a 4-row one 1.7×. With one fixed range per thread
 * instead (until this commit), a server step at 16 rows spent 31% of the
 * main thread waiting on the worker, which its clients' process kept off a
 * core.
 *
 * Waking a worker costs a futex wake (tens of µs): a worker spins briefly
 * after each job before it sleeps, since a model's products come in quick
 * succession. Threads: SPECSTREAM_THREADS, else the machine's available
 * parallelism, at most MAX_THREADS. Workers are unref'd: they never keep a
 * process alive.
 */
export const MAX_THREADS = 8;

/**
 * Below this many multiply-adds (rows × in × out) a product runs on the
 * calling thread alone: handing work to a thread costs tens of µs.
 */
export const THREADED_WORK = 1 << 19;

/** Chunks per thread a threaded kernel is cut into, so that early threads take over late ones' share. */
export const CHUNKS_PER_THREAD = 4;

/**
 * The functions a worker can run, by index in the job block: the float
 * kernels' and the quantized kernels' (quantq4r only in their relaxed build).
 */
export const THREAD_FUNCTIONS = ['product', 'dotsProduct', 'quantq8', 'quantq4', 'quantq4r'] as const;
export type ThreadFunction = (typeof THREAD_FUNCTIONS)[number];

/*
 * The job block (Int32, shared by this thread and every worker):
 * - WAKE: bumped for every job; workers sleep on it.
 * - CLAIM: (generation << INDEX_BITS) | next chunk. A chunk is claimed by a compare-exchange of
 *   this word, so a claim succeeds only while its job is the current one: a worker that read
 *   the word of an earlier job fails its exchange and reads again. After a successful claim the
 *   job cannot end (this thread waits for every chunk to finish), so its slot stays intact.
 * - FINISHED, FAILED: chunks done in the current job, and whether one trapped.
 * - two slots, by generation parity (a slot is rewritten two jobs later, when no claim of its
 *   job can still succeed): COUNT, FN, ARGC, then MAX_CHUNKS argument lists of MAX_ARGS.
 */
const WAKE = 0;
const CLAIM = 1;
const FINISHED = 2;
const FAILED = 3;
const SLOTS = 4;
const COUNT = 0;
const FN = 1;
const ARGC = 2;
const ARGS = 3;
const MAX_ARGS = 11;
const MAX_CHUNKS = 64;
const SLOT_SIZE = ARGS + MAX_CHUNKS * MAX_ARGS;
const INDEX_BITS = 11;
const INDEX_MASK = (1 << INDEX_BITS) - 1;
const GENERATIONS = 1 << (31 - INDEX_BITS);

/** Spin iterations (Atomics.load each) before a worker or the caller sleeps. */
const SPIN = 20000;

/**
 * Claims and runs chunks of the current job until none is left; `run(slot, index)` runs one.
 * One source text for this thread and the workers (constants inlined: a bundler may rename
 * identifiers, which would break a function's own text).
 */
const claimChunksSource = `(job, run) => {
  for (;;) {
    const word = Atomics.load(job, ${CLAIM});
    const slot = ${SLOTS} + ((word >>> ${INDEX_BITS}) & 1) * ${SLOT_SIZE};
    if ((word & ${INDEX_MASK}) >= Atomics.load(job, slot + ${COUNT})) return;
    if (Atomics.compareExchange(job, ${CLAIM}, word, word + 1) !== word) continue;
    try {
      run(slot, word & ${INDEX_MASK});
    } catch {
      Atomics.store(job, ${FAILED}, 1);
    }
    if (Atomics.add(job, ${FINISHED}, 1) + 1 === job[slot + ${COUNT}]) Atomics.notify(job, ${FINISHED});
  }
}`;
const claimChunks = new Function(`return ${claimChunksSource}`)() as (
  job: Int32Array,
  run: (slot: number, index: number) => void,
) => void;

const workerSource = `
const { workerData } = require('node:worker_threads');
const { modules, memory, job, names } = workerData;
const instances = modules.map((module) => new WebAssembly.Instance(module, { tfjs: { memory } }).exports);
const fns = names.map((name) => instances.find((exports) => name in exports)?.[name]);
const claimChunks = ${claimChunksSource};
const run = (slot, index) => {
  const at = slot + ${ARGS} + index * ${MAX_ARGS};
  fns[job[slot + ${FN}]](...job.subarray(at, at + job[slot + ${ARGC}]));
};
let seen = 0;
for (;;) {
  for (let i = 0; i < ${SPIN} && Atomics.load(job, ${WAKE}) === seen; i++);
  Atomics.wait(job, ${WAKE}, seen);
  seen = Atomics.load(job, ${WAKE});
  claimChunks(job, run);
}
`;

interface ThreadPool {
  workers: Worker[];
  job: Int32Array;
  generation: number;
}

let pool: ThreadPool | undefined;
let poolArena: WeightArena | undefined;

/** How many threads kernels split their work over (this one included). */
export function kernelThreadCount(): number {
  const configured = globalThis.process?.env?.SPECSTREAM_THREADS;
  const wanted = configured !== undefined && configured !== '' ? Number(configured) : availableParallelism();
  if (!Number.isInteger(wanted) || wanted < 1) {
    throw new Error(`SPECSTREAM_THREADS must be a positive integer, got "${configured}"`);
  }
  return Math.min(wanted, MAX_THREADS);
}

function startWorkers(arena: WeightArena, job: Int32Array, count: number): Worker[] {
  const started: Worker[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const worker = new Worker(workerSource, {
        eval: true,
        workerData: {
          modules: [arena.module, arena.quant.module],
          memory: arena.memory,
          job,
          names: THREAD_FUNCTIONS,
        },
      });
      worker.unref();
      worker.on('error', (error) => getLogger('core').warn({ error: String(error) }, 'kernel thread failed'));
      started.push(worker);
    }
  } catch (error) {
    getLogger('core').info(
      { reason: String(error) },
      'kernel threads unavailable; kernels run on one thread',
    );
    for (const w of started) void w.terminate();
    return [];
  }
  return started;
}

function ensurePool(arena: WeightArena, workers: number): ThreadPool {
  if (pool === undefined || poolArena !== arena) {
    const job = new Int32Array(new SharedArrayBuffer(4 * (SLOTS + 2 * SLOT_SIZE)));
    pool = { workers: [], job, generation: 0 };
    poolArena = arena;
  }
  if (pool.workers.length < workers) {
    pool.workers.push(...startWorkers(arena, pool.job, workers - pool.workers.length));
  }
  return pool;
}

/**
 * Splits [0, total) into contiguous chunks for runOnThreads: a single range when the product is
 * small (`work` multiply-adds, under THREADED_WORK), else CHUNKS_PER_THREAD per thread, each at
 * least `minPerThread` / CHUNKS_PER_THREAD long, and never fewer than the threads that have at
 * least `minPerThread` each.
 */
export function threadRanges(total: number, minPerThread: number, work: number): [number, number][] {
  const threads =
    work < THREADED_WORK ? 1 : Math.max(1, Math.min(kernelThreadCount(), Math.floor(total / minPerThread)));
  const minPerChunk = Math.max(1, Math.ceil(minPerThread / CHUNKS_PER_THREAD));
  const chunks =
    threads === 1
      ? 1
      : Math.min(MAX_CHUNKS, threads * CHUNKS_PER_THREAD, Math.max(threads, Math.floor(total / minPerChunk)));
  return Array.from({ length: chunks }, (_, t) => [
    Math.floor((t * total) / chunks),
    Math.floor(((t + 1) * total) / chunks),
  ]);
}

/** This thread's instance of a thread function (the float kernels' or the quantized ones'). */
function threadFunction(arena: WeightArena, fn: ThreadFunction): (...args: number[]) => void {
  const found =
    fn in arena.exports
      ? (arena.exports as unknown as Record<string, unknown>)[fn]
      : (arena.quant.exports as unknown as Record<string, unknown>)[fn];
  if (typeof found !== 'function') throw new Error(`runOnThreads: no kernel ${fn} in this build`);
  return found as (...args: number[]) => void;
}

/**
 * Runs `fn` once per argument list (a chunk each), concurrently: this thread and up to
 * kernelThreadCount() − 1 workers claim chunks until none is left. Returns when all have
 * finished; throws if any trapped.
 */
export function runOnThreads(arena: WeightArena, fn: ThreadFunction, calls: readonly number[][]): void {
  // Before any worker starts: a kernel missing from this build is an error with nothing in flight.
  const run = threadFunction(arena, fn);
  if (calls.length === 1) {
    run(...calls[0]);
    return;
  }
  if (calls.length > MAX_CHUNKS)
    throw new Error(`runOnThreads: ${calls.length} chunks, at most ${MAX_CHUNKS}`);
  for (const args of calls) {
    if (args.length > MAX_ARGS)
      throw new Error(`runOnThreads: ${args.length} arguments, at most ${MAX_ARGS}`);
  }
  const { job, workers, ...state } = ensurePool(arena, Math.min(kernelThreadCount(), calls.length) - 1);
  const generation = (state.generation + 1) % GENERATIONS;
  pool!.generation = generation;
  const slot = SLOTS + (generation & 1) * SLOT_SIZE;
  job[slot + FN] = THREAD_FUNCTIONS.indexOf(fn);
  job[slot + ARGC] = calls[0].length;
  for (const [i, args] of calls.entries()) job.set(args, slot + ARGS + i * MAX_ARGS);
  job[slot + COUNT] = calls.length;
  Atomics.store(job, FINISHED, 0);
  Atomics.store(job, FAILED, 0);
  // The job is published by this store: every write above happens before it.
  Atomics.store(job, CLAIM, generation << INDEX_BITS);
  if (workers.length > 0) {
    Atomics.add(job, WAKE, 1);
    Atomics.notify(job, WAKE);
  }
  claimChunks(job, (_, index) => run(...calls[index]));
  for (let i = 0; i < SPIN && Atomics.load(job, FINISHED) !== calls.length; i++);
  // Sleep only while FINISHED still holds the value just checked (a chunk finishing in between
  // notifies before this thread waits, and the wait returns at once).
  for (let done = Atomics.load(job, FINISHED); done !== calls.length; done = Atomics.load(job, FINISHED)) {
    Atomics.wait(job, FINISHED, done);
  }
  if (Atomics.load(job, FAILED) !== 0) {
    throw new Error(`${fn} failed on a kernel thread (out-of-bounds arguments?)`);
  }
}

/** Stops the workers (tests; a process exits without this). */
export async function stopKernelThreads(): Promise<void> {
  const stopping = pool?.workers ?? [];
  pool = undefined;
  poolArena = undefined;
  await Promise.all(stopping.map((w) => w.terminate()));
}
