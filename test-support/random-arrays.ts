/** Uniform values in [−scale, scale) from `rng`, as float32. Test-only code, shared by the packages' tests. */
export function randomArray(n: number, rng: () => number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => scale * (2 * rng() - 1));
}

/**
 * A random packed q|k|v projection, [batch, steps, heads + 2·kvHeads, headDim]
 * (queries, then keys, then values per position), as values and shape for a
 * tensor4d.
 */
export function randomPackedQkv(
  rng: () => number,
  [batch, steps, heads, kvHeads, headDim]: readonly [number, number, number, number, number],
): [Float32Array, [number, number, number, number]] {
  const shape: [number, number, number, number] = [batch, steps, heads + 2 * kvHeads, headDim];
  return [
    randomArray(
      shape.reduce((a, b) => a * b, 1),
      rng,
    ),
    shape,
  ];
}
