import { DEFAULT_SYNTHESIZER_CONFIG, TINY_SYNTHESIZER_CONFIG } from './config.js';
import type { GriffinLimOptions } from './griffin-lim.js';

/** The Griffin-Lim vocoder matching TINY_SYNTHESIZER_CONFIG's frames (16 kHz, nFft 256, hop 64, 20 mels). */
export const TINY_VOCODER_OPTIONS: GriffinLimOptions = {
  sampleRate: TINY_SYNTHESIZER_CONFIG.sampleRate,
  nFft: 256,
  hop: TINY_SYNTHESIZER_CONFIG.hop,
  nMels: TINY_SYNTHESIZER_CONFIG.nMels,
  iterations: 4,
  lookahead: 2,
};

/** The Griffin-Lim vocoder matching DEFAULT_SYNTHESIZER_CONFIG's frames (22.05 kHz, nFft 1024, hop 256, 80 mels to 8 kHz). */
export const DEFAULT_VOCODER_OPTIONS: GriffinLimOptions = {
  sampleRate: DEFAULT_SYNTHESIZER_CONFIG.sampleRate,
  nFft: 1024,
  hop: DEFAULT_SYNTHESIZER_CONFIG.hop,
  nMels: DEFAULT_SYNTHESIZER_CONFIG.nMels,
  iterations: 8,
  lookahead: 3,
};
