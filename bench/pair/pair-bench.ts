/**
 * `pnpm bench --only pair`: the trained draft/target pair on held-out text.
 * For each backend of the runner's loop, greedy and sampled (temperature 0.8,
 * seeded): the target alone (k = 0, core's `generate`), fixed k = 1…maxK and
 * adaptiveK(), over the same prompts. Writes bench-results/pair.json, an SVG
 * chart per backend (bench-results/ and docs/bench/ beside RESULTS.md) and
 * that backend's section of RESULTS.md.
 *
 * Root level because it loads checkpoints (models) and decodes speculatively
 * (speculative): package benches may not import sideways.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import {
  type BackendName,
  type CausalLm,
  generate,
  kernelThreadCount,
  type SamplingOptions,
  WEIGHT_FORMATS,
  type WeightFormat,
} from '@specstream/core';
import { loadCausalLm, loadTokenizer, type Tokenizer } from '@specstream/models';
import {
  type AdaptiveKPolicy,
  type AdaptiveKState,
  adaptiveK,
  checkVocabularies,
  emptyMetrics,
  rates,
  type SpeculativeMetrics,
  speculativeGenerate,
} from '@specstream/speculative';
import {
  type PairK,
  type PairMode,
  type PairRow,
  pairChartSvg,
  pairMarkdownSection,
  replaceMarkedSection,
} from '../../packages/speculative/bench/pair-report.js';
import { interleavedRuns, lengthStats, rate, timeRun } from '../../packages/speculative/bench/spec-bench.js';
import { benchCommit } from '../../scripts/lib/bench-commit.js';
import { formatTable } from '../../scripts/lib/format-table.js';

/** The suite's flags, spread into scripts/bench.ts's parseArgs options. */
export const PAIR_ARGS = {
  'pair-target': { type: 'string', default: 'models/specstream-docs-target' },
  'pair-draft': { type: 'string', default: 'models/specstream-docs-draft' },
  /**
   * The draft's weight format (f32, or q8/q4 where the backend's kernel set has it): the draft
   * only proposes, so a cheaper draft step changes α a little and the output not at all.
   */
  'pair-draft-weights': { type: 'string', default: 'f32' },
  /** `{ "prompts": ["text", ...] }` */
  'pair-prompts': { type: 'string', default: 'models/heldout-prompts.json' },
  /** Folder holding tokenizer.json (default: the target's folder). */
  'pair-tokenizer': { type: 'string' },
  /** Prompts each setting runs over (default 16; 4 on cpu). */
  'pair-prompts-count': { type: 'string' },
  /** Tokens generated per prompt (default 96; 48 on cpu). */
  'pair-tokens': { type: 'string' },
  /** Prompts are cut to their first this many tokens. */
  'pair-prompt-tokens': { type: 'string', default: '128' },
  'pair-max-k': { type: 'string', default: '8' },
  'pair-temperature': { type: 'string', default: '0.8' },
  /** Prompt i is sampled with seed + i, the same for every k. */
  'pair-seed': { type: 'string', default: '1' },
  /** The results document; the chart copy goes to docs/bench/ beside it. */
  'pair-results': { type: 'string', default: 'RESULTS.md' },
  /** speculativeGenerate's verifyOnDevice (greedy on webgpu: one read an iteration). */
  'pair-verify-on-device': { type: 'boolean', default: false },
} as const;

export interface PairSettings {
  target: string;
  draft: string;
  draftWeights: WeightFormat;
  prompts: string;
  tokenizer: string;
  count?: number;
  tokens?: number;
  promptTokens: number;
  maxK: number;
  temperature: number;
  seed: number;
  results: string;
  verifyOnDevice: boolean;
}

function integerFlag(name: string, text: string | undefined, min: number): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min)
    throw new Error(`--${name} must be an integer ≥ ${min}, got "${text}"`);
  return n;
}

function weightFlag(text: string): WeightFormat {
  if (!(WEIGHT_FORMATS as readonly string[]).includes(text)) {
    throw new Error(`--pair-draft-weights must be one of ${WEIGHT_FORMATS.join(', ')}, got "${text}"`);
  }
  return text as WeightFormat;
}

export function pairSettings(values: Record<string, unknown>): PairSettings {
  const str = (name: keyof typeof PAIR_ARGS) => values[name] as string | undefined;
  const temperature = Number(str('pair-temperature'));
  if (!(temperature > 0 && Number.isFinite(temperature))) {
    throw new Error(`--pair-temperature must be a number > 0, got "${str('pair-temperature')}"`);
  }
  const target = str('pair-target')!;
  return {
    target,
    draft: str('pair-draft')!,
    draftWeights: weightFlag(str('pair-draft-weights')!),
    prompts: str('pair-prompts')!,
    tokenizer: str('pair-tokenizer') ?? target,
    count: integerFlag('pair-prompts-count', str('pair-prompts-count'), 1),
    tokens: integerFlag('pair-tokens', str('pair-tokens'), 2),
    promptTokens: integerFlag('pair-prompt-tokens', str('pair-prompt-tokens'), 1)!,
    maxK: integerFlag('pair-max-k', str('pair-max-k'), 1)!,
    temperature,
    seed: integerFlag('pair-seed', str('pair-seed'), 0)!,
    results: str('pair-results')!,
    verifyOnDevice: values['pair-verify-on-device'] === true,
  };
}

interface ModelInfo {
  path: string;
  modelType: string;
  layers: number;
  hidden: number;
  vocab: number;
  dtype: string;
  safetensorsMB: number;
  /** The format the run kept its weights in (f32 unless asked). */
  weights?: WeightFormat;
}

function modelInfo(dir: string): ModelInfo {
  const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const bytes = readdirSync(dir)
    .filter((f) => f.endsWith('.safetensors') && f !== 'reference.safetensors')
    .reduce((n, f) => n + statSync(join(dir, f)).size, 0);
  return {
    path: dir,
    modelType: String(c.model_type),
    layers: Number(c.num_hidden_layers ?? c.n_layer),
    hidden: Number(c.hidden_size ?? c.n_embd),
    vocab: Number(c.vocab_size),
    dtype: String(c.torch_dtype ?? c.dtype ?? '?'),
    safetensorsMB: Number((bytes / 1e6).toFixed(1)),
  };
}

const describeModel = (m: ModelInfo) =>
  `\`${m.path}\` (${m.modelType}, ${m.layers} layers, hidden ${m.hidden}, vocab ${m.vocab}, ${m.safetensorsMB} MB ${m.dtype}${m.weights && m.weights !== 'f32' ? `, run with ${m.weights} weights` : ''})`;

/** The target's top-1 minus top-2 logit after `ids`: how close to a tie the token where outputs diverged was. */
async function topMargin(model: CausalLm, ids: number[]): Promise<number> {
  const state = model.createState({ batch: 1, maxLength: ids.length });
  try {
    const { logits } = model.extendStep(state, [ids], { logits: 'last' });
    const values = (await logits.data().finally(() => logits.dispose())) as Float32Array;
    let a = Number.NEGATIVE_INFINITY;
    let b = Number.NEGATIVE_INFINITY;
    for (const v of values) {
      if (v > a) [a, b] = [v, a];
      else if (v > b) b = v;
    }
    return a - b;
  } finally {
    model.disposeState(state);
  }
}

interface Mismatch {
  k: PairK;
  prompt: number;
  /** Index of the first generated token that differs. */
  at: number;
  targetAlone: number;
  speculative: number;
  /** The target's top-2 logit margin at that position (a tiny one points at float noise, a large one at a bug). */
  margin: number;
}

export interface PairMeasured {
  backend: string;
  date: string;
  node: string;
  machine: { cpu: string; cores: number; kernelThreads?: number };
  commit: { hash: string; dirty: boolean | null };
  target: ModelInfo;
  draft: ModelInfo;
  promptsFile: string;
  prompts: number;
  promptTokens: { min: number; mean: number; max: number };
  newTokens: number;
  maxK: number;
  seed: number;
  /** Greedy iterations read the device once (speculativeGenerate's verifyOnDevice). */
  verifyOnDevice?: boolean;
  modes: (PairMode & { mismatchDetails: Mismatch[] })[];
  seconds: { load: number; warmup: number; measured: number };
}

export type PairResult = PairMeasured | { skipped: string };

const round = (x: number, digits = 2) => Number(x.toFixed(digits));

export async function runPairBench(
  backend: BackendName,
  s: PairSettings,
  log: (line: string) => void,
): Promise<PairResult> {
  const missing = [join(s.target, 'config.json'), join(s.draft, 'config.json'), s.prompts].filter(
    (p) => !existsSync(p),
  );
  if (missing.length > 0) {
    const reason = `not found: ${missing.join(', ')}`;
    log(
      `skipped: ${reason} (the trained pair is not there yet, or point --pair-target/--pair-draft/--pair-prompts at one)`,
    );
    return { skipped: reason };
  }
  const slow = backend === 'cpu';
  const count = s.count ?? (slow ? 4 : 16);
  const newTokens = s.tokens ?? (slow ? 48 : 96);
  const maxK = s.maxK;

  const texts = (JSON.parse(readFileSync(s.prompts, 'utf8')) as { prompts?: unknown }).prompts;
  if (!Array.isArray(texts) || texts.some((t) => typeof t !== 'string' || t.trim() === '')) {
    throw new Error(`${s.prompts}: expected { "prompts": [non-empty strings] }`);
  }
  if (texts.length < count)
    log(`note: ${s.prompts} holds ${texts.length} prompts, fewer than ${count}: using all`);

  const t0 = performance.now();
  const tokenizer: Tokenizer = await loadTokenizer(s.tokenizer);
  // Each run's states take the caches an earlier run left (and on webgpu its recorded passes),
  // as a long-lived process does: what is timed is decoding, not recording new pass shapes.
  const target = await loadCausalLm(s.target, { reuseStates: 2 });
  const draft = await loadCausalLm(s.draft, { weights: s.draftWeights, reuseStates: 2 });
  try {
    let draftTokenizer: Tokenizer | undefined;
    try {
      draftTokenizer = await loadTokenizer(s.draft);
    } catch {
      log(`note: ${s.draft} has no tokenizer of its own; vocabularies compared by size only`);
    }
    // Throws naming the first id whose string differs: such a pair's acceptance would mean nothing.
    checkVocabularies({
      targetVocabSize: target.vocabSize,
      draftVocabSize: draft.vocabSize,
      targetTokenizer: tokenizer,
      draftTokenizer,
    });
    const loadS = (performance.now() - t0) / 1000;
    // Room for the prompt, the new tokens and a full draft past them (rotary models have no limit).
    const positions = Math.min(target.maxPositions, draft.maxPositions);
    const cut = Math.min(s.promptTokens, positions - newTokens - maxK - 1);
    if (cut < 1)
      throw new Error(`${newTokens} new tokens + k ${maxK} leave no room in ${positions} positions`);
    const prompts = (texts as string[]).slice(0, count).map((t) => tokenizer.encode(t).slice(0, cut));
    const promptTokens = lengthStats(prompts);
    log(
      `${prompts.length} prompts (${promptTokens.min}–${promptTokens.max} tokens, mean ${promptTokens.mean}) × ${newTokens} new tokens; target ${s.target}, draft ${s.draft}${s.verifyOnDevice ? '; greedy iterations read the device once (verifyOnDevice)' : ''}`,
    );

    const settings: PairK[] = [...Array.from({ length: maxK + 1 }, (_, k) => k), 'adaptive', 'adaptive-kept'];
    // Each call starts from the state the previous call's policy left (warm-up included), as
    // `specstream generate` does through its --k-state file and a caller can with
    // adaptiveK({ state }): what was learned is kept from one reply to the next.
    let keptState: AdaptiveKState | undefined;
    const runOne = async (
      k: PairK,
      prompt: number[],
      sampling: SamplingOptions | undefined,
      totals?: SpeculativeMetrics,
    ) => {
      if (k === 0) return timeRun(generate({ model: target, prompt, maxNewTokens: newTokens, sampling }));
      // 'adaptive': a fresh policy per call, as a first request would get it (its probes included).
      const policy =
        k === 'adaptive'
          ? adaptiveK({ maxK })
          : k === 'adaptive-kept'
            ? adaptiveK({ maxK, state: keptState })
            : k;
      const run = speculativeGenerate({
        target,
        draft,
        k: policy,
        prompt,
        maxNewTokens: newTokens,
        sampling,
        totals,
        verifyOnDevice: s.verifyOnDevice,
      });
      const timed = await timeRun(run);
      if (k === 'adaptive-kept') keptState = (policy as AdaptiveKPolicy).state();
      // As in spec-bench: the draft reads the prompt after the first token is emitted, so its
      // prefill comes off too; what is left is decoding alone, as in the plain runs.
      return { ...timed, ms: timed.ms - run.metrics.draftPrefillMs };
    };

    const modes = [
      { label: 'greedy', temperature: 0 },
      { label: `T ${s.temperature}`, temperature: s.temperature },
    ];
    const results: PairMeasured['modes'] = [];
    let warmupMs = 0;
    let measuredMs = 0;
    for (const mode of modes) {
      const sampling = (i: number): SamplingOptions | undefined =>
        mode.temperature > 0 ? { temperature: mode.temperature, seed: s.seed + i } : undefined;
      // Every setting once, unrecorded: compiles (webgpu shaders for each verify width), JIT and
      // first allocations land here.
      keptState = undefined;
      let t = performance.now();
      for (const k of settings) await runOne(k, prompts[0], sampling(0));
      warmupMs += performance.now() - t;
      t = performance.now();
      const totals = settings.map(() => emptyMetrics());
      const runs = await interleavedRuns(settings, prompts.length, (k, i, at) =>
        runOne(k, prompts[i], sampling(i), totals[at]),
      );
      measuredMs += performance.now() - t;

      const plain = runs[0];
      const plainRate = rate(plain);
      const mismatchDetails: Mismatch[] = [];
      const rows: PairRow[] = settings.map((k, at) => {
        let mismatches: number | null = null;
        if (mode.temperature === 0 && k !== 0) {
          mismatches = 0;
          runs[at].forEach((r, i) => {
            const want = plain[i].tokens;
            const n = Math.max(want.length, r.tokens.length);
            const j = Array.from({ length: n }, (_, x) => x).find((x) => want[x] !== r.tokens[x]);
            if (j === undefined) return;
            mismatches! += 1;
            mismatchDetails.push({
              k,
              prompt: i,
              at: j,
              targetAlone: want[j],
              speculative: r.tokens[j],
              margin: 0,
            });
          });
        }
        const m = rates(totals[at]);
        const drafted = totals[at].acceptedTokens + totals[at].rejections > 0;
        return {
          k,
          alpha: k === 0 || !drafted ? null : round(m.acceptanceRate, 4),
          tokensPerPass: k === 0 ? 1 : round(m.tokensPerPass, 3),
          meanK: k === 0 ? 0 : round(m.meanK, 2),
          tokensPerS: round(rate(runs[at]), 2),
          speedup: round(rate(runs[at]) / plainRate, 3),
          runs: runs[at].length,
          mismatches,
        };
      });
      for (const d of mismatchDetails) {
        d.margin = round(
          await topMargin(target, [...prompts[d.prompt], ...plain[d.prompt].tokens.slice(0, d.at)]),
          5,
        );
        process.exitCode = 1;
        console.error(
          `!!! ${backend}: GREEDY OUTPUT DIFFERS FROM THE TARGET ALONE at k=${d.k}, prompt ${d.prompt}, token ${d.at}: target alone ${d.targetAlone}, speculative ${d.speculative} (target's top-2 logit margin there ${d.margin})`,
        );
      }
      results.push({ label: mode.label, temperature: mode.temperature, rows, mismatchDetails });

      log(`${mode.label}${mode.temperature > 0 ? ` (seeded: prompt i uses seed ${s.seed}+i)` : ''}:`);
      for (const line of formatTable(
        rows.map((r) => ({
          k: r.k === 0 ? '0 (target)' : r.k,
          α: r.alpha === null ? '–' : r.alpha.toFixed(3),
          'tokens/pass': r.tokensPerPass.toFixed(2),
          'mean k': r.meanK.toFixed(1),
          'tok/s': r.tokensPerS.toFixed(1),
          speedup: r.speedup.toFixed(2),
          mismatches: r.mismatches ?? 'n/a',
        })),
      )) {
        log(line);
      }
      const best = rows
        .filter((r) => typeof r.k === 'number' && r.k > 0)
        .reduce((a, b) => (b.speedup > a.speedup ? b : a));
      const adaptive = rows.find((r) => r.k === 'adaptive')!;
      const keptRow = rows.find((r) => r.k === 'adaptive-kept')!;
      const bad = rows.reduce((n, r) => n + (r.mismatches ?? 0), 0);
      log(
        `best fixed k=${best.k}: ${best.speedup.toFixed(2)}×; adaptive ${adaptive.speedup.toFixed(2)}× (mean k ${adaptive.meanK.toFixed(1)}, ${(adaptive.speedup / best.speedup).toFixed(2)} of the best fixed k), from the last call's state ${keptRow.speedup.toFixed(2)}× (${(keptRow.speedup / best.speedup).toFixed(2)})${mode.temperature === 0 ? `; ${bad === 0 ? 'every output token-identical to the target alone' : `${bad} OUTPUTS DIFFER FROM THE TARGET ALONE`}` : ''}`,
      );
    }
    log(
      `took ${(loadS + (warmupMs + measuredMs) / 1000).toFixed(0)} s (load ${loadS.toFixed(1)} s, warm-up ${(warmupMs / 1000).toFixed(0)} s, measured ${(measuredMs / 1000).toFixed(0)} s)`,
    );
    const cpuList = cpus();
    return {
      backend,
      date: new Date().toISOString(),
      node: process.version,
      machine: {
        cpu: cpuList[0]?.model.trim() ?? 'unknown',
        cores: cpuList.length,
        ...(backend === 'wasm' ? { kernelThreads: kernelThreadCount() } : {}),
      },
      commit: benchCommit(),
      target: modelInfo(s.target),
      draft: { ...modelInfo(s.draft), weights: s.draftWeights },
      ...(s.verifyOnDevice ? { verifyOnDevice: true } : {}),
      promptsFile: s.prompts,
      prompts: prompts.length,
      promptTokens,
      newTokens,
      maxK,
      seed: s.seed,
      modes: results,
      seconds: {
        load: round(loadS, 1),
        warmup: round(warmupMs / 1000, 1),
        measured: round(measuredMs / 1000, 1),
      },
    };
  } finally {
    target.dispose();
    draft.dispose();
  }
}

/** Where a backend's section goes in a RESULTS.md that has none for it yet. */
export const PAIR_ANCHOR = "<!-- pair:insert (new backends' sections go above this line) -->";

export const RESULTS_TEMPLATE = `# Results

Measurements kept current by the benchmarks that write them. Text between
\`<!-- name:start -->\` and \`<!-- name:end -->\` markers is rewritten by the next
run of its benchmark on that backend; everything else is kept.

## Trained draft/target pair

\`pnpm bench --only pair\` (\`--backends wasm\` for one backend) decodes held-out
Python documentation (\`models/heldout-prompts.json\`) with the trained target
\`models/specstream-docs-target\` and draft \`models/specstream-docs-draft\`: the
target alone (k = 0, core's \`generate\`), fixed k = 1…8 and \`adaptiveK()\` (a
fresh policy per prompt, and "from the last call's state": each call's policy started from
what the previous call's learned, \`adaptiveK({ state })\`, as \`specstream generate\` does
between runs through its \`--k-state\` file),
greedy and at temperature 0.8 (seeded). α is the
acceptance rate, tokens/pass the tokens emitted per target pass; decode
tokens/s count the tokens after the first over the time after the first, so
neither the plain nor the speculative runs include the target's prefill;
speedup is over the target alone in the same run (every setting runs on a
prompt before the next prompt). Greedy outputs are checked token for token
against the target alone's. Flags: \`--pair-target\`, \`--pair-draft\`,
\`--pair-draft-weights\` (f32; q8 or q4 run the draft quantized and write a
section of their own), \`--pair-prompts\`, \`--pair-tokenizer\`, \`--pair-prompts-count\` (16),
\`--pair-tokens\` (96), \`--pair-prompt-tokens\` (128), \`--pair-max-k\` (8),
\`--pair-temperature\` (0.8), \`--pair-seed\`, \`--pair-results\`. JSON with
every number in \`bench-results/pair.json\`.

${PAIR_ANCHOR}
`;

function sectionMeta(r: PairMeasured): string[] {
  const threads = r.machine.kernelThreads !== undefined ? `, ${r.machine.kernelThreads} kernel threads` : '';
  const dirty = r.commit.dirty === null ? '' : r.commit.dirty ? ' (working tree dirty)' : ' (clean)';
  const sampled = r.modes.filter((m) => m.temperature > 0).map((m) => m.temperature);
  return [
    `Machine: ${r.machine.cpu}, ${r.machine.cores} cores${threads} · backend **${r.backend}** · commit \`${r.commit.hash}\`${dirty} · ${r.date} · Node ${r.node}`,
    `Target ${describeModel(r.target)}; draft ${describeModel(r.draft)}.`,
    `${r.prompts} held-out prompts from \`${r.promptsFile}\` (${r.promptTokens.min}–${r.promptTokens.max} tokens, mean ${r.promptTokens.mean}), ${r.newTokens} new tokens each${sampled.length > 0 ? `; temperature ${sampled.join(', ')} seeded (prompt i: seed ${r.seed} + i, the same for every k)` : ''}.`,
    `Run: ${(r.seconds.load + r.seconds.warmup + r.seconds.measured).toFixed(0)} s (load ${r.seconds.load} s, warm-up ${r.seconds.warmup} s, measured ${r.seconds.measured} s).`,
    ...(r.verifyOnDevice ? ['Greedy iterations read the device once (`verifyOnDevice`).'] : []),
  ];
}

/** Writes bench-results/pair.json, the charts and RESULTS.md's section of every backend measured. */
export function writePairResults(
  results: Record<string, PairResult>,
  s: PairSettings,
  log: (line: string) => void,
): void {
  mkdirSync('bench-results', { recursive: true });
  writeFileSync(
    'bench-results/pair.json',
    `${JSON.stringify({ settings: s, backends: results }, null, 2)}\n`,
  );
  log('wrote bench-results/pair.json');
  const measured = Object.values(results).filter((r): r is PairMeasured => !('skipped' in r));
  if (measured.length === 0) return;
  const docsDir = join(dirname(s.results), 'docs', 'bench');
  mkdirSync(docsDir, { recursive: true });
  let doc = existsSync(s.results) ? readFileSync(s.results, 'utf8') : RESULTS_TEMPLATE;
  const colors = ['#1f77b4', '#d62728', '#2ca02c'];
  // A run with the draft in another format keeps its own section beside the f32 draft's.
  const keyOf = (r: PairMeasured) =>
    r.draft.weights && r.draft.weights !== 'f32' ? `${r.backend}-draft-${r.draft.weights}` : r.backend;
  for (const r of measured) {
    const key = keyOf(r);
    const label = key === r.backend ? r.backend : `${r.backend}, draft in ${r.draft.weights}`;
    const svg = pairChartSvg({
      title: `Trained pair on ${label}: decode tokens/s and acceptance α against k`,
      series: r.modes.map((m, i) => {
        const adaptive = m.rows.find((row) => row.k === 'adaptive');
        return {
          label: m.temperature > 0 ? `temperature ${m.temperature} (seeded)` : m.label,
          color: colors[i % colors.length],
          points: m.rows
            .filter((row): row is PairRow & { k: number } => typeof row.k === 'number')
            .map((row) => ({ k: row.k, tokensPerS: row.tokensPerS, alpha: row.alpha })),
          adaptive: adaptive && {
            meanK: adaptive.meanK,
            tokensPerS: adaptive.tokensPerS,
            alpha: adaptive.alpha,
          },
        };
      }),
    });
    const name = `pair-${key}.svg`;
    writeFileSync(join('bench-results', name), svg);
    writeFileSync(join(docsDir, name), svg);
    doc = replaceMarkedSection(
      doc,
      `pair:${key}`,
      pairMarkdownSection({
        backend: label,
        meta: sectionMeta(r),
        modes: r.modes,
        chart: `docs/bench/${name}`,
      }),
      PAIR_ANCHOR,
    );
    log(`wrote bench-results/${name}, ${join(docsDir, name)}`);
  }
  writeFileSync(s.results, doc);
  log(`wrote ${s.results} (sections ${measured.map((r) => `pair:${keyOf(r)}`).join(', ')})`);
  // Repeated last, where it is seen: a greedy output that differs from the target alone's is a bug.
  for (const r of measured) {
    const bad = r.modes.flatMap((m) => m.mismatchDetails);
    if (bad.length > 0) {
      process.exitCode = 1;
      console.error(
        `!!! pair on ${r.backend}: ${bad.length} greedy speculative outputs differ from the target alone's (details in bench-results/pair.json)`,
      );
    }
  }
}
