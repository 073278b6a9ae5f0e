import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'vitest';
import { type LoadSpeechRecognizerOptions, loadSpeechRecognizer } from '../src/speech/recognizer.js';

/** Loading `dir` fails with `errorClass` and a message matching `message`, and leaves no tensor behind. */
export async function expectLoadFailure(
  dir: string,
  errorClass: new (...args: never[]) => Error,
  message: RegExp,
  options?: LoadSpeechRecognizerOptions,
): Promise<void> {
  const before = tf.memory().numTensors;
  const error = await loadSpeechRecognizer(dir, options).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(errorClass);
  expect((error as Error).message).toMatch(message);
  expect(tf.memory().numTensors).toBe(before);
}
