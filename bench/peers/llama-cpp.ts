/**
 * node-llama-cpp for the peers suite. It is a devDependency of @specstream/models (its GGUF
 * tests drive it), not of the repository root, so pnpm does not link it where bench/ would find
 * it by name: it is resolved from packages/models, and its types come from the same place.
 * No second copy, no new dependency.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

export type LlamaCpp = typeof import('../../packages/models/node_modules/node-llama-cpp/dist/index.js');

function entry(): string {
  const require = createRequire(new URL('../../packages/models/package.json', import.meta.url));
  try {
    return require.resolve('node-llama-cpp');
  } catch (error) {
    throw new Error(
      `node-llama-cpp is not installed in packages/models (run pnpm install): ${(error as Error).message}`,
    );
  }
}

export async function importLlamaCpp(): Promise<LlamaCpp> {
  return (await import(pathToFileURL(entry()).href)) as LlamaCpp;
}

/** The installed version (its package.json sits one level above dist/index.js). */
export function llamaCppVersion(): string {
  const file = join(dirname(dirname(entry())), 'package.json');
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

/**
 * The prebuilt CPU binary from the npm package (build: 'never', as the models tests use it), at
 * most `threads` threads, quiet.
 */
export async function cpuLlama(threads: number) {
  const nlc = await importLlamaCpp();
  const llama = await nlc.getLlama({
    gpu: false,
    build: 'never',
    maxThreads: threads,
    progressLogs: false,
    logLevel: nlc.LlamaLogLevel.error,
  });
  return { nlc, llama };
}
