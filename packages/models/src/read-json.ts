import { readFile } from 'node:fs/promises';

/**
 * A JSON file's value, or undefined when there is no such file. Text that
 * is not JSON throws what `invalid` makes of the parser's message, so each
 * caller names the problem in its own error class.
 */
export async function readJsonIfExists(path: string, invalid: (message: string) => Error): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw invalid((error as Error).message);
  }
}
