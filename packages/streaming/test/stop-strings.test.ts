import { describe, expect, test } from 'vitest';
import { createStopMatcher } from '../src/stop-strings.js';

describe('stop strings', () => {
  test('a stop spanning pushes is caught and not emitted; other text is released as early as possible', () => {
    const m = createStopMatcher(['</end>', 'STOP']);
    expect(m.push('hello <')).toEqual({ text: 'hello ', stopped: false });
    expect(m.push('/en')).toEqual({ text: '', stopped: false });
    expect(m.push('d> tail')).toEqual({ text: '', stopped: true });
  });

  test('a false start is released once it cannot be a stop', () => {
    const m = createStopMatcher(['STOP']);
    expect(m.push('ST')).toEqual({ text: '', stopped: false });
    expect(m.push('ART')).toEqual({ text: 'START', stopped: false });
    expect(m.push('xxST')).toEqual({ text: 'xx', stopped: false });
    expect(m.push('', true)).toEqual({ text: 'ST', stopped: false });
  });

  test('the earliest of several stops wins', () => {
    const m = createStopMatcher(['bb', 'a']);
    expect(m.push('xbba')).toEqual({ text: 'x', stopped: true });
  });
});
