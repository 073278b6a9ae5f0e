import type { Command } from 'commander';
import { EXIT_CODES_HELP } from '../exit-codes.js';
import type { CliIo } from '../io.js';
import { type BACKEND_CHOICES, backendOption } from './generate.js';
import { DEFAULT_SPEECH_SYNTHESIZER } from './speech-defaults.js';

export interface SpeakFlags {
  output: string;
  model: string;
  backend?: (typeof BACKEND_CHOICES)[number];
}

/** `specstream speak`: options are parsed here; the work (and tfjs) loads only when it runs. */
export function addSpeakCommand(program: Command, io: CliIo, done: (code: number) => void): void {
  program
    .command('speak')
    .description(
      'Speak text with the speech synthesizer into a 16-bit mono WAV file. The text is normalised as the ' +
        'model was trained (numbers and symbols spelled out), synthesized a few frames at a time and ' +
        'vocoded by Griffin-Lim; audio reaches the file as it is made. Time to first audio and the ' +
        'real-time factor go to stderr.',
    )
    .argument('[text]', 'the text; read from stdin when absent or -')
    .requiredOption('-o, --output <file.wav>', 'the WAV file to write')
    .option(
      '--model <dir>',
      'synthesizer folder (config.json with model_type specstream-synthesizer, model.safetensors)',
      DEFAULT_SPEECH_SYNTHESIZER,
    )
    .addOption(backendOption())
    .addHelpText('after', `\n${EXIT_CODES_HELP}`)
    .action(async (text: string | undefined, flags: SpeakFlags) => {
      const { runSpeak } = await import('./speak-run.js');
      done(await runSpeak(text, flags, io));
    });
}
