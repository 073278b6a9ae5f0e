import type { Activation } from '../../transformer/mlp.js';

const GELU_TWICE_Z = 2 * Math.sqrt(2 / Math.PI);

/**
 * Each activation of `v` (an f32) in WGSL, with the helper functions it
 * needs. gelu_tanh is x·σ(2z) as in mlp.ts; gelu's erf is Abramowitz &
 * Stegun 7.1.26 (|error| < 1.5e-7), the approximation tfjs's own erf uses.
 */
export const ACTIVATION_WGSL: Record<Activation, { helpers: string; formula: string }> = {
  silu: { helpers: '', formula: 'v / (1.0 + exp(-v))' },
  gelu_tanh: {
    helpers: '',
    formula: `v / (1.0 + exp(-v * (${GELU_TWICE_Z} + ${GELU_TWICE_Z * 0.044715} * v * v)))`,
  },
  gelu: {
    helpers: `
    fn erfApprox(z : f32) -> f32 {
      let a = abs(z);
      let t = 1.0 / (1.0 + 0.3275911 * a);
      let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
      return sign(z) * (1.0 - poly * exp(-a * a));
    }`,
    formula: '0.5 * v * (1.0 + erfApprox(v * 0.7071067811865476))',
  },
  relu: { helpers: '', formula: 'max(v, 0.0)' },
};
