import { Writable } from 'node:stream';
import * as tf from '@tensorflow/tfjs-core';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { vulkanLoaderFindable } from '../src/backend/webgpu.js';
import { type BackendName, currentBackend, initBackend } from '../src/backend.js';
import { InvalidArgumentError } from '../src/errors.js';
import { getLogger, type Logger, setLogger } from '../src/log.js';

const ENV_VAR = 'SPECSTREAM_BACKEND';

/** A pino logger whose lines land, parsed, in `lines`. */
function capturingLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line !== '') lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines };
}

/**
 * A [n,k] of rows i+1 times B [k,m] of columns j+1: every entry is
 * k·(i+1)·(j+1), so the result is known without a reference matmul.
 */
async function checkMatmul(n: number, k: number, m: number): Promise<void> {
  const before = tf.memory().numTensors;
  const a = tf.tensor2d(
    Array.from({ length: n * k }, (_, idx) => Math.floor(idx / k) + 1),
    [n, k],
  );
  const b = tf.tensor2d(
    Array.from({ length: k * m }, (_, idx) => (idx % m) + 1),
    [k, m],
  );
  const product = tf.matMul(a, b);
  const actual = await product.array();
  tf.dispose([a, b, product]);
  const expected = Array.from({ length: n }, (_, i) =>
    Array.from({ length: m }, (_, j) => k * (i + 1) * (j + 1)),
  );
  expect(actual).toEqual(expected);
  expect(tf.memory().numTensors).toBe(before);
}

function firstLineOfImportError(specifier: string): Promise<string> {
  return import(specifier).then(
    () => {
      throw new Error(`${specifier} imported fine; this test expects a machine without its native binding`);
    },
    (error: Error) => error.message.split('\n')[0].trim(),
  );
}

let savedEnv: string | undefined;
let savedLogger: Logger;

beforeEach(() => {
  savedEnv = process.env[ENV_VAR];
  delete process.env[ENV_VAR];
  // setLogger only takes a root; the child's parent is the current root.
  savedLogger = Object.getPrototypeOf(getLogger('core')) as Logger;
});

afterEach(() => {
  if (savedEnv === undefined) delete process.env[ENV_VAR];
  else process.env[ENV_VAR] = savedEnv;
  setLogger(savedLogger);
});

describe('forced backends', () => {
  for (const name of ['cpu', 'wasm'] as const) {
    it(`'${name}' starts, becomes current and computes a matmul exactly`, async () => {
      const choice = await initBackend({ backend: name });
      expect(choice.name).toBe(name);
      expect(choice.source).toBe(`@tensorflow/tfjs-backend-${name}`);
      expect(choice.skipped).toEqual([]);
      expect(tf.getBackend()).toBe(name);
      expect(currentBackend()).toBe(name);
      await checkMatmul(3, 4, 5);
    });
  }

  it('switches when a different backend is forced, and caches a repeated request', async () => {
    await initBackend({ backend: 'cpu' });
    const { logger, lines } = capturingLogger();
    setLogger(logger);

    const first = await initBackend({ backend: 'wasm' });
    expect(tf.getBackend()).toBe('wasm');
    const again = await initBackend({ backend: 'wasm' });
    expect(again).toBe(first);
    // A cache hit neither probes nor logs.
    expect(lines).toHaveLength(1);
  });
});

describe("'auto'", () => {
  it('skips tfjs-node-gpu, tfjs-node and webgpu with reasons, picks wasm, and logs it', async () => {
    // Leave 'auto' uncached so it really probes.
    await initBackend({ backend: 'cpu' });
    const { logger, lines } = capturingLogger();
    setLogger(logger);

    const choice = await initBackend();

    expect(choice.name).toBe('wasm');
    expect(choice.source).toBe('@tensorflow/tfjs-backend-wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(choice.skipped.map((s) => s.candidate)).toEqual([
      '@tensorflow/tfjs-node-gpu',
      '@tensorflow/tfjs-node',
      '@tensorflow/tfjs-backend-webgpu',
    ]);
    for (const skip of choice.skipped) expect(skip.reason.length).toBeGreaterThan(0);

    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 30,
      pkg: 'core',
      msg: 'backend selected',
      backend: 'wasm',
      source: '@tensorflow/tfjs-backend-wasm',
    });
    expect(lines[0].skipped).toEqual(choice.skipped);
    await checkMatmul(2, 3, 2);
  });
});

describe('SPECSTREAM_BACKEND', () => {
  it('forces the backend when no option is given', async () => {
    await initBackend({ backend: 'wasm' });
    process.env[ENV_VAR] = 'cpu';
    const choice = await initBackend();
    expect(choice.name).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
  });

  it('loses to the option', async () => {
    await initBackend({ backend: 'cpu' });
    process.env[ENV_VAR] = 'cpu';
    const choice = await initBackend({ backend: 'wasm' });
    expect(choice.name).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
  });

  it('is validated like the option', async () => {
    process.env[ENV_VAR] = 'tpu';
    await expect(initBackend()).rejects.toThrow(/unknown backend 'tpu' \(from SPECSTREAM_BACKEND\)/);
  });
});

describe('errors', () => {
  it('an unknown name lists every valid name and changes nothing', async () => {
    await initBackend({ backend: 'cpu' });
    const error = await initBackend({ backend: 'gpu' as BackendName }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    const { message } = error as Error;
    for (const valid of ['tensorflow', 'webgpu', 'wasm', 'cpu', 'auto']) expect(message).toContain(valid);
    expect(tf.getBackend()).toBe('cpu');
    expect(currentBackend()).toBe('cpu');
  });

  it("forcing 'tensorflow' without a native binding throws with the import's reason", async () => {
    await initBackend({ backend: 'cpu' });
    const error = await initBackend({ backend: 'tensorflow' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    const { message } = error as Error;
    expect(message).toContain("'tensorflow'");
    expect(message).toContain(await firstLineOfImportError('@tensorflow/tfjs-node-gpu'));
    expect(message).toContain(await firstLineOfImportError('@tensorflow/tfjs-node'));
    // The failed attempt leaves the previous backend in place.
    expect(tf.getBackend()).toBe('cpu');
    expect(currentBackend()).toBe('cpu');
  });
});

describe('vulkanLoaderFindable', () => {
  const noCache = () => '';
  const cacheWith = () => '\0libvulkan.so.1\0/usr/lib/x86_64-linux-gnu/libvulkan.so.1\0';
  it('is false on Linux with no loader in ld.so.cache, LD_LIBRARY_PATH or Vulkan variables', () => {
    expect(vulkanLoaderFindable({}, 'linux', noCache)).toBe(false);
    expect(vulkanLoaderFindable({ LD_LIBRARY_PATH: '/nonexistent-dir' }, 'linux', noCache)).toBe(false);
  });
  it('is true where the cache lists the loader, a Vulkan variable is set, or not on Linux', () => {
    expect(vulkanLoaderFindable({}, 'linux', cacheWith)).toBe(true);
    expect(vulkanLoaderFindable({ VK_DRIVER_FILES: '/x/icd.json' }, 'linux', noCache)).toBe(true);
    expect(vulkanLoaderFindable({ VK_ICD_FILENAMES: '/x/icd.json' }, 'linux', noCache)).toBe(true);
    expect(vulkanLoaderFindable({}, 'darwin', noCache)).toBe(true);
    const unreadable = () => {
      throw new Error('ENOENT');
    };
    expect(vulkanLoaderFindable({}, 'linux', unreadable)).toBe(true);
  });
});
