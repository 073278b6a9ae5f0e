/**
 * A Llama-shaped model with random weights, written as a Hugging Face folder (config.json,
 * sharded safetensors written by @specstream/models' writeSafetensors, the shipped target's
 * tokenizer) for the peers suite's memory-bound case. Random weights say nothing about
 * quality or acceptance, only about speed: every weight is read once per decoded token, as in
 * a trained model of the same shape.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { INDEX_FILE_NAME, writeSafetensors } from '@specstream/models';
import { randomLlamaConfig, randomValues } from '../../packages/models/bench/load-bench.js';

export interface RandomLlamaShape {
  layers: number;
  hidden: number;
  intermediate: number;
  heads: number;
  kvHeads: number;
  vocab: number;
}

/** head dim 64, GQA 4:1, MLP 2.75 × hidden rounded to 256 (the shape of Llama-style small models). */
export function randomLlamaShape(layers: number, hidden: number, vocab: number): RandomLlamaShape {
  if (hidden % 256 !== 0) throw new Error(`--peers-big-hidden must be a multiple of 256, got ${hidden}`);
  const heads = hidden / 64;
  return {
    layers,
    hidden,
    intermediate: Math.round((2.75 * hidden) / 256) * 256,
    heads,
    kvHeads: Math.max(1, heads / 4),
    vocab,
  };
}

export function parameterCount(s: RandomLlamaShape): number {
  const kv = (s.kvHeads * s.hidden) / s.heads;
  const layer = s.hidden * (2 * s.hidden + 2 * kv) + 3 * s.hidden * s.intermediate + 2 * s.hidden;
  return s.vocab * s.hidden + s.layers * layer + s.hidden;
}

const DONE = '.complete';

/**
 * Writes the folder under `root` (named after the shape) unless a complete one is there, and
 * returns its path. One shard per layer, so only one layer's values are in memory at a time.
 */
export async function writeRandomLlama(
  root: string,
  shape: RandomLlamaShape,
  tokenizerDir: string,
  log: (line: string) => void,
): Promise<string> {
  const { layers, hidden, intermediate, heads, kvHeads, vocab } = shape;
  const dir = join(root, `random-llama-L${layers}-d${hidden}-v${vocab}`);
  const config = { ...randomLlamaConfig(shape), bos_token_id: 0, eos_token_id: 0 };
  const stamp = JSON.stringify(config);
  if (existsSync(join(dir, DONE)) && readFileSync(join(dir, DONE), 'utf8') === stamp) return dir;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const t = performance.now();
  const state = { seed: 0x2545f491 };
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  const shard = async (name: string, tensors: Record<string, { shape: number[]; norm?: boolean }>) => {
    const values = Object.fromEntries(
      Object.entries(tensors).map(([key, { shape, norm }]) => {
        const data = randomValues(
          shape.reduce((n, d) => n * d, 1),
          norm ?? false,
          state,
        );
        totalSize += data.byteLength;
        weightMap[key] = name;
        return [key, { dtype: 'F32' as const, shape, data }];
      }),
    );
    await writeSafetensors(join(dir, name), values, { format: 'pt' });
  };
  const files = layers + 1;
  const file = (i: number) =>
    `model-${String(i + 1).padStart(5, '0')}-of-${String(files).padStart(5, '0')}.safetensors`;
  await shard(file(0), {
    'model.embed_tokens.weight': { shape: [vocab, hidden] },
    'model.norm.weight': { shape: [hidden], norm: true },
  });
  const kv = kvHeads * (hidden / heads);
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}`;
    await shard(file(i + 1), {
      [`${p}.input_layernorm.weight`]: { shape: [hidden], norm: true },
      [`${p}.post_attention_layernorm.weight`]: { shape: [hidden], norm: true },
      [`${p}.self_attn.q_proj.weight`]: { shape: [hidden, hidden] },
      [`${p}.self_attn.k_proj.weight`]: { shape: [kv, hidden] },
      [`${p}.self_attn.v_proj.weight`]: { shape: [kv, hidden] },
      [`${p}.self_attn.o_proj.weight`]: { shape: [hidden, hidden] },
      [`${p}.mlp.gate_proj.weight`]: { shape: [intermediate, hidden] },
      [`${p}.mlp.up_proj.weight`]: { shape: [intermediate, hidden] },
      [`${p}.mlp.down_proj.weight`]: { shape: [hidden, intermediate] },
    });
  }
  writeFileSync(
    join(dir, INDEX_FILE_NAME),
    `${JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2)}\n`,
  );
  writeFileSync(join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  for (const name of ['tokenizer.json', 'tokenizer_config.json']) {
    if (existsSync(join(tokenizerDir, name))) copyFileSync(join(tokenizerDir, name), join(dir, name));
  }
  writeFileSync(join(dir, DONE), stamp);
  log(
    `wrote ${dir}: ${(parameterCount(shape) / 1e6).toFixed(0)}M parameters, ${(totalSize / 1e6).toFixed(0)} MB float32, random weights (${((performance.now() - t) / 1000).toFixed(1)} s)`,
  );
  return dir;
}
