/**
 * The pure parts of the trained-pair report (`pnpm bench --only pair`, run from
 * bench/pair/ at the repository root): the RESULTS.md section, the replacement
 * of one marked section in a document, and the SVG chart of tokens/s and α
 * against k. No imports, no I/O, so that this package's tests can check them
 * (vitest runs only the packages' test folders).
 */

/**
 * One k of one sampling mode: k = 0 is the target alone, 'adaptive' a fresh adaptiveK() per
 * prompt, 'adaptive-kept' each prompt's adaptiveK() started from the previous call's state()
 * (what it learned kept, as `specstream generate --k-state` keeps it between runs).
 */
export type PairK = number | 'adaptive' | 'adaptive-kept';

export interface PairRow {
  k: PairK;
  /** Acceptance α; null where nothing is drafted (k = 0, or an adaptive run that never drafted). */
  alpha: number | null;
  tokensPerPass: number;
  meanK: number;
  /** Decode tokens/s: tokens after the first over the time after the first (prefill excluded). */
  tokensPerS: number;
  /** tokensPerS over the target alone's, both measured in the same run. */
  speedup: number;
  /** Runs (one per prompt) the row is over. */
  runs: number;
  /** Greedy only: prompts whose output differed from the target alone's; null where not checked. */
  mismatches: number | null;
}

export interface PairMode {
  /** "greedy", "temperature 0.8". */
  label: string;
  temperature: number;
  rows: PairRow[];
}

export interface PairSection {
  backend: string;
  /** Lines printed above the table, each a sentence or a `key: value` list. */
  meta: string[];
  modes: PairMode[];
  /** Path of the chart, relative to the document. */
  chart: string;
}

const fixed = (x: number | null | undefined, digits: number) =>
  x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits);

const kLabel = (row: PairRow, modes: readonly PairMode[]) => {
  if (row.k === 0) return '0 (target alone)';
  if (typeof row.k === 'number') return String(row.k);
  const means = modes.map((m) => m.rows.find((r) => r.k === row.k)?.meanK);
  const name = row.k === 'adaptive' ? 'adaptive' : "adaptive, from the last call's state";
  return `${name} (mean k ${means.map((x) => fixed(x, 1)).join(' / ')})`;
};

/** Greedy mismatches over all the speculative runs of a mode, or null when the mode was not checked. */
export function mismatchCount(mode: PairMode): number | null {
  const checked = mode.rows.filter((r) => r.mismatches !== null);
  return checked.length === 0 ? null : checked.reduce((n, r) => n + (r.mismatches ?? 0), 0);
}

/**
 * A Markdown table laid out as biome's formatter lays it out (columns padded
 * to their widest cell, `right` ones right-aligned), so that a generated
 * document passes `biome check`.
 */
export function markdownTable(
  header: readonly string[],
  rows: readonly string[][],
  right: readonly boolean[],
): string[] {
  const widths = header.map((h, i) => Math.max(3, h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: readonly string[]) =>
    `| ${cells.map((c, i) => (right[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(' | ')} |`;
  const rule = widths.map((w, i) => (right[i] ? `${'-'.repeat(w - 1)}:` : '-'.repeat(w)));
  return [line(header), line(rule), ...rows.map(line)];
}

/** The body of one backend's section (markers not included). */
export function pairMarkdownSection(s: PairSection): string {
  const lines = [`### ${s.backend}`, ''];
  for (const line of s.meta) lines.push(`- ${line}`);
  lines.push('');
  const header = ['k'];
  for (const m of s.modes) {
    header.push(`${m.label} α`, `${m.label} tokens/pass`, `${m.label} tok/s`, `${m.label} speedup`);
  }
  const keys = s.modes[0]?.rows.map((r) => r.k) ?? [];
  const rows = keys.map((k) => {
    const cells = [kLabel(s.modes[0].rows.find((r) => r.k === k)!, s.modes)];
    for (const m of s.modes) {
      const row = m.rows.find((r) => r.k === k);
      cells.push(
        fixed(row?.alpha, 3),
        fixed(row?.tokensPerPass, 2),
        fixed(row?.tokensPerS, 1),
        fixed(row?.speedup, 2),
      );
    }
    return cells;
  });
  lines.push(
    ...markdownTable(
      header,
      rows,
      header.map((_, i) => i > 0),
    ),
  );
  lines.push('');
  for (const m of s.modes) {
    const count = mismatchCount(m);
    if (count === null) continue;
    const runs = m.rows.reduce((n, r) => n + (r.mismatches !== null ? r.runs : 0), 0);
    lines.push(
      count === 0
        ? `Exactness (${m.label}): every speculative output token-identical to the target alone's (${runs} runs checked, 0 mismatches).`
        : `**EXACTNESS BROKEN (${m.label}): ${count} of ${runs} speculative outputs differ from the target alone's** (${m.rows
            .filter((r) => (r.mismatches ?? 0) > 0)
            .map((r) => `k=${r.k}: ${r.mismatches}`)
            .join(', ')}): a bug, see bench-results/pair.json.`,
    );
  }
  lines.push('', `![tokens/s and α against k on ${s.backend}](${s.chart})`);
  return lines.join('\n');
}

const markers = (key: string) => [`<!-- ${key}:start -->`, `<!-- ${key}:end -->`] as const;

const count = (text: string, part: string) => text.split(part).length - 1;

/**
 * `doc` with the section between `<!-- key:start -->` and `<!-- key:end -->`
 * replaced by `body`, the markers kept and everything else untouched. A
 * section not there yet is inserted above the line `anchor` if the document
 * has it, else appended. Unpaired, repeated or reversed markers throw rather
 * than risk losing text.
 */
export function replaceMarkedSection(doc: string, key: string, body: string, anchor?: string): string {
  const [start, end] = markers(key);
  const starts = count(doc, start);
  const ends = count(doc, end);
  const block = `${start}\n${body.trim()}\n${end}`;
  if (starts === 0 && ends === 0) {
    const at = anchor === undefined ? -1 : doc.indexOf(anchor);
    if (at >= 0) return `${doc.slice(0, at)}${block}\n\n${doc.slice(at)}`;
    const base = doc.trimEnd();
    return `${base}${base === '' ? '' : '\n\n'}${block}\n`;
  }
  if (starts !== 1 || ends !== 1) {
    throw new Error(`${key}: expected one ${start} and one ${end}, found ${starts} and ${ends}`);
  }
  const from = doc.indexOf(start);
  const to = doc.indexOf(end);
  if (to < from) throw new Error(`${key}: ${end} comes before ${start}`);
  return doc.slice(0, from) + block + doc.slice(to + end.length);
}

export interface ChartSeries {
  label: string;
  color: string;
  /** Fixed k, 0 (target alone: tokens/s only) to maxK. */
  points: { k: number; tokensPerS: number; alpha: number | null }[];
  /** adaptiveK(), drawn at its mean k. */
  adaptive?: { meanK: number; tokensPerS: number; alpha: number | null };
}

const esc = (text: string) =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A round axis maximum at or above `max` and its tick step (1, 2 or 5 × 10^n, about five ticks). */
export function niceAxis(max: number): { max: number; step: number } {
  if (!(max > 0) || !Number.isFinite(max)) return { max: 1, step: 0.2 };
  const rough = max / 5;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = ([1, 2, 5, 10].find((m) => m * power >= rough) ?? 10) * power;
  return { max: Math.ceil(max / step - 1e-9) * step, step };
}

const num = (x: number) => Number(x.toFixed(1)).toString();

/**
 * Two panels side by side: decode tokens/s against k (k = 0 is the target
 * alone, also drawn as a dashed level) and α against k, one line per series,
 * adaptive k as a diamond at its mean k. Each point carries a <title> with
 * its value.
 */
export function pairChartSvg(o: { title: string; series: readonly ChartSeries[] }): string {
  const width = 800;
  const height = 360;
  const top = 64;
  const plotH = 236;
  const plotW = 300;
  const lefts = [70, 470];
  const maxK = Math.max(1, ...o.series.flatMap((s) => s.points.map((p) => p.k)));
  const speeds = o.series.flatMap((s) => [
    ...s.points.map((p) => p.tokensPerS),
    ...(s.adaptive ? [s.adaptive.tokensPerS] : []),
  ]);
  const speedAxis = niceAxis(Math.max(0, ...speeds.filter(Number.isFinite)));
  const alphaAxis = { max: 1, step: 0.2 };
  const x = (panel: number, k: number) => lefts[panel] + (k / maxK) * plotW;
  const y = (axis: { max: number }, v: number) => top + plotH - (v / axis.max) * plotH;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<title>${esc(o.title)}</title>`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15">${esc(o.title)}</text>`,
  ];
  // Legend.
  let lx = 70;
  for (const s of o.series) {
    out.push(
      `<line x1="${lx}" y1="42" x2="${lx + 24}" y2="42" stroke="${s.color}" stroke-width="2"/>`,
      `<circle cx="${lx + 12}" cy="42" r="3.5" fill="${s.color}"/>`,
      `<text x="${lx + 30}" y="46">${esc(s.label)}</text>`,
    );
    lx += 40 + 7 * s.label.length;
  }
  out.push(
    `<path d="M${lx + 12},36 l6,6 l-6,6 l-6,-6 z" fill="white" stroke="#333" stroke-width="1.5"/>`,
    `<text x="${lx + 24}" y="46">adaptive k (at its mean k)</text>`,
  );
  const panels = [
    { axis: speedAxis, name: 'decode tokens/s', value: (p: { tokensPerS: number }) => p.tokensPerS, from: 0 },
    { axis: alphaAxis, name: 'acceptance α', value: (p: { alpha: number | null }) => p.alpha, from: 1 },
  ];
  panels.forEach((panel, i) => {
    const left = lefts[i];
    const bottom = top + plotH;
    // Grid and y ticks.
    for (let v = 0; v <= panel.axis.max + 1e-9; v += panel.axis.step) {
      const yy = y(panel.axis, v);
      out.push(
        `<line x1="${left}" y1="${yy}" x2="${left + plotW}" y2="${yy}" stroke="#e4e4e4"/>`,
        `<text x="${left - 6}" y="${yy + 4}" text-anchor="end">${num(v)}</text>`,
      );
    }
    for (let k = 0; k <= maxK; k++) {
      out.push(
        `<text x="${x(i, k)}" y="${bottom + 16}" text-anchor="middle">${k}</text>`,
        `<line x1="${x(i, k)}" y1="${bottom}" x2="${x(i, k)}" y2="${bottom + 4}" stroke="#333"/>`,
      );
    }
    out.push(
      `<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`,
      `<text x="${left + plotW / 2}" y="${bottom + 34}" text-anchor="middle">k (tokens drafted per target pass)</text>`,
      `<text transform="translate(${left - 48},${top + plotH / 2}) rotate(-90)" text-anchor="middle">${panel.name}</text>`,
    );
    for (const s of o.series) {
      const pts = s.points
        .filter((p) => p.k >= panel.from)
        .map((p) => ({ k: p.k, v: panel.value(p) }))
        .filter((p): p is { k: number; v: number } => p.v !== null && Number.isFinite(p.v));
      const unit = i === 0 ? ' tok/s' : '';
      const show = (v: number) => (i === 0 ? v.toFixed(1) : v.toFixed(3));
      if (i === 0) {
        const alone = pts.find((p) => p.k === 0);
        if (alone) {
          out.push(
            `<line x1="${left}" y1="${y(panel.axis, alone.v)}" x2="${left + plotW}" y2="${y(panel.axis, alone.v)}" stroke="${s.color}" stroke-dasharray="4 4" opacity="0.6"><title>${esc(s.label)}: target alone ${show(alone.v)} tok/s</title></line>`,
          );
        }
      }
      if (pts.length > 1) {
        out.push(
          `<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${pts
            .map((p) => `${x(i, p.k).toFixed(1)},${y(panel.axis, p.v).toFixed(1)}`)
            .join(' ')}"/>`,
        );
      }
      for (const p of pts) {
        out.push(
          `<circle cx="${x(i, p.k).toFixed(1)}" cy="${y(panel.axis, p.v).toFixed(1)}" r="3.5" fill="${s.color}"><title>${esc(s.label)}, k=${p.k}: ${show(p.v)}${unit}</title></circle>`,
        );
      }
      const a = s.adaptive;
      const av = a ? panel.value(a) : null;
      if (a && av !== null && Number.isFinite(av)) {
        const ax = x(i, Math.min(a.meanK, maxK));
        const ay = y(panel.axis, av);
        out.push(
          `<path d="M${ax.toFixed(1)},${(ay - 7).toFixed(1)} l7,7 l-7,7 l-7,-7 z" fill="white" stroke="${s.color}" stroke-width="2"><title>${esc(s.label)}, adaptive k (mean k ${a.meanK.toFixed(2)}): ${show(av)}${unit}</title></path>`,
        );
      }
    }
  });
  out.push('</svg>', '');
  return out.join('\n');
}
