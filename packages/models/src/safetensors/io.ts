import type { FileHandle } from 'node:fs/promises';
import { SafetensorsError } from './errors.js';

// One read() may return fewer bytes than asked (and caps at 2 GiB), so loop until full.
const MAX_READ_BYTES = 1 << 30;

/** Fills `target` from `position` on, or throws if the file ends first. */
export async function readExactly(
  handle: FileHandle,
  path: string,
  target: Uint8Array,
  position: number,
): Promise<void> {
  let filled = 0;
  while (filled < target.length) {
    const length = Math.min(target.length - filled, MAX_READ_BYTES);
    const { bytesRead } = await handle.read(target, filled, length, position + filled);
    if (bytesRead === 0) {
      throw new SafetensorsError(
        path,
        `file is truncated: it ended at byte ${position + filled} while reading`,
      );
    }
    filled += bytesRead;
  }
}
