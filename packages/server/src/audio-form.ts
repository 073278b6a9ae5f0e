import type { FastifyRequest } from 'fastify';
import { ApiError, invalidRequest } from './errors.js';

/** The uploaded audio of a form. */
export interface UploadedFile {
  filename: string;
  bytes: Buffer;
}

/** A transcription's multipart form: its text fields and its file. */
export interface AudioForm {
  /** Field name (a trailing [] dropped: the openai client sends arrays as `name[]`) → its values. */
  fields: Map<string, string[]>;
  file?: UploadedFile;
}

/** Form fields are short: a model id, a format, a prompt. */
const MAX_FIELD_BYTES = 64 * 1024;
const MAX_FIELDS = 64;

/**
 * Reads a multipart/form-data request whole: one file (in the `file` field) of at most
 * `maxFileBytes`, and its text fields. A request that is not multipart gets a 415; a second
 * file, a file over the limit or a broken form an OpenAI-style error naming the limit.
 */
export async function readAudioForm(request: FastifyRequest, maxFileBytes: number): Promise<AudioForm> {
  if (!request.isMultipart()) throw notMultipart();
  const form: AudioForm = { fields: new Map() };
  const limits = {
    fileSize: maxFileBytes,
    files: 1,
    fields: MAX_FIELDS,
    fieldSize: MAX_FIELD_BYTES,
    parts: MAX_FIELDS + 1,
  };
  try {
    for await (const part of request.parts({ limits })) {
      if (part.type === 'file') {
        // Read even when misnamed: busboy goes on to the next part only once this one is drained.
        const bytes = await part.toBuffer();
        if (part.fieldname !== 'file') {
          throw invalidRequest(
            `the audio must be sent in the 'file' field, got a file in '${part.fieldname}'`,
            'file',
            'invalid_value',
          );
        }
        form.file = { filename: part.filename || 'the file', bytes };
        continue;
      }
      if (part.valueTruncated) {
        throw invalidRequest(
          `the field '${part.fieldname}' is longer than ${MAX_FIELD_BYTES} bytes`,
          part.fieldname,
        );
      }
      const name = part.fieldname.replace(/\[\]$/, '');
      const value = typeof part.value === 'string' ? part.value : JSON.stringify(part.value);
      form.fields.set(name, [...(form.fields.get(name) ?? []), value]);
    }
  } catch (error) {
    throw formError(error, maxFileBytes);
  }
  return form;
}

/** 415: a transcription's body must be a multipart form. */
export function notMultipart(): ApiError {
  return new ApiError(
    415,
    "the request must be multipart/form-data, with the audio in a 'file' part and 'model' as a field",
    'invalid_request_error',
    'unsupported_media_type',
  );
}

/** @fastify/multipart's and busboy's errors, as the client should read them. */
function formError(error: unknown, maxFileBytes: number): unknown {
  if (error instanceof ApiError) return error;
  const code = (error as { code?: string }).code;
  if (code === 'FST_REQ_FILE_TOO_LARGE') {
    return new ApiError(
      413,
      `the file is larger than this server's limit of ${maxFileBytes} bytes`,
      'invalid_request_error',
      'file_too_large',
      'file',
    );
  }
  if (code === 'FST_FILES_LIMIT') {
    return invalidRequest('send one file per request', 'file', 'too_many_files');
  }
  if (code === 'FST_FIELDS_LIMIT' || code === 'FST_PARTS_LIMIT') {
    return invalidRequest(`the form has more than ${MAX_FIELDS} fields`, null, 'too_many_fields');
  }
  const reason = error instanceof Error ? error.message : String(error);
  return invalidRequest(`the multipart form cannot be read: ${reason}`, null, 'invalid_multipart');
}
