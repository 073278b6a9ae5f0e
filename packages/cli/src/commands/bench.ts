import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { EXIT } from '../exit-codes.js';
import type { CliIo } from '../io.js';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

/** `specstream bench`: `pnpm bench` (scripts/bench.ts at the repository root), arguments forwarded as given. */
export function addBenchCommand(program: Command, io: CliIo, done: (code: number) => void): void {
  program
    .command('bench')
    .description(
      "Run the repository's benchmarks (scripts/bench.ts, as `pnpm bench`), forwarding every argument: " +
        '--backends webgpu,wasm,cpu  --only core,speculative,streaming,load  --reps N  ' +
        '--spec-tokens N  --spec-prompts N. Tables are printed, JSON goes to bench-results/.',
    )
    .argument('[args...]', 'arguments for scripts/bench.ts')
    .allowUnknownOption()
    .helpOption('-h, --help', 'this help (put `--` before arguments meant for the bench itself)')
    .action(async (args: string[]) => {
      done(await runBench(args, io));
    });
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
