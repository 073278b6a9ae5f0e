/**
 * Ids of the k largest logits (ascending), skipping -Infinity masks; among
 * equal logits the lower id wins. A min-heap of size k keeps this O(V log k)
 * rather than sorting the whole vocabulary.
 */
export function topKIds(logits: Float32Array, k: number): Int32Array {
  const heap = new Int32Array(Math.min(k, logits.length));
  let size = 0;
  for (let id = 0; id < logits.length; id++) {
    const value = logits[id];
    if (value === Number.NEGATIVE_INFINITY) continue;
    if (size < heap.length) {
      heap[size] = id;
      siftUp(heap, size, logits);
      size++;
    } else if (size > 0 && value > logits[heap[0]]) {
      // Strict: ids arrive ascending, so an equal logit here has the higher id and loses the tie.
      heap[0] = id;
      siftDown(heap, size, logits);
    }
  }
  return heap.subarray(0, size).sort();
}

/** The heap's order: lower logit ranks below; on equal logits the higher id ranks below. */
function ranksBelow(a: number, b: number, logits: Float32Array): boolean {
  return logits[a] < logits[b] || (logits[a] === logits[b] && a > b);
}

function siftUp(heap: Int32Array, index: number, logits: Float32Array): void {
  let child = index;
  while (child > 0) {
    const parent = (child - 1) >> 1;
    if (!ranksBelow(heap[child], heap[parent], logits)) return;
    swap(heap, child, parent);
    child = parent;
  }
}

function siftDown(heap: Int32Array, size: number, logits: Float32Array): void {
  let parent = 0;
  for (;;) {
    let lowest = parent;
    const left = 2 * parent + 1;
    const right = left + 1;
    if (left < size && ranksBelow(heap[left], heap[lowest], logits)) lowest = left;
    if (right < size && ranksBelow(heap[right], heap[lowest], logits)) lowest = right;
    if (lowest === parent) return;
    swap(heap, parent, lowest);
    parent = lowest;
  }
}

function swap(heap: Int32Array, i: number, j: number): void {
  const held = heap[i];
  heap[i] = heap[j];
  heap[j] = held;
}
