import {
  type CausalLm,
  type CausalLmConfig,
  type CausalLmLayerWeights,
  type CausalLmWeights,
  createCausalLm,
  mapWeightTensors,
  randomCausalLmWeights,
} from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';

/**
 * A target/draft pair with random weights and a controllable acceptance rate,
 * standing in for a trained pair until one ships: the draft is the target's
 * first `draftLayers` layers with the same embeddings and head (a layer-skip
 * draft), and the target's remaining layers write into the residual stream
 * scaled by `epsilon` (0: the target equals the draft; larger: they disagree
 * more). The cost ratio is realistic: the draft really runs fewer layers.
 */
export function layerSkipPair(
  config: CausalLmConfig,
  draftLayers: number,
  epsilon: number,
  seed = 1,
): { target: CausalLm; draft: CausalLm } {
  const weights = randomCausalLmWeights(config, { seed });
  const clone = <T>(x: T): T => mapWeightTensors(x, (t) => t.clone());
  const draftWeights: CausalLmWeights = {
    embedTokens: clone(weights.embedTokens),
    embedPositions: clone(weights.embedPositions),
    layers: weights.layers.slice(0, draftLayers).map(clone),
    finalNorm: clone(weights.finalNorm),
    lmHead: clone(weights.lmHead),
  };
  const scale = (t: tf.Tensor) => {
    const scaled = tf.mul(t, epsilon);
    t.dispose();
    return scaled;
  };
  // Random weights are raw layers, never prepared ones.
  weights.layers = (weights.layers as CausalLmLayerWeights[]).map((layer, i) =>
    i < draftLayers
      ? layer
      : { ...layer, o: mapWeightTensors(layer.o, scale), down: mapWeightTensors(layer.down, scale) },
  );
  const draftConfig = { ...config, layers: draftLayers };
  return { target: createCausalLm(config, weights), draft: createCausalLm(draftConfig, draftWeights) };
}

/**
 * A target whose greedy output re-reads its prompt, for the prompt-lookup
 * benchmark: random weights with the position table zeroed and every
 * attention output scaled by 1e-3, so the next token depends (almost) only on
 * the current one. Continuing a prompt that ends with a token seen earlier
 * reproduces what followed it there, as a summary quoting its source does.
 * The full model still runs: the cost per step is realistic.
 */
export function contextFreeTarget(config: CausalLmConfig, seed = 7): CausalLm {
  const weights = randomCausalLmWeights(config, { seed });
  if (weights.embedPositions) {
    const zero = tf.zerosLike(weights.embedPositions);
    weights.embedPositions.dispose();
    weights.embedPositions = zero as tf.Tensor2D;
  }
  weights.layers = (weights.layers as CausalLmLayerWeights[]).map((layer) => ({
    ...layer,
    o: mapWeightTensors(layer.o, (t) => {
      const scaled = tf.mul(t, 1e-3);
      t.dispose();
      return scaled;
    }),
  }));
  return createCausalLm(config, weights);
}
