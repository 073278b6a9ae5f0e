import { InvalidArgumentError } from '../errors.js';

/** How to turn one row of logits into a token. Leaving every field out means greedy decoding. */
export interface SamplingOptions {
  /** Softmax temperature; 0 or undefined = greedy (argmax). */
  temperature?: number;
  /** Keep only the k most probable tokens; 0 or undefined = no limit. */
  topK?: number;
  /**
   * Nucleus: keep the smallest set of most probable tokens whose mass reaches
   * topP (to within 1e-6, the accuracy of float32 logits); 1 or undefined = off.
   */
  topP?: number;
  /** Drop tokens less probable than minP × the most probable one; 0 or undefined = off. */
  minP?: number;
  /** CTRL repetition penalty for tokens already in the history; 1 or undefined = off. */
  repetitionPenalty?: number;
  /** Seed of the sampler's random stream; undefined = unpredictable. */
  seed?: number;
}

/** Checked options with every default filled in, so later code never tests for undefined. */
export interface NormalizedSamplingOptions {
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly minP: number;
  readonly repetitionPenalty: number;
  readonly seed: number | undefined;
}

function reject(field: string, value: unknown, rule: string): never {
  const shown = typeof value === 'string' ? JSON.stringify(value) : String(value);
  throw new InvalidArgumentError(`sampling option ${field} must be ${rule}, got ${shown}`);
}

/** Returns a new, fully defaulted object; throws InvalidArgumentError naming the first bad field. */
export function validateSampling(options: SamplingOptions = {}): NormalizedSamplingOptions {
  const { temperature = 0, topK = 0, topP = 1, minP = 0, repetitionPenalty = 1, seed } = options;
  // Number.isFinite is false for NaN, ±Infinity and non-numbers alike, and NaN fails every comparison.
  if (!(Number.isFinite(temperature) && temperature >= 0))
    reject('temperature', temperature, 'a finite number >= 0');
  if (!(Number.isInteger(topK) && topK >= 0)) reject('topK', topK, 'an integer >= 0');
  if (!(typeof topP === 'number' && topP > 0 && topP <= 1)) reject('topP', topP, 'in (0, 1]');
  if (!(typeof minP === 'number' && minP >= 0 && minP < 1)) reject('minP', minP, 'in [0, 1)');
  if (!(Number.isFinite(repetitionPenalty) && repetitionPenalty > 0)) {
    reject('repetitionPenalty', repetitionPenalty, 'a finite number > 0');
  }
  if (seed !== undefined && !Number.isFinite(seed)) reject('seed', seed, 'a finite number');
  return { temperature, topK, topP, minP, repetitionPenalty, seed };
}

/** Temperature 0 means argmax: the filters cannot change the winner, so they are skipped. */
export function isGreedy(options: NormalizedSamplingOptions): boolean {
  return options.temperature === 0;
}
