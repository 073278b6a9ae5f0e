import { checkPositiveInteger, InvalidArgumentError } from '@specstream/core';
import type * as tf from '@tensorflow/tfjs-core';
import type { Whisper } from './load.js';

export interface WhisperGreedyOptions {
  /** Decoder start ids (for multilingual checkpoints: start-of-transcript, language, task, no-timestamps). */
  prompt: number[];
  maxNewTokens: number;
  /** Generation stops after this id is produced (it is included in the result). */
  eosTokenId: number;
  /** Ids never generated (generation_config.suppress_tokens). */
  suppressTokens?: readonly number[];
  /** Ids not allowed as the first generated token (generation_config.begin_suppress_tokens). */
  beginSuppressTokens?: readonly number[];
}

/**
 * Greedy decoding of one audio, like transformers' `generate(do_sample=False)`
 * for a short-form (≤ 30 s) input. Returns the prompt followed by the new ids;
 * transformers 5.17's `generate` returns the new ids alone (it strips the
 * decoder start ids, and also trailing pad ids and a final EOS), so its
 * `max_new_tokens = N` output is `result.slice(prompt.length)` here.
 *
 * Reproducing the reference: its generation_config.json sets
 * decoder_start_token_id 1 and nothing else that shapes the prompt (no
 * forced_decoder_ids, no lang_to_id / task_to_id / no_timestamps_token_id),
 * with empty suppress_tokens and null begin_suppress_tokens. So generate
 * starts from [1], masks nothing, and takes the argmax at every step:
 * greedy_output [1,12] holds the 12 new ids (eos 2 never comes). In the
 * shared reference all twelve are 1 (the random model's tied head echoes its
 * input), which cannot show whether the start id is counted; a fixture set
 * made by tools/fixtures/make_fixtures.py showed that it is not. Ties go to
 * the lowest id, as torch's argmax does.
 */
export async function whisperGreedy(
  whisper: Whisper,
  features: tf.Tensor3D,
  options: WhisperGreedyOptions,
): Promise<number[]> {
  const { prompt, maxNewTokens, eosTokenId } = options;
  if (features?.shape?.[0] !== 1) {
    throw new InvalidArgumentError(
      `whisperGreedy decodes one audio: features need batch 1, got [${features?.shape}]`,
    );
  }
  if (!Array.isArray(prompt) || prompt.length === 0) {
    throw new InvalidArgumentError('whisperGreedy needs a non-empty prompt (at least the decoder start id)');
  }
  checkPositiveInteger('maxNewTokens', maxNewTokens);
  const { encoder, decoder } = whisper;
  const encoded = encoder.encode(features);
  let state: ReturnType<typeof decoder.createState> | undefined;
  try {
    state = decoder.createState({ batch: 1, maxLength: prompt.length + maxNewTokens });
    decoder.setEncoderOutput(state, encoded);
    const ids = [...prompt];
    let window = prompt;
    for (let n = 0; n < maxNewTokens; n++) {
      const { logits } = decoder.extendStep(state, [window], { logits: 'last' });
      const scores = (await logits.data()) as Float32Array;
      logits.dispose();
      for (const id of options.suppressTokens ?? []) scores[id] = Number.NEGATIVE_INFINITY;
      if (n === 0) for (const id of options.beginSuppressTokens ?? []) scores[id] = Number.NEGATIVE_INFINITY;
      const next = argmax(scores);
      ids.push(next);
      if (next === eosTokenId) break;
      window = [next];
    }
    return ids;
  } finally {
    if (state) decoder.disposeState(state);
    encoded.dispose();
  }
}

/** First index of the largest value. */
function argmax(values: Float32Array): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}
