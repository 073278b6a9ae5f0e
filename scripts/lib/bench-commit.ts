import { execFileSync } from 'node:child_process';

/**
 * The commit a benchmark ran: on the GPU machine the copy has no git state of
 * its own, so scripts/gpu/run.sh passes the bundle's (SPECSTREAM_BENCH_COMMIT,
 * SPECSTREAM_BENCH_DIRTY); here, HEAD and whether tracked files differ from it
 * (as `git describe --dirty` counts them).
 */
export function benchCommit(): { hash: string; dirty: boolean | null } {
  const bundled = process.env.SPECSTREAM_BENCH_COMMIT;
  if (bundled) return { hash: bundled, dirty: process.env.SPECSTREAM_BENCH_DIRTY === '1' };
  try {
    const git = (...args: string[]) => execFileSync('git', args, { encoding: 'utf8' }).trim();
    return {
      hash: git('rev-parse', '--short', 'HEAD'),
      dirty: git('status', '--porcelain', '--untracked-files=no') !== '',
    };
  } catch {
    return { hash: 'unknown', dirty: null };
  }
}
