import libsamplerate from '@alexanderolsen/libsamplerate-js';
import { concatFloat32 } from '@specstream/core';

/** libsamplerate's band-limited sinc converters, slowest/most accurate first. */
export type ResampleQuality = 'best' | 'medium' | 'fastest';

const CONVERTER_TYPES = { best: 0, medium: 1, fastest: 2 } as const;

/**
 * The wrapper copies through fixed 1,008,000-float buffers in WASM memory; an
 * input slice is kept small enough that its output always fits with room to
 * spare, because the `full` binding ignores how much input was actually used.
 */
const OUTPUT_BUDGET = 400_000;

/**
 * One libsamplerate stream (its own WASM instance, so converters never share
 * filter state) fed with consecutive mono chunks.
 *
 * libsamplerate's sinc filters look ahead, so each call returns output only up
 * to where the input so far allows, lagging by the filter length. The binding
 * never sets `end_of_input`, so `flush` does what end_of_input would: feed
 * silence until the output reaches round(inputCount × ratio), then cut there.
 */
export class SampleRateConverter {
  private inputCount = 0;
  private outputCount = 0;
  private destroyed = false;

  private constructor(
    private readonly src: Awaited<ReturnType<typeof libsamplerate.create>>,
    private readonly fromRate: number,
    private readonly toRate: number,
  ) {}

  static async create(
    fromRate: number,
    toRate: number,
    quality: ResampleQuality,
  ): Promise<SampleRateConverter> {
    const converterType = CONVERTER_TYPES[quality];
    const src = await libsamplerate.create(1, fromRate, toRate, { converterType });
    return new SampleRateConverter(src, fromRate, toRate);
  }

  /** Resamples the next chunk of input; the result may be empty (the filter is still filling). */
  process(input: Float32Array): Float32Array {
    if (input.length === 0) return new Float32Array(0);
    this.inputCount += input.length;
    const sliceLength = Math.max(1, Math.floor(OUTPUT_BUDGET / Math.max(1, this.toRate / this.fromRate)));
    if (input.length <= sliceLength) return this.convert(input);
    const parts: Float32Array[] = [];
    for (let start = 0; start < input.length; start += sliceLength) {
      parts.push(this.convert(input.subarray(start, start + sliceLength)));
    }
    return concat(parts);
  }

  /** The output still held in the filter, ending the stream at round(inputCount × ratio) samples. */
  flush(): Float32Array {
    const expected = Math.round((this.inputCount * this.toRate) / this.fromRate);
    // About 256 output samples of silence per round: more than any sinc filter's lag.
    const silence = new Float32Array(Math.ceil((256 * this.fromRate) / this.toRate));
    const parts: Float32Array[] = [];
    for (let round = 0; this.outputCount < expected; round++) {
      if (round === 64) throw new Error(`libsamplerate produced no tail after ${round} rounds of silence`);
      parts.push(this.convert(silence));
    }
    const tail = concat(parts);
    // Everything before `expected` is signal (the silence only pushed it out); the rest is the silence itself.
    const keep = Math.max(0, tail.length - (this.outputCount - expected));
    return tail.subarray(0, keep);
  }

  /** Frees the WASM converter state; safe to call more than once. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.src.destroy();
  }

  private convert(input: Float32Array): Float32Array {
    if (this.destroyed) throw new Error('the sample-rate converter was already destroyed');
    let output: Float32Array;
    try {
      output = this.src.full(input);
    } catch (thrown) {
      // libsamplerate-js throws strings.
      throw thrown instanceof Error ? thrown : new Error(`libsamplerate: ${String(thrown)}`);
    }
    this.outputCount += output.length;
    return output;
  }
}

function concat(parts: readonly Float32Array[]): Float32Array {
  return parts.length === 1 ? parts[0] : concatFloat32(parts);
}
