import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs-core';

/**
 * Reference files made by HF transformers; shared/ sits beside the checkout, on CI too.
 * SPECSTREAM_FIXTURES points the suites at another set laid out the same way
 * (test-support/fixtures.ts; tools/fixtures/make_fixtures.py makes one).
 */
export {
  causalFixture,
  FIXTURES_DIR,
  FIXTURES_URL,
  fixturePath,
  readFixtureJson,
  safetensorsHeader,
  tokenizerFixture,
  whisperFixture,
} from '../../../test-support/fixtures.js';

/**
 * The cpu backend is a dependency of @specstream/core, not of this package, so a plain
 * `import '@tensorflow/tfjs-backend-cpu'` does not resolve here; load it as core would.
 */
export async function useCpuBackend(): Promise<void> {
  createRequire(new URL('../../core/package.json', import.meta.url))('@tensorflow/tfjs-backend-cpu');
  await tf.setBackend('cpu');
}
