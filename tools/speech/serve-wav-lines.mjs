// The protocol render.py speaks with our Node synthesizers (gnuspeech-server.mjs,
// svoxpico-server.mjs): one JSON request per stdin line, answered on stdout by a 4-byte
// little-endian length and that many bytes of WAV. A request `synthesize` throws on is answered
// by length 0 (and a line on stderr), so the caller can never mistake it for another's audio.
import { createInterface } from 'node:readline';

/** Serves stdin until it closes; `synthesize(request)` returns the WAV bytes. */
export async function serveWavLines(name, synthesize) {
  for await (const line of createInterface({ input: process.stdin })) {
    if (!line.trim()) continue;
    let wav = new Uint8Array(0);
    try {
      wav = synthesize(JSON.parse(line));
    } catch (error) {
      process.stderr.write(`${name}: ${String(error).slice(0, 200)} on ${line.slice(0, 200)}\n`);
    }
    const length = Buffer.alloc(4);
    length.writeUInt32LE(wav.length);
    process.stdout.write(length);
    process.stdout.write(wav);
  }
}
