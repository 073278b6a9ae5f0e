// GnuSpeech (articulatory synthesis, the @echogarden/gnuspeech-wasm build) as a long-running
// renderer for render.py: one JSON request per stdin line, {"text", "voice", "tempo",
// "pitchOffset"}, answered on stdout by a 4-byte little-endian length and that many bytes of
// RIFF WAV (16-bit mono, 44.1 kHz). A request GnuSpeech cannot speak is answered by length 0.
//
//   node tools/speech/gnuspeech-server.mjs PACKAGE_DIR
//
// PACKAGE_DIR is the unpacked npm package (tools/speech/fetch-tts.sh puts it in
// .tts/root/gnuspeech). Its own wrapper is not used: it returns whatever out.wav holds when a
// synthesis fails (the previous utterance's audio), where a mislabelled utterance must never
// reach the corpus. The TRM control model is the package's default with the voice preset, tempo
// and pitch offset (semitones) replaced; its random intonation and drift stay on, so the same
// request twice gives different audio.

import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { serveWavLines } from './serve-wav-lines.mjs';

const dir = process.argv[2];
if (!dir) {
  process.stderr.write('usage: node gnuspeech-server.mjs PACKAGE_DIR\n');
  process.exit(2);
}
const load = (path) => import(pathToFileURL(join(dir, path)).href);
const { default: createModule } = await load('wasm/gnuspeech.js');
const { defaultTrmControlModelFileContent: control } = await load('dist/utilities/DefaultTrmControlModel.js');
const VOICES = new Set(['male', 'female', 'large_child', 'small_child', 'baby']);
const DATA = '/data/en';
const OUT = '/out.wav';
const module = await createModule();

function setting(text, key, value) {
  const line = new RegExp(`^${key} = .*$`, 'm');
  if (!line.test(text)) throw new Error(`the TRM control model has no "${key}" line`);
  return text.replace(line, `${key} = ${value}`);
}

function cString(text) {
  const bytes = new TextEncoder().encode(`${text}\0`);
  const address = module._malloc(bytes.length);
  module.HEAPU8.set(bytes, address);
  return address;
}

function synthesize({ text, voice, tempo, pitchOffset }) {
  if (!VOICES.has(voice)) throw new Error(`unknown GnuSpeech voice ${JSON.stringify(voice)}`);
  if (!(tempo > 0) || !Number.isFinite(pitchOffset)) throw new Error('tempo > 0 and a finite pitchOffset');
  let model = setting(control, 'voice_name', voice);
  model = setting(model, 'tempo', tempo);
  model = setting(model, 'pitch_offset', pitchOffset);
  module.FS.writeFile(`${DATA}/trm_control_model.txt`, model);
  try {
    module.FS.unlink(OUT);
  } catch {
    // no previous output
  }
  const strings = [text, OUT, DATA, '/out-params.txt'].map(cString);
  try {
    module._GnuSpeech_synthesizeToFile(...strings, 0);
  } finally {
    for (const address of strings) module._free(address);
  }
  return module.FS.readFile(OUT);
}

await serveWavLines('gnuspeech', synthesize);
