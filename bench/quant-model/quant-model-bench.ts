/**
 * `pnpm bench --only quant-model --backends wasm`: whole models with q8 and q4 weights (the wasm
 * kernel set's quantized products, core's kernel-sets/wasm/quant-*.ts) against f32, on wasm:
 *
 *   1. decode tokens/s at batch 1 and 8 (one step on a 128-token context, as core's B4) of the
 *      shipped target and of a GPT-2-small-shaped model with random weights;
 *   2. held-out perplexity of the shipped target, teacher-forced: the reference windows of
 *      models/reference/target.safetensors and the paragraphs of models/heldout-prompts.json;
 *   3. the shipped pair decoding held-out prompts greedily, target and draft in the same format:
 *      the target alone against speculative decoding (fixed k and adaptiveK()), every output
 *      checked token for token against the target alone's in that format.
 *
 * Writes bench-results/quant-model.json and RESULTS.md's quant-model section. Root level because
 * it loads checkpoints (models) and decodes speculatively (speculative).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import {
  type CausalLm,
  createCausalLm,
  GPT2_SMALL_SHAPE,
  generate,
  kernelThreadCount,
  prefill,
  randomCausalLmWeights,
  type SequenceScores,
  scoreSequences,
  weightArena,
} from '@specstream/core';
import { loadCausalLm, loadTokenizer } from '@specstream/models';
import {
  adaptiveK,
  emptyMetrics,
  rates,
  type SpeculativeMetrics,
  speculativeGenerate,
} from '@specstream/speculative';
import { readCausalReference } from '../../packages/models/test/causal-reference.js';
import { replaceMarkedSection } from '../../packages/speculative/bench/pair-report.js';
import { interleavedRuns, lengthStats, rate, timeRun } from '../../packages/speculative/bench/spec-bench.js';
import { benchCommit } from '../../scripts/lib/bench-commit.js';
import { formatTable } from '../../scripts/lib/format-table.js';

export const QUANT_FORMATS = ['f32', 'q8', 'q4'] as const;
export type QuantModelFormat = (typeof QUANT_FORMATS)[number];

/** The suite's flags, spread into scripts/bench.ts's parseArgs options. */
export const QUANT_MODEL_ARGS = {
  /** Formats to measure, comma-separated (f32 always runs: it is every ratio's baseline). */
  weights: { type: 'string', default: 'f32,q8,q4' },
  /** Held-out prompts the pair decodes (default 16). */
  'quant-model-prompts': { type: 'string', default: '16' },
  /** Tokens generated per prompt (default 96). */
  'quant-model-tokens': { type: 'string', default: '96' },
} as const;

export interface QuantModelSettings {
  formats: QuantModelFormat[];
  prompts: number;
  tokens: number;
  reps: number;
  target: string;
  draft: string;
  promptsFile: string;
  reference: string;
  results: string;
}

export function quantModelSettings(values: Record<string, unknown>): QuantModelSettings {
  const list = String(values.weights).split(',');
  const unknown = list.filter((f) => !(QUANT_FORMATS as readonly string[]).includes(f));
  if (unknown.length > 0) {
    throw new Error(`--weights: unknown format ${unknown.join(', ')} (known: ${QUANT_FORMATS.join(', ')})`);
  }
  const integer = (name: string, min: number) => {
    const n = Number(values[name]);
    if (!Number.isInteger(n) || n < min)
      throw new Error(`--${name} must be an integer ≥ ${min}, got "${values[name]}"`);
    return n;
  };
  return {
    formats: QUANT_FORMATS.filter((f) => f === 'f32' || list.includes(f)),
    prompts: integer('quant-model-prompts', 1),
    tokens: integer('quant-model-tokens', 2),
    reps: integer('reps', 1),
    target: 'models/specstream-docs-target',
    draft: 'models/specstream-docs-draft',
    promptsFile: 'models/heldout-prompts.json',
    reference: 'models/reference/target.safetensors',
    results: 'RESULTS.md',
  };
}

const round = (x: number, digits = 2) => Number(x.toFixed(digits));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const CONTEXT = 128;
/** Steps timed back to back per block: a model decodes many steps in a row, its weights as warm as they get. */
const BLOCK_STEPS = 8;

const tokensOf = (n: number, offset: number, vocab: number) =>
  Array.from({ length: n }, (_, i) => (i * 131 + offset * 17 + 5) % vocab);

interface DecodeRow {
  model: string;
  weights: QuantModelFormat;
  /** The weight arena's bytes the model holds (its matrices; norms and small tensors are tfjs's). */
  arenaMB: number;
  batch1TokensPerS: number;
  batch8TokensPerS: number;
  /** Over f32's, same model. */
  batch1Ratio: number;
  batch8Ratio: number;
}

/**
 * Decode rate of each model at batches 1 and 8: each model's state holds a 128-token context per
 * row, a step extends every row by one token and rolls back. Blocks of BLOCK_STEPS steps, the
 * models taking turns block by block (so a drift in the machine's speed reaches every format
 * alike), a step before each block untimed; the median block's time per step.
 */
async function decodeRates(
  name: string,
  models: [QuantModelFormat, CausalLm, number][],
  reps: number,
  log: (line: string) => void,
): Promise<DecodeRow[]> {
  const perBatch: Record<number, number[]> = {};
  for (const batch of [1, 8]) {
    const states = models.map(([, model]) => {
      const state = model.createState({ batch, maxLength: CONTEXT + 8 });
      const prompts = Array.from({ length: batch }, (_, r) => tokensOf(CONTEXT, r, model.vocabSize));
      prefill(model, state, prompts).dispose();
      return state;
    });
    const step = async (i: number, s: number) => {
      const [, model] = models[i];
      const ids = Array.from({ length: batch }, (_, r) => [(s * 7 + r * 13 + 3) % model.vocabSize]);
      const { logits } = model.extendStep(states[i], ids, { logits: 'last' });
      await logits.data();
      logits.dispose();
      model.rollback(states[i], new Array(batch).fill(CONTEXT));
    };
    const blocks = models.map(() => [] as number[]);
    for (let rep = 0; rep < reps; rep++) {
      for (let j = 0; j < models.length; j++) {
        const i = (rep + j) % models.length;
        await step(i, 0);
        const t0 = performance.now();
        for (let s = 1; s <= BLOCK_STEPS; s++) await step(i, s);
        blocks[i].push((performance.now() - t0) / BLOCK_STEPS);
      }
    }
    for (const [i, [, model]] of models.entries()) model.disposeState(states[i]);
    perBatch[batch] = blocks.map((b) => (batch * 1000) / median(b));
  }
  const rows = models.map(([weights, , bytes], i) => ({
    model: name,
    weights,
    arenaMB: round(bytes / 1e6, 1),
    batch1TokensPerS: round(perBatch[1][i], 1),
    batch8TokensPerS: round(perBatch[8][i], 1),
    batch1Ratio: round(perBatch[1][i] / perBatch[1][0], 2),
    batch8Ratio: round(perBatch[8][i] / perBatch[8][0], 2),
  }));
  for (const r of rows) {
    log(
      `${name} ${r.weights}: batch 1 ${r.batch1TokensPerS} tok/s (${r.batch1Ratio}×), batch 8 ${r.batch8TokensPerS} tok/s (${r.batch8Ratio}×), ${r.arenaMB} MB in the arena`,
    );
  }
  return rows;
}

/** Builds a model in each format, noting the arena bytes each adds. */
async function buildAll(
  formats: QuantModelFormat[],
  build: (format: QuantModelFormat) => Promise<CausalLm>,
): Promise<[QuantModelFormat, CausalLm, number][]> {
  const arena = weightArena()!;
  const built: [QuantModelFormat, CausalLm, number][] = [];
  for (const format of formats) {
    const before = arena.bytesInUse();
    built.push([format, await build(format), arena.bytesInUse() - before]);
  }
  return built;
}

interface Quality {
  weights: QuantModelFormat;
  text: 'reference windows' | 'held-out paragraphs';
  positions: number;
  /** Next-token predictions scored (positions that have a next token). */
  scored: number;
  meanCrossEntropy: number;
  perplexity: number;
  /** Mean cross-entropy over f32's. */
  ratio: number;
  /** Share of positions whose argmax equals f32's. */
  top1Agreement: number;
}

async function quality(
  models: [QuantModelFormat, CausalLm, number][],
  texts: Record<Quality['text'], number[][]>,
): Promise<Quality[]> {
  const rows: Quality[] = [];
  for (const [text, sequences] of Object.entries(texts) as [Quality['text'], number[][]][]) {
    const each: ({ weights: QuantModelFormat } & SequenceScores)[] = [];
    for (const [weights, model] of models)
      each.push({ weights, ...(await scoreSequences(model, sequences)) });
    const mean = (xs: Float64Array) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const base = each[0];
    for (const p of each) {
      const ce = mean(p.crossEntropy);
      rows.push({
        weights: p.weights,
        text,
        positions: p.top1.length,
        scored: p.crossEntropy.length,
        meanCrossEntropy: round(ce, 5),
        perplexity: round(Math.exp(ce), 3),
        ratio: round(ce / mean(base.crossEntropy), 5),
        top1Agreement: round(p.top1.filter((t, i) => t === base.top1[i]).length / p.top1.length, 4),
      });
    }
  }
  return rows;
}

type PairSetting = 0 | 1 | 2 | 3 | 'adaptive';
const PAIR_SETTINGS: PairSetting[] = [0, 1, 2, 3, 'adaptive'];

interface PairRow {
  weights: QuantModelFormat;
  k: PairSetting;
  tokensPerS: number;
  /** Over the target alone in the same format. */
  speedup: number;
  /** Over the f32 target alone. */
  vsF32TargetAlone: number;
  alpha: number | null;
  tokensPerPass: number;
  meanK: number;
  /** Greedy outputs that differ from the target alone's in this format (0: exact). */
  mismatches: number | null;
}

/**
 * The shipped pair in each format (target and draft alike), greedy, over the same prompts: for
 * each prompt every (format, setting) runs before the next prompt, starting one further along
 * each time; one unrecorded round first. Decode tokens/s as the pair bench counts them (after the
 * first token, the draft's prefill taken off).
 */
async function pairRuns(
  pairs: { weights: QuantModelFormat; target: CausalLm; draft: CausalLm }[],
  prompts: number[][],
  newTokens: number,
  log: (line: string) => void,
): Promise<{ rows: PairRow[]; warmupS: number; measuredS: number }> {
  const cells = pairs.flatMap((pair) => PAIR_SETTINGS.map((k) => ({ pair, k })));
  const runOne = async (cell: (typeof cells)[number], prompt: number[], totals?: SpeculativeMetrics) => {
    const { pair, k } = cell;
    if (k === 0) return timeRun(generate({ model: pair.target, prompt, maxNewTokens: newTokens }));
    const run = speculativeGenerate({
      target: pair.target,
      draft: pair.draft,
      k: k === 'adaptive' ? adaptiveK() : k,
      prompt,
      maxNewTokens: newTokens,
      totals,
    });
    const timed = await timeRun(run);
    return { ...timed, ms: timed.ms - run.metrics.draftPrefillMs };
  };
  let t = performance.now();
  for (const cell of cells) await runOne(cell, prompts[0]);
  const warmupS = (performance.now() - t) / 1000;
  t = performance.now();
  const totals = cells.map(() => emptyMetrics());
  const runs = await interleavedRuns(cells, prompts.length, (cell, i, at) =>
    runOne(cell, prompts[i], totals[at]),
  );
  const measuredS = (performance.now() - t) / 1000;
  const plainOf = (weights: QuantModelFormat) =>
    cells.findIndex((c) => c.pair.weights === weights && c.k === 0);
  const f32Plain = rate(runs[plainOf('f32')]);
  const rows = cells.map(({ pair, k }, at) => {
    const plain = runs[plainOf(pair.weights)];
    const m = rates(totals[at]);
    let mismatches: number | null = null;
    if (k !== 0) {
      mismatches = runs[at].filter(
        (r, i) =>
          r.tokens.length !== plain[i].tokens.length || r.tokens.some((x, j) => x !== plain[i].tokens[j]),
      ).length;
    }
    return {
      weights: pair.weights,
      k,
      tokensPerS: round(rate(runs[at]), 1),
      speedup: round(rate(runs[at]) / rate(plain), 3),
      vsF32TargetAlone: round(rate(runs[at]) / f32Plain, 3),
      alpha: k === 0 ? null : round(m.acceptanceRate, 3),
      tokensPerPass: k === 0 ? 1 : round(m.tokensPerPass, 2),
      meanK: k === 0 ? 0 : round(m.meanK, 2),
      mismatches,
    };
  });
  const bad = rows.reduce((n, r) => n + (r.mismatches ?? 0), 0);
  if (bad > 0) {
    process.exitCode = 1;
    console.error(
      `!!! quant-model: ${bad} greedy speculative outputs differ from the target alone's in their format`,
    );
  }
  log(
    `pair: warm-up ${warmupS.toFixed(0)} s, measured ${measuredS.toFixed(0)} s; ${bad === 0 ? 'every speculative output token-identical to the target alone in its format' : `${bad} OUTPUTS DIFFER`}`,
  );
  return { rows, warmupS: round(warmupS, 1), measuredS: round(measuredS, 1) };
}

export interface QuantModelResult {
  backend: 'wasm';
  date: string;
  node: string;
  machine: {
    cpu: string;
    cores: number;
    kernelThreads: number;
    loadAverage: { start: number[]; end: number[] };
  };
  commit: { hash: string; dirty: boolean | null };
  settings: Omit<QuantModelSettings, 'results'>;
  decode: DecodeRow[];
  quality: Quality[];
  pair: {
    prompts: number;
    promptTokens: { min: number; mean: number; max: number };
    newTokens: number;
    rows: PairRow[];
    seconds: { warmup: number; measured: number };
  };
  goals: { goal: string; measured: string; met: boolean }[];
  seconds: Record<string, number>;
}

export async function runQuantModelBench(
  s: QuantModelSettings,
  log: (line: string) => void,
): Promise<QuantModelResult | { skipped: string }> {
  const missing = [
    join(s.target, 'config.json'),
    join(s.draft, 'config.json'),
    s.promptsFile,
    s.reference,
  ].filter((p) => !existsSync(p));
  if (missing.length > 0) {
    log(`skipped: not found: ${missing.join(', ')}`);
    return { skipped: `not found: ${missing.join(', ')}` };
  }
  const loadStart = loadavg().map((x) => round(x, 2));
  const seconds: Record<string, number> = {};
  let t = performance.now();
  const lap = (name: string) => {
    seconds[name] = round((performance.now() - t) / 1000, 1);
    t = performance.now();
  };

  // 1. Decode rates: GPT-2 small first (the goal), one model per format at a time in the arena.
  log(
    `decode: batch 1 and 8 on a ${CONTEXT}-token context, ${s.reps} blocks of ${BLOCK_STEPS} steps per model`,
  );
  const gpt2 = await buildAll(s.formats, async (weights) =>
    createCausalLm(GPT2_SMALL_SHAPE, randomCausalLmWeights(GPT2_SMALL_SHAPE, { seed: 1 }), {
      kernels: 'wasm',
      weights,
    }),
  );
  const decode: DecodeRow[] = [];
  try {
    decode.push(...(await decodeRates('GPT-2 small (random)', gpt2, s.reps, log)));
  } finally {
    for (const [, model] of gpt2) model.dispose();
  }
  lap('gpt2Decode');

  const tokenizer = await loadTokenizer(s.target);
  const targets = await buildAll(s.formats, (weights) =>
    loadCausalLm(s.target, { kernels: 'wasm', weights }),
  );
  const drafts = await buildAll(s.formats, (weights) => loadCausalLm(s.draft, { kernels: 'wasm', weights }));
  try {
    decode.push(...(await decodeRates('shipped target', targets, s.reps, log)));
    lap('targetDecode');

    // 2. Held-out perplexity.
    const reference = await readCausalReference(s.reference);
    const texts = (JSON.parse(readFileSync(s.promptsFile, 'utf8')) as { prompts: string[] }).prompts;
    const paragraphs = texts.map((p) => tokenizer.encode(p));
    const qualityRows = await quality(targets, {
      'reference windows': reference.inputIds,
      'held-out paragraphs': paragraphs,
    });
    for (const q of qualityRows) {
      log(
        `perplexity ${q.weights} on the ${q.text} (${q.scored} next tokens): ${q.perplexity} (cross-entropy ×${q.ratio} f32's), top-1 agrees with f32 at ${(100 * q.top1Agreement).toFixed(2)}%`,
      );
    }
    lap('quality');

    // 3. The pair, greedy, target and draft in the same format.
    const prompts = paragraphs.slice(0, s.prompts).map((p) => p.slice(0, 128));
    const promptTokens = lengthStats(prompts);
    log(
      `pair: ${prompts.length} held-out prompts (${promptTokens.min}–${promptTokens.max} tokens) × ${s.tokens} new tokens, greedy, k ${PAIR_SETTINGS.join(', ')}`,
    );
    const pair = await pairRuns(
      targets.map(([weights, target], i) => ({ weights, target, draft: drafts[i][1] })),
      prompts,
      s.tokens,
      log,
    );
    lap('pair');

    const cpuList = cpus();
    const { results: _, ...settings } = s;
    const result: QuantModelResult = {
      backend: 'wasm',
      date: new Date().toISOString(),
      node: process.version,
      machine: {
        cpu: cpuList[0]?.model.trim() ?? 'unknown',
        cores: cpuList.length,
        kernelThreads: kernelThreadCount(),
        loadAverage: { start: loadStart, end: loadavg().map((x) => round(x, 2)) },
      },
      commit: benchCommit(),
      settings,
      decode,
      quality: qualityRows,
      pair: {
        prompts: prompts.length,
        promptTokens,
        newTokens: s.tokens,
        rows: pair.rows,
        seconds: { warmup: pair.warmupS, measured: pair.measuredS },
      },
      goals: goals(decode, qualityRows),
      seconds,
    };
    for (const line of tables(result)) log(line);
    return result;
  } finally {
    for (const [, model] of [...targets, ...drafts]) model.dispose();
  }
}

function goals(decode: DecodeRow[], q: Quality[]): QuantModelResult['goals'] {
  const out: QuantModelResult['goals'] = [];
  const at = (weights: string) => decode.find((r) => r.model.startsWith('GPT-2') && r.weights === weights);
  for (const [weights, want] of [
    ['q8', 2.5],
    ['q4', 4],
  ] as const) {
    const row = at(weights);
    if (row) {
      out.push({
        goal: `GPT-2 small, batch 1: ${weights} ≥ ${want}× f32 tokens/s`,
        measured: `${row.batch1Ratio}× (${row.batch1TokensPerS} vs ${at('f32')!.batch1TokensPerS} tok/s)`,
        met: row.batch1Ratio >= want,
      });
    }
  }
  for (const [weights, limit] of [
    ['q8', 1.01],
    ['q4', 1.05],
  ] as const) {
    const row = q.find((r) => r.weights === weights && r.text === 'held-out paragraphs');
    const windows = q.find((r) => r.weights === weights && r.text === 'reference windows');
    if (row && windows) {
      out.push({
        goal: `perplexity: ${weights} cross-entropy within +${Math.round((limit - 1) * 100)}% of f32's`,
        measured: `paragraphs ${pct(row.ratio)}, reference windows ${pct(windows.ratio)}`,
        met: row.ratio <= limit && windows.ratio <= limit,
      });
    }
  }
  return out;
}

const pct = (ratio: number) => `${ratio >= 1 ? '+' : ''}${((ratio - 1) * 100).toFixed(2)}%`;

function decodeTable(r: QuantModelResult) {
  return r.decode.map((d) => ({
    model: d.model,
    weights: d.weights,
    'arena MB': d.arenaMB,
    'batch 1 tok/s': d.batch1TokensPerS,
    'batch 1 ×f32': d.batch1Ratio.toFixed(2),
    'batch 8 tok/s': d.batch8TokensPerS,
    'batch 8 ×f32': d.batch8Ratio.toFixed(2),
  }));
}

function qualityTable(r: QuantModelResult) {
  return r.quality.map((q) => ({
    text: `${q.text} (${q.scored} next tokens)`,
    weights: q.weights,
    'mean cross-entropy': q.meanCrossEntropy.toFixed(4),
    perplexity: q.perplexity.toFixed(2),
    'vs f32': q.weights === 'f32' ? '–' : pct(q.ratio),
    'top-1 = f32': `${(100 * q.top1Agreement).toFixed(1)}%`,
  }));
}

function pairTable(r: QuantModelResult) {
  return r.pair.rows.map((p) => ({
    weights: p.weights,
    k: p.k === 0 ? '0 (target alone)' : p.k,
    'tok/s': p.tokensPerS.toFixed(1),
    speedup: p.speedup.toFixed(2),
    '×f32 target alone': p.vsF32TargetAlone.toFixed(2),
    α: p.alpha === null ? '–' : p.alpha.toFixed(3),
    'tokens/pass': p.tokensPerPass.toFixed(2),
    'mean k': p.meanK.toFixed(1),
    mismatches: p.mismatches ?? '–',
  }));
}

function tables(r: QuantModelResult): string[] {
  return [
    'decode (tokens/s, ratio to f32 of the same model):',
    ...formatTable(decodeTable(r)),
    'held-out perplexity of the shipped target:',
    ...formatTable(qualityTable(r)),
    'the shipped pair, greedy, target and draft in the same format:',
    ...formatTable(pairTable(r)),
    'goals:',
    ...r.goals.map((g) => `${g.met ? 'met   ' : 'MISSED'} ${g.goal}: ${g.measured}`),
  ];
}

/** A Markdown table, columns padded (as the pair's sections are); numeric columns right-aligned. */
function markdownTable(rows: Record<string, unknown>[]): string[] {
  const keys = Object.keys(rows[0]);
  const cells = rows.map((row) => keys.map((k) => String(row[k])));
  const numeric = keys.map((_, i) => cells.every((row) => /^([+-]?[\d.]+[%×]?|–)$/.test(row[i])));
  const widths = keys.map((k, i) => Math.max(3, k.length, ...cells.map((row) => row[i].length)));
  const line = (values: string[]) =>
    `| ${values.map((v, i) => (numeric[i] ? v.padStart(widths[i]) : v.padEnd(widths[i]))).join(' | ')} |`;
  return [
    line(keys),
    `| ${widths.map((w, i) => (numeric[i] ? `${'-'.repeat(w - 1)}:` : '-'.repeat(w))).join(' | ')} |`,
    ...cells.map(line),
  ];
}

export const QUANT_MODEL_INTRO = `## Quantized weights

\`pnpm bench --only quant-model --backends wasm\` (\`--weights f32,q8,q4\` picks formats; f32
always runs, as the baseline) measures whole models whose matrices the wasm kernel set keeps in
q8 or q4 (GGUF Q8_0/Q4_0-like blocks of 32 weights, one scale each; \`loadModel(dir, { weights })\`,
\`createCausalLm(config, weights, { weights })\`, \`specstream generate --weights\`) against f32:
decode tokens/s of one step on a 128-token context at batch 1 and 8 (the formats take turns in
blocks of 8 steps; median block) for a GPT-2-small-shaped model with random weights and for the
shipped target; the shipped target's held-out perplexity, teacher-forced, on the reference
windows of \`models/reference/target.safetensors\` (2 × 24 tokens) and on the 48 paragraphs of
\`models/heldout-prompts.json\` tokenized with the shipped tokenizer (each paragraph its own
sequence from its first token, so the perplexity is above the training report's 512-token
windows'); and the shipped pair decoding held-out prompts greedily with target and draft both in
one format (speedup over the target alone in that format; every output checked against it).
JSON in \`bench-results/quant-model.json\`.`;

const LAPS: Record<string, string> = {
  gpt2Decode: 'GPT-2 models built and decoded',
  targetDecode: 'shipped pair loaded, target decoded',
  quality: 'perplexity',
  pair: 'the pair',
};

function markdownSection(r: QuantModelResult): string {
  const dirty = r.commit.dirty === null ? '' : r.commit.dirty ? ' (working tree dirty)' : ' (clean)';
  const load = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(', ');
  const s = r.seconds;
  const total = Object.values(s).reduce((a, b) => a + b, 0);
  return [
    '### wasm',
    '',
    `- Machine: ${r.machine.cpu}, ${r.machine.cores} cores, ${r.machine.kernelThreads} kernel threads · backend **wasm** · commit \`${r.commit.hash}\`${dirty} · ${r.date} · Node ${r.node}`,
    `- Load average (1, 5, 15 min) before the run ${load(r.machine.loadAverage.start)} (other jobs: ${r.machine.cores} cores here), after it ${load(r.machine.loadAverage.end)} (this run's ${r.machine.kernelThreads} kernel threads included).`,
    `- Run: ${total.toFixed(0)} s (${Object.entries(s)
      .map(([k, v]) => `${LAPS[k] ?? k} ${v} s`)
      .join(', ')}; the pair: warm-up ${r.pair.seconds.warmup} s, measured ${r.pair.seconds.measured} s).`,
    '',
    'Decode (ratio: tokens/s over f32 of the same model):',
    '',
    ...markdownTable(decodeTable(r)),
    '',
    'Held-out perplexity of the shipped target:',
    '',
    ...markdownTable(qualityTable(r)),
    '',
    `The shipped pair, greedy, ${r.pair.prompts} held-out prompts (${r.pair.promptTokens.min}–${r.pair.promptTokens.max} tokens, mean ${r.pair.promptTokens.mean}) × ${r.pair.newTokens} new tokens, target and draft in the same format (speedup: over the target alone in that format):`,
    '',
    ...markdownTable(pairTable(r)),
    '',
    'Goals (issue 20):',
    '',
    ...r.goals.map((g) => `- ${g.met ? 'met' : '**missed**'}: ${g.goal}: ${g.measured}`),
  ].join('\n');
}

export function writeQuantModelResults(
  result: QuantModelResult | { skipped: string },
  s: QuantModelSettings,
  log: (line: string) => void,
): void {
  mkdirSync('bench-results', { recursive: true });
  writeFileSync('bench-results/quant-model.json', `${JSON.stringify(result, null, 2)}\n`);
  log('wrote bench-results/quant-model.json');
  if ('skipped' in result) return;
  let doc = existsSync(s.results) ? readFileSync(s.results, 'utf8') : '# Results\n';
  if (!doc.includes('<!-- quant-model:wasm:start -->')) doc = `${doc.trimEnd()}\n\n${QUANT_MODEL_INTRO}\n`;
  doc = replaceMarkedSection(doc, 'quant-model:wasm', markdownSection(result));
  writeFileSync(s.results, doc);
  log(`wrote ${s.results} (section quant-model:wasm)`);
}
