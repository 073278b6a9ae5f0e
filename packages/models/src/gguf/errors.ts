import { SpecstreamError } from '@specstream/core';

/** A GGUF file that cannot be read (or written) as promised. */
export class GgufError extends SpecstreamError {
  override readonly name = 'GgufError';

  /** `path` leads the message, as for safetensors: the usual fix is "re-download or re-export that file". */
  constructor(
    readonly path: string,
    detail: string,
  ) {
    super(`${path}: ${detail}`);
  }
}
