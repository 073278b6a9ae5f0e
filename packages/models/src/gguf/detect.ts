import { open, stat } from 'node:fs/promises';

/** True for a path ending in .gguf, or a file that starts with the GGUF magic. */
export async function isGgufPath(path: string): Promise<boolean> {
  if (/\.gguf$/i.test(path)) return true;
  try {
    if (!(await stat(path)).isFile()) return false;
    const handle = await open(path, 'r');
    try {
      const magic = new Uint8Array(4);
      const { bytesRead } = await handle.read(magic, 0, 4, 0);
      return bytesRead === 4 && String.fromCharCode(...magic) === 'GGUF';
    } finally {
      await handle.close();
    }
  } catch {
    return false;
  }
}
