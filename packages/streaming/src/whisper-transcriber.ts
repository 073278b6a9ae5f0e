import { logMelSpectrogram, type Whisper, whisperGreedy } from '@specstream/models';
import * as tf from '@tensorflow/tfjs-core';
import type { Transcriber } from './transcribe.js';

export interface WhisperTranscriberOptions {
  /** Decoder start ids (start of transcript, language, task, no-timestamps for multilingual checkpoints). */
  prompt: number[];
  eosTokenId: number;
  /** Most tokens per hypothesis (default 128; Whisper's window holds 448 positions). */
  maxNewTokens?: number;
  suppressTokens?: readonly number[];
}

/**
 * Whisper as a Transcriber: Whisper's log-mel of the buffer (padded to 30 s,
 * as the model was trained), greedy decoding, and the new ids without the
 * prompt and the end-of-text id. Buffers must stay ≤ 30 s.
 */
export function whisperTranscriber(whisper: Whisper, options: WhisperTranscriberOptions): Transcriber {
  const nMels = whisper.config.numMelBins;
  return async (audio) => {
    const features = tf.tensor3d(logMelSpectrogram(audio, { nMels }), [1, nMels, 3000]);
    try {
      const ids = await whisperGreedy(whisper, features, {
        prompt: options.prompt,
        eosTokenId: options.eosTokenId,
        maxNewTokens: options.maxNewTokens ?? 128,
        suppressTokens: options.suppressTokens,
      });
      const generated = ids.slice(options.prompt.length);
      return generated.at(-1) === options.eosTokenId ? generated.slice(0, -1) : generated;
    } finally {
      features.dispose();
    }
  };
}
