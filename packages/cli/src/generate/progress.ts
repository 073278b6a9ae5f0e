import type { LoadModelOptions } from '@specstream/models';
import type { CliIo } from '../io.js';

export interface LoadProgress {
  onProgress?: LoadModelOptions['onProgress'];
  stop(): void;
}

const MB = 1024 * 1024;

/**
 * A bar on stderr while a model's weights load, on a terminal only: redirected to a file or
 * a pipe it would be noise. cli-progress is loaded only then, so it costs nothing otherwise.
 */
export async function loadProgress(io: CliIo, label: string): Promise<LoadProgress> {
  if (!io.stderrIsTty) return { stop() {} };
  const { default: cliProgress } = await import('cli-progress');
  const bar = new cliProgress.SingleBar({
    stream: io.stderr,
    format: `loading ${label} [{bar}] {percentage}% {value}/{total} MB`,
    barsize: 30,
    clearOnComplete: true,
    hideCursor: true,
    // Weights arrive tensor by tensor, often faster than a terminal needs redrawing.
    fps: 20,
  });
  let started = false;
  return {
    onProgress(loaded, total) {
      const [value, all] = [Math.round(loaded / MB), Math.max(1, Math.round(total / MB))];
      if (!started) bar.start(all, value);
      else bar.update(value);
      started = true;
    },
    stop() {
      if (started) bar.stop();
    },
  };
}
