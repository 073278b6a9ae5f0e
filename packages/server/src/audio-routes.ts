import multipart from '@fastify/multipart';
import { InvalidArgumentError } from '@specstream/core';
import type { FastifyInstance } from 'fastify';
import type { AudioContext } from './audio-context.js';
import { notMultipart } from './audio-form.js';
import { speak } from './audio-speech.js';
import { transcribe } from './audio-transcriptions.js';

/** OpenAI's upload limit for transcriptions: 25 MB. */
export const DEFAULT_MAX_AUDIO_BYTES = 25 * 1024 * 1024;

/**
 * POST /v1/audio/transcriptions and /v1/audio/speech. The transcription route lives in a scope
 * of its own: multipart bodies are parsed there only (the text endpoints keep refusing them),
 * and any other body is refused with a 415 that says what to send. Both answer a 404 naming the
 * missing model when the server has no speech model of that kind.
 */
export function registerAudioRoutes(app: FastifyInstance, context: AudioContext): void {
  if (!Number.isInteger(context.maxAudioBytes) || context.maxAudioBytes < 1) {
    throw new InvalidArgumentError(`maxAudioBytes must be an integer >= 1, got ${context.maxAudioBytes}`);
  }
  for (const queue of context.models.queues) context.metrics.watchAudioQueue(queue.model, queue);
  app.register(async (scope) => {
    await scope.register(multipart, { limits: { fileSize: context.maxAudioBytes, files: 1 } });
    scope.addContentTypeParser('*', (_request, _payload, done) => done(notMultipart()));
    scope.post('/v1/audio/transcriptions', (request, reply) => transcribe(context, request, reply));
  });
  app.post('/v1/audio/speech', (request, reply) => speak(context, request, reply));
}
