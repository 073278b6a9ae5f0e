// The reference file a causal LM is checked against, in the layout of the shared fixtures'
// reference.safetensors (and of models/reference/ for the shipped pair): input_ids [rows, steps]
// with their logits, and a greedy prompt with what transformers' generate made of it.
import { type CausalLm, generate } from '@specstream/core';
import { openSafetensors } from '../src/safetensors/file.js';

export interface CausalReference {
  inputIds: number[][];
  logits: Float32Array;
  greedyPrompt: number[];
  greedyOutput: number[];
}

export async function readCausalReference(path: string): Promise<CausalReference> {
  const file = await openSafetensors(path);
  try {
    const values = async (key: string) =>
      Array.from((await file.readValues(key)).values as ArrayLike<number>);
    const width = file.info('input_ids').shape[1];
    const ids = await values('input_ids');
    return {
      inputIds: Array.from({ length: ids.length / width }, (_, r) => ids.slice(r * width, (r + 1) * width)),
      logits: (await file.readValues('logits')).values as Float32Array,
      greedyPrompt: await values('greedy_prompt'),
      greedyOutput: await values('greedy_output'),
    };
  } finally {
    await file.close();
  }
}

/** The prompt and the ids core's greedy generate adds to it, as many as the reference holds. */
export async function greedyContinuation(model: CausalLm, ref: CausalReference): Promise<number[]> {
  const ids: number[] = [];
  const maxNewTokens = ref.greedyOutput.length - ref.greedyPrompt.length;
  for await (const e of generate({ model, prompt: ref.greedyPrompt, maxNewTokens })) ids.push(e.token);
  return [...ref.greedyPrompt, ...ids];
}
