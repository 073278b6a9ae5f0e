import { readFile, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep, win32 } from 'node:path';
import { SafetensorsError } from './errors.js';
import { openSafetensors, type SafetensorsFile, type TensorReader } from './file.js';

export const SINGLE_FILE_NAME = 'model.safetensors';
export const INDEX_FILE_NAME = 'model.safetensors.index.json';

export interface Checkpoint extends TensorReader {
  /** The model folder (or the file, when a single .safetensors path was given). */
  readonly location: string;
  /** Every safetensors file this checkpoint reads from. */
  readonly files: readonly string[];
}

/**
 * Opens a model folder holding `model.safetensors`, or `model.safetensors.index.json` plus
 * its shards, or a single `.safetensors` file path. Only headers are read here.
 */
export async function openCheckpoint(location: string): Promise<Checkpoint> {
  if ((await stat(location)).isFile()) return singleFile(location, await openSafetensors(location));
  const indexPath = join(location, INDEX_FILE_NAME);
  if (await isFile(indexPath)) return openSharded(location, indexPath);
  const filePath = join(location, SINGLE_FILE_NAME);
  if (await isFile(filePath)) return singleFile(location, await openSafetensors(filePath));
  throw new SafetensorsError(location, `no ${SINGLE_FILE_NAME} or ${INDEX_FILE_NAME} in this folder`);
}

function singleFile(location: string, file: SafetensorsFile): Checkpoint {
  return { ...file, location, files: [file.path] };
}

async function openSharded(dir: string, indexPath: string): Promise<Checkpoint> {
  const weightMap = await readWeightMap(indexPath);
  const shardNames = [...new Set(weightMap.values())];
  const shardPaths = new Map(shardNames.map((shard) => [shard, shardPath(dir, indexPath, weightMap, shard)]));
  const shards = new Map<string, SafetensorsFile>();
  const closeAll = () => Promise.all([...shards.values()].map((shard) => shard.close()));
  try {
    for (const [shard, path] of shardPaths) shards.set(shard, await openSafetensors(path));
    for (const [name, shard] of weightMap) {
      if (!shards.get(shard)!.has(name)) {
        throw new SafetensorsError(
          indexPath,
          `maps '${name}' to ${shard}, but that shard has no such tensor`,
        );
      }
    }
  } catch (error) {
    await closeAll();
    throw error;
  }

  const shardOf = (name: string): SafetensorsFile => {
    const shard = weightMap.get(name);
    if (shard === undefined) throw new SafetensorsError(dir, `no tensor named '${name}' in this checkpoint`);
    return shards.get(shard)!;
  };
  return {
    location: dir,
    files: [...shardPaths.values()],
    names: [...weightMap.keys()],
    has: (name) => weightMap.has(name),
    info: (name) => shardOf(name).info(name),
    readValues: (name) => shardOf(name).readValues(name),
    readChunks: (name, chunkElements) => shardOf(name).readChunks(name, chunkElements),
    readTensor: (name) => shardOf(name).readTensor(name),
    close: async () => {
      await closeAll();
    },
  };
}

async function readWeightMap(indexPath: string): Promise<Map<string, string>> {
  let index: unknown;
  try {
    index = JSON.parse(await readFile(indexPath, 'utf8'));
  } catch (error) {
    throw new SafetensorsError(indexPath, `index is not valid JSON (${(error as Error).message})`);
  }
  const weightMap = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new SafetensorsError(indexPath, 'index has no weight_map object');
  }
  const entries = Object.entries(weightMap);
  const bad = entries.find(([, shard]) => typeof shard !== 'string');
  if (bad) throw new SafetensorsError(indexPath, `weight_map entry '${bad[0]}' is not a file name`);
  return new Map(entries as [string, string][]);
}

/** A downloaded index is untrusted input: it may only name files inside the model folder. */
function shardPath(dir: string, indexPath: string, weightMap: Map<string, string>, shard: string): string {
  const escapes =
    isAbsolute(shard) ||
    win32.isAbsolute(shard) ||
    shard.split(/[\\/]/).includes('..') ||
    relative(resolve(dir), resolve(dir, shard)).startsWith(`..${sep}`);
  if (escapes) {
    const tensor = [...weightMap].find(([, file]) => file === shard)![0];
    throw new SafetensorsError(
      indexPath,
      `shard '${shard}' (for '${tensor}') is outside the model folder; shard names must be relative, without '..'`,
    );
  }
  return join(dir, shard);
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}
