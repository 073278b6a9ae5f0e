// The process around main(): real streams, Ctrl-C, the exit code.
import { EXIT } from './exit-codes.js';
import { main } from './main.js';

const controller = new AbortController();
let interrupts = 0;
// The first Ctrl-C stops generation within one step (the stats line still prints); a second
// one, for a step or a load that takes too long, exits at once.
process.on('SIGINT', () => {
  interrupts++;
  if (interrupts > 1) process.exit(EXIT.interrupted);
  controller.abort();
});
// `specstream generate | head` closes the pipe early: that ends the command, quietly.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(EXIT.ok);
  throw error;
});

const code = await main(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  stdoutIsTty: process.stdout.isTTY === true,
  stdinIsTty: process.stdin.isTTY === true,
  stderrIsTty: process.stderr.isTTY === true,
  env: process.env,
  interrupt: controller.signal,
});
// Exit now rather than when the event loop drains: a stdin that was never read, or a backend's
// handles, must not keep a finished command alive.
process.stdout.write('', () => process.exit(code));
