import { describe, expect, test } from 'vitest';
import {
  type ChartSeries,
  markdownTable,
  mismatchCount,
  niceAxis,
  type PairMode,
  type PairRow,
  pairChartSvg,
  pairMarkdownSection,
  replaceMarkedSection,
} from '../bench/pair-report.js';

const row = (k: PairRow['k'], tokensPerS: number, extra: Partial<PairRow> = {}): PairRow => ({
  k,
  alpha: k === 0 ? null : 0.7,
  tokensPerPass: k === 0 ? 1 : 2.5,
  meanK: k === 'adaptive' ? 3.25 : typeof k === 'number' ? k : 0,
  tokensPerS,
  speedup: tokensPerS / 100,
  runs: 16,
  mismatches: null,
  ...extra,
});

const greedy: PairMode = {
  label: 'greedy',
  temperature: 0,
  rows: [
    row(0, 100),
    row(1, 123.45, { alpha: 0.8125, mismatches: 0 }),
    row(2, 150, { mismatches: 0 }),
    row('adaptive', 140, { mismatches: 0 }),
    row('adaptive-kept', 148, { meanK: 2.75, mismatches: 0 }),
  ],
};
const sampled: PairMode = {
  label: 'T 0.8',
  temperature: 0.8,
  rows: [
    row(0, 98),
    row(1, 110),
    row(2, 111),
    row('adaptive', 105, { meanK: 1.5 }),
    row('adaptive-kept', 108, { meanK: 2 }),
  ],
};

describe('replaceMarkedSection', () => {
  const doc = [
    '# Results',
    'intro',
    '<!-- pair:wasm:start -->',
    'old wasm',
    '<!-- pair:wasm:end -->',
    '',
    '<!-- pair:webgpu:start -->',
    'webgpu numbers',
    '<!-- pair:webgpu:end -->',
    'ANCHOR',
    'tail',
  ].join('\n');

  test('replaces only its own section and keeps the markers and every other line', () => {
    const out = replaceMarkedSection(doc, 'pair:wasm', 'new wasm\n', 'ANCHOR');
    expect(out).toBe(doc.replace('old wasm', 'new wasm'));
    // Idempotent: a second run gives the same document.
    expect(replaceMarkedSection(out, 'pair:wasm', 'new wasm', 'ANCHOR')).toBe(out);
  });

  test('a section not there yet goes above the anchor, or at the end without one', () => {
    const out = replaceMarkedSection(doc, 'pair:cpu', 'cpu numbers', 'ANCHOR');
    expect(out).toContain('<!-- pair:cpu:start -->\ncpu numbers\n<!-- pair:cpu:end -->\n\nANCHOR\ntail');
    expect(out).toContain('webgpu numbers');
    expect(out).toContain('old wasm');
    const appended = replaceMarkedSection('# R\n', 'pair:cpu', 'x');
    expect(appended).toBe('# R\n\n<!-- pair:cpu:start -->\nx\n<!-- pair:cpu:end -->\n');
    // A section whose key is a prefix of another's is its own.
    expect(replaceMarkedSection(doc, 'pair:web', 'y')).toContain('webgpu numbers');
  });

  test('unpaired, repeated or reversed markers throw instead of losing text', () => {
    expect(() => replaceMarkedSection('<!-- a:start -->\nx', 'a', 'y')).toThrow(/one/);
    expect(() =>
      replaceMarkedSection('<!-- a:start --><!-- a:end --><!-- a:start --><!-- a:end -->', 'a', 'y'),
    ).toThrow(/one/);
    expect(() => replaceMarkedSection('<!-- a:end -->x<!-- a:start -->', 'a', 'y')).toThrow(/before/);
  });
});

describe('pairMarkdownSection', () => {
  test('a table of both modes with the values, the exactness line and the chart', () => {
    const md = pairMarkdownSection({
      backend: 'wasm',
      meta: ['Machine: Test CPU, 2 cores'],
      modes: [greedy, sampled],
      chart: 'docs/bench/pair-wasm.svg',
    });
    expect(md.startsWith('### wasm\n')).toBe(true);
    expect(md).toContain('\n- Machine: Test CPU, 2 cores\n');
    // Cells are padded as biome formats Markdown tables; the values, with single spaces:
    const flat = md.replace(/ +/g, ' ');
    expect(flat).toContain('| k | greedy α | greedy tokens/pass | greedy tok/s | greedy speedup | T 0.8 α |');
    expect(flat).toContain('| 0 (target alone) | – | 1.00 | 100.0 | 1.00 | – | 1.00 | 98.0 | 0.98 |');
    expect(flat).toContain('| 1 | 0.813 | 2.50 | 123.5 | 1.23 |');
    expect(flat).toContain('| adaptive (mean k 3.3 / 1.5) |');
    expect(flat).toContain(
      "| adaptive, from the last call's state (mean k 2.8 / 2.0) | 0.700 | 2.50 | 148.0 | 1.48 |",
    );
    const table = md.split('\n').filter((line) => line.startsWith('|'));
    expect(table).toHaveLength(2 + greedy.rows.length);
    expect(new Set(table.map((line) => line.length)).size).toBe(1);
    expect(table[1]).toMatch(/^\| -+ \| -+: \|/);
    expect(md).toContain('0 mismatches');
    expect(md).toContain('(64 runs checked');
    expect(md).toContain('![tokens/s and α against k on wasm](docs/bench/pair-wasm.svg)');
    expect(md).not.toContain('BROKEN');
  });

  test('a mismatch is loud', () => {
    const broken = { ...greedy, rows: greedy.rows.map((r) => (r.k === 2 ? { ...r, mismatches: 3 } : r)) };
    expect(mismatchCount(broken)).toBe(3);
    expect(mismatchCount(sampled)).toBeNull();
    const md = pairMarkdownSection({ backend: 'cpu', meta: [], modes: [broken], chart: 'c.svg' });
    expect(md).toContain('**EXACTNESS BROKEN (greedy): 3 of 64 speculative outputs differ');
    expect(md).toContain('k=2: 3');
  });
});

describe('markdownTable', () => {
  test('pads to the widest cell, right-aligning numeric columns', () => {
    expect(
      markdownTable(
        ['k', 'tok/s'],
        [
          ['adaptive', '1.5'],
          ['1', '123.4'],
        ],
        [false, true],
      ),
    ).toEqual([
      '| k        | tok/s |',
      '| -------- | ----: |',
      '| adaptive |   1.5 |',
      '| 1        | 123.4 |',
    ]);
  });
});

describe('pairChartSvg', () => {
  const series: ChartSeries[] = [greedy, sampled].map((m, i) => ({
    label: m.label,
    color: ['#1f77b4', '#d62728'][i],
    points: m.rows
      .filter((r): r is PairRow & { k: number } => typeof r.k === 'number')
      .map((r) => ({ k: r.k, tokensPerS: r.tokensPerS, alpha: r.alpha })),
    adaptive: { meanK: 3.25, tokensPerS: i === 0 ? 140 : 105, alpha: 0.7 },
  }));
  const svg = pairChartSvg({ title: 'Pair on wasm & <friends>', series });

  test('well-formed enough: one root, escaped text, no NaN', () => {
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg.match(/<svg/g)).toHaveLength(1);
    expect(svg).toContain('Pair on wasm &amp; &lt;friends&gt;');
    expect(svg).not.toMatch(/NaN|undefined|Infinity/);
  });

  test('both series, every value and the adaptive markers appear', () => {
    expect(svg.match(/<polyline/g)).toHaveLength(4); // two series × two panels
    expect(svg).toContain('greedy, k=1: 123.5 tok/s');
    expect(svg).toContain('greedy, k=1: 0.813');
    expect(svg).toContain('T 0.8, k=2: 111.0 tok/s');
    expect(svg).toContain('greedy: target alone 100.0 tok/s');
    expect(svg).toContain('greedy, adaptive k (mean k 3.25): 140.0 tok/s');
    expect(svg).toContain('T 0.8, adaptive k (mean k 3.25): 0.700');
    // α has no k = 0 point.
    expect(svg).not.toContain('k=0: 0.');
  });

  test('axes end on round numbers', () => {
    expect(niceAxis(150)).toEqual({ max: 150, step: 50 });
    expect(niceAxis(123.45)).toEqual({ max: 150, step: 50 });
    expect(niceAxis(0.9)).toEqual({ max: 1, step: 0.2 });
    expect(niceAxis(0)).toEqual({ max: 1, step: 0.2 });
  });
});
