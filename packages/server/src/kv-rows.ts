import type { CausalLm, CausalLmState } from '@specstream/core';
import * as tf from '@tensorflow/tfjs-core';

/** A row's cache moving from one state to another: `from`'s row `from` becomes `to`'s row `to`. */
export interface RowMove {
  from: number;
  to: number;
}

/**
 * Copies rows' KV caches between two states of the same model (of any batch sizes) through the
 * KvCache interface (`read` and `write`), so it works with every cache strategy and backend:
 * row `to` of `into` then holds exactly what row `from` of `from` held, and its length is the
 * source row's. The scheduler uses it to move a prompt prefilled on a small staging state into
 * the decoding batch, and to move the batch's rows into a larger or smaller state.
 *
 * `write` stores the same number of slots for every row of `into`; rows that do not move get
 * them past their own length (stale slots, masked until overwritten) when there is room, else
 * their own content written back over itself.
 *
 * The Decoder contract has no call that raises a row's length other than extendStep, so the
 * new lengths are set on the state's `lengths` directly: createCausalLm's states keep their
 * positions there and nowhere else (rollback sets the same array).
 */
export function copyRows(model: CausalLm, from: CausalLmState, into: CausalLmState, moves: RowMove[]): void {
  if (moves.length === 0) return;
  for (const m of moves) {
    if (m.from < 0 || m.from >= from.batch || m.to < 0 || m.to >= into.batch) {
      throw new RangeError(`copyRows: move ${m.from} -> ${m.to} is outside the states' rows`);
    }
  }
  const lengths = moves.map((m) => from.lengths[m.from]);
  const size = Math.max(...lengths);
  if (size > into.maxLength) {
    throw new RangeError(`copyRows: a row of ${size} positions does not fit a state of ${into.maxLength}`);
  }
  if (size > 0) {
    const movedTo = new Map(moves.map((m) => [m.to, m.from]));
    const starts: number[] = [];
    const ownContent: boolean[] = [];
    for (let r = 0; r < into.batch; r++) {
      const stays = !movedTo.has(r);
      const room = into.lengths[r] + size <= into.maxLength;
      ownContent.push(stays && !room);
      starts.push(stays && room ? into.lengths[r] : 0);
    }
    const needOwn = ownContent.some(Boolean);
    const needBlank = ownContent.some((own, r) => !own && !movedTo.has(r));
    for (let layer = 0; layer < model.config.layers; layer++) {
      tf.tidy(() => {
        const source = from.cache.read(layer, size);
        const own = needOwn ? into.cache.read(layer, size) : undefined;
        const [, heads, , dim] = source.keys.shape;
        const blank = needBlank ? tf.zeros([1, heads, size, dim]) : undefined;
        const gather = (pick: (c: { keys: tf.Tensor4D; values: tf.Tensor4D }) => tf.Tensor4D) => {
          const rows: tf.Tensor4D[] = [];
          for (let r = 0; r < into.batch; r++) {
            const src = movedTo.get(r);
            if (src !== undefined) rows.push(tf.slice(pick(source), [src, 0, 0, 0], [1, heads, size, dim]));
            else if (ownContent[r]) rows.push(tf.slice(pick(own!), [r, 0, 0, 0], [1, heads, size, dim]));
            else rows.push(blank as tf.Tensor4D);
          }
          return tf.concat(rows, 0) as tf.Tensor4D;
        };
        into.cache.write(
          layer,
          gather((c) => c.keys),
          gather((c) => c.values),
          starts,
        );
      });
    }
  }
  const positions = into.lengths as Int32Array;
  moves.forEach((m, i) => {
    positions[m.to] = lengths[i];
  });
}
