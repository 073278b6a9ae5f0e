// Prints the WebGPU adapter Dawn finds, in one line, and exits non-zero if
// there is none. scripts/gpu/run.sh calls it with the carried package:
//
//   node scripts/gpu/adapter.mjs .gpu/node_modules/webgpu/index.js
//
// Without an argument it imports `webgpu` from here (node_modules). Dawn
// options come from SPECSTREAM_DAWN_OPTIONS, as core reads them.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const TIMEOUT_MS = 10_000;
const where = process.argv[2];
const timer = setTimeout(() => {
  console.log(`webgpu adapter: requestAdapter() did not answer within ${TIMEOUT_MS} ms`);
  process.exit(1);
}, TIMEOUT_MS);
try {
  const dawn = await import(where ? pathToFileURL(resolve(where)).href : 'webgpu');
  const options = (process.env.SPECSTREAM_DAWN_OPTIONS ?? '')
    .split(';')
    .map((s) => s.trim())
    .filter(Boolean);
  const adapter = await dawn.create(options).requestAdapter();
  if (adapter === null) {
    console.log('webgpu adapter: none (requestAdapter() returned null)');
    process.exit(1);
  }
  const info = adapter.info ?? {};
  const fields = ['vendor', 'architecture', 'device', 'description']
    .filter((k) => info[k])
    .map((k) => `${k} ${JSON.stringify(info[k])}`);
  const limits = adapter.limits;
  console.log(
    `webgpu adapter: ${fields.join(', ') || '(no info)'}; maxBufferSize ${limits?.maxBufferSize}, ` +
      `maxStorageBufferBindingSize ${limits?.maxStorageBufferBindingSize}, features ${adapter.features?.size ?? '?'}`,
  );
  clearTimeout(timer);
  process.exit(0);
} catch (error) {
  console.log(`webgpu adapter: failed (${error instanceof Error ? error.message.split('\n')[0] : error})`);
  process.exit(1);
}
