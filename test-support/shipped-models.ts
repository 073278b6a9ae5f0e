import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The repository's models/ folder (the shipped pair, its references, the speech models), or
 * SPECSTREAM_SHIPPED_MODELS where a checkout keeps them elsewhere. Test-only, shared by the
 * packages' tests.
 */
export const SHIPPED_MODELS =
  process.env.SPECSTREAM_SHIPPED_MODELS ?? fileURLToPath(new URL('../models', import.meta.url));

/** A file or folder below the shipped models' folder. */
export const shippedModel = (...parts: string[]): string => join(SHIPPED_MODELS, ...parts);
