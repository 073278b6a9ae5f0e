import {
  checkPositiveInteger,
  InvalidArgumentError,
  type Synthesizer,
  type SynthesizerState,
  type Vocoder,
  type VocoderState,
} from '@specstream/core';
import { Observable, type OperatorFunction } from 'rxjs';

export interface AudioChunk {
  samples: Float32Array;
  sampleRate: number;
  /** Where the chunk starts, in frames of the synthesizer (sample offset = frameStart·hop). */
  frameStart: number;
  /**
   * Milliseconds from the arrival of the first text tokens to this chunk's
   * emission: the first chunk's `ms` is the time to first audio.
   */
  ms: number;
}

export interface StreamingSynthesizeOptions {
  /** Decoder steps per model call (each emits framesPerStep frames). Default 4. */
  stepsPerCall?: number;
  /** Most frames of one utterance: generation ends here if the model has not stopped. */
  maxFrames: number;
  /**
   * Most text tokens encoded per appendText. Text is appended only while the
   * next call needs more of it, in slices of this size, so the first audio
   * does not wait for the whole text to be encoded. Default 16.
   */
  textChunkTokens?: number;
  /** Text capacity of the synthesizer state; default the model's. */
  maxTextTokens?: number;
}

/**
 * Text token ids as they arrive → audio as it is produced. Arriving tokens
 * are queued and appended to the synthesizer state (in slices of
 * `textChunkTokens`, as generation needs them); as soon as the text allows
 * (the synthesizer's `readySteps`, at most `stepsPerCall` a call) decoder
 * steps run, their frames go through the vocoder, and whatever audio the
 * vocoder can settle is emitted. When the source completes the text is
 * ended; generation goes on until the model stops or `maxFrames`, then the
 * vocoder is flushed and the stream completes. (If `maxFrames` is reached
 * before the text is complete, the stream completes there and the rest of
 * the text is ignored.)
 *
 * Model calls run one at a time, in order, and yield to the event loop
 * between calls. Because the synthesizer only runs steps the text already
 * settles and the vocoder's output does not depend on how frames are
 * grouped, the concatenated audio equals offline synthesis of the whole
 * text (appendText all, endText, generate, vocode) whatever the arrival
 * pattern, up to the float rounding of encoding the text in other chunks.
 * The synthesizer and vocoder states are disposed on completion, error and
 * unsubscription.
 */
export function streamingSynthesize<S extends SynthesizerState, V extends VocoderState>(
  synth: Synthesizer<S>,
  vocoder: Vocoder<V>,
  options: StreamingSynthesizeOptions,
): OperatorFunction<number[], AudioChunk> {
  const stepsPerCall = options.stepsPerCall ?? 4;
  const textChunkTokens = options.textChunkTokens ?? 16;
  checkPositiveInteger('stepsPerCall', stepsPerCall);
  checkPositiveInteger('textChunkTokens', textChunkTokens);
  checkPositiveInteger('maxFrames', options.maxFrames);
  for (const key of ['nMels', 'sampleRate', 'hop'] as const) {
    if (synth[key] !== vocoder[key]) {
      throw new InvalidArgumentError(
        `synthesizer and vocoder disagree on ${key}: ${synth[key]} vs ${vocoder[key]}`,
      );
    }
  }
  const { nMels, hop, sampleRate, framesPerStep } = synth;
  return (source) =>
    new Observable<AudioChunk>((subscriber) => {
      const state = synth.createState({
        batch: 1,
        maxFrames: options.maxFrames,
        maxTextTokens: options.maxTextTokens,
      });
      let vocoderState: V;
      try {
        vocoderState = vocoder.createVocoderState();
      } catch (error) {
        synth.disposeState(state);
        throw error;
      }
      const queued: number[] = [];
      let sourceDone = false;
      let running = false;
      let released = false;
      let firstText: number | undefined;
      let samplesOut = 0;

      function release(): void {
        if (released) return;
        released = true;
        synth.disposeState(state);
        vocoder.disposeVocoderState(vocoderState);
      }

      function emit(samples: Float32Array): void {
        if (samples.length === 0 || subscriber.closed) return;
        const chunk: AudioChunk = {
          samples,
          sampleRate,
          frameStart: samplesOut / hop,
          ms: performance.now() - (firstText ?? performance.now()),
        };
        samplesOut += samples.length;
        subscriber.next(chunk);
      }

      function finish(): void {
        const rest = vocoder.flush(vocoderState);
        emit(rest);
        subscriber.complete();
      }

      async function pump(): Promise<void> {
        running = true;
        try {
          while (!released && !subscriber.closed) {
            const capacity = Math.floor((state.maxFrames - state.lengths[0]) / framesPerStep);
            if (state.done[0] || capacity === 0) {
              finish();
              return;
            }
            let ready = synth.readySteps(state);
            // Text is encoded lazily, a slice at a time, only while the next call needs more:
            // the first audio then waits for the first slice only, not for the whole text.
            if (queued.length > 0 && ready < Math.min(stepsPerCall, capacity)) {
              synth.appendText(state, [queued.splice(0, textChunkTokens)]);
              continue;
            }
            if (sourceDone && queued.length === 0 && !state.textEnded) {
              synth.endText(state);
              ready = synth.readySteps(state);
            }
            const steps = Math.min(stepsPerCall, ready);
            if (steps === 0) return; // wait for more text
            const { frames, validFrames } = await synth.extendStep(state, steps);
            let values: Float32Array;
            try {
              values = (await frames.data()) as Float32Array;
            } finally {
              frames.dispose();
            }
            if (released || subscriber.closed) return;
            emit(vocoder.push(vocoderState, values.subarray(0, validFrames[0] * nMels)));
            await yieldToEventLoop();
          }
        } catch (error) {
          if (!subscriber.closed) subscriber.error(error);
        } finally {
          running = false;
        }
      }

      const subscription = source.subscribe({
        next(tokens) {
          if (released) return;
          if (!Array.isArray(tokens)) {
            subscriber.error(new InvalidArgumentError('each notification must be an array of token ids'));
            return;
          }
          firstText ??= performance.now();
          for (const id of tokens) queued.push(id);
          if (!running) void pump();
        },
        error: (error) => subscriber.error(error),
        complete() {
          sourceDone = true;
          if (!running) void pump();
        },
      });
      return () => {
        subscription.unsubscribe();
        release();
      };
    });
}

/** Lets timers and I/O (more text, an unsubscription) in between model calls. */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) =>
    typeof setImmediate === 'function' ? setImmediate(resolve) : setTimeout(resolve, 0),
  );
}
