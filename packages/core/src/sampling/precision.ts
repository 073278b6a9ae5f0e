/**
 * Logits arrive as float32 (about 7 significant digits), so the probabilities
 * derived from them are only that accurate. Thresholds are compared with this
 * much slack; otherwise an exact boundary such as 0.5 + 0.3 reaching topP 0.8
 * would admit an extra token depending on round-off.
 */
export const FLOAT32_SLACK = 1e-6;
