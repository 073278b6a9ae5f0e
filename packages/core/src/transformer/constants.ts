import * as tf from '@tensorflow/tfjs-core';

/**
 * A number an op takes as an operand. tfjs turns a plain number into a new
 * scalar tensor on every call, which on webgpu is an upload through a fresh
 * staging buffer: measured 0.4–3 ms each under Dawn in Node, against ~0.1 ms
 * for the op itself. A model therefore makes the scalars it needs once
 * (`createConstants`) and passes `constants.of` to the building blocks, which
 * fall back to plain numbers when given none.
 */
export type ConstantOf = (value: number) => tf.Scalar | number;

export const plainNumber: ConstantOf = (value) => value;

export interface Constants {
  /** The kept scalar for `value`, or the number itself if it was not made up front. */
  readonly of: ConstantOf;
  dispose(): void;
}

/** Scalars for `values`, made now and owned by the caller until `dispose()`. */
export function createConstants(values: Iterable<number>): Constants {
  const scalars = new Map<number, tf.Scalar>();
  for (const value of values) if (!scalars.has(value)) scalars.set(value, tf.keep(tf.scalar(value)));
  return {
    of: (value) => scalars.get(value) ?? value,
    dispose() {
      for (const s of scalars.values()) s.dispose();
      scalars.clear();
    },
  };
}
