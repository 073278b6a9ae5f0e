/**
 * One measured load, in a process of its own so its peak RSS is this load's alone.
 * Run by load-bench.ts as `node <execArgv> load-child.ts <model dir> [backend]`;
 * prints one line `LOAD_RESULT <json>` on stdout.
 */
import { type BackendName, initBackend } from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import { loadModel } from '../src/load-model.js';

export interface ChildResult {
  backend: string;
  seconds: number;
  /** RSS right before loadModel, bytes. */
  baselineRss: number;
  /** process.resourceUsage().maxRSS after the load, bytes: the process-lifetime peak. */
  maxRss: number;
  /** Highest RSS seen at a progress callback, bytes (a cross-check on maxRss). */
  sampledPeakRss: number;
  progressCalls: number;
  progressLoadedBytes: number;
  progressTotalBytes: number;
  /** What tfjs holds once the model is built (float32 weights). */
  tensorBytes: number;
  numTensors: number;
}

async function main(dir: string, backend: string): Promise<ChildResult> {
  const choice = await initBackend({ backend: backend as BackendName });
  // Let start-up garbage go before taking the baseline, when the flag allows.
  (globalThis as { gc?: () => void }).gc?.();
  const rss = () => process.memoryUsage.rss();
  const baselineRss = rss();
  let sampledPeakRss = baselineRss;
  let progressCalls = 0;
  let progressLoadedBytes = 0;
  let progressTotalBytes = 0;
  const start = performance.now();
  const loaded = await loadModel(dir, {
    onProgress: (loadedBytes, totalBytes) => {
      progressCalls++;
      progressLoadedBytes = loadedBytes;
      progressTotalBytes = totalBytes;
      sampledPeakRss = Math.max(sampledPeakRss, rss());
    },
  });
  const seconds = (performance.now() - start) / 1000;
  const maxRss = process.resourceUsage().maxRSS * 1024;
  const { numBytes, numTensors } = tf.memory();
  loaded.model.dispose();
  return {
    backend: choice.name,
    seconds,
    baselineRss,
    maxRss,
    sampledPeakRss,
    progressCalls,
    progressLoadedBytes,
    progressTotalBytes,
    tensorBytes: numBytes,
    numTensors,
  };
}

const [dir, backend = 'wasm'] = process.argv.slice(2);
if (!dir) throw new Error('usage: load-child.ts <model dir> [backend]');
process.stdout.write(`LOAD_RESULT ${JSON.stringify(await main(dir, backend))}\n`);
