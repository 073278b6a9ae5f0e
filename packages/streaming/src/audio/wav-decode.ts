import { InvalidArgumentError } from '@specstream/core';
import wavefile from 'wavefile';
import { downmixInterleaved } from './downmix.js';
import { decodePcm } from './pcm-format.js';

/** A WAV file's audio, downmixed to mono floats. */
export interface DecodedWav {
  sampleRate: number;
  /** Channels in the file (before downmixing). */
  channels: number;
  /** Bits per stored sample. */
  bitDepth: 8 | 16 | 24 | 32;
  sampleFormat: 'int' | 'float';
  /** One float per frame, channels averaged. */
  mono: Float32Array;
}

/** The 'fmt ' chunk fields used here (wavefile types `fmt` as a bare object). */
interface FmtChunk {
  audioFormat: number;
  numChannels: number;
  sampleRate: number;
  bitsPerSample: number;
  /** WAVE_FORMAT_EXTENSIBLE only: the sub-format GUID as 4 uint32; the first is the format code. */
  subformat: number[];
}

const FORMAT_PCM = 1;
const FORMAT_IEEE_FLOAT = 3;
const FORMAT_EXTENSIBLE = 0xfffe;
const SUPPORTED = 'PCM 8/16/24/32-bit integer or 32-bit float';

/** Full scale of an n-bit integer sample; 8-bit WAV is unsigned, centred on 128. */
const INT_SCALE = { 8: 128, 16: 32768, 24: 8388608, 32: 2147483648 } as const;

/**
 * WAV bytes → mono floats. wavefile parses the container (RIFF/RIFX/RF64,
 * chunk layout, integer unpacking); `name` only labels errors.
 */
export function decodeWav(bytes: Uint8Array, name: string): DecodedWav {
  let wav: InstanceType<typeof wavefile.WaveFile>;
  try {
    wav = new wavefile.WaveFile(bytes);
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new InvalidArgumentError(`${name} is not a readable WAV file: ${reason}`, { cause });
  }
  const fmt = wav.fmt as FmtChunk;
  const code = fmt.audioFormat === FORMAT_EXTENSIBLE ? fmt.subformat[0] : fmt.audioFormat;
  const { numChannels: channels, sampleRate, bitsPerSample: bits } = fmt;
  const describe = `format code ${code}, ${bits}-bit, ${channels} channel(s), ${sampleRate} Hz`;
  if (!Number.isInteger(channels) || channels < 1 || !Number.isInteger(sampleRate) || sampleRate < 1) {
    throw new InvalidArgumentError(`${name} has an invalid WAV header (${describe})`);
  }

  if (code === FORMAT_PCM && (bits === 8 || bits === 16 || bits === 24 || bits === 32)) {
    const ints = wav.getSamples(true, Float64Array);
    const mono = downmixInterleaved(ints, channels, 1 / INT_SCALE[bits], bits === 8 ? 128 : 0);
    return { sampleRate, channels, bitDepth: bits, sampleFormat: 'int', mono };
  }
  if (code === FORMAT_IEEE_FLOAT && bits === 32) {
    // wavefile only recognises plain format-3 headers as float ('32f'); for
    // WAVE_FORMAT_EXTENSIBLE float it would unpack the bits as integers, so
    // those little-endian bytes are decoded here instead.
    const mono =
      wav.bitDepth === '32f'
        ? downmixInterleaved(wav.getSamples(true, Float64Array), channels)
        : decodeExtensibleFloat(wav, channels, name);
    return { sampleRate, channels, bitDepth: 32, sampleFormat: 'float', mono };
  }
  throw new InvalidArgumentError(`${name}: unsupported WAV encoding (${describe}); supported: ${SUPPORTED}`);
}

function decodeExtensibleFloat(
  wav: InstanceType<typeof wavefile.WaveFile>,
  channels: number,
  name: string,
): Float32Array {
  if (wav.container !== 'RIFF') {
    throw new InvalidArgumentError(
      `${name}: extensible float WAV is supported only in RIFF (little-endian) files`,
    );
  }
  const raw = (wav.data as { samples: Uint8Array }).samples;
  const frameBytes = 4 * channels;
  return decodePcm(raw.subarray(0, raw.length - (raw.length % frameBytes)), 'f32le', channels);
}
