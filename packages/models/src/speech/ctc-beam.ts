import { InvalidArgumentError } from '@specstream/core';
import { STREAMING_ENCODER_BLANK_ID } from '../streaming-encoder/config.js';
import { CHAR_LM_END, type CharNgramLm } from './char-ngram-lm.js';
import { CTC_GREEDY_START, type CtcEmissions, ctcGreedyChunk } from './ctc.js';
import { NOT_A_WORD, WORD_LEXICON_ROOT, type WordLexicon } from './word-lexicon.js';
import type { WordNgramLm } from './word-ngram-lm.js';

/**
 * CTC prefix beam search with shallow fusion of a character LM (and its word LM), chunk by chunk.
 * Each kept prefix (a labelling: what the collapsed paths spell) carries the log-probability of
 * the paths that spell it and end in a blank, and of those that end in its last label; a frame
 * extends every prefix by every label, merges what spells the same and keeps the `beamWidth`
 * best by
 *
 *   log P_ctc(prefix) + lmWeight · log P_lm(prefix) + lengthBonus · labels(prefix)
 *     − oovPenalty · words(prefix) not in the LM's text + wordLmWeight · log P_wordLm(its words),
 *
 * the LM scoring each label when it is appended, and its end of sentence at the end
 * (ctcBeamFinal); the word LM (the LM's `wordLm`, which sees whole words before, however long)
 * scores a word when a space ends it, and the last word and the end of the sentence at the end.
 * A word is out of the text's vocabulary from its first letter no word of the text begins with,
 * or when it ends (a space, or the end) without being one. The LM, lexicon and word LM terms
 * belong to the prefix, not to its paths, so merging paths stays exact. The state carries the
 * beam across chunks and a frame's step depends on nothing else, so decoding any split of the
 * frames gives exactly what decoding them at once does.
 */
export interface CtcBeamSettings {
  /** Prefixes kept after each frame. */
  beamWidth: number;
  /** A character LM over the recognizer's labels; none: acoustic scores only. */
  lm?: CharNgramLm;
  /** α, the LM's weight (default CTC_BEAM_LM_WEIGHT; ignored without an LM). */
  lmWeight?: number;
  /** β, added per label of a prefix: offsets the LM's (and the blank's) bias to short outputs (default CTC_BEAM_LENGTH_BONUS with an LM, else 0). */
  lengthBonus?: number;
  /** γ, taken per word that is not in the LM's text (its `words`; default CTC_BEAM_OOV_PENALTY when it has them, else 0). */
  oovPenalty?: number;
  /** δ, the weight of the LM's word n-gram model (its `wordLm`), which scores each word as it ends (default CTC_BEAM_WORD_LM_WEIGHT when it has one, else 0). */
  wordLmWeight?: number;
}

/**
 * α, β, γ and δ for the shipped recognizer (the 2026-12-07 ensemble of two recognizers), its
 * order-8 character LM and order-3 word LM, tuned by bench/speech/tune-beam.ts on held-out
 * sentences 41–289 in trained voices: sentences the speech benchmark (the first 40) does not use,
 * and not the held-out voice. Word error rate there: 5.38% at α 0.5 β 1.5 γ 5 δ 0.3, the best of
 * α {0.5, 0.7} × β {1, 1.5, 2, 2.5} × δ {0, 0.3, 0.5}; without the word LM the best was 5.41%
 * (α 0.7 β 1): a tie in trained voices, while the held-out voice, read beside and not chosen on,
 * went from 21.90% to 21.35% (docs/bench/2026-12-07g/tune-beam-word-lm.txt). Earlier: γ 2–8
 * around 5 did worse (docs/bench/2026-12-07e/tune-beam-ensemble.txt); the ensemble's first member
 * alone gave 7.1% at its own best without the OOV penalty (α 1.1 β 2.5) and 6.5% with γ 3
 * (docs/bench/2026-12-07d/tune-beam.txt, docs/bench/2026-12-07e/tune-beam-oov.txt).
 */
export const CTC_BEAM_LM_WEIGHT = 0.5;
export const CTC_BEAM_LENGTH_BONUS = 1.5;
export const CTC_BEAM_OOV_PENALTY = 5;
/** δ: see CTC_BEAM_LM_WEIGHT. */
export const CTC_BEAM_WORD_LM_WEIGHT = 0.3;
/** The beam width the CLI and the server decode whole transcripts with (see CTC_BEAM_LM_WEIGHT). */
export const CTC_BEAM_WIDTH = 32;

/**
 * A labelling, as a list from its last label back: immutable and shared by its extensions.
 * `frame` times its last label: the output frame of the most probable appending of `label` to
 * `parent` the search has seen (see ctcBeamFinal). A more probable appending later makes a new
 * list, so the lists of its extensions keep the timing they were made with.
 */
interface Prefix {
  readonly label: number;
  readonly frame: number;
  /** log P of that appending: the paths through the parent up to the frame before, times the label's probability. */
  readonly emission: number;
  readonly parent: Prefix | undefined;
  readonly length: number;
  readonly lmState: number;
  /** Σ log P_lm of its labels (unweighted). */
  readonly lmLogProb: number;
  /** Its last word's spelling in the LM's lexicon (WORD_LEXICON_ROOT after a space or none). */
  readonly lexiconNode: number;
  /** Its words (the last one included once it left the lexicon) that are not in the LM's text. */
  readonly oovWords: number;
  /** The word LM's state after its complete words (0 without one). */
  readonly wordState: number;
  /** Σ log P_wordLm of its complete words (unweighted). */
  readonly wordLogProb: number;
}

interface Hypothesis {
  readonly prefix: Prefix;
  /** log P(paths spelling the prefix that end in a blank / in its last label). */
  readonly logBlank: number;
  readonly logLabel: number;
  /** What the beam is ranked by (without the LM's end of sentence). */
  readonly score: number;
}

export interface CtcBeamState {
  readonly settings: Readonly<Required<Omit<CtcBeamSettings, 'lm'>>> & {
    readonly lm?: CharNgramLm;
    /** The LM's words when the OOV penalty or the word LM is on. */
    readonly lexicon?: WordLexicon;
    /** The LM's word n-gram model when its weight is not 0. */
    readonly wordLm?: WordNgramLm;
  };
  /** Best first. */
  readonly hypotheses: readonly Hypothesis[];
  /** Output frames decoded so far: the stream index of the next one. */
  readonly frames: number;
}

/** The beam before the first frame: the empty labelling, certain. */
export function ctcBeamStart(settings: CtcBeamSettings): CtcBeamState {
  const { beamWidth, lm } = settings;
  if (!Number.isInteger(beamWidth) || beamWidth < 1) {
    throw new InvalidArgumentError(`beam width must be a positive integer, got ${beamWidth}`);
  }
  const lmWeight = lm === undefined ? 0 : (settings.lmWeight ?? CTC_BEAM_LM_WEIGHT);
  const lengthBonus = settings.lengthBonus ?? (lm === undefined ? 0 : CTC_BEAM_LENGTH_BONUS);
  const oovPenalty = lm?.words === undefined ? 0 : (settings.oovPenalty ?? CTC_BEAM_OOV_PENALTY);
  if (!Number.isFinite(lmWeight) || !Number.isFinite(lengthBonus)) {
    throw new InvalidArgumentError(
      `LM weight and length bonus must be finite, got ${lmWeight}, ${lengthBonus}`,
    );
  }
  if (!(oovPenalty >= 0) || !Number.isFinite(oovPenalty)) {
    throw new InvalidArgumentError(`OOV penalty must be finite and >= 0, got ${oovPenalty}`);
  }
  if (settings.oovPenalty !== undefined && settings.oovPenalty !== 0 && lm?.words === undefined) {
    throw new InvalidArgumentError(
      'an OOV penalty needs an LM that knows the words of its text (trainCharNgramLm)',
    );
  }
  const wordLmWeight = lm?.wordLm === undefined ? 0 : (settings.wordLmWeight ?? CTC_BEAM_WORD_LM_WEIGHT);
  if (!(wordLmWeight >= 0) || !Number.isFinite(wordLmWeight)) {
    throw new InvalidArgumentError(`word LM weight must be finite and >= 0, got ${wordLmWeight}`);
  }
  if (settings.wordLmWeight !== undefined && settings.wordLmWeight !== 0 && lm?.wordLm === undefined) {
    throw new InvalidArgumentError(
      'a word LM weight needs an LM with a word n-gram model (trainCharNgramLm)',
    );
  }
  const wordLm = wordLmWeight > 0 ? lm?.wordLm : undefined;
  const lexicon = oovPenalty > 0 || wordLm !== undefined ? lm?.words : undefined;
  const empty: Prefix = {
    label: STREAMING_ENCODER_BLANK_ID,
    frame: -1,
    emission: 0,
    parent: undefined,
    length: 0,
    lmState: lm?.start ?? 0,
    lmLogProb: 0,
    lexiconNode: WORD_LEXICON_ROOT,
    oovWords: 0,
    wordState: wordLm?.start ?? 0,
    wordLogProb: 0,
  };
  return {
    settings: { beamWidth, lm, lmWeight, lengthBonus, oovPenalty, wordLmWeight, lexicon, wordLm },
    hypotheses: [{ prefix: empty, logBlank: 0, logLabel: -Infinity, score: 0 }],
    frames: 0,
  };
}

/** Decodes the next output frames: `logits` [frames × vocabSize], frame-major, unnormalised. */
export function ctcBeamChunk(state: CtcBeamState, logits: Float32Array, vocabSize: number): CtcBeamState {
  checkLmVocabulary(state, vocabSize);
  const count = logits.length / vocabSize;
  const logProbs = new Float64Array(vocabSize);
  let hypotheses = state.hypotheses;
  for (let f = 0; f < count; f++) {
    logSoftmaxRow(logits, f * vocabSize, logProbs);
    hypotheses = beamStep(state.settings, hypotheses, logProbs, state.frames + f);
  }
  return { settings: state.settings, hypotheses, frames: state.frames + count };
}

function checkLmVocabulary({ settings: { lm } }: CtcBeamState, vocabSize: number): void {
  if (lm !== undefined && lm.vocabulary.length !== vocabSize) {
    throw new InvalidArgumentError(
      `the LM has ${lm.vocabulary.length} labels but the logits have ${vocabSize} per frame`,
    );
  }
}

/** A prefix of the next frame's beam, its probabilities being summed. */
interface Candidate {
  /** Its list, kept as it is; none when a list must be made: a new prefix, or its last label re-timed. */
  prefix: Prefix | undefined;
  /** The list a made one extends. */
  parent: Prefix | undefined;
  label: number;
  length: number;
  lmLogProb: number;
  lexiconNode: number;
  oovWords: number;
  wordLogProb: number;
  /** log P of the appending that timed its last label (see Prefix.emission). */
  emission: number;
  logBlank: number;
  logLabel: number;
  score: number;
}

function beamStep(
  settings: CtcBeamState['settings'],
  hypotheses: readonly Hypothesis[],
  logProbs: Float64Array,
  frame: number,
): Hypothesis[] {
  const blank = STREAMING_ENCODER_BLANK_ID;
  // The prefixes already in the beam, by last label: an extension may spell one of them.
  const candidates: Candidate[] = [];
  const byLabel = new Map<number, Candidate[]>();
  for (const { prefix, logBlank, logLabel } of hypotheses) {
    const candidate: Candidate = {
      prefix,
      parent: prefix.parent,
      label: prefix.label,
      length: prefix.length,
      lmLogProb: prefix.lmLogProb,
      lexiconNode: prefix.lexiconNode,
      oovWords: prefix.oovWords,
      wordLogProb: prefix.wordLogProb,
      emission: prefix.emission,
      logBlank: logAdd(logBlank, logLabel) + logProbs[blank],
      logLabel: prefix.length > 0 ? logLabel + logProbs[prefix.label] : -Infinity,
      score: 0,
    };
    candidates.push(candidate);
    const same = byLabel.get(prefix.label);
    if (same === undefined) byLabel.set(prefix.label, [candidate]);
    else same.push(candidate);
  }
  for (const { prefix, logBlank, logLabel } of hypotheses) {
    const lmLogProbs = settings.lm?.logProbs(prefix.lmState);
    for (let label = 0; label < logProbs.length; label++) {
      if (label === blank) continue;
      // A repeated label is a new emission only after a blank; otherwise it continues the last one.
      const paths = label === prefix.label ? logBlank : logAdd(logBlank, logLabel);
      const logProb = paths + logProbs[label];
      // No path spells it (a repeat right after its first emission): not a prefix at all.
      if (logProb === -Infinity) continue;
      const existing = byLabel.get(label)?.find((c) => sameLabelling(c.parent, prefix));
      if (existing === undefined) {
        const [lexiconNode, oovWords] = lexiconStep(settings.lexicon, prefix, label);
        const ended = endedWordLogProb(settings, prefix, label);
        candidates.push({
          prefix: undefined,
          parent: prefix,
          label,
          length: prefix.length + 1,
          lmLogProb: prefix.lmLogProb + (lmLogProbs === undefined ? 0 : lmLogProbs[label]),
          lexiconNode,
          oovWords,
          wordLogProb: prefix.wordLogProb + ended,
          emission: logProb,
          logBlank: -Infinity,
          logLabel: logProb,
          score: 0,
        });
        continue;
      }
      existing.logLabel = logAdd(existing.logLabel, logProb);
      if (logProb > existing.emission) {
        existing.prefix = undefined;
        existing.parent = prefix;
        existing.emission = logProb;
      }
    }
  }
  const { beamWidth, lmWeight, lengthBonus, oovPenalty, wordLmWeight } = settings;
  for (const c of candidates) {
    c.score =
      logAdd(c.logBlank, c.logLabel) +
      lmWeight * c.lmLogProb +
      lengthBonus * c.length -
      oovPenalty * c.oovWords +
      wordLmWeight * c.wordLogProb;
  }
  // A stable sort: ties keep the order above, so the step is deterministic.
  candidates.sort((a, b) => b.score - a.score);
  return candidates.slice(0, beamWidth).map((c) => ({
    prefix: c.prefix ?? newPrefix(settings, c, frame),
    logBlank: c.logBlank,
    logLabel: c.logLabel,
    score: c.score,
  }));
}

function newPrefix({ lm, lexicon, wordLm }: CtcBeamState['settings'], c: Candidate, frame: number): Prefix {
  const parent = c.parent!;
  // A space ends the word before it (none after another space or at the start).
  const endsWord =
    wordLm !== undefined && c.label === lexicon!.space && parent.lexiconNode !== WORD_LEXICON_ROOT;
  return {
    label: c.label,
    frame,
    emission: c.emission,
    parent,
    length: c.length,
    lmState: lm === undefined ? 0 : lm.next(parent.lmState, c.label),
    lmLogProb: c.lmLogProb,
    lexiconNode: c.lexiconNode,
    oovWords: c.oovWords,
    wordState: endsWord ? wordLm.next(parent.wordState, parent.lexiconNode) : parent.wordState,
    wordLogProb: c.wordLogProb,
  };
}

/** log P_wordLm of the word `prefix` ends when `label` follows it: a space after a word; else 0. */
function endedWordLogProb(
  { lexicon, wordLm }: CtcBeamState['settings'],
  prefix: Prefix,
  label: number,
): number {
  if (wordLm === undefined || label !== lexicon!.space || prefix.lexiconNode === WORD_LEXICON_ROOT) return 0;
  return wordLm.logProb(prefix.wordState, prefix.lexiconNode);
}

/** log P_wordLm of the last word (if the prefix ends in one) and then of the end of the sentence. */
function wordLmEndLogProb(wordLm: WordNgramLm, prefix: Prefix): number {
  if (prefix.lexiconNode === WORD_LEXICON_ROOT) return wordLm.endLogProb(prefix.wordState);
  const last = wordLm.logProb(prefix.wordState, prefix.lexiconNode);
  return last + wordLm.endLogProb(wordLm.next(prefix.wordState, prefix.lexiconNode));
}

/** The lexicon node and OOV words after `prefix` followed by `label` (both stay 0 without a lexicon). */
function lexiconStep(lexicon: WordLexicon | undefined, prefix: Prefix, label: number): [number, number] {
  if (lexicon === undefined) return [WORD_LEXICON_ROOT, 0];
  const node = prefix.lexiconNode;
  if (label === lexicon.space)
    return [WORD_LEXICON_ROOT, prefix.oovWords + (endsUnknownWord(lexicon, node) ? 1 : 0)];
  if (node === NOT_A_WORD) return [NOT_A_WORD, prefix.oovWords];
  const next = lexicon.next(node, label);
  return [next, prefix.oovWords + (next === NOT_A_WORD ? 1 : 0)];
}

/** Whether a word spelled up to `node` and ending there is out of the vocabulary and not yet counted: a proper prefix of words only. */
function endsUnknownWord(lexicon: WordLexicon, node: number): boolean {
  return node !== WORD_LEXICON_ROOT && node !== NOT_A_WORD && !lexicon.isWord(node);
}
/**
 * Whether two prefixes spell the same labels. Kept prefixes spell different labellings, but a
 * prefix can outlive its parent in the beam and the parent's labelling be spelled again by a new
 * list, so identity is not enough; the lists rejoin where they were first shared.
 */
function sameLabelling(a: Prefix | undefined, b: Prefix | undefined): boolean {
  while (a !== b) {
    if (a === undefined || b === undefined || a.length !== b.length || a.label !== b.label) return false;
    a = a.parent;
    b = b.parent;
  }
  return true;
}

function logAdd(a: number, b: number): number {
  if (a === -Infinity) return b;
  if (b === -Infinity) return a;
  return a > b ? a + Math.log1p(Math.exp(b - a)) : b + Math.log1p(Math.exp(a - b));
}

function logSoftmaxRow(logits: Float32Array, start: number, out: Float64Array): void {
  let max = -Infinity;
  for (let i = 0; i < out.length; i++) max = Math.max(max, logits[start + i]);
  let sum = 0;
  for (let i = 0; i < out.length; i++) sum += Math.exp(logits[start + i] - max);
  const logSum = max + Math.log(sum);
  for (let i = 0; i < out.length; i++) out[i] = logits[start + i] - logSum;
}

/** The labels of the best prefix so far and the frames where they were appended: a partial result, which later frames may revise. */
export function ctcBeamBest(state: CtcBeamState): CtcEmissions {
  return emissionsOf(state.hypotheses[0].prefix);
}

/**
 * The final labelling, once the frames are over: the beam re-ranked with the LM's probability of
 * the end of the sentence after each prefix. Each label is timed at the frame of its most
 * probable appending to the labels before it (the paths up to the frame before, times the
 * label's probability at that frame): where the best path emits it, when the emission is clear,
 * which is the frame the greedy decoder gives. It approximates the best path's alignment: only
 * appendings to prefixes in the beam at the time are seen, and a label keeps the timing it had
 * when the next label was appended.
 */
export function ctcBeamFinal(state: CtcBeamState): CtcEmissions {
  const { lm, lmWeight, lengthBonus, oovPenalty, lexicon, wordLm, wordLmWeight } = state.settings;
  let best: Hypothesis | undefined;
  let bestScore = -Infinity;
  for (const h of state.hypotheses) {
    const end = lm === undefined ? 0 : lmWeight * lm.logProbs(h.prefix.lmState)[CHAR_LM_END];
    // The last word ends with the sentence: out of the vocabulary if only a proper prefix of words.
    const lastWord = lexicon !== undefined && endsUnknownWord(lexicon, h.prefix.lexiconNode) ? 1 : 0;
    const score =
      logAdd(h.logBlank, h.logLabel) +
      lmWeight * h.prefix.lmLogProb +
      end +
      lengthBonus * h.prefix.length -
      oovPenalty * (h.prefix.oovWords + lastWord) +
      (wordLm === undefined ? 0 : wordLmWeight * (h.prefix.wordLogProb + wordLmEndLogProb(wordLm, h.prefix)));
    if (best === undefined || score > bestScore) {
      best = h;
      bestScore = score;
    }
  }
  return emissionsOf(best!.prefix);
}

/** A labelling the beam holds, with log P_ctc (the paths that spell it) and its score (without the LM's end of sentence). */
export interface CtcBeamLabelling extends CtcEmissions {
  logProb: number;
  score: number;
}

/** Every labelling in the beam, best first: an n-best list. */
export function ctcBeamLabellings(state: CtcBeamState): CtcBeamLabelling[] {
  return state.hypotheses.map((h) => ({
    ...emissionsOf(h.prefix),
    logProb: logAdd(h.logBlank, h.logLabel),
    score: h.score,
  }));
}

function emissionsOf(prefix: Prefix): CtcEmissions {
  const labels: number[] = new Array(prefix.length);
  const frames: number[] = new Array(prefix.length);
  for (let p: Prefix | undefined = prefix; p !== undefined && p.length > 0; p = p.parent) {
    labels[p.length - 1] = p.label;
    frames[p.length - 1] = p.frame;
  }
  return { labels, frames };
}

/** How to turn CTC logits into labels: greedy (the best label of each frame), or a beam search. */
export type CtcDecoder = 'greedy' | CtcBeamSettings;

/** One stream's decoding, fed chunk by chunk (mutable). */
export interface CtcDecoding {
  /** Decodes the next output frames' logits, [frames × vocabSize]. */
  push(logits: Float32Array): void;
  /** The labels so far: greedy's are final once emitted, a beam's best may be revised. */
  best(): CtcEmissions;
  /** The final labels, once the logits are over. */
  finish(): CtcEmissions;
}

/** Starts decoding a stream of logits of `vocabSize` labels; a bad setting or an LM of another vocabulary throws now. */
export function startCtcDecoding(decoder: CtcDecoder, vocabSize: number): CtcDecoding {
  if (decoder === 'greedy') return greedyDecoding(vocabSize);
  let state = ctcBeamStart(decoder);
  checkLmVocabulary(state, vocabSize);
  return {
    push(logits) {
      state = ctcBeamChunk(state, logits, vocabSize);
    },
    best: () => ctcBeamBest(state),
    finish: () => ctcBeamFinal(state),
  };
}

function greedyDecoding(vocabSize: number): CtcDecoding {
  let state = CTC_GREEDY_START;
  const emissions: CtcEmissions = { labels: [], frames: [] };
  const copy = () => ({ labels: [...emissions.labels], frames: [...emissions.frames] });
  return {
    push(logits) {
      const step = ctcGreedyChunk(state, logits, vocabSize);
      state = step.state;
      emissions.labels.push(...step.emitted.labels);
      emissions.frames.push(...step.emitted.frames);
    },
    best: copy,
    finish: copy,
  };
}
