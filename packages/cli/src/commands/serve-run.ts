import { basename, resolve } from 'node:path';
import { type CausalLm, initBackend } from '@specstream/core';
import { loadCausalLm } from '@specstream/models';
import { createServer } from '@specstream/server';
import { CliError, EXIT } from '../exit-codes.js';
import {
  checkDraftFits,
  inspectFolder,
  type ModelFolder,
  stopTokenIds,
  unsupportedOnError,
} from '../generate/folders.js';
import { type CliIo, write } from '../io.js';
import type { ServeFlags } from './serve.js';

/** `specstream serve`: checks the folders, loads the models, serves until interrupted. Resolves to the exit code. */
export async function runServe(flags: ServeFlags, io: CliIo): Promise<number> {
  const target = await inspectFolder(resolve(flags.model), 'target');
  const draftFolder = flags.draft === false ? undefined : await inspectFolder(resolve(flags.draft), 'draft');
  if (draftFolder !== undefined) checkDraftFits(target, draftFolder);
  await initBackend({ backend: flags.backend });
  const models: CausalLm[] = [];
  const load = (folder: ModelFolder) =>
    unsupportedOnError(() => loadCausalLm(folder.dir), `${folder.role} model folder ${folder.dir}: `);
  try {
    models.push(await load(target));
    if (draftFolder !== undefined && !io.interrupt.aborted) models.push(await load(draftFolder));
    if (io.interrupt.aborted) {
      await write(io.stderr, 'specstream: interrupted while loading the models\n');
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
    const drafting = models[1] !== undefined ? `draft ${basename(draftFolder!.dir)}` : 'no draft';
    await write(
      io.stdout,
      `specstream: serving ${modelId} at ${url} (${drafting}, max batch ${flags.maxBatch}, max queue ${flags.maxQueue})\n`,
    );
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
    for (const model of models) model.dispose();
  }
}
