// The part of vitest's API the webgpu suites use, for running them as bundles
// on a machine without node_modules (scripts/gpu/bundle.mjs aliases `vitest`
// here). expect() is vitest's own (@vitest/expect over chai, set up as vitest
// does); describe/test/each/skipIf and the hooks are a small sequential
// runner: suites and tests run in the order they were registered, beforeAll
// and afterAll once per describe, a failing beforeAll fails the tests under
// it, a failing afterAll counts as one failure. Timeouts are vitest.config.ts's
// (120 s for tests and hooks). Not supported: concurrency, snapshots, vi,
// expect.poll/soft, only (treated as a plain test), async describe bodies.
import {
  ASYMMETRIC_MATCHERS_OBJECT,
  chai,
  customMatchers,
  GLOBAL_EXPECT,
  getState,
  JestAsymmetricMatchers,
  JestChaiExpect,
  JestExtend,
  setState,
} from '@vitest/expect';

chai.use(JestExtend);
chai.use(JestChaiExpect);
chai.use(JestAsymmetricMatchers);

export const expect = (value, message) => {
  const { assertionCalls } = getState(expect);
  setState({ assertionCalls: assertionCalls + 1 }, expect);
  return chai.expect(value, message);
};
Object.assign(expect, chai.expect);
Object.assign(expect, globalThis[ASYMMETRIC_MATCHERS_OBJECT]);
expect.getState = () => getState(expect);
expect.setState = (state) => setState(state, expect);
setState(
  {
    assertionCalls: 0,
    isExpectingAssertions: false,
    isExpectingAssertionsError: null,
    expectedAssertionsNumber: null,
    expectedAssertionsNumberErrorGen: null,
    currentTestName: '',
    testPath: '',
  },
  expect,
);
expect.assert = chai.assert;
expect.extend = (matchers) => chai.expect.extend(expect, matchers);
expect.unreachable = (message) =>
  chai.assert.fail(`expected${message ? ` "${message}" ` : ' '}not to be reached`);
Object.defineProperty(globalThis, GLOBAL_EXPECT, { value: expect, writable: true, configurable: true });
expect.extend(customMatchers);
export const assert = chai.assert;

const TIMEOUT_MS = 120_000;

function newSuite(name, parent, skip) {
  return { name, parent, skip, children: [], beforeAll: [], afterAll: [], beforeEach: [], afterEach: [] };
}
const root = newSuite('', undefined, false);
let current = root;

/** vitest's name templates: %s %d %i %f %j %o %# %% and $field of an object case. */
function formatName(template, args, index) {
  let next = 0;
  const show = (v) => (typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v));
  let name = String(template).replace(/%[sdifjo#%]/g, (token) => {
    if (token === '%%') return '%';
    if (token === '%#') return String(index);
    const value = args[next++];
    if (token === '%i' && typeof value === 'number' && Number.isFinite(value))
      return String(Math.trunc(value));
    if (token === '%j' || token === '%o') return JSON.stringify(value);
    return show(value);
  });
  const first = args[0];
  if (args.length === 1 && first !== null && typeof first === 'object' && !Array.isArray(first)) {
    name = name.replace(/\$([\w.]+)/g, (_, path) => show(path.split('.').reduce((o, k) => o?.[k], first)));
  }
  return name;
}

function timeoutOf(options) {
  if (typeof options === 'number') return options;
  return options?.timeout ?? TIMEOUT_MS;
}

function registerSuite(name, fn, skip) {
  const suite = newSuite(String(name), current, skip || current.skip);
  current.children.push({ kind: 'suite', suite });
  const parent = current;
  current = suite;
  try {
    const result = fn?.();
    if (result && typeof result.then === 'function') {
      throw new Error(`describe('${name}'): async describe bodies are not supported by the GPU test runner`);
    }
  } finally {
    current = parent;
  }
}

function registerTest(name, fn, options, skip) {
  current.children.push({
    kind: 'test',
    name: String(name),
    fn,
    timeout: timeoutOf(options),
    skip: skip || current.skip || fn === undefined,
  });
}

/** Adds .each, .skip, .skipIf, .runIf, .only, .todo to a register function. */
function withModifiers(register, skip) {
  const api = (name, fn, options) => register(name, fn, options, skip);
  api.each = (cases) => (name, fn, options) =>
    cases.forEach((c, i) => {
      const args = Array.isArray(c) ? c : [c];
      register(formatName(name, args, i), () => fn(...args), options, skip);
    });
  api.skip = skip ? api : withModifiers(register, true);
  api.skipIf = (condition) => withModifiers(register, skip || Boolean(condition));
  api.runIf = (condition) => withModifiers(register, skip || !condition);
  api.only = api;
  api.todo = (name) => register(name, undefined, undefined, true);
  return api;
}

export const describe = withModifiers((name, fn, _options, skip) => registerSuite(name, fn, skip), false);
export const suite = describe;
export const test = withModifiers(registerTest, false);
export const it = test;
export const beforeAll = (fn, options) => current.beforeAll.push({ fn, timeout: timeoutOf(options) });
export const afterAll = (fn, options) => current.afterAll.push({ fn, timeout: timeoutOf(options) });
export const beforeEach = (fn, options) => current.beforeEach.push({ fn, timeout: timeoutOf(options) });
export const afterEach = (fn, options) => current.afterEach.push({ fn, timeout: timeoutOf(options) });

const unhandled = [];
process.on('unhandledRejection', (reason) => unhandled.push(reason));
process.on('uncaughtException', (error) => unhandled.push(error));

async function withTimeout(work, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([Promise.resolve().then(work), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function describeError(error) {
  if (!(error instanceof Error)) return `    ${String(error)}`;
  const lines = [(error.stack ?? `${error.name}: ${error.message}`).split('\n').slice(0, 12).join('\n')];
  if (error.showDiff !== false && ('expected' in error || 'actual' in error)) {
    const show = (v) => {
      const text = typeof v === 'string' ? v : JSON.stringify(v);
      return text && text.length > 2000 ? `${text.slice(0, 2000)}…` : text;
    };
    lines.push(`expected: ${show(error.expected)}`, `actual:   ${show(error.actual)}`);
  }
  return lines.map((l) => l.replace(/^/gm, '    ')).join('\n');
}

const counts = { passed: 0, failed: 0, skipped: 0 };

function report(ok, path, ms, error) {
  const mark = ok === true ? '✓' : ok === false ? '✗' : '↓';
  const time = ms === undefined ? '' : ` ${Math.round(ms)} ms`;
  console.log(`  ${mark} ${path.filter(Boolean).join(' > ')}${time}`);
  if (error !== undefined) console.log(describeError(error));
}

function eachHooks(suite, which) {
  const chain = [];
  for (let s = suite; s !== undefined; s = s.parent) chain.unshift(s);
  const hooks = chain.flatMap((s) => s[which]);
  return which === 'afterEach' ? hooks.reverse() : hooks;
}

async function runTest(suite, entry, path) {
  const name = [...path, entry.name];
  if (entry.skip) {
    counts.skipped++;
    report(undefined, name);
    return;
  }
  setState({ assertionCalls: 0, currentTestName: name.join(' > ') }, expect);
  const started = performance.now();
  let error;
  try {
    for (const hook of eachHooks(suite, 'beforeEach')) await withTimeout(hook.fn, hook.timeout, 'beforeEach');
    await withTimeout(() => entry.fn({ expect, task: { name: entry.name } }), entry.timeout, 'test');
  } catch (e) {
    error = e;
  }
  for (const hook of eachHooks(suite, 'afterEach')) {
    try {
      await withTimeout(hook.fn, hook.timeout, 'afterEach');
    } catch (e) {
      error ??= e;
    }
  }
  if (error === undefined) counts.passed++;
  else counts.failed++;
  report(error === undefined, name, performance.now() - started, error);
}

/** The tests under a suite, each with the names of the suites between (its path). */
function testsUnder(suite, path = []) {
  return suite.children.flatMap((c) =>
    c.kind === 'test' ? [{ ...c, path }] : testsUnder(c.suite, [...path, c.suite.name]),
  );
}

async function runSuite(suite, path) {
  const here = [...path, suite.name];
  const tests = testsUnder(suite);
  if (tests.every((t) => t.skip)) {
    // vitest runs no hook of a suite whose tests are all skipped.
    for (const t of tests) report(undefined, [...here, ...t.path, t.name]);
    counts.skipped += tests.length;
    return;
  }
  let setupError;
  for (const hook of suite.beforeAll) {
    try {
      await withTimeout(hook.fn, hook.timeout, 'beforeAll');
    } catch (e) {
      setupError = e;
      break;
    }
  }
  if (setupError !== undefined) {
    report(false, [...here, 'beforeAll'], undefined, setupError);
    counts.failed += tests.filter((t) => !t.skip).length;
    counts.skipped += tests.filter((t) => t.skip).length;
  } else {
    for (const child of suite.children) {
      if (child.kind === 'suite') await runSuite(child.suite, here);
      else await runTest(suite, child, here);
    }
  }
  for (const hook of [...suite.afterAll].reverse()) {
    try {
      await withTimeout(hook.fn, hook.timeout, 'afterAll');
    } catch (e) {
      counts.failed++;
      report(false, [...here, 'afterAll'], undefined, e);
    }
  }
}

/**
 * Runs everything the imported suite registered and exits: 0 if nothing
 * failed; 1 if something did; 3 if SPECSTREAM_TESTS_REQUIRE_RUN is set and no
 * test ran (on the GPU machine, all-skipped means no WebGPU adapter).
 */
export async function runCollected(label) {
  const started = performance.now();
  console.log(`${label}:`);
  await runSuite(root, []);
  for (const error of unhandled) {
    counts.failed++;
    report(false, ['unhandled error'], undefined, error);
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(
    `Tests ${label}: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped (${seconds} s)`,
  );
  let code = counts.failed > 0 ? 1 : 0;
  if (code === 0 && counts.passed === 0 && process.env.SPECSTREAM_TESTS_REQUIRE_RUN) {
    console.log(`Tests ${label}: nothing ran (all skipped), and SPECSTREAM_TESTS_REQUIRE_RUN is set`);
    code = 3;
  }
  // Dawn's device keeps the event loop alive; vitest ends its workers the same way.
  process.exit(code);
}
