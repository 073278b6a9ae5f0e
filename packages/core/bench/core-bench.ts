import * as tf from '@tensorflow/tfjs-core';
import type { CausalLm, CausalLmConfig } from '../src/causal-lm.js';
import { createCausalLm } from '../src/causal-lm.js';
import {
  availableKernelSets,
  type KernelSetName,
  kernelSet,
  type WeightFormat,
} from '../src/kernel-sets/index.js';
import type { KvCacheKind } from '../src/kv-cache/index.js';
import { defaultKvCacheKind } from '../src/kv-cache/index.js';
import { planPrefillChunks, prefill } from '../src/prefill.js';
import { randomCausalLmWeights } from '../src/random-model.js';
import { countKernels, medianMs, round, settle } from './measure.js';

export interface CoreBenchOptions {
  config: CausalLmConfig;
  /** B3 prompt length (1500 in the issue; smaller on slow backends). */
  prefillTokens: number;
  /** B1 context. */
  context: number;
  reps: number;
}

export interface CoreBenchResult {
  [key: string]: unknown;
}

const tokensOf = (n: number, offset = 0, vocab = 50257) =>
  Array.from({ length: n }, (_, i) => (i * 131 + offset * 17 + 5) % vocab);

/** A model per cache strategy (and kernel set and weight format: default the fastest here, f32). */
function withKind(
  config: CausalLmConfig,
  kind: KvCacheKind,
  seed: number,
  kernels?: KernelSetName,
  weights?: WeightFormat,
): CausalLm {
  return createCausalLm({ ...config, kvCache: kind }, randomCausalLmWeights(config, { seed }), {
    kernels,
    weights,
  });
}

/** Whether the set takes that weight format here. */
function formatWorks(kernels: KernelSetName, weights: WeightFormat): boolean {
  try {
    kernelSet(kernels, weights);
    return true;
  } catch {
    return false;
  }
}

async function stepAt(
  model: CausalLm,
  batch: number,
  context: number,
  maxLength: number,
  steps: number,
  reps: number,
): Promise<number> {
  const state = model.createState({ batch, maxLength });
  const V = model.vocabSize;
  const prompts = Array.from({ length: batch }, (_, r) => tokensOf(context, r, V));
  await settle(prefill(model, state, prompts));
  const window = Array.from({ length: batch }, (_, r) => tokensOf(steps, r + 3, V));
  const ms = await medianMs(async () => {
    await settle(model.extendStep(state, window).logits);
    model.rollback(state, new Array(batch).fill(context));
  }, reps);
  model.disposeState(state);
  return ms;
}

export async function runCoreBench(
  o: CoreBenchOptions,
  log: (line: string) => void,
): Promise<CoreBenchResult> {
  const kind = defaultKvCacheKind();
  const V = o.config.vocabSize;
  const result: CoreBenchResult = { defaultKvCache: kind, kernelSet: kernelSet().name };

  // B1 and B4 on the default strategy.
  const model = withKind(o.config, kind, 1);
  const one = await stepAt(model, 1, o.context, o.context + 16, 1, o.reps);
  const eight = await stepAt(model, 1, o.context, o.context + 16, 8, o.reps);
  result.B1 = {
    context: o.context,
    oneStepMs: round(one),
    eightStepsMs: round(eight),
    ratio: round(eight / one),
  };
  log(
    `B1 multi-step: 1 step ${one.toFixed(1)} ms, 8 steps ${eight.toFixed(1)} ms → ratio ${(eight / one).toFixed(2)}`,
  );

  const decode = (batch: number) => stepAt(model, batch, 128, 160, 1, o.reps);
  const b1 = await decode(1);
  const b8 = await decode(8);
  const ops = await (async () => {
    const state = model.createState({ batch: 1, maxLength: 160 });
    await settle(prefill(model, state, [tokensOf(128, 0, V)]));
    const n = await countKernels(() => model.extendStep(state, [[7]]).logits);
    model.disposeState(state);
    return n;
  })();
  result.B4 = {
    context: 128,
    batch1TokensPerS: round(1000 / b1, 1),
    batch8TokensPerS: round((8 * 1000) / b8, 1),
    opsPerStep: ops,
  };
  log(
    `B4 decode (${kernelSet().name} set): batch 1 ${(1000 / b1).toFixed(1)} tok/s, batch 8 ${((8 * 1000) / b8).toFixed(1)} tok/s, ${ops} kernels/step`,
  );
  // The same decode on every other kernel set and weight format the backend has: the reference
  // set (tfjs's own kernels) is what core's kernels are measured against; q8/q4 (wasm) and f16
  // (webgpu) are what they read fewer bytes with.
  const sets: Record<string, unknown> = {};
  const variants = availableKernelSets().flatMap((set) =>
    (['f32', 'f16', 'q8', 'q4'] as const)
      .filter((w) => !(set.name === kernelSet().name && w === 'f32') && formatWorks(set.name, w))
      .map((weights) => ({ kernels: set.name, weights })),
  );
  for (const { kernels, weights } of variants) {
    const other = withKind(o.config, kind, 1, kernels, weights);
    const at = (batch: number) => stepAt(other, batch, 128, 160, 1, o.reps);
    const [one, eight] = [await at(1), await at(8)];
    other.dispose();
    const label = weights === 'f32' ? kernels : `${kernels} ${weights}`;
    sets[label] = {
      batch1TokensPerS: round(1000 / one, 1),
      batch8TokensPerS: round((8 * 1000) / eight, 1),
    };
    log(
      `B4 decode (${kernels} set, ${weights}): batch 1 ${(1000 / one).toFixed(1)} tok/s, batch 8 ${((8 * 1000) / eight).toFixed(1)} tok/s → ${(b1 / one).toFixed(2)}× / ${(b8 / eight).toFixed(2)}× the ${kernelSet().name} set's f32`,
    );
  }
  result.otherKernelSets = sets;

  // B3: one token per call vs bucketed prefill, same prompt.
  {
    const prompt = tokensOf(o.prefillTokens, 9, V);
    const maxLength = o.prefillTokens + 8;
    const state = model.createState({ batch: 1, maxLength });
    const t0 = performance.now();
    for (const id of prompt) await settle(model.extendStep(state, [[id]], { logits: 'last' }).logits);
    const naive = performance.now() - t0;
    model.disposeState(state);
    const state2 = model.createState({ batch: 1, maxLength });
    const t1 = performance.now();
    await settle(prefill(model, state2, [prompt]));
    const bucketed = performance.now() - t1;
    model.disposeState(state2);
    const shapes = new Set(planPrefillChunks(o.prefillTokens)).size;
    result.B3 = {
      tokens: o.prefillTokens,
      oneByOneMs: round(naive),
      bucketedMs: round(bucketed),
      ratio: round(naive / bucketed),
      distinctShapes: shapes,
    };
    log(
      `B3 prefill ${o.prefillTokens} tokens: one by one ${naive.toFixed(0)} ms, bucketed ${bucketed.toFixed(0)} ms → ratio ${(naive / bucketed).toFixed(1)}, ${shapes} shapes`,
    );
  }
  model.dispose();

  // B2 and the cache-strategy comparison: a decode step at context 255 (+1 = 256)
  // with maxLength 256 vs 4096, and at context 1024.
  const caches: Record<string, unknown> = {};
  for (const k of ['inplace', 'blocks', 'concat', 'static'] as KvCacheKind[]) {
    if (k === 'inplace' && kind !== 'inplace') continue;
    const m = withKind(o.config, k, 1);
    const small = await stepAt(m, 1, 255, 256, 1, o.reps);
    const large = await stepAt(m, 1, 255, 4096, 1, o.reps);
    const long = await stepAt(m, 1, 1024, 4096, 1, o.reps);
    // The default strategy also at 4000 slots, where attention (split over workgroups on webgpu) shows.
    const longest = k === kind ? await stepAt(m, 1, 4000, 4096, 1, o.reps) : undefined;
    m.dispose();
    caches[k] = {
      'ms@256/max256': round(small),
      'ms@256/max4096': round(large),
      'ms@1024/max4096': round(long),
      ...(longest === undefined ? {} : { 'ms@4000/max4096': round(longest) }),
      B2ratio: round(large / small),
    };
    log(
      `cache ${k}: ${small.toFixed(1)} ms (max 256), ${large.toFixed(1)} ms (max 4096) → B2 ${(large / small).toFixed(2)}; ${long.toFixed(1)} ms at 1024${longest === undefined ? '' : `, ${longest.toFixed(1)} ms at 4000`}`,
    );
  }
  result.caches = caches;
  result.B2 = (caches[kind] as { B2ratio: number }).B2ratio;
  if (tf.getBackend() === 'webgpu') result.B5 = await memoryBound(o.reps, log);
  result.tensorsLeft = tf.memory().numTensors;
  return result;
}

/** A Llama of ~0.6B parameters (the GPU issue's memory-bound shape): 2048 wide, 8 layers, GQA 32/8, MLP 8192. */
export const LLAMA_05B_SHAPE: CausalLmConfig = {
  vocabSize: 32000,
  hiddenSize: 2048,
  layers: 8,
  heads: 32,
  kvHeads: 8,
  headDim: 64,
  norm: 'rms',
  normEps: 1e-5,
  activation: 'silu',
  gatedMlp: true,
  positions: { kind: 'rotary', rotary: { theta: 10000 } },
};

/**
 * B5 (webgpu): batch-1 decode of the memory-bound shape with f32, f16 and
 * q8 weights, and the weight bytes each step reads over its time (an upper
 * estimate of the bandwidth the step reaches: every weight read once).
 */
async function memoryBound(reps: number, log: (line: string) => void): Promise<Record<string, unknown>> {
  const config = LLAMA_05B_SHAPE;
  const { hiddenSize: d, layers, heads, kvHeads, headDim, vocabSize } = config;
  const perLayer = d * (heads + 2 * kvHeads) * headDim + heads * headDim * d + 3 * d * 4 * d;
  const params = layers * perLayer + 2 * vocabSize * d;
  const out: Record<string, unknown> = {
    shape: 'Llama-0.5B (d 2048, 8 layers, 32/8 heads, MLP 8192, vocab 32000)',
    params,
  };
  for (const weights of ['f32', 'f16', 'q8'] as const) {
    if (!formatWorks('webgpu', weights)) continue;
    const model = createCausalLm(config, randomCausalLmWeights(config, { seed: 3 }), {
      kernels: 'webgpu',
      weights,
    });
    const ms = await stepAt(model, 1, 128, 160, 1, reps);
    model.dispose();
    // The embedding lookup reads one row: the bytes are the products' and the head's.
    const bytes = (params - vocabSize * d) * { f32: 4, f16: 2, q8: 1 + 4 / 32 }[weights];
    out[weights] = {
      stepMs: round(ms),
      tokensPerS: round(1000 / ms, 1),
      weightGBperS: round(bytes / ms / 1e6, 1),
    };
    log(
      `B5 Llama-0.5B decode (${weights}): ${ms.toFixed(2)} ms/step, ${(1000 / ms).toFixed(1)} tok/s, weights ${(bytes / 1e9).toFixed(2)} GB → ${(bytes / ms / 1e6).toFixed(0)} GB/s`,
    );
  }
  return out;
}
