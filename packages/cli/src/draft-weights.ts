import { InvalidArgumentError, kernelSet } from '@specstream/core';
import type { WeightChoice } from './commands/generate.js';

/**
 * The draft's weight format when none is asked for, under an f32 target: q4 where the started
 * backend's kernels run q4 (wasm, webgpu), else f32. A draft only proposes, so its format moves
 * α a little and the output not at all, while its step costs about a third (shipped pair on wasm,
 * 2 cores: 1.29 → 0.36 ms a draft step; greedy best fixed k 1.34× → 1.48–1.57× the target alone,
 * RESULTS.md). Call after the backend has started.
 */
export function defaultDraftWeights(): WeightChoice {
  try {
    kernelSet(undefined, 'q4');
    return 'q4';
  } catch (error) {
    if (error instanceof InvalidArgumentError) return 'f32';
    throw error;
  }
}
