import { type Command, Option } from 'commander';
import { EXIT_CODES_HELP } from '../exit-codes.js';
import type { CliIo } from '../io.js';

/** @specstream/models' GGUF_EXPORT_TYPES, spelled out so that `--help` need not load the models package (a test keeps them equal). */
export const GGUF_TYPE_CHOICES = ['f32', 'f16', 'q8_0', 'q4_0'] as const;

export interface ConvertFlags {
  type: (typeof GGUF_TYPE_CHOICES)[number];
  tokenizer?: string;
  force: boolean;
}

/** `specstream convert`: a Hugging Face folder to a GGUF file that llama.cpp (and loadModel) loads. */
export function addConvertCommand(program: Command, io: CliIo, done: (code: number) => void): void {
  program
    .command('convert')
    .description(
      'Convert a Hugging Face model folder (Llama, Mistral, Qwen2 or GPT-2: config.json, model.safetensors, ' +
        'tokenizer.json) to a GGUF v3 file for llama.cpp. Matrices are written in --type, norms and biases ' +
        'in f32; quantized types keep matrices whose rows are not a multiple of 32 in f16.',
    )
    .argument('<hf-folder>', 'the model folder')
    .argument('<out>', 'the GGUF file to write (e.g. model.gguf)')
    .addOption(
      new Option('--type <type>', 'type of the weight matrices').choices(GGUF_TYPE_CHOICES).default('f16'),
    )
    .option('--tokenizer <file>', "a tokenizer.json to embed (default: the folder's own)")
    .option('--force', 'overwrite <out> if it exists', false)
    .addHelpText('after', `\n${EXIT_CODES_HELP}`)
    .action(async (folder: string, out: string, flags: ConvertFlags) => {
      const { runConvert } = await import('./convert-run.js');
      done(await runConvert(folder, out, flags, io));
    });
}
