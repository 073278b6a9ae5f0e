/**
 * Audio in and out of streaming speech pipelines.
 *
 * Everything here moves mono audio as `Observable<Float32Array>`: chunks of
 * any length of float samples, nominally in [-1, 1]. Any such Observable is
 * already a source — a microphone wrapper, a WebSocket of decoded frames,
 * `of(samples)` in a test — as long as you know its sample rate; the sources
 * below just adapt files, Node streams and async iterables to that shape, and
 * hand the rate over with the samples ({@link AudioSource}).
 *
 *   const wav = await wavFileSource('speech.wav');
 *   await lastValueFrom(
 *     wav.samples.pipe(resample(wav.sampleRate, 16000), writeWavFile('speech-16k.wav', 16000)),
 *   );
 */
export { asyncIterableSource } from './async-iterable-source.js';
export type { AudioSource } from './audio-source.js';
export type { PcmFormat } from './pcm-format.js';
export { type PcmReadableSourceOptions, pcmReadableSource } from './pcm-readable-source.js';
export { type PcmWritableSinkOptions, type PcmWriteResult, pcmWritableSink } from './pcm-writable-sink.js';
export { type ResampleOptions, resample } from './resample.js';
export type { ResampleQuality } from './sample-rate-converter.js';
export { type DecodedWav, decodeWav } from './wav-decode.js';
export type { WavSampleFormat } from './wav-encode.js';
export { type WavFileSource, type WavFileSourceOptions, wavFileSource } from './wav-file-source.js';
export { type WriteWavFileOptions, type WrittenWavFile, writeWavFile } from './write-wav-file.js';
