import { SpecstreamError } from '@specstream/core';

/** A safetensors file or sharded checkpoint that cannot be read as promised. */
export class SafetensorsError extends SpecstreamError {
  override readonly name = 'SafetensorsError';

  /** `path` leads the message because the usual fix is "re-download that file". */
  constructor(
    readonly path: string,
    detail: string,
  ) {
    super(`${path}: ${detail}`);
  }
}
