#!/usr/bin/env node
// The `specstream` command. It runs the build (dist/), because transpiling the sources through
// tsx at every start costs a few hundred milliseconds of the first token's time; the root
// install script builds it. Without a build, or with SPECSTREAM_CLI_SOURCE=1, it runs the
// sources through tsx in a child process (Node needs the source condition as a flag).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dist = new URL('../dist/bin.js', import.meta.url);
if (existsSync(dist) && !process.env.SPECSTREAM_CLI_SOURCE) {
  await import(dist.href);
} else {
  const source = fileURLToPath(new URL('../src/bin.ts', import.meta.url));
  const child = spawn(
    process.execPath,
    [
      '--conditions=@specstream/source',
      '--import',
      import.meta.resolve('tsx'),
      source,
      ...process.argv.slice(2),
    ],
    { stdio: 'inherit' },
  );
  // Ctrl-C reaches the child from the terminal: wait for it to finish and report its code.
  process.on('SIGINT', () => {});
  child.on('exit', (code, signal) => process.exit(code ?? (signal === 'SIGINT' ? 130 : 1)));
}
