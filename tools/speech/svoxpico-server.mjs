// SVOX Pico (HMM synthesis, the @echogarden/svoxpico-wasm build) as a long-running renderer for
// render.py: one JSON request per stdin line, {"text", "voice", "speed", "pitch"}, answered on
// stdout by a 4-byte little-endian length and that many bytes of RIFF WAV (16-bit mono, 16 kHz).
// A request Pico cannot speak is answered by length 0.
//
//   node tools/speech/svoxpico-server.mjs PACKAGE_DIR
//
// PACKAGE_DIR is the unpacked npm package with Pico's lingware in PACKAGE_DIR/lang (the npm
// package has none; tools/speech/fetch-tts.sh takes the en-US and en-GB files from Debian's
// libttspico-data and puts both in .tts/root/svoxpico). Voices: en-US (lh0) and en-GB (kh0).
// speed and pitch are Pico's markup levels in percent of the voice's own (100: unchanged).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { serveWavLines } from './serve-wav-lines.mjs';

const dir = process.argv[2];
if (!dir) {
  process.stderr.write('usage: node svoxpico-server.mjs PACKAGE_DIR\n');
  process.exit(2);
}
const { default: createModule } = await import(pathToFileURL(join(dir, 'svoxpico.js')).href);
const module = await createModule();
const VOICES = {
  'en-US': ['en-US_ta.bin', 'en-US_lh0_sg.bin'],
  'en-GB': ['en-GB_ta.bin', 'en-GB_kh0_sg.bin'],
};
const STEP_BUSY = 201;
const PCM16 = 1;
const RESET_FULL = 0;
const RATE = 16000;
// Pico's own tools give it 2.5 MB; a voice's lingware (1–1.5 MB) is read into the pool too.
const POOL = 6 << 20;
const CHUNK = 4096;

const scratch = module._malloc(8 + 200 + CHUNK);
const [out1, out2, message, buffer] = [scratch, scratch + 4, scratch + 8, scratch + 208];

function check(status, what, engine, system = 0) {
  if (status >= 0) return status;
  if (engine) module._pico_getEngineStatusMessage(engine, status, message);
  else module._pico_getSystemStatusMessage(system, status, message);
  throw new Error(`${what}: ${status} ${cText(message)}`);
}

function cText(address) {
  let end = address;
  while (module.HEAPU8[end]) end++;
  return new TextDecoder().decode(module.HEAPU8.subarray(address, end));
}

function cString(text) {
  const bytes = new TextEncoder().encode(`${text}\0`);
  const address = module._malloc(bytes.length);
  module.HEAPU8.set(bytes, address);
  return { address, length: bytes.length };
}

// A Pico system runs one engine: each voice gets its own, with its lingware in its own pool.
const engines = {};
for (const [voice, files] of Object.entries(VOICES)) {
  const pool = module._malloc(POOL);
  check(module._pico_initialize(pool, POOL, out1), 'pico_initialize');
  const system = module.HEAP32[out1 >> 2];
  const call = (what, fn, ...strings) => {
    const c = strings.map(cString);
    try {
      return check(fn(...c.map((s) => s.address)), what, 0, system);
    } finally {
      for (const s of c) module._free(s.address);
    }
  };
  call(`voice ${voice}`, (name) => module._pico_createVoiceDefinition(system, name), voice);
  for (const file of files) {
    module.FS.writeFile(`/${file}`, readFileSync(join(dir, 'lang', file)));
    call(`load ${file}`, (path) => module._pico_loadResource(system, path, out1), `/${file}`);
    check(
      module._pico_getResourceName(system, module.HEAP32[out1 >> 2], message),
      `name of ${file}`,
      0,
      system,
    );
    call(
      `add ${file}`,
      (v, r) => module._pico_addResourceToVoiceDefinition(system, v, r),
      voice,
      cText(message),
    );
  }
  call(`engine ${voice}`, (name) => module._pico_newEngine(system, name, out1), voice);
  engines[voice] = module.HEAP32[out1 >> 2];
}

function wav(samples) {
  const header = Buffer.alloc(44);
  header.write('RIFF', 0);
  header.writeUInt32LE(36 + samples.length, 4);
  header.write('WAVEfmt ', 8);
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20);
  header.writeUInt16LE(1, 22);
  header.writeUInt32LE(RATE, 24);
  header.writeUInt32LE(RATE * 2, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36);
  header.writeUInt32LE(samples.length, 40);
  return Buffer.concat([header, samples]);
}

function synthesize({ text, voice, speed, pitch }) {
  const engine = engines[voice];
  if (!engine) throw new Error(`unknown Pico voice ${JSON.stringify(voice)}`);
  if (!(speed >= 20 && speed <= 500 && pitch >= 50 && pitch <= 200))
    throw new Error('speed 20–500 and pitch 50–200 (percent)');
  // The text's own angle brackets would be read as Pico markup.
  const plain = String(text).replace(/[<>]/g, ' ');
  // Pico's own level saturates (every utterance had full-scale samples, 0.9% of all); half has none.
  const markup = `<volume level="50"><speed level="${Math.round(speed)}"><pitch level="${Math.round(pitch)}">${plain}</pitch></speed></volume>`;
  // A full reset drops whatever a failed utterance left queued, so no answer carries another's audio.
  check(module._pico_resetEngine(engine, RESET_FULL), 'pico_resetEngine', engine);
  const input = cString(markup);
  const chunks = [];
  try {
    // The trailing NUL is part of the input: it tells Pico the text is complete.
    for (let sent = 0, stalled = 0; sent < input.length; ) {
      const n = Math.min(input.length - sent, 32767);
      check(module._pico_putTextUtf8(engine, input.address + sent, n, out1), 'pico_putTextUtf8', engine);
      const put = module.HEAP16[out1 >> 1];
      // Pico takes less when its input is full and more once drained; none twice running would loop forever.
      stalled = put > 0 ? 0 : stalled + 1;
      if (stalled > 1) throw new Error('Pico takes no more of the text');
      sent += put;
      let status;
      do {
        status = check(module._pico_getData(engine, buffer, CHUNK, out1, out2), 'pico_getData', engine);
        const bytes = module.HEAP16[out1 >> 1];
        if (bytes > 0) {
          if (module.HEAP16[out2 >> 1] !== PCM16)
            throw new Error(`Pico gave data of type ${module.HEAP16[out2 >> 1]}`);
          chunks.push(Buffer.from(module.HEAPU8.subarray(buffer, buffer + bytes)));
        }
      } while (status === STEP_BUSY);
    }
  } catch (error) {
    module._pico_resetEngine(engine, RESET_FULL);
    throw error;
  } finally {
    module._free(input.address);
  }
  return wav(Buffer.concat(chunks));
}

await serveWavLines('svoxpico', synthesize);
