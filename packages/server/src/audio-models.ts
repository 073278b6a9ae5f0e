import { basename, resolve } from 'node:path';
import { InvalidArgumentError } from '@specstream/core';
import {
  CTC_BEAM_WIDTH,
  type CtcDecoder,
  loadSpeechRecognizer,
  loadSpeechRecognizerLm,
  loadSpeechSynthesizer,
  type SpeechRecognizer,
  type SpeechSynthesizer,
} from '@specstream/models';
import { AudioJobQueue } from './audio-jobs.js';
import { ApiError, invalidRequest } from './errors.js';

/** The speech part of ServerOptions. */
export interface SpeechModelOptions {
  /**
   * The speech recognizer for POST /v1/audio/transcriptions: a folder the server loads (when it
   * starts listening, and frees on close), or a loaded recognizer it borrows (its owner frees it).
   */
  recognizer?: string | SpeechRecognizer;
  /** Its id in `model` and GET /v1/models (default: the folder's name, else specstream-speech-recognizer). */
  recognizerId?: string;
  /**
   * How a whole transcript (not streamed) is decoded. Default: for a folder, a beam of CTC_BEAM_WIDTH (32) with
   * the folder's character LM where it has one (about half greedy's word errors on the shipped
   * model), else greedy. Streamed transcripts are always greedy: its text only grows, so each
   * event is a delta that needs no revision.
   */
  recognizerDecoder?: CtcDecoder;
  /** The speech synthesizer for POST /v1/audio/speech: a folder, or a loaded synthesizer (as `recognizer`). */
  synthesizer?: string | SpeechSynthesizer;
  /** Its id (default: the folder's name, else specstream-speech-synthesizer). */
  synthesizerId?: string;
  /** Audio requests waiting for a speech model before new ones get 429 (default 16, per model). */
  maxAudioQueue?: number;
}

/** One speech model as the routes use it. */
export interface Served<M> {
  readonly id: string;
  readonly model: M;
  readonly queue: AudioJobQueue;
}

type Kind = 'recognizer' | 'synthesizer';

/** The CLI's default beam (specstream transcribe), for whole transcripts. */
const WHOLE_TRANSCRIPT_BEAM = CTC_BEAM_WIDTH;

/** One model's slot: what was given, and once loaded, the model. */
class Slot<M extends { dispose(): void }> {
  readonly id: string | undefined;
  readonly queue: AudioJobQueue | undefined;
  private model: M | undefined;

  constructor(
    private readonly source: string | M | undefined,
    id: string | undefined,
    defaultId: string,
    maxQueue: number,
    retryAfter: string,
  ) {
    if (source === undefined) return;
    this.id = id ?? (typeof source === 'string' ? basename(resolve(source)) : defaultId);
    this.queue = new AudioJobQueue(this.id, maxQueue, retryAfter);
    if (typeof source !== 'string') this.model = source;
  }

  async load(loader: (dir: string) => Promise<M>): Promise<void> {
    if (typeof this.source === 'string' && this.model === undefined) this.model = await loader(this.source);
  }

  served(): Served<M> | undefined {
    if (this.model === undefined) return undefined;
    return { id: this.id!, model: this.model, queue: this.queue! };
  }

  /** Frees a model the server loaded; a borrowed one stays with its owner. */
  dispose(): void {
    if (typeof this.source === 'string') this.model?.dispose();
    this.model = undefined;
  }
}

/**
 * The server's speech models: each optional, each with its own job queue. Folders are loaded by
 * `load` (fastify's onReady: listen, or the first inject) and freed by `close`.
 */
export class SpeechModels {
  private readonly recognizerSlot: Slot<SpeechRecognizer>;
  /** Whole (not streamed) transcripts' decoder: set by the options, else by load (see recognizerDecoder). */
  private wholeDecoder: CtcDecoder;
  private readonly recognizerSource: string | SpeechRecognizer | undefined;
  private readonly decoderGiven: boolean;
  private readonly synthesizerSlot: Slot<SpeechSynthesizer>;

  constructor(
    options: SpeechModelOptions,
    retryAfter: string,
    private readonly textModelId: string,
  ) {
    const maxQueue = options.maxAudioQueue ?? 16;
    if (!Number.isInteger(maxQueue) || maxQueue < 0) {
      throw new InvalidArgumentError(`maxAudioQueue must be an integer >= 0, got ${maxQueue}`);
    }
    this.recognizerSource = options.recognizer;
    this.wholeDecoder = options.recognizerDecoder ?? 'greedy';
    this.decoderGiven = options.recognizerDecoder !== undefined;
    this.recognizerSlot = new Slot(
      options.recognizer,
      options.recognizerId,
      'specstream-speech-recognizer',
      maxQueue,
      retryAfter,
    );
    this.synthesizerSlot = new Slot(
      options.synthesizer,
      options.synthesizerId,
      'specstream-speech-synthesizer',
      maxQueue,
      retryAfter,
    );
    const ids = [textModelId, this.recognizerSlot.id, this.synthesizerSlot.id].filter(
      (id) => id !== undefined,
    );
    if (new Set(ids).size !== ids.length) {
      throw new InvalidArgumentError(`the served models need distinct ids, got ${ids.join(', ')}`);
    }
  }

  /** The ids of the speech models given (GET /v1/models), loaded or about to be. */
  get ids(): string[] {
    return [this.recognizerSlot.id, this.synthesizerSlot.id].filter((id) => id !== undefined);
  }

  /** The job queues, by model id (for the metrics). */
  get queues(): AudioJobQueue[] {
    return [this.recognizerSlot.queue, this.synthesizerSlot.queue].filter((q) => q !== undefined);
  }

  async load(): Promise<void> {
    await this.recognizerSlot.load(loadSpeechRecognizer);
    const recognizer = this.recognizerSlot.served()?.model;
    if (!this.decoderGiven && typeof this.recognizerSource === 'string' && recognizer !== undefined) {
      const lm = await loadSpeechRecognizerLm(this.recognizerSource, recognizer.config);
      if (lm !== undefined) this.wholeDecoder = { beamWidth: WHOLE_TRANSCRIPT_BEAM, lm };
    }
    await this.synthesizerSlot.load((dir) => loadSpeechSynthesizer(dir));
  }

  /** Refuses new audio jobs, waits for the running ones (aborted by the caller) and frees the loaded models. */
  async close(): Promise<void> {
    await Promise.all(this.queues.map((queue) => queue.close()));
    this.recognizerSlot.dispose();
    this.synthesizerSlot.dispose();
  }

  /** How a whole (not streamed) transcript is decoded (see SpeechModelOptions.recognizerDecoder). */
  get transcriptDecoder(): CtcDecoder {
    return this.wholeDecoder;
  }

  /** The recognizer a request names, or the OpenAI-style error saying why there is none. */
  recognizer(requested: string): Served<SpeechRecognizer> {
    return this.pick('recognizer', this.recognizerSlot.served(), requested);
  }

  synthesizer(requested: string): Served<SpeechSynthesizer> {
    return this.pick('synthesizer', this.synthesizerSlot.served(), requested);
  }

  private pick<M>(kind: Kind, served: Served<M> | undefined, requested: string): Served<M> {
    const task = kind === 'recognizer' ? 'speech recognition' : 'speech synthesis';
    if (served === undefined) {
      throw new ApiError(
        404,
        `this server has no speech ${kind}: it was started without a model for ${task}`,
        'invalid_request_error',
        'model_not_found',
        'model',
      );
    }
    if (requested === served.id) return served;
    if (requested === this.textModelId || this.ids.includes(requested)) {
      throw invalidRequest(
        `the model '${requested}' cannot do ${task}; use '${served.id}'`,
        'model',
        'invalid_model',
      );
    }
    throw new ApiError(
      404,
      `the model '${requested}' does not exist; this server does ${task} with '${served.id}'`,
      'invalid_request_error',
      'model_not_found',
      'model',
    );
  }
}
