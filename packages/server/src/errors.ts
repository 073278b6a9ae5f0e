/** OpenAI's error body: `{ error: { message, type, param, code } }`. */
export interface ApiErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** An error answered to the client as it is, with its HTTP status and OpenAI-style body. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
    /** Extra response headers (Retry-After). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  body(): ApiErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** 400: the request is wrong (a field's type or value, JSON that does not parse). */
export function invalidRequest(message: string, param: string | null = null, code: string | null = null) {
  return new ApiError(400, message, 'invalid_request_error', code, param);
}
