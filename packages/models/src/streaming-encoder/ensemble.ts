import { DisposedError, type EncoderStateOptions, InvalidArgumentError } from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';
import type { StreamingEncoder, StreamingEncoderState } from './encoder.js';

/** An ensemble's state: one state per member, all at the same position. */
interface EnsembleState extends StreamingEncoderState {
  readonly members: StreamingEncoderState[];
  readonly owner: StreamingEncoder;
}

/**
 * Streaming encoders of one architecture run side by side as one: each call feeds the same frames
 * to every member and returns the mean of their log-softmaxed outputs, the logits of the
 * normalised geometric mean of their CTC distributions. Two recognisers trained on different
 * voice mixes err on different frames, and the mean is more often right than either: on the shipped
 * pair's tuning sentences, word error rate 6.2% against 6.5% and 7.1% in trained voices, 25.0%
 * against 29.6% and 28.8% in the held-out voice (models/SPEECH.md), for twice the compute.
 *
 * The members' configs must be equal (the same frames, subsampling and vocabulary). Each member
 * checks the frames and the state before it runs, and all see the same, so a bad call throws at
 * the first member and changes nothing. Takes ownership of the members: dispose() frees them.
 */
export function ensembleStreamingEncoder(members: readonly StreamingEncoder[]): StreamingEncoder {
  if (members.length === 0) throw new InvalidArgumentError('an encoder ensemble needs at least one member');
  const [first] = members;
  members.forEach((member, i) => {
    if (JSON.stringify(member.config) !== JSON.stringify(first.config)) {
      throw new InvalidArgumentError(
        `encoder ensemble member ${i} has another config than member 0: ${JSON.stringify(member.config)} against ${JSON.stringify(first.config)}`,
      );
    }
  });
  let disposed = false;
  const checkModel = () => {
    if (disposed) throw new DisposedError('the encoder ensemble was disposed');
  };
  const ensemble: StreamingEncoder = {
    config: first.config,
    inputDim: first.inputDim,
    outputDim: first.outputDim,
    createState(options: EncoderStateOptions): StreamingEncoderState {
      checkModel();
      const states: StreamingEncoderState[] = [];
      try {
        for (const member of members) states.push(member.createState(options));
      } catch (error) {
        states.forEach((state, i) => {
          members[i].disposeState(state);
        });
        throw error;
      }
      const [lead] = states;
      const state: EnsembleState = {
        members: states,
        owner: ensemble,
        batch: lead.batch,
        maxLength: lead.maxLength,
        leftContext: lead.leftContext,
        // The members update their own lengths in place; the first one's speak for all.
        lengths: lead.lengths,
        get outputLength() {
          return lead.outputLength;
        },
        get disposed() {
          return lead.disposed;
        },
      };
      return state;
    },
    extendStep(state, frames) {
      checkModel();
      const s = state as EnsembleState;
      if (s?.owner !== ensemble) {
        throw new InvalidArgumentError("extendStep needs a state from this encoder ensemble's createState");
      }
      if (members.length === 1)
        return { outputs: members[0].extendStep(s.members[0], frames).outputs, state };
      const outputs: tf.Tensor3D[] = [];
      try {
        members.forEach((member, i) => {
          outputs.push(member.extendStep(s.members[i], frames).outputs);
        });
        const mean = tf.tidy(() =>
          tf.div(tf.addN(outputs.map((o) => tf.logSoftmax(o))), members.length),
        ) as tf.Tensor3D;
        return { outputs: mean, state };
      } finally {
        tf.dispose(outputs);
      }
    },
    disposeState(state) {
      const s = state as EnsembleState;
      s.members.forEach((memberState, i) => {
        members[i].disposeState(memberState);
      });
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      for (const member of members) member.dispose();
    },
  };
  return ensemble;
}
