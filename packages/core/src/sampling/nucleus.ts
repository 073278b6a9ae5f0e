import { maxOf } from './candidates.js';
import { FLOAT32_SLACK } from './precision.js';

/**
 * LM distributions are peaked: tokens below 1e-4 of the top one rarely matter
 * to the nucleus, and skipping them shrinks the search from ~150k to hundreds.
 */
const POOL_CUTOFF = 1e-4;

/**
 * Top-p: positions (ascending, into `probs`, which sums to 1 and is in id
 * order) of the smallest set of most probable entries whose mass reaches
 * topP; always at least one; among equal probabilities the lower position
 * goes first. Nothing is sorted: a quickselect finds the smallest probability
 * inside the set in expected O(n), which matters at ~150k candidates where
 * even a native sort costs more than the whole rest of the pipeline.
 */
export function nucleusPositions(probs: Float64Array, topP: number): Int32Array {
  const target = topP - FLOAT32_SLACK;
  return positionsReaching(probs, nucleusFloor(searchPool(probs, target), target), target);
}

/**
 * A scratch copy of the values the nucleus can come from. All values at or
 * above a cutoff are a prefix of the ranking, so when their mass reaches the
 * target the nucleus lies inside them; otherwise every value is needed.
 */
function searchPool(probs: Float64Array, target: number): Float64Array {
  const cutoff = maxOf(probs) * POOL_CUTOFF;
  const pool = new Float64Array(probs.length);
  let count = 0;
  let mass = 0;
  for (let j = 0; j < probs.length; j++) {
    if (probs[j] >= cutoff) {
      pool[count++] = probs[j];
      mass += probs[j];
    }
  }
  return mass >= target ? pool.subarray(0, count) : probs.slice();
}

/**
 * The smallest probability inside the nucleus. Quickselect by mass: split the
 * range into larger / equal / smaller than a pivot; if the larger part alone
 * reaches what is still needed, the answer lies in it; if adding the equal
 * part reaches it, the pivot is the answer; otherwise both are in and the
 * search goes on in the smaller part. `values` is scratch and gets reordered.
 */
function nucleusFloor(values: Float64Array, target: number): number {
  let lo = 0;
  let hi = values.length;
  let needed = target;
  let pivot = values[0];
  while (lo < hi) {
    pivot = medianOfThree(values[lo], values[(lo + hi) >> 1], values[hi - 1]);
    const [greaterEnd, equalEnd] = partitionDescending(values, lo, hi, pivot);
    const greaterMass = sumRange(values, lo, greaterEnd);
    if (greaterEnd > lo && greaterMass >= needed) {
      hi = greaterEnd;
      continue;
    }
    const equalMass = (equalEnd - greaterEnd) * pivot;
    if (greaterMass + equalMass >= needed) return pivot;
    needed -= greaterMass + equalMass;
    lo = equalEnd;
  }
  // Round-off left the total a hair short of the target: every token is in.
  return pivot;
}

/**
 * Everything above `floor`, plus entries exactly at it (lowest position first)
 * while the mass is still short. The first such entry is always taken: the
 * floor is inside the nucleus by construction.
 */
function positionsReaching(probs: Float64Array, floor: number, target: number): Int32Array {
  let massAbove = 0;
  for (let j = 0; j < probs.length; j++) {
    if (probs[j] > floor) massAbove += probs[j];
  }
  const positions = new Int32Array(probs.length);
  let count = 0;
  let tiesTaken = 0;
  for (let j = 0; j < probs.length; j++) {
    if (probs[j] > floor) {
      positions[count++] = j;
    } else if (probs[j] === floor && (tiesTaken === 0 || massAbove + tiesTaken * floor < target)) {
      positions[count++] = j;
      tiesTaken++;
    }
  }
  return positions.subarray(0, count);
}

/** A pivot from the range's ends and middle: robust against already-ordered rows. */
function medianOfThree(a: number, b: number, c: number): number {
  return Math.max(Math.min(a, b), Math.min(Math.max(a, b), c));
}

/** Three-way partition of [lo, hi): larger than pivot first, then equal, then smaller. */
function partitionDescending(values: Float64Array, lo: number, hi: number, pivot: number): [number, number] {
  let greaterEnd = lo;
  let lessStart = hi;
  let i = lo;
  while (i < lessStart) {
    const value = values[i];
    if (value > pivot) {
      swap(values, i++, greaterEnd++);
    } else if (value < pivot) {
      swap(values, i, --lessStart);
    } else {
      i++;
    }
  }
  return [greaterEnd, lessStart];
}

function sumRange(values: Float64Array, from: number, to: number): number {
  let sum = 0;
  for (let i = from; i < to; i++) sum += values[i];
  return sum;
}

function swap(values: Float64Array, i: number, j: number): void {
  const held = values[i];
  values[i] = values[j];
  values[j] = held;
}
