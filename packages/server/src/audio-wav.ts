import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError } from '@specstream/core';
import { type WavFileSource, wavFileSource } from '@specstream/streaming';
import type { UploadedFile } from './audio-form.js';
import { invalidRequest } from './errors.js';

const SUPPORTED = 'WAV (PCM 8/16/24/32-bit integer or 32-bit float, any sample rate and channel count)';

/** Containers recognised by their first bytes, to say what was sent instead of WAV. */
const OTHER_CONTAINERS: [string, (head: Buffer) => boolean][] = [
  ['MP3', (h) => h.toString('latin1', 0, 3) === 'ID3'],
  ['MP3 or AAC', (h) => h[0] === 0xff && (h[1] & 0xe0) === 0xe0],
  ['Ogg (Opus or Vorbis)', (h) => h.toString('latin1', 0, 4) === 'OggS'],
  ['FLAC', (h) => h.toString('latin1', 0, 4) === 'fLaC'],
  ['MP4/M4A', (h) => h.toString('latin1', 4, 8) === 'ftyp'],
  ['WebM/Matroska', (h) => h.readUInt32BE(0) === 0x1a45dfa3],
];

/** Samples of the decoded upload each notification carries: about a quarter second at 16 kHz. */
const CHUNK_SAMPLES = 4096;

/**
 * An uploaded WAV file, decoded by @specstream/streaming's wavFileSource (mono, its own rate);
 * one it cannot read is a 400 saying why. (The package decodes files, not bytes: the upload
 * goes through a private temporary folder, removed before this returns.)
 */
export async function decodeUploadedWav(file: UploadedFile): Promise<WavFileSource> {
  checkWavContainer(file);
  const dir = await mkdtemp(join(tmpdir(), 'specstream-upload-'));
  const path = join(dir, 'audio.wav');
  try {
    await writeFile(path, file.bytes);
    return await wavFileSource(path, { chunkSamples: CHUNK_SAMPLES });
  } catch (error) {
    if (!(error instanceof InvalidArgumentError)) throw error;
    const message = error.message.replaceAll(path, `'${file.filename}'`).replace(/^wavFileSource: /, '');
    throw invalidRequest(`${message}; this server reads ${SUPPORTED}`, 'file', 'invalid_file_format');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A 400 unless the upload is a RIFF/RIFX/RF64 WAVE file: it names what it looks like instead. */
export function checkWavContainer(file: UploadedFile): void {
  const head = file.bytes.subarray(0, 12);
  if (head.length < 12) {
    throw invalidRequest(
      `'${file.filename}' is ${file.bytes.length} bytes long: too short for a WAV file; this server reads ${SUPPORTED}`,
      'file',
      'invalid_file_format',
    );
  }
  const riff = head.toString('latin1', 0, 4);
  if ((riff === 'RIFF' || riff === 'RIFX' || riff === 'RF64') && head.toString('latin1', 8, 12) === 'WAVE') {
    return;
  }
  const other = OTHER_CONTAINERS.find(([, test]) => test(head))?.[0];
  throw invalidRequest(
    `'${file.filename}' is ${other === undefined ? 'not a WAV file' : `${other} audio`}; this server reads ${SUPPORTED} only (convert first, e.g. ffmpeg -i in.mp3 -ar 16000 -ac 1 out.wav)`,
    'file',
    'invalid_file_format',
  );
}

/**
 * The 44-byte header of a 16-bit mono PCM WAV stream whose length is not known yet: the RIFF
 * and data sizes are 0xFFFFFFFF, as OpenAI's streamed wav has them (players read to the end).
 */
export function streamingWavHeader(sampleRate: number): Buffer {
  const header = Buffer.alloc(44);
  header.write('RIFF', 0, 'latin1');
  header.writeUInt32LE(0xffffffff, 4);
  header.write('WAVE', 8, 'latin1');
  header.write('fmt ', 12, 'latin1');
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(sampleRate, 24);
  header.writeUInt32LE(sampleRate * 2, 28); // bytes per second
  header.writeUInt16LE(2, 32); // bytes per frame
  header.writeUInt16LE(16, 34);
  header.write('data', 36, 'latin1');
  header.writeUInt32LE(0xffffffff, 40);
  return header;
}
