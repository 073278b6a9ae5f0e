import type { Linear, NormWeights } from '@specstream/core';
import type * as tf from '@tensorflow/tfjs-core';
import type { WeightSource } from '../architectures/weights.js';
import { SafetensorsError } from '../safetensors/errors.js';
import type { TensorReader } from '../safetensors/file.js';
import type { ReferenceSynthesizerConfig } from '../synthesizer/config.js';
import type {
  ReferenceSynthesizerWeights,
  SynthesizerDecoderLayerWeights,
  SynthesizerTextLayerWeights,
} from '../synthesizer/weights.js';

const FLOAT_DTYPES: readonly string[] = ['F64', 'F32', 'F16', 'BF16'];

/**
 * Every tensor name of a ReferenceSynthesizer.state_dict() (tools/train/speech_models.py) for
 * this config, each torch Linear as `.weight` [out, in] and `.bias`, each LayerNorm as
 * `.weight` and `.bias`.
 */
export function synthesizerTensorNames(config: ReferenceSynthesizerConfig): string[] {
  const linear = (p: string) => [`${p}.weight`, `${p}.bias`];
  const attention = (p: string) => ['q', 'k', 'v', 'o'].flatMap((x) => linear(`${p}.${x}`));
  const mlp = (p: string) => [...linear(`${p}.up`), ...linear(`${p}.down`)];
  const names = ['embed_tokens.weight'];
  for (let i = 0; i < config.textLayers; i++) {
    const p = `text_layers.${i}`;
    names.push(
      ...linear(`${p}.attn_norm`),
      ...attention(`${p}.attn`),
      ...linear(`${p}.mlp_norm`),
      ...mlp(`${p}.mlp`),
    );
  }
  names.push(...linear('text_norm'), ...linear('prenet.0'), ...linear('prenet.1'));
  for (let i = 0; i < config.decoderLayers; i++) {
    const p = `decoder_layers.${i}`;
    names.push(
      ...linear(`${p}.self_norm`),
      ...attention(`${p}.attn`),
      ...linear(`${p}.cross_norm`),
      ...attention(`${p}.cross`),
      ...linear(`${p}.mlp_norm`),
      ...mlp(`${p}.mlp`),
    );
  }
  names.push(...linear('final_norm'), ...linear('frame_head'), ...linear('stop_head'));
  return names;
}

/**
 * Before anything is read: the checkpoint holds exactly the tensors the config implies, all of
 * them floats (a checkpoint with another layer count, or of another model, fails here by name).
 */
export function checkSynthesizerTensors(
  reader: TensorReader,
  config: ReferenceSynthesizerConfig,
  location: string,
): void {
  const expected = synthesizerTensorNames(config);
  const missing = expected.filter((name) => !reader.has(name));
  if (missing.length > 0) {
    throw new SafetensorsError(
      location,
      `the checkpoint lacks ${missing.length} tensor(s) the config implies, first "${missing[0]}"`,
    );
  }
  const known = new Set(expected);
  const extra = reader.names.filter((name) => !known.has(name));
  if (extra.length > 0) {
    throw new SafetensorsError(
      location,
      `the checkpoint has ${extra.length} tensor(s) the config does not imply, first "${extra[0]}" (do text_layers and decoder_layers match the weights?)`,
    );
  }
  const integer = expected.find((name) => !FLOAT_DTYPES.includes(reader.info(name).dtype));
  if (integer !== undefined) {
    throw new SafetensorsError(
      location,
      `tensor "${integer}" is ${reader.info(integer).dtype}, not a float type`,
    );
  }
}

/**
 * Reads every tensor into the TypeScript layout (Linear weights transposed to [in, out]) and
 * checks its shape against the config, so a mismatch fails here with the tensor's name rather
 * than inside a matmul. On error the caller frees what was read with `source.disposeAll()`.
 */
export async function readSynthesizerWeights(
  source: WeightSource,
  config: ReferenceSynthesizerConfig,
  location: string,
): Promise<ReferenceSynthesizerWeights> {
  const { hiddenSize: d, ffSize: ff, nMels, prenetSize, framesPerStep: r, vocabSize } = config;
  const expect = (name: string, t: tf.Tensor, shape: number[]) => {
    if (t.shape.join() !== shape.join()) {
      throw new SafetensorsError(location, `"${name}" has shape [${t.shape}], the config implies [${shape}]`);
    }
  };
  /** A torch Linear(inDim, outDim): stored [outDim, inDim], read as [inDim, outDim]. */
  const linear = async (prefix: string, inDim: number, outDim: number): Promise<Linear> => {
    const layer = await source.linear(prefix);
    expect(`${prefix}.weight`, layer.weight, [inDim, outDim]);
    if (layer.bias) expect(`${prefix}.bias`, layer.bias, [outDim]);
    return layer;
  };
  const norm = async (prefix: string): Promise<NormWeights> => {
    const n = await source.norm(prefix);
    expect(`${prefix}.weight`, n.weight, [d]);
    if (n.bias) expect(`${prefix}.bias`, n.bias, [d]);
    return n;
  };
  const attention = async (prefix: string) => ({
    q: await linear(`${prefix}.q`, d, d),
    k: await linear(`${prefix}.k`, d, d),
    v: await linear(`${prefix}.v`, d, d),
    o: await linear(`${prefix}.o`, d, d),
  });

  const embedTokens = (await source.tensor('embed_tokens.weight')) as tf.Tensor2D;
  expect('embed_tokens.weight', embedTokens, [vocabSize, d]);
  const textLayers: SynthesizerTextLayerWeights[] = [];
  for (let i = 0; i < config.textLayers; i++) {
    const p = `text_layers.${i}`;
    const attnNorm = await norm(`${p}.attn_norm`);
    const attn = await attention(`${p}.attn`);
    const mlpNorm = await norm(`${p}.mlp_norm`);
    const up = await linear(`${p}.mlp.up`, d, ff);
    const down = await linear(`${p}.mlp.down`, ff, d);
    textLayers.push({ attnNorm, ...attn, mlpNorm, up, down });
  }
  const textNorm = await norm('text_norm');
  const prenet: [Linear, Linear] = [
    await linear('prenet.0', nMels, prenetSize),
    await linear('prenet.1', prenetSize, d),
  ];
  const decoderLayers: SynthesizerDecoderLayerWeights[] = [];
  for (let i = 0; i < config.decoderLayers; i++) {
    const p = `decoder_layers.${i}`;
    const selfNorm = await norm(`${p}.self_norm`);
    const attn = await attention(`${p}.attn`);
    const crossNorm = await norm(`${p}.cross_norm`);
    const cross = await attention(`${p}.cross`);
    const mlpNorm = await norm(`${p}.mlp_norm`);
    const up = await linear(`${p}.mlp.up`, d, ff);
    const down = await linear(`${p}.mlp.down`, ff, d);
    decoderLayers.push({
      selfNorm,
      ...attn,
      crossNorm,
      crossQ: cross.q,
      crossK: cross.k,
      crossV: cross.v,
      crossO: cross.o,
      mlpNorm,
      up,
      down,
    });
  }
  const finalNorm = await norm('final_norm');
  const frameHead = await linear('frame_head', d, r * nMels);
  const stopHead = await linear('stop_head', d, 1);
  return { embedTokens, textLayers, textNorm, prenet, decoderLayers, finalNorm, frameHead, stopHead };
}
