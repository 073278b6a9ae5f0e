import type { ComplexDft } from './complex-dft.js';
import { radix2Stage, radix4Stage, radix5Stage, type StageTwiddles } from './radix-butterflies.js';

/**
 * Stockham autosort FFT for lengths whose factors are all 2, 4 and 5 — the
 * 200-point complex DFT behind Whisper's 400-point real one is 4·2·5·5. Each
 * stage is a decimation in frequency: with n = r·m,
 *
 *   X[r·v + k] = Σ_p W_m^{pv} · (W_n^{pk} · Σ_j x[p + j·m] W_r^{jk}),
 *
 * i.e. r-point butterflies, a twiddle, then r interleaved DFTs of length m
 * (stride grows by r each stage). Autosort: the output lands in natural order
 * without a bit-reversal pass, ping-ponging between two buffers.
 *
 * Returns null for lengths with other prime factors (the caller falls back to Bluestein).
 */
export function createMixedRadixDft(size: number): ComplexDft | null {
  const radices = factorize(size);
  if (radices === null) return null;
  const stages = planStages(size, radices);
  const bufRe = [new Float64Array(size), new Float64Array(size)];
  const bufIm = [new Float64Array(size), new Float64Array(size)];

  function transform(
    inRe: ArrayLike<number>,
    inIm: ArrayLike<number>,
    outRe: Float64Array,
    outIm: Float64Array,
  ) {
    let src = 0;
    for (let i = 0; i < size; i++) {
      bufRe[0][i] = inRe[i];
      bufIm[0][i] = inIm[i];
    }
    for (const stage of stages) {
      const dst = 1 - src;
      stage.run(stage.twiddles, bufRe[src], bufIm[src], bufRe[dst], bufIm[dst]);
      src = dst;
    }
    outRe.set(bufRe[src].subarray(0, size));
    outIm.set(bufIm[src].subarray(0, size));
  }

  return { size, transform };
}

/** 4s first (fewest passes), then 2 and 5; null if anything else is left. */
function factorize(size: number): number[] | null {
  if (!Number.isInteger(size) || size < 2) return null;
  const radices: number[] = [];
  let rest = size;
  for (const radix of [4, 2, 5]) {
    while (rest % radix === 0) {
      radices.push(radix);
      rest /= radix;
    }
  }
  return rest === 1 ? radices : null;
}

type StageKernel = typeof radix2Stage;

interface Stage {
  twiddles: StageTwiddles;
  run: StageKernel;
}

const KERNELS: Record<number, StageKernel> = { 2: radix2Stage, 4: radix4Stage, 5: radix5Stage };

/** Precomputes W_n^{pk} for each stage's (p, k), k = 1..r-1, so the hot loop has no trig. */
function planStages(size: number, radices: number[]): Stage[] {
  const stages: Stage[] = [];
  let n = size;
  let stride = 1;
  for (const radix of radices) {
    const m = n / radix;
    const re = new Float64Array(m * (radix - 1));
    const im = new Float64Array(m * (radix - 1));
    for (let p = 0; p < m; p++) {
      for (let k = 1; k < radix; k++) {
        const angle = (-2 * Math.PI * p * k) / n;
        re[p * (radix - 1) + k - 1] = Math.cos(angle);
        im[p * (radix - 1) + k - 1] = Math.sin(angle);
      }
    }
    stages.push({ twiddles: { m, stride, re, im }, run: KERNELS[radix] });
    n = m;
    stride *= radix;
  }
  return stages;
}
