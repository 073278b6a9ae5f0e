// Bundles what the GPU machine runs for node-llama-cpp's Vulkan comparison (it has no
// node_modules): bench/peers/llama-gpu.ts as <out>/llama-gpu.mjs, and the CLI's `specstream
// convert` as <out>/specstream-convert.mjs (commander with only the convert command, as
// packages/cli/src/commands/convert.ts defines it: the same options, checks and export; the whole
// CLI would bring 5 MB of other commands' chunks), shared code in chunk-*.mjs. Usage there:
// `node <out>/specstream-convert.mjs convert <hf-folder> <out.gguf> --type f32`.
// Called by scripts/gpu/llama-pack.sh with the path of esbuild's package:
//
//   node scripts/gpu/llama-bundle.mjs <esbuild package dir> <out dir>
//
// The settings and the import.meta.url rewrite are bundle-common.mjs's (as for scripts/gpu/bundle.mjs),
// so bench/peers/llama-cpp.ts resolves node-llama-cpp from packages/models as it does here (on the
// GPU machine through NODE_PATH, which llama-run.sh points at the unpacked tree).
import { join } from 'node:path';
import { bundle, bundleArgs, root, UNUSED_BACKENDS, virtualEntries } from './bundle-common.mjs';

const { esbuild, outdir } = bundleArgs('scripts/gpu/llama-bundle.mjs');

/** The entry `cli:convert`: the CLI's convert command alone, errors reported as main.ts does. */
const cliSrc = join(root, 'packages/cli/src');
const convertEntry = virtualEntries(
  'cli',
  () => `
        import { Command, CommanderError } from 'commander';
        import { addConvertCommand } from ${JSON.stringify(join(cliSrc, 'commands/convert.ts'))};
        import { CliError, EXIT } from ${JSON.stringify(join(cliSrc, 'exit-codes.ts'))};
        const io = {
          stdout: process.stdout, stderr: process.stderr, stdin: process.stdin,
          stdoutIsTty: false, stdinIsTty: false, stderrIsTty: false,
          env: process.env, interrupt: new AbortController().signal,
        };
        let code = EXIT.ok;
        const program = new Command('specstream').exitOverride();
        addConvertCommand(program, io, (c) => { code = c; });
        try {
          await program.parseAsync(process.argv.slice(2), { from: 'user' });
        } catch (error) {
          if (error instanceof CommanderError) code = error.exitCode === 0 ? EXIT.ok : EXIT.usage;
          else if (error instanceof CliError) {
            process.stderr.write('specstream: ' + error.message + '\\n');
            code = error.code;
          } else {
            process.stderr.write('specstream: ' + (error?.stack ?? error) + '\\n');
            code = EXIT.failure;
          }
        }
        process.stdout.write('', () => process.exit(code));
  `,
  cliSrc,
);

await bundle(
  esbuild,
  outdir,
  [
    { in: 'bench/peers/llama-gpu.ts', out: 'llama-gpu' },
    { in: 'cli:convert', out: 'specstream-convert' },
  ],
  {
    // node-llama-cpp is imported at run time from the unpacked tree (llama-cpp.ts), never bundled.
    external: ['webgpu', ...UNUSED_BACKENDS, 'node-llama-cpp', '@node-llama-cpp/*'],
    plugins: [convertEntry],
  },
);
