import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { getLogger } from '../../log.js';
import type { WeightArena } from './weight-arena.js';

/**
 * Worker threads that run core's kernels over the weight arena alongside the
 * calling thread: a kernel splits its work into one call per thread
 * (disjoint column ranges of a product), this thread runs the first and
 * waits for the rest. tfjs-backend-wasm runs single-threaded in Node; on
 * this project's 2-core machine two threads made a GPT-2-sized one-row
 * product 1.25× faster (memory 30 → 37 GB/s) and a 4-row one 1.7×.
 *
 * Handing a call over costs a futex wake (tens of µs): a worker spins
 * briefly after each call before it sleeps, since a model's products come
 * in quick succession. Threads: SPECSTREAM_THREADS, else the machine's
 * available parallelism, at most MAX_THREADS. Workers are unref'd: they
 * never keep a process alive.
 */
export const MAX_THREADS = 8;

/**
 * Below this many multiply-adds (rows × in × out) a product runs on the
 * calling thread alone: handing work to a thread costs tens of µs.
 */
export const THREADED_WORK = 1 << 19;

/**
 * The functions a worker can run, by index in the control block: the float
 * kernels' and the quantized kernels' (quantq4r only in their relaxed build).
 */
export const THREAD_FUNCTIONS = ['product', 'dotsProduct', 'quantq8', 'quantq4', 'quantq4r'] as const;
export type ThreadFunction = (typeof THREAD_FUNCTIONS)[number];

// Control block per worker (Int32): sequence number, done sequence, status, function, argument count, arguments.
const SEQ = 0;
const DONE = 1;
const STATUS = 2;
const FN = 3;
const ARGC = 4;
const ARGS = 5;
const MAX_ARGS = 11;

/** Spin iterations (Atomics.load each) before a worker or the caller sleeps. */
const SPIN = 20000;

const workerSource = `
const { workerData } = require('node:worker_threads');
const { modules, memory, control, names } = workerData;
const instances = modules.map((module) => new WebAssembly.Instance(module, { tfjs: { memory } }).exports);
const fns = names.map((name) => instances.find((exports) => name in exports)?.[name]);
let seen = 0;
for (;;) {
  for (let i = 0; i < ${SPIN} && Atomics.load(control, ${SEQ}) === seen; i++);
  Atomics.wait(control, ${SEQ}, seen);
  seen = Atomics.load(control, ${SEQ});
  let status = 0;
  try {
    fns[control[${FN}]](...control.subarray(${ARGS}, ${ARGS} + control[${ARGC}]));
  } catch {
    status = 1;
  }
  control[${STATUS}] = status;
  Atomics.store(control, ${DONE}, seen);
  Atomics.notify(control, ${DONE});
}
`;

interface KernelWorker {
  worker: Worker;
  control: Int32Array;
  seq: number;
}

let workers: KernelWorker[] | undefined;
let workersArena: WeightArena | undefined;

/** How many threads kernels split their work over (this one included). */
export function kernelThreadCount(): number {
  const configured = globalThis.process?.env?.SPECSTREAM_THREADS;
  const wanted = configured !== undefined && configured !== '' ? Number(configured) : availableParallelism();
  if (!Number.isInteger(wanted) || wanted < 1) {
    throw new Error(`SPECSTREAM_THREADS must be a positive integer, got "${configured}"`);
  }
  return Math.min(wanted, MAX_THREADS);
}

function startWorkers(arena: WeightArena, count: number): KernelWorker[] {
  const started: KernelWorker[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const control = new Int32Array(new SharedArrayBuffer(4 * (ARGS + MAX_ARGS)));
      const worker = new Worker(workerSource, {
        eval: true,
        workerData: {
          modules: [arena.module, arena.quant.module],
          memory: arena.memory,
          control,
          names: THREAD_FUNCTIONS,
        },
      });
      worker.unref();
      worker.on('error', (error) => getLogger('core').warn({ error: String(error) }, 'kernel thread failed'));
      started.push({ worker, control, seq: 0 });
    }
  } catch (error) {
    getLogger('core').info(
      { reason: String(error) },
      'kernel threads unavailable; kernels run on one thread',
    );
    for (const w of started) void w.worker.terminate();
    return [];
  }
  return started;
}

function ensureWorkers(arena: WeightArena, count: number): KernelWorker[] {
  if (workers === undefined || workersArena !== arena || workers.length < count) {
    const have = workersArena === arena ? (workers ?? []) : [];
    workers = [...have, ...startWorkers(arena, count - have.length)];
    workersArena = arena;
  }
  return workers;
}

/**
 * Splits [0, total) into one contiguous range per thread: a single range
 * when the product is small (`work` multiply-adds, under THREADED_WORK),
 * else as many as there are threads but each at least `minPerThread` long.
 */
export function threadRanges(total: number, minPerThread: number, work: number): [number, number][] {
  const threads =
    work < THREADED_WORK ? 1 : Math.max(1, Math.min(kernelThreadCount(), Math.floor(total / minPerThread)));
  return Array.from({ length: threads }, (_, t) => [
    Math.floor((t * total) / threads),
    Math.floor(((t + 1) * total) / threads),
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
 * Runs `fn` once per argument list, concurrently: the first on this thread,
 * the others on workers (fewer workers than lists: the rest run here too).
 * Returns when all have finished; throws if any trapped.
 */
export function runOnThreads(arena: WeightArena, fn: ThreadFunction, calls: readonly number[][]): void {
  const fnIndex = THREAD_FUNCTIONS.indexOf(fn);
  // Before any worker starts: a kernel missing from this build is an error with nothing in flight.
  const run = threadFunction(arena, fn);
  const pool = calls.length > 1 ? ensureWorkers(arena, calls.length - 1) : [];
  const handed: KernelWorker[] = [];
  for (let i = 1; i < calls.length && i - 1 < pool.length; i++) {
    const w = pool[i - 1];
    const args = calls[i];
    if (args.length > MAX_ARGS)
      throw new Error(`runOnThreads: ${args.length} arguments, at most ${MAX_ARGS}`);
    w.control[FN] = fnIndex;
    w.control[ARGC] = args.length;
    for (let a = 0; a < args.length; a++) w.control[ARGS + a] = args[a];
    w.seq = (w.seq + 1) | 0;
    Atomics.store(w.control, SEQ, w.seq);
    Atomics.notify(w.control, SEQ);
    handed.push(w);
  }
  run(...calls[0]);
  for (let i = 1 + handed.length; i < calls.length; i++) run(...calls[i]);
  let failed = false;
  for (const w of handed) {
    for (let i = 0; i < SPIN && Atomics.load(w.control, DONE) !== w.seq; i++);
    // Sleep only while DONE still holds the value just checked: reading it again for the
    // wait would miss a worker that finished in between (and its notify), forever.
    for (let done = Atomics.load(w.control, DONE); done !== w.seq; done = Atomics.load(w.control, DONE)) {
      Atomics.wait(w.control, DONE, done);
    }
    failed ||= w.control[STATUS] !== 0;
  }
  if (failed) throw new Error(`${fn} failed on a kernel thread (out-of-bounds arguments?)`);
}

/** Stops the workers (tests; a process exits without this). */
export async function stopKernelThreads(): Promise<void> {
  const stopping = workers ?? [];
  workers = undefined;
  workersArena = undefined;
  await Promise.all(stopping.map((w) => w.worker.terminate()));
}
