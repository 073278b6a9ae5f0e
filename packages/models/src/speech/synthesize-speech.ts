import { AbortError, checkPositiveInteger, concatFloat32, InvalidArgumentError } from '@specstream/core';
import type { ReferenceSynthesizerConfig } from '../synthesizer/config.js';
import { normalizeSpeechText } from './normalize-text.js';
import type { SpeechSynthesizer } from './synthesizer.js';

export interface SpeakOptions {
  /** Most frames of the utterance: generation ends there if the model has not stopped. Default speechFrameBudget. */
  maxFrames?: number;
  /** Decoder steps per model call (each emits framesPerStep frames). Default 4. */
  stepsPerCall?: number;
  /**
   * Text ids encoded per appendText. 1 (default): the text encoder sees each id alone at its
   * position, so the frames are bit for bit those of any other arrival of the same text
   * (@specstream/streaming's speakText, as an LM writes it); more encodes faster, and the frames
   * then differ in the last float bits, which Griffin-Lim's phase carries far into the samples.
   */
  textChunkTokens?: number;
  /** Checked between model calls: an abort rejects with the signal's reason (or an AbortError). */
  signal?: AbortSignal;
}

/** One utterance, synthesized and vocoded. */
export interface SpokenText {
  /** normalizeSpeechText(text): what was said. */
  spoken: string;
  ids: number[];
  /** The utterance's log10 mel frames, frame-major [frameCount × nMels] (up to the stop). */
  frames: Float32Array;
  frameCount: number;
  /** frameCount·hop samples. */
  samples: Float32Array;
  sampleRate: number;
  /** Whether the model stopped by itself (false: maxFrames was reached first). */
  stopped: boolean;
}

/**
 * Speaks a whole text, offline: normalise, append the ids, end the text, run the decoder until
 * the model stops (or `maxFrames`), and vocode the frames as they come. The synthesizer and
 * vocoder states are disposed however it ends. The streaming counterpart is @specstream/streaming's
 * speakText, whose audio equals this for the same text.
 */
export async function synthesizeSpeech(
  speech: SpeechSynthesizer,
  text: string,
  options: SpeakOptions = {},
): Promise<SpokenText> {
  const { synthesizer, vocoder } = speech;
  const spoken = normalizeSpeechText(text);
  const ids = speech.symbolIds(spoken);
  if (ids.length === 0) {
    throw new InvalidArgumentError(`nothing to speak: ${JSON.stringify(text)} has no letters or digits`);
  }
  if (ids.length > synthesizer.maxTextTokens) {
    throw new InvalidArgumentError(
      `the text is ${ids.length} symbols long; the model takes at most ${synthesizer.maxTextTokens}`,
    );
  }
  const maxFrames = options.maxFrames ?? speechFrameBudget(speech.config.model, ids.length);
  const { stepsPerCall = 4, textChunkTokens = 1 } = options;
  checkPositiveInteger('maxFrames', maxFrames);
  checkPositiveInteger('stepsPerCall', stepsPerCall);
  checkPositiveInteger('textChunkTokens', textChunkTokens);
  const { nMels } = synthesizer;
  const state = synthesizer.createState({ batch: 1, maxFrames });
  const vocoderState = vocoder.createVocoderState();
  try {
    for (let at = 0; at < ids.length; at += textChunkTokens) {
      synthesizer.appendText(state, [ids.slice(at, at + textChunkTokens)]);
    }
    synthesizer.endText(state);
    const frames: Float32Array[] = [];
    const samples: Float32Array[] = [];
    while (!state.done[0]) {
      const steps = Math.min(stepsPerCall, synthesizer.readySteps(state));
      if (steps === 0) break; // maxFrames reached
      if (options.signal?.aborted)
        throw options.signal.reason ?? new AbortError('synthesizeSpeech was aborted');
      const result = await synthesizer.extendStep(state, steps);
      let values: Float32Array;
      try {
        values = (await result.frames.data()) as Float32Array;
      } finally {
        result.frames.dispose();
      }
      const valid = values.subarray(0, result.validFrames[0] * nMels);
      frames.push(valid.slice());
      samples.push(vocoder.push(vocoderState, valid));
    }
    samples.push(vocoder.flush(vocoderState));
    const all = concatFloat32(frames);
    return {
      spoken,
      ids,
      frames: all,
      frameCount: all.length / nMels,
      samples: concatFloat32(samples),
      sampleRate: synthesizer.sampleRate,
      stopped: state.done[0],
    };
  } finally {
    synthesizer.disposeState(state);
    vocoder.disposeVocoderState(vocoderState);
  }
}

/**
 * Frames to allow an utterance of `textLength` ids when the caller gives no limit: 2 s plus
 * 0.25 s a symbol (espeak-ng's voice, which the shipped model learnt, speaks about 0.07 s a
 * character), and never fewer than the steps the wait-k schedule needs to see the whole text.
 */
export function speechFrameBudget(config: ReferenceSynthesizerConfig, textLength: number): number {
  const r = config.framesPerStep;
  const stepsByTime = Math.ceil(((2 + 0.25 * textLength) * config.sampleRate) / config.hop / r);
  const unseen = Math.max(0, textLength - config.textLookahead);
  const stepsToSeeAll =
    unseen === 0 ? 1 : config.textTokensPerStep > 0 ? Math.ceil(unseen / config.textTokensPerStep) + 1 : 1;
  return r * Math.max(stepsByTime, stepsToSeeAll + 1);
}
