import * as tf from '@tensorflow/tfjs-core';
import type { CausalLm, CausalLmConfig } from '../src/causal-lm.js';
import { createCausalLm } from '../src/causal-lm.js';
import { availableKernelSets, type KernelSetName, kernelSet } from '../src/kernel-sets/index.js';
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

/** A model per cache strategy (and kernel set: default the fastest here) from seeded weights. */
function withKind(
  config: CausalLmConfig,
  kind: KvCacheKind,
  seed: number,
  kernels?: KernelSetName,
): CausalLm {
  return createCausalLm({ ...config, kvCache: kind }, randomCausalLmWeights(config, { seed }), { kernels });
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
  // The same decode on every other kernel set the backend has: the reference set (tfjs's own
  // kernels) is what core's kernels are measured against.
  const sets: Record<string, unknown> = {};
  for (const set of availableKernelSets().filter((s) => s.name !== kernelSet().name)) {
    const other = withKind(o.config, kind, 1, set.name);
    const at = (batch: number) => stepAt(other, batch, 128, 160, 1, o.reps);
    const [one, eight] = [await at(1), await at(8)];
    other.dispose();
    sets[set.name] = {
      batch1TokensPerS: round(1000 / one, 1),
      batch8TokensPerS: round((8 * 1000) / eight, 1),
    };
    log(
      `B4 decode (${set.name} set): batch 1 ${(1000 / one).toFixed(1)} tok/s, batch 8 ${((8 * 1000) / eight).toFixed(1)} tok/s → ${kernelSet().name} set ${(one / b1).toFixed(2)}× / ${(eight / b8).toFixed(2)}×`,
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
    m.dispose();
    caches[k] = {
      'ms@256/max256': round(small),
      'ms@256/max4096': round(large),
      'ms@1024/max4096': round(long),
      B2ratio: round(large / small),
    };
    log(
      `cache ${k}: ${small.toFixed(1)} ms (max 256), ${large.toFixed(1)} ms (max 4096) → B2 ${(large / small).toFixed(2)}; ${long.toFixed(1)} ms at 1024`,
    );
  }
  result.caches = caches;
  result.B2 = (caches[kind] as { B2ratio: number }).B2ratio;
  result.tensorsLeft = tf.memory().numTensors;
  return result;
}
