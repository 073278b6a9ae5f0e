import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';

/** Reference files made by HF transformers; shared/ sits beside the checkout, on CI too. */
export const FIXTURES_URL = new URL('../../../../shared/fixtures/hf/', import.meta.url);
export const FIXTURES_DIR = fileURLToPath(FIXTURES_URL);

export function fixturePath(relativePath: string): string {
  return fileURLToPath(new URL(relativePath, FIXTURES_URL));
}

/**
 * The cpu backend is a dependency of @specstream/core, not of this package, so a plain
 * `import '@tensorflow/tfjs-backend-cpu'` does not resolve here; load it as core would.
 */
export async function useCpuBackend(): Promise<void> {
  createRequire(new URL('../../core/package.json', import.meta.url))('@tensorflow/tfjs-backend-cpu');
  await tf.setBackend('cpu');
}
