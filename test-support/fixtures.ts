/**
 * Where the Hugging Face reference fixtures live, and the sizes they were made
 * with, read from their own files (config.json, preprocessor_config.json,
 * tokenizer.json and the safetensors headers) so that no test hard-codes one.
 *
 * Default: `../shared/fixtures/hf` beside the checkout. `SPECSTREAM_FIXTURES`
 * names another folder laid out the same way (tools/fixtures/make_fixtures.py
 * makes one with other sizes); a relative path is taken from the current
 * directory. Test-only code, shared by the packages' tests.
 */
import { readFileSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const DEFAULT_DIR = fileURLToPath(new URL('../../shared/fixtures/hf/', import.meta.url));
const override = process.env.SPECSTREAM_FIXTURES;

/** The fixture folder, with a trailing separator. */
export const FIXTURES_DIR = override ? withSeparator(resolve(override)) : DEFAULT_DIR;
export const FIXTURES_URL = pathToFileURL(FIXTURES_DIR);

function withSeparator(dir: string): string {
  return dir.endsWith(sep) ? dir : dir + sep;
}

/** A path inside the fixture folder ('llama/config.json', 'whisper/'). */
export function fixturePath(relativePath: string): string {
  return join(FIXTURES_DIR, relativePath);
}

/** A JSON file of the fixtures, parsed. */
export function readFixtureJson<T = Record<string, unknown>>(relativePath: string): T {
  return JSON.parse(readFileSync(fixturePath(relativePath), 'utf8')) as T;
}

export interface TensorHeader {
  dtype: string;
  shape: number[];
}

/** Name → dtype and shape, from a safetensors file's header alone (no tensor data read). */
export function safetensorsHeader(relativePath: string): Record<string, TensorHeader> {
  const bytes = readFileSync(fixturePath(relativePath));
  const length = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + length).toString('utf8')) as Record<string, TensorHeader>;
  delete header.__metadata__;
  return header;
}

/** The shape of one tensor of a safetensors file; throws naming the file when it is missing. */
function shapeOf(header: Record<string, TensorHeader>, name: string, file: string): number[] {
  const entry = header[name];
  if (!entry) throw new Error(`${fixturePath(file)} has no tensor '${name}'`);
  return entry.shape;
}

function numberField(config: Record<string, unknown>, file: string, ...names: string[]): number {
  for (const name of names) {
    const value = config[name];
    if (typeof value === 'number') return value;
  }
  throw new Error(`${fixturePath(file)} has no number field ${names.join(' / ')}`);
}

export type CausalFixtureName = 'llama' | 'qwen2' | 'gpt2';
export const CAUSAL_FIXTURES: readonly CausalFixtureName[] = ['llama', 'qwen2', 'gpt2'];

export interface CausalFixture {
  vocabSize: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Rows of the learned position table (gpt2) or the configured context (rotary models). */
  maxPositions: number;
  /** reference.safetensors: input_ids [rows, steps], greedy_prompt [1, promptLength], greedy_output [1, outputLength]. */
  rows: number;
  steps: number;
  promptLength: number;
  outputLength: number;
}

/** A causal LM fixture's sizes: config.json and reference.safetensors' shapes. */
export function causalFixture(name: CausalFixtureName): CausalFixture {
  const file = `${name}/config.json`;
  const config = readFixtureJson(file);
  const hidden = numberField(config, file, 'hidden_size', 'n_embd');
  const heads = numberField(config, file, 'num_attention_heads', 'n_head');
  const kvHeads = typeof config.num_key_value_heads === 'number' ? config.num_key_value_heads : heads;
  const headDim = typeof config.head_dim === 'number' ? config.head_dim : hidden / heads;
  const refFile = `${name}/reference.safetensors`;
  const ref = safetensorsHeader(refFile);
  const [rows, steps] = shapeOf(ref, 'input_ids', refFile);
  return {
    vocabSize: numberField(config, file, 'vocab_size'),
    hidden,
    layers: numberField(config, file, 'num_hidden_layers', 'n_layer'),
    heads,
    kvHeads,
    headDim,
    maxPositions: numberField(config, file, 'max_position_embeddings', 'n_positions'),
    rows,
    steps,
    promptLength: shapeOf(ref, 'greedy_prompt', refFile)[1],
    outputLength: shapeOf(ref, 'greedy_output', refFile)[1],
  };
}

/** The vocabulary the causal LM fixtures share (they are made with one tokenizer's size). */
export function sharedCausalVocab(): number {
  const sizes = new Set(CAUSAL_FIXTURES.map((name) => causalFixture(name).vocabSize));
  if (sizes.size !== 1) throw new Error(`the causal LM fixtures differ in vocab_size: ${[...sizes]}`);
  return [...sizes][0];
}

export interface WhisperFixture {
  vocabSize: number;
  dModel: number;
  numMelBins: number;
  encoderLayers: number;
  decoderLayers: number;
  /** Encoder output steps of a full window; the window takes twice as many frames. */
  maxSourcePositions: number;
  maxTargetPositions: number;
  decoderStartTokenId: number;
  eosTokenId: number;
  /** preprocessor_config.json (WhisperFeatureExtractor). */
  sampleRate: number;
  nFft: number;
  hop: number;
  /** Samples and frames of the padded 30 s window. */
  windowSamples: number;
  windowFrames: number;
  /** reference.safetensors: audio [audioSamples], input_features [1, mels, featureFrames], decoder_input_ids [1, decoderSteps], greedy_output [1, greedyLength]. */
  audioSamples: number;
  featureFrames: number;
  decoderSteps: number;
  greedyLength: number;
}

/** The whisper fixture's sizes: config.json, preprocessor_config.json and reference.safetensors' shapes. */
export function whisperFixture(): WhisperFixture {
  const file = 'whisper/config.json';
  const config = readFixtureJson(file);
  const preFile = 'whisper/preprocessor_config.json';
  const pre = readFixtureJson(preFile);
  const refFile = 'whisper/reference.safetensors';
  const ref = safetensorsHeader(refFile);
  return {
    vocabSize: numberField(config, file, 'vocab_size'),
    dModel: numberField(config, file, 'd_model'),
    numMelBins: numberField(config, file, 'num_mel_bins'),
    encoderLayers: numberField(config, file, 'encoder_layers'),
    decoderLayers: numberField(config, file, 'decoder_layers'),
    maxSourcePositions: numberField(config, file, 'max_source_positions'),
    maxTargetPositions: numberField(config, file, 'max_target_positions'),
    decoderStartTokenId: numberField(config, file, 'decoder_start_token_id'),
    eosTokenId: numberField(config, file, 'eos_token_id'),
    sampleRate: numberField(pre, preFile, 'sampling_rate'),
    nFft: numberField(pre, preFile, 'n_fft'),
    hop: numberField(pre, preFile, 'hop_length'),
    windowSamples: numberField(pre, preFile, 'n_samples'),
    windowFrames: numberField(pre, preFile, 'nb_max_frames'),
    audioSamples: shapeOf(ref, 'audio', refFile)[0],
    featureFrames: shapeOf(ref, 'input_features', refFile)[2],
    decoderSteps: shapeOf(ref, 'decoder_input_ids', refFile)[1],
    greedyLength: shapeOf(ref, 'greedy_output', refFile)[1],
  };
}

interface TokenizerJson {
  added_tokens?: { id: number; content: string; special?: boolean }[];
  model: { vocab: Record<string, number> };
}

/** The tokenizer fixture's size (ids 0..vocabSize-1 over its vocab and added tokens) and its special tokens. */
export function tokenizerFixture(): { vocabSize: number; specialTokens: Map<string, number> } {
  const json = readFixtureJson<TokenizerJson>('tokenizer/tokenizer.json');
  const added = json.added_tokens ?? [];
  const ids = [...Object.values(json.model.vocab), ...added.map((t) => t.id)];
  return {
    vocabSize: Math.max(...ids) + 1,
    specialTokens: new Map(added.filter((t) => t.special !== false).map((t) => [t.content, t.id])),
  };
}
