import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { CliError, EXIT } from '../exit-codes.js';
import type { CliIo } from '../io.js';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

/** `specstream bench`: `pnpm bench` (scripts/bench.ts at the repository root), arguments forwarded as given. */
export function addBenchCommand(program: Command, io: CliIo, done: (code: number) => void): void {
  program
    .command('bench')
    .description(
      "Run the repository's benchmarks (scripts/bench.ts, as `pnpm bench`), forwarding every argument: " +
        '--backends webgpu,wasm,cpu  --only core,speculative,streaming,load,pair,quant,quant-model  --reps N  ' +
        '--spec-tokens N  --spec-prompts N  --weights f32,q8,q4 (the formats quant-model loads the models in; ' +
        'f32 is always measured, as the baseline). Tables are printed, JSON goes to bench-results/.',
    )
    .argument('[args...]', 'arguments for scripts/bench.ts')
    .allowUnknownOption()
    .helpOption('-h, --help', 'this help (put `--` before arguments meant for the bench itself)')
    .action(async (args: string[]) => {
      checkBenchWeights(args);
      done(await runBench(args, io));
    });
}

/** The formats the quant-model suite measures (it runs on wasm, whose set has no f16). */
const BENCH_WEIGHTS = ['f32', 'q8', 'q4'] as const;

/** The value of `--name value` or `--name=value` (the last one given), or undefined. */
function flagValue(args: readonly string[], name: string): string | undefined {
  let value: string | undefined;
  args.forEach((arg, i) => {
    if (arg === `--${name}`) {
      value = args[i + 1];
      if (value === undefined || value.startsWith('--')) {
        throw new CliError(EXIT.usage, `option '--${name} <list>' argument missing`);
      }
    } else if (arg.startsWith(`--${name}=`)) value = arg.slice(name.length + 3);
  });
  return value;
}

/**
 * --weights is the bench's one flag whose mistakes would surface only minutes into a run (after
 * the suites before quant-model), so the CLI checks it before starting: known formats, a suite
 * that loads models in them, and a backend that runs q8/q4.
 */
export function checkBenchWeights(args: readonly string[]): void {
  const list = flagValue(args, 'weights');
  if (list === undefined) return;
  const formats = list.split(',');
  const unknown = formats.filter((f) => !(BENCH_WEIGHTS as readonly string[]).includes(f));
  if (unknown.length > 0 || list === '') {
    throw new CliError(
      EXIT.usage,
      `option '--weights <list>' argument '${list}' is invalid: the quant-model suite (wasm) measures ${BENCH_WEIGHTS.join(', ')}, comma-separated`,
    );
  }
  const suites = (flagValue(args, 'only') ?? '').split(',');
  if (!suites.includes('quant-model')) {
    throw new CliError(
      EXIT.usage,
      '--weights chooses the formats of the quant-model suite, which runs only when named: add --only quant-model',
    );
  }
  const backends = (flagValue(args, 'backends') ?? 'webgpu,wasm,cpu').split(',');
  const quantized = formats.filter((f) => f !== 'f32');
  if (quantized.length > 0 && !backends.includes('wasm')) {
    throw new CliError(
      EXIT.usage,
      `--weights ${quantized.join(',')}: q8 and q4 weights run on the wasm backend only: add wasm to --backends`,
    );
  }
}

async function runBench(args: readonly string[], io: CliIo): Promise<number> {
  const child = spawn(
    process.execPath,
    ['--conditions=@specstream/source', '--import', 'tsx', 'scripts/bench.ts', ...args],
    { cwd: ROOT, stdio: ['inherit', 'pipe', 'pipe'] },
  );
  child.stdout.pipe(io.stdout, { end: false });
  child.stderr.pipe(io.stderr, { end: false });
  // Ctrl-C reaches the child from the terminal too; this covers an interrupt from elsewhere.
  const stop = () => child.kill('SIGINT');
  io.interrupt.addEventListener('abort', stop, { once: true });
  try {
    return await new Promise<number>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code, signal) =>
        resolve(code ?? (signal === 'SIGINT' ? EXIT.interrupted : EXIT.failure)),
      );
    });
  } finally {
    io.interrupt.removeEventListener('abort', stop);
  }
}
