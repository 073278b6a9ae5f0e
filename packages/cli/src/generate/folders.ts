import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError, SpecstreamError } from '@specstream/core';
import { loadTokenizer, readHfConfig, SUPPORTED_MODEL_TYPES, type Tokenizer } from '@specstream/models';
import { checkVocabularies } from '@specstream/speculative';
import { CliError, EXIT } from '../exit-codes.js';

type HfConfig = Awaited<ReturnType<typeof readHfConfig>>;

/** What the CLI learns from a model folder before any weight is read. */
export interface ModelFolder {
  dir: string;
  role: 'target' | 'draft';
  modelType: string;
  vocabSize: number;
  /** Positions the model was trained for (max_position_embeddings or n_positions). */
  context: number;
  config: HfConfig;
  /** The target always has one; a draft folder without tokenizer.json shares the target's. */
  tokenizer?: Tokenizer;
}

async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() ?? false;
}

/**
 * Checks a folder and reads its config (and tokenizer), so that a wrong folder fails in
 * milliseconds with its own exit code instead of part-way through loading weights.
 */
export async function inspectFolder(dir: string, role: ModelFolder['role']): Promise<ModelFolder> {
  const info = await stat(dir).catch(() => undefined);
  if (info === undefined) {
    const hint = role === 'target' ? 'pass --model DIR' : 'pass --draft DIR, --prompt-lookup or --no-draft';
    throw new CliError(EXIT.missingModel, `${role} model folder ${dir} does not exist (${hint})`);
  }
  if (!info.isDirectory())
    throw new CliError(EXIT.missingModel, `${role} model folder ${dir} is not a folder`);
  if (!(await isFile(join(dir, 'config.json')))) {
    throw new CliError(EXIT.missingModel, `${role} model folder ${dir} has no config.json`);
  }
  const config = await unsupportedOnError(() => readHfConfig(dir));
  const modelType = config.model_type ?? '(missing)';
  if (modelType === 'whisper') {
    throw new CliError(
      EXIT.unsupportedModel,
      `${role} model folder ${dir} holds a whisper model (speech recognition), not a text generator`,
    );
  }
  const textTypes = SUPPORTED_MODEL_TYPES.filter((t) => t !== 'whisper');
  if (!(textTypes as readonly string[]).includes(modelType)) {
    throw new CliError(
      EXIT.unsupportedModel,
      `${role} model folder ${dir}: model_type "${modelType}" is not supported (supported: ${textTypes.join(', ')})`,
    );
  }
  const vocabSize = config.vocab_size;
  if (typeof vocabSize !== 'number' || !Number.isInteger(vocabSize) || vocabSize < 1) {
    throw new CliError(
      EXIT.unsupportedModel,
      `${role} model folder ${dir}: config.json has no valid vocab_size`,
    );
  }
  const context = config.max_position_embeddings ?? config.n_positions;
  // A draft without its own tokenizer.json is taken to share the target's.
  const tokenizer =
    role === 'target' || (await isFile(join(dir, 'tokenizer.json')))
      ? await unsupportedOnError(() => loadTokenizer(dir), `${role} model folder ${dir}: `)
      : undefined;
  return {
    dir,
    role,
    modelType,
    vocabSize,
    context: typeof context === 'number' && context > 0 ? context : Number.POSITIVE_INFINITY,
    config,
    tokenizer,
  };
}

/** The project's own errors about a folder's files mean the folder is unusable here: exit code 4. */
export async function unsupportedOnError<T>(read: () => Promise<T>, prefix = ''): Promise<T> {
  try {
    return await read();
  } catch (error) {
    if (error instanceof SpecstreamError) throw new CliError(EXIT.unsupportedModel, prefix + error.message);
    throw error;
  }
}

/** Every id the draft can propose must mean the same to the target (sizes, then token strings). */
export function checkDraftFits(target: ModelFolder, draft: ModelFolder): void {
  try {
    checkVocabularies({
      targetVocabSize: target.vocabSize,
      draftVocabSize: draft.vocabSize,
      targetTokenizer: target.tokenizer,
      draftTokenizer: draft.tokenizer,
    });
  } catch (error) {
    if (!(error instanceof InvalidArgumentError)) throw error;
    throw new CliError(
      EXIT.draftMismatch,
      `draft ${draft.dir} does not fit target ${target.dir}: ${error.message}`,
    );
  }
}

/** The ids a row stops at: the tokenizer's end-of-sequence token and config.json's eos_token_id. */
export function stopTokenIds(folder: ModelFolder): number[] {
  const fromConfig = folder.config.eos_token_id;
  const ids = [folder.tokenizer?.eosTokenId, ...(Array.isArray(fromConfig) ? fromConfig : [fromConfig])];
  return [...new Set(ids.filter((id): id is number => typeof id === 'number' && Number.isInteger(id)))];
}
