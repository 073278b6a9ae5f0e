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
    format: `loading ${label} [{bar}] {percentage}% {loadedMb}/{totalMb} MB`,
    barsize: 30,
    clearOnComplete: true,
    hideCursor: true,
    // Weights arrive tensor by tensor, often faster than a terminal needs redrawing.
    fps: 20,
  });
  let started = false;
  return {
    onProgress(loaded, total) {
      const payload = { loadedMb: (loaded / MB).toFixed(1), totalMb: (total / MB).toFixed(1) };
      if (!started) bar.start(Math.max(total, 1), loaded, payload);
      else bar.update(loaded, payload);
      started = true;
    },
    stop() {
      if (started) bar.stop();
    },
  };
}
