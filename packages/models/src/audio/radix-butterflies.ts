/**
 * One Stockham stage per radix (see mixed-radix-fft.ts): for p < m, q < stride,
 * reads x[q + stride·(p + j·m)] for j < r, writes the r-point DFT of those,
 * times W_n^{pk}, to y[q + stride·(r·p + k)]. Hand-unrolled because these loops
 * are the whole cost of the front end.
 */
export interface StageTwiddles {
  m: number;
  stride: number;
  /** W_n^{pk} at [p·(r−1) + k − 1], k = 1..r−1. */
  re: Float64Array;
  im: Float64Array;
}

type Buf = Float64Array;

export function radix2Stage(tw: StageTwiddles, xr: Buf, xi: Buf, yr: Buf, yi: Buf): void {
  const { m, stride: s, re, im } = tw;
  for (let p = 0; p < m; p++) {
    const w1r = re[p];
    const w1i = im[p];
    for (let q = 0; q < s; q++) {
      const i0 = q + s * p;
      const i1 = i0 + s * m;
      const o0 = q + s * 2 * p;
      const dr = xr[i0] - xr[i1];
      const di = xi[i0] - xi[i1];
      yr[o0] = xr[i0] + xr[i1];
      yi[o0] = xi[i0] + xi[i1];
      yr[o0 + s] = dr * w1r - di * w1i;
      yi[o0 + s] = dr * w1i + di * w1r;
    }
  }
}

export function radix4Stage(tw: StageTwiddles, xr: Buf, xi: Buf, yr: Buf, yi: Buf): void {
  const { m, stride: s, re, im } = tw;
  const sm = s * m;
  for (let p = 0; p < m; p++) {
    const w1r = re[3 * p];
    const w1i = im[3 * p];
    const w2r = re[3 * p + 1];
    const w2i = im[3 * p + 1];
    const w3r = re[3 * p + 2];
    const w3i = im[3 * p + 2];
    for (let q = 0; q < s; q++) {
      const i0 = q + s * p;
      const o0 = q + s * 4 * p;
      // a0 ± a2 and a1 ± a3; then b1 = u1 − i·u3, b3 = u1 + i·u3.
      const u0r = xr[i0] + xr[i0 + 2 * sm];
      const u0i = xi[i0] + xi[i0 + 2 * sm];
      const u1r = xr[i0] - xr[i0 + 2 * sm];
      const u1i = xi[i0] - xi[i0 + 2 * sm];
      const u2r = xr[i0 + sm] + xr[i0 + 3 * sm];
      const u2i = xi[i0 + sm] + xi[i0 + 3 * sm];
      const u3r = xr[i0 + sm] - xr[i0 + 3 * sm];
      const u3i = xi[i0 + sm] - xi[i0 + 3 * sm];
      yr[o0] = u0r + u2r;
      yi[o0] = u0i + u2i;
      twiddle(yr, yi, o0 + s, u1r + u3i, u1i - u3r, w1r, w1i);
      twiddle(yr, yi, o0 + 2 * s, u0r - u2r, u0i - u2i, w2r, w2i);
      twiddle(yr, yi, o0 + 3 * s, u1r - u3i, u1i + u3r, w3r, w3i);
    }
  }
}

const C1 = Math.cos((2 * Math.PI) / 5);
const C2 = Math.cos((4 * Math.PI) / 5);
const S1 = Math.sin((2 * Math.PI) / 5);
const S2 = Math.sin((4 * Math.PI) / 5);

export function radix5Stage(tw: StageTwiddles, xr: Buf, xi: Buf, yr: Buf, yi: Buf): void {
  const { m, stride: s, re, im } = tw;
  const sm = s * m;
  for (let p = 0; p < m; p++) {
    const w1r = re[4 * p];
    const w1i = im[4 * p];
    const w2r = re[4 * p + 1];
    const w2i = im[4 * p + 1];
    const w3r = re[4 * p + 2];
    const w3i = im[4 * p + 2];
    const w4r = re[4 * p + 3];
    const w4i = im[4 * p + 3];
    for (let q = 0; q < s; q++) {
      const i0 = q + s * p;
      const o0 = q + s * 5 * p;
      const a0r = xr[i0];
      const a0i = xi[i0];
      // Symmetric pairs (1,4) and (2,3) share cosines; their differences share sines.
      const t1r = xr[i0 + sm] + xr[i0 + 4 * sm];
      const t1i = xi[i0 + sm] + xi[i0 + 4 * sm];
      const t2r = xr[i0 + 2 * sm] + xr[i0 + 3 * sm];
      const t2i = xi[i0 + 2 * sm] + xi[i0 + 3 * sm];
      const t3r = xr[i0 + sm] - xr[i0 + 4 * sm];
      const t3i = xi[i0 + sm] - xi[i0 + 4 * sm];
      const t4r = xr[i0 + 2 * sm] - xr[i0 + 3 * sm];
      const t4i = xi[i0 + 2 * sm] - xi[i0 + 3 * sm];
      const c1r = a0r + C1 * t1r + C2 * t2r;
      const c1i = a0i + C1 * t1i + C2 * t2i;
      const c2r = a0r + C2 * t1r + C1 * t2r;
      const c2i = a0i + C2 * t1i + C1 * t2i;
      // −i·(S1·t3 + S2·t4) for bin 1 and −i·(S2·t3 − S1·t4) for bin 2; bins 4, 3 take +i.
      const d1r = S1 * t3i + S2 * t4i;
      const d1i = -(S1 * t3r + S2 * t4r);
      const d2r = S2 * t3i - S1 * t4i;
      const d2i = -(S2 * t3r - S1 * t4r);
      yr[o0] = a0r + t1r + t2r;
      yi[o0] = a0i + t1i + t2i;
      twiddle(yr, yi, o0 + s, c1r + d1r, c1i + d1i, w1r, w1i);
      twiddle(yr, yi, o0 + 2 * s, c2r + d2r, c2i + d2i, w2r, w2i);
      twiddle(yr, yi, o0 + 3 * s, c2r - d2r, c2i - d2i, w3r, w3i);
      twiddle(yr, yi, o0 + 4 * s, c1r - d1r, c1i - d1i, w4r, w4i);
    }
  }
}

/** y[at] = (vr + i·vi) · (wr + i·wi). */
function twiddle(yr: Buf, yi: Buf, at: number, vr: number, vi: number, wr: number, wi: number): void {
  yr[at] = vr * wr - vi * wi;
  yi[at] = vr * wi + vi * wr;
}
