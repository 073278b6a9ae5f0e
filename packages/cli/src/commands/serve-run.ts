import { stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { type CausalLm, initBackend } from '@specstream/core';
import {
  loadCausalLm,
  loadSpeechRecognizer,
  loadSpeechSynthesizer,
  type SpeechRecognizer,
  type SpeechSynthesizer,
} from '@specstream/models';
import { createServer, type SpeechModelOptions } from '@specstream/server';
import { defaultDraftWeights } from '../draft-weights.js';
import { CliError, EXIT } from '../exit-codes.js';
import {
  checkDraftFits,
  inspectFolder,
  type ModelFolder,
  stopTokenIds,
  unsupportedOnError,
} from '../generate/folders.js';
import { type CliIo, write } from '../io.js';
import type { WeightChoice } from './generate.js';
import { type ServeFlags, speechFolders } from './serve.js';

/** Anything `serve` loads and must free. */
type LoadedModel = CausalLm | SpeechRecognizer | SpeechSynthesizer;

/** `specstream serve`: checks the folders, loads the models, serves until interrupted. Resolves to the exit code. */
export async function runServe(flags: ServeFlags, io: CliIo): Promise<number> {
  const target = await inspectFolder(resolve(flags.model), 'target');
  const draftFolder = flags.draft === false ? undefined : await inspectFolder(resolve(flags.draft), 'draft');
  if (draftFolder !== undefined) checkDraftFits(target, draftFolder);
  const speechDirs = speechFolders(flags);
  for (const [role, dir] of Object.entries(speechDirs)) {
    if (dir !== undefined) await checkSpeechFolder(resolve(dir), role);
  }
  await initBackend({ backend: flags.backend });
  const models: CausalLm[] = [];
  const speechModels: LoadedModel[] = [];
  const draftWeights = flags.draftWeights ?? defaultDraftWeights();
  const load = (folder: ModelFolder, weights: WeightChoice = 'f32') =>
    unsupportedOnError(
      // A server creates states request after request: keep a few caches (and webgpu's recorded passes).
      () => loadCausalLm(folder.dir, { weights, reuseStates: 4 }),
      `${folder.role} model folder ${folder.dir}: `,
    );
  try {
    models.push(await load(target));
    if (draftFolder !== undefined && !io.interrupt.aborted)
      models.push(await load(draftFolder, draftWeights));
    if (io.interrupt.aborted) {
      await write(io.stderr, 'specstream: interrupted while loading the models\n');
      return EXIT.interrupted;
    }
    const speech = await loadSpeechModels(speechDirs, speechModels, io.interrupt);
    if (io.interrupt.aborted) {
      await write(io.stderr, 'specstream: interrupted while loading the speech models\n');
      return EXIT.interrupted;
    }
    const context = Math.min(target.context, draftFolder?.context ?? Number.POSITIVE_INFINITY);
    const bos = target.config.bos_token_id;
    const modelId = flags.modelId ?? basename(target.dir);
    const server = createServer({
      target: models[0],
      draft: models[1],
      tokenizer: target.tokenizer!,
      modelId,
      maxBatch: flags.maxBatch,
      maxQueue: flags.maxQueue,
      context: Number.isFinite(context) ? context : undefined,
      k: flags.k,
      apiKey: flags.apiKey ?? (io.env.SPECSTREAM_API_KEY || undefined),
      stopTokens: stopTokenIds(target),
      bosTokenId: typeof bos === 'number' ? bos : undefined,
      ...speech,
      maxAudioBytes: flags.maxAudioMb * 1024 * 1024,
      maxAudioQueue: flags.maxAudioQueue,
    });
    let url: string;
    try {
      url = await server.listen({ host: flags.host, port: flags.port });
    } catch (error) {
      await server.close();
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
        throw new CliError(EXIT.usage, `cannot listen on ${flags.host}:${flags.port} (${code})`);
      }
      throw error;
    }
    const drafting =
      models[1] !== undefined ? `draft ${basename(draftFolder!.dir)} in ${draftWeights}` : 'no draft';
    await write(
      io.stdout,
      `specstream: serving ${modelId} at ${url} (${drafting}, max batch ${flags.maxBatch}, max queue ${flags.maxQueue})\n`,
    );
    if (speech.recognizerId !== undefined || speech.synthesizerId !== undefined) {
      const routes = [
        speech.recognizerId && `POST /v1/audio/transcriptions with ${speech.recognizerId}`,
        speech.synthesizerId && `POST /v1/audio/speech with ${speech.synthesizerId}`,
      ];
      await write(io.stdout, `specstream: speech: ${routes.filter(Boolean).join(', ')}\n`);
    }
    // Ctrl-C (the bin's interrupt) or SIGTERM (docker stop, Kubernetes) stops the server.
    const stop = new AbortController();
    const onTerm = () => stop.abort();
    process.once('SIGTERM', onTerm);
    try {
      await new Promise<void>((done) => {
        const signal = AbortSignal.any([io.interrupt, stop.signal]);
        if (signal.aborted) done();
        else signal.addEventListener('abort', () => done(), { once: true });
      });
    } finally {
      process.removeListener('SIGTERM', onTerm);
    }
    await server.close();
    await write(io.stderr, 'specstream: server stopped\n');
    return EXIT.ok;
  } finally {
    for (const model of [...models, ...speechModels]) model.dispose();
  }
}

/** A speech folder must exist and hold a config.json (exit 3 before anything loads, as for the LMs). */
async function checkSpeechFolder(dir: string, role: string): Promise<void> {
  const info = await stat(dir).catch(() => undefined);
  if (info === undefined) throw new CliError(EXIT.missingModel, `${role} folder ${dir} does not exist`);
  if (!info.isDirectory()) throw new CliError(EXIT.missingModel, `${role} folder ${dir} is not a folder`);
  if (!(await stat(join(dir, 'config.json')).catch(() => undefined))?.isFile()) {
    throw new CliError(EXIT.missingModel, `${role} folder ${dir} has no config.json`);
  }
}

/**
 * Loads the speech folders asked for (a folder the loaders refuse exits 4), each pushed to
 * `loaded` for the caller to free; the server borrows them under their folders' names.
 */
async function loadSpeechModels(
  dirs: { recognizer?: string; synthesizer?: string },
  loaded: LoadedModel[],
  interrupt: AbortSignal,
): Promise<SpeechModelOptions> {
  const options: SpeechModelOptions = {};
  if (dirs.recognizer !== undefined && !interrupt.aborted) {
    const dir = resolve(dirs.recognizer);
    const recognizer = await unsupportedOnError(
      () => loadSpeechRecognizer(dir),
      `recognizer folder ${dir}: `,
    );
    loaded.push(recognizer);
    Object.assign(options, { recognizer, recognizerId: basename(dir) });
  }
  if (dirs.synthesizer !== undefined && !interrupt.aborted) {
    const dir = resolve(dirs.synthesizer);
    const synthesizer = await unsupportedOnError(
      () => loadSpeechSynthesizer(dir),
      `synthesizer folder ${dir}: `,
    );
    loaded.push(synthesizer);
    Object.assign(options, { synthesizer, synthesizerId: basename(dir) });
  }
  return options;
}
