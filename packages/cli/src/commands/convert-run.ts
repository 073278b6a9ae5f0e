import { rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { SpecstreamError } from '@specstream/core';
import { exportGguf } from '@specstream/models';
import { CliError, EXIT } from '../exit-codes.js';
import { type CliIo, write } from '../io.js';
import type { ConvertFlags } from './convert.js';

const exists = async (path: string) => (await stat(path).catch(() => undefined)) !== undefined;

/** Checks the arguments, exports to a temporary file beside `out` and renames it: a failed run leaves no partial file. */
export async function runConvert(
  folder: string,
  out: string,
  flags: ConvertFlags,
  io: CliIo,
): Promise<number> {
  const info = await stat(folder).catch(() => undefined);
  if (info === undefined) throw new CliError(EXIT.missingModel, `model folder ${folder} does not exist`);
  if (!info.isDirectory()) throw new CliError(EXIT.missingModel, `model folder ${folder} is not a folder`);
  if (!(await exists(join(folder, 'config.json')))) {
    throw new CliError(EXIT.missingModel, `model folder ${folder} has no config.json`);
  }
  if (flags.tokenizer !== undefined && !(await exists(flags.tokenizer))) {
    throw new CliError(EXIT.usage, `--tokenizer ${flags.tokenizer} does not exist`);
  }
  const outDir = dirname(out);
  if (!(await stat(outDir).catch(() => undefined))?.isDirectory()) {
    throw new CliError(EXIT.usage, `the folder of ${out} (${outDir}) does not exist`);
  }
  if ((await exists(out)) && !flags.force) {
    throw new CliError(EXIT.usage, `${out} exists (pass --force to overwrite it)`);
  }
  const partial = join(outDir, `.${basename(out)}.${process.pid}.partial`);
  try {
    const result = await exportGguf(folder, partial, { type: flags.type, tokenizer: flags.tokenizer });
    await rename(partial, out);
    const size = (await stat(out)).size;
    const kept =
      result.fallbacks.length > 0
        ? `; ${result.fallbacks.length} kept in f16 (rows not a multiple of 32)`
        : '';
    await write(
      io.stdout,
      `wrote ${out}: ${result.architecture}, ${flags.type}, ${result.tensors} tensors${kept}, ${(size / 1e6).toFixed(1)} MB\n`,
    );
    return EXIT.ok;
  } catch (error) {
    await rm(partial, { force: true });
    // The project's own errors about the folder (model_type, tokenizer, missing tensors) mean
    // this folder cannot be converted: exit 4, as generate does for folders it cannot use.
    if (error instanceof SpecstreamError) {
      throw new CliError(EXIT.unsupportedModel, `cannot convert ${folder}: ${error.message}`);
    }
    throw error;
  }
}
