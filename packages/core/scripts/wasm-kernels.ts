/**
 * Source of core's WebAssembly SIMD kernels, written as WebAssembly text
 * generated here (the row tiles are unrolled), and the script that assembles
 * it into src/kernel-sets/wasm/wasm-binary.ts:
 *
 *   node --import tsx packages/core/scripts/wasm-kernels.ts
 *
 * The module imports tfjs-backend-wasm's own memory, so the kernels read and
 * write tensors where the backend keeps them. Pointers are byte offsets.
 *
 * Matrix product layout. A weight matrix [K, N] is stored as panels of 8
 * columns, [ceil(N/8), K, 8] (zero-padded), so a tile's inner loop reads
 * the weights as one contiguous stream: this is what keeps a one-row product
 * at memory speed and a multi-row one at arithmetic speed (the [K, N] layout
 * strides by N floats per k, which thrashes caches and TLB for wide N).
 * The left operand's R rows are interleaved first, [K][R], so each k needs
 * R broadcast loads at fixed offsets.
 */
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Rows per tile; a product of M rows runs tiles of MAX_TILE_ROWS and one remainder tile. */
export const MAX_TILE_ROWS = 4;

const zero = '(v128.const i32x4 0 0 0 0)';

/**
 * tile{R}(at, panels, bias, c, k, ldc, p0, p1): for panels p0..p1-1,
 * c[r][8p + j] = bias[8p + j] + Σ_k at[k][r] · panels[p][k][j], r < R, j < 8.
 * bias 0 means none; ldc is c's row stride in floats. 2R accumulators plus
 * two weight vectors and one broadcast stay within x64's 16 vector
 * registers up to R = 4 (R = 5 and 6 measured slower per row).
 */
function tile(R: number): string {
  const acc = (r: number, v: number) => `$c${r}_${v}`;
  const lines = [
    `(func $tile${R} (export "tile${R}") (param $at i32) (param $panels i32) (param $bias i32) (param $c i32)`,
    '    (param $k i32) (param $ldc i32) (param $p0 i32) (param $p1 i32)',
    '  (local $pa i32) (local $pb i32) (local $end i32) (local $pc i32) (local $panel i32)',
    '  (local $a v128) (local $b0 v128) (local $b1 v128)',
  ];
  for (let r = 0; r < R; r++) lines.push(`  (local ${acc(r, 0)} v128) (local ${acc(r, 1)} v128)`);
  lines.push(
    '  (local.set $panel (local.get $p0))',
    '  (local.set $pb (i32.add (local.get $panels) (i32.mul (local.get $p0) (i32.shl (local.get $k) (i32.const 5)))))',
    '  (block $done (loop $next_panel',
    '    (br_if $done (i32.ge_u (local.get $panel) (local.get $p1)))',
    '    (if (local.get $bias)',
    '      (then',
    '        (local.set $b0 (v128.load align=4 (i32.add (local.get $bias) (i32.shl (local.get $panel) (i32.const 5)))))',
    '        (local.set $b1 (v128.load offset=16 align=4 (i32.add (local.get $bias) (i32.shl (local.get $panel) (i32.const 5))))))',
    `      (else (local.set $b0 ${zero}) (local.set $b1 ${zero})))`,
  );
  for (let r = 0; r < R; r++) {
    lines.push(`    (local.set ${acc(r, 0)} (local.get $b0)) (local.set ${acc(r, 1)} (local.get $b1))`);
  }
  lines.push(
    '    (local.set $pa (local.get $at))',
    '    (local.set $end (i32.add (local.get $pb) (i32.shl (local.get $k) (i32.const 5))))',
    '    (loop $next_k',
    '      (local.set $b0 (v128.load align=4 (local.get $pb)))',
    '      (local.set $b1 (v128.load offset=16 align=4 (local.get $pb)))',
  );
  for (let r = 0; r < R; r++) {
    lines.push(`      (local.set $a (v128.load32_splat offset=${4 * r} align=4 (local.get $pa)))`);
    for (const v of [0, 1]) {
      lines.push(
        `      (local.set ${acc(r, v)} (f32x4.add (local.get ${acc(r, v)}) (f32x4.mul (local.get $a) (local.get $b${v}))))`,
      );
    }
  }
  lines.push(
    `      (local.set $pa (i32.add (local.get $pa) (i32.const ${4 * R})))`,
    '      (local.set $pb (i32.add (local.get $pb) (i32.const 32)))',
    '      (br_if $next_k (i32.lt_u (local.get $pb) (local.get $end))))',
    '    (local.set $pc (i32.add (local.get $c) (i32.shl (local.get $panel) (i32.const 5))))',
  );
  for (let r = 0; r < R; r++) {
    lines.push(
      `    (v128.store align=4 (local.get $pc) (local.get ${acc(r, 0)}))`,
      `    (v128.store offset=16 align=4 (local.get $pc) (local.get ${acc(r, 1)}))`,
    );
    if (r < R - 1)
      lines.push('    (local.set $pc (i32.add (local.get $pc) (i32.shl (local.get $ldc) (i32.const 2))))');
  }
  lines.push(
    '    (local.set $panel (i32.add (local.get $panel) (i32.const 1)))',
    '    (br $next_panel)))',
    ')',
  );
  return lines.join('\n');
}

/** interleave(a, k, rows, at): at[i][r] = a[r][i] for r < rows, i < k (rows ≥ 1, k ≥ 1). */
const interleave = `(func (export "interleave") (param $a i32) (param $k i32) (param $rows i32) (param $at i32)
  (local $i i32) (local $r i32) (local $src i32) (local $dst i32) (local $step i32)
  (local.set $step (i32.shl (local.get $rows) (i32.const 2)))
  (loop $next_row
    (local.set $src (i32.add (local.get $a) (i32.shl (i32.mul (local.get $r) (local.get $k)) (i32.const 2))))
    (local.set $dst (i32.add (local.get $at) (i32.shl (local.get $r) (i32.const 2))))
    (local.set $i (i32.const 0))
    (loop $next_i
      (f32.store (local.get $dst) (f32.load (local.get $src)))
      (local.set $src (i32.add (local.get $src) (i32.const 4)))
      (local.set $dst (i32.add (local.get $dst) (local.get $step)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $next_i (i32.lt_u (local.get $i) (local.get $k))))
    (local.set $r (i32.add (local.get $r) (i32.const 1)))
    (br_if $next_row (i32.lt_u (local.get $r) (local.get $rows)))))`;

/**
 * packPanels(w, k, n, transposed, out): out[p][i][j] = W[i][8p + j], zero where 8p + j ≥ n.
 * W is w read as [k, n], or as [n, k] transposed (a tied embedding used as the head).
 */
const packPanels = `(func (export "packPanels") (param $w i32) (param $k i32) (param $n i32) (param $transposed i32) (param $out i32)
  (local $p i32) (local $i i32) (local $j i32) (local $col i32) (local $dst i32) (local $panels i32)
  (local.set $panels (i32.shr_u (i32.add (local.get $n) (i32.const 7)) (i32.const 3)))
  (local.set $dst (local.get $out))
  (loop $next_panel
    (local.set $i (i32.const 0))
    (loop $next_i
      (local.set $j (i32.const 0))
      (loop $next_j
        (local.set $col (i32.add (i32.shl (local.get $p) (i32.const 3)) (local.get $j)))
        (f32.store (local.get $dst)
          (if (result f32) (i32.lt_u (local.get $col) (local.get $n))
            (then (f32.load (i32.add (local.get $w) (i32.shl
              (if (result i32) (local.get $transposed)
                (then (i32.add (i32.mul (local.get $col) (local.get $k)) (local.get $i)))
                (else (i32.add (i32.mul (local.get $i) (local.get $n)) (local.get $col))))
              (i32.const 2)))))
            (else (f32.const 0))))
        (local.set $dst (i32.add (local.get $dst) (i32.const 4)))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br_if $next_j (i32.lt_u (local.get $j) (i32.const 8))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $next_i (i32.lt_u (local.get $i) (local.get $k))))
    (local.set $p (i32.add (local.get $p) (i32.const 1)))
    (br_if $next_panel (i32.lt_u (local.get $p) (local.get $panels)))))`;

const get = (name: string) => `(local.get ${name})`;
const f32x4 = (c: number) => `(v128.const f32x4 ${c} ${c} ${c} ${c})`;
const negInf = '(v128.const f32x4 -inf -inf -inf -inf)';
const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const indent = (lines: string[], by = '  ') => lines.map((line) => by + line);

const hsum = (v: string) =>
  `(f32.add (f32.add (f32x4.extract_lane 0 ${v}) (f32x4.extract_lane 1 ${v})) (f32.add (f32x4.extract_lane 2 ${v}) (f32x4.extract_lane 3 ${v})))`;

/** i8x16.shuffle's byte indices for four 32-bit lanes (0–3 of the first operand, 4–7 of the second). */
const lanes = (...l: number[]) => l.flatMap((i) => [4 * i, 4 * i + 1, 4 * i + 2, 4 * i + 3]).join(' ');

/**
 * Lines that set `into` to exp(x) for the four lanes of local `x` (x ≤ 0),
 * with locals `n` and `r` as temporaries: 2ⁿ·e^r with n = round(x·log₂e) and
 * r = x − n·ln2 (ln2 in two parts, Cody–Waite), |r| ≤ ln2/2, e^r by its
 * degree-6 Taylor polynomial (relative error below 2e-7). Lanes below −87
 * (2ⁿ would leave the normal range) and −∞ give exactly 0; NaN stays NaN.
 * Inline: as a function, V8 kept its operands on the stack around each call,
 * a tenth of attention's time.
 */
function exp4(into: string, x: string, n: string, r: string): string[] {
  return [
    `(local.set ${n} (f32x4.nearest (f32x4.mul ${get(x)} ${f32x4(Math.LOG2E)})))`,
    `(local.set ${r} (f32x4.sub ${get(x)} (f32x4.mul ${get(n)} ${f32x4(0.693359375)})))`,
    `(local.set ${r} (f32x4.sub ${get(r)} (f32x4.mul ${get(n)} ${f32x4(-2.1219444e-4)})))`,
    `(local.set ${into} ${f32x4(1 / 720)})`,
    ...[1 / 120, 1 / 24, 1 / 6, 0.5, 1, 1].map(
      (c) => `(local.set ${into} (f32x4.add (f32x4.mul ${get(into)} ${get(r)}) ${f32x4(c)}))`,
    ),
    `(local.set ${into} (v128.andnot`,
    `  (f32x4.mul ${get(into)}`,
    `    (i32x4.shl (i32x4.add (i32x4.trunc_sat_f32x4_s ${get(n)}) (v128.const i32x4 127 127 127 127)) (i32.const 23)))`,
    `  (f32x4.lt ${get(x)} ${f32x4(-87)})))`,
  ];
}

/**
 * Lines that set `into` to (Σ a, Σ b, Σ c, Σ d), the lane sums of four
 * vectors in one vector: a 4×4 transpose folded into the adds, 6 shuffles
 * and 3 adds where four horizontal sums take 12 lane extractions and 12
 * scalar adds. Uses $t0, $t1.
 */
function sum4(into: string, [a, b, c, d]: string[]): string[] {
  const pairs = (x: string, y: string) =>
    `(f32x4.add (i8x16.shuffle ${lanes(0, 4, 1, 5)} ${get(x)} ${get(y)}) (i8x16.shuffle ${lanes(2, 6, 3, 7)} ${get(x)} ${get(y)}))`;
  const halves = (l: number[]) => `(i8x16.shuffle ${lanes(...l)} (local.get $t0) (local.get $t1))`;
  return [
    // (a0 + a2, b0 + b2, a1 + a3, b1 + b3), and the same of c and d
    `(local.set $t0 ${pairs(a, b)})`,
    `(local.set $t1 ${pairs(c, d)})`,
    `(local.set ${into} (f32x4.add ${halves([0, 1, 4, 5])} ${halves([2, 3, 6, 7])}))`,
  ];
}

/**
 * Steps per $attendGroup{G} call, the lanes of its probabilities (G / 4
 * vectors per slot). A group costs G steps' arithmetic whatever its count,
 * and reads each key and value row it sees once for all its steps: 8 for
 * six or more steps left (a call of 6–8 steps reads the keys and values
 * once, from memory where the cache went cold between calls), 4 for three
 * to five (five as a group of 4 and a step: a group of 8 took 1.25× as long
 * for 5 steps of GPT-2 at context 512).
 */
const GROUPS = [4, 8];

/** Slots per score tile of $attendStep: one query against STEP_TILE keys (independent sums). */
const STEP_TILE = 8;

/**
 * Lines that add q_i·k_t into acc(i, t) for Q queries and T keys over a whole
 * head: the queries interleaved from $qq up to $qEnd (Q vectors per 4
 * dimensions, `stride` vectors apart: each pass of a group of 8 takes four
 * of its steps), key rows from $p0 … $p{T−1}, each pointer advancing 16
 * bytes an iteration (queries at immediate offsets from one pointer, which
 * is why a group copies its queries interleaved). With Q > 1 the T key
 * vectors stay in $kv0 … (read once for all queries), and with `touch` a
 * word of each value row at the same offset is read too ($p + $vDelta,
 * summed into $sink so that the loads stay): the values then stream in from
 * memory alongside the keys, in order, which the prefetcher follows (rows
 * laid out heads first; see touchRecords). Without it the weighted sum's
 * passes, each over a strided slice of the value rows, waited on memory: 4
 * steps over GPT-2's caches at context 512 took 3.5 ms (12 layers'
 * attention) instead of 2.3. With Q = 1 each key vector is used as loaded.
 * Clobbers the pointers and $x.
 */
function dotLoop(
  Q: number,
  T: number,
  acc: (i: number, t: number) => string,
  touch: boolean,
  stride = Q,
): string[] {
  const add = (i: number, t: number, k: string) =>
    `(local.set ${acc(i, t)} (f32x4.add (local.get ${acc(i, t)}) (f32x4.mul (local.get $x) ${k})))`;
  const body: string[] = [];
  if (Q === 1) {
    body.push('(local.set $x (v128.load align=4 (local.get $qq)))');
    for (let t = 0; t < T; t++) body.push(add(0, t, `(v128.load align=4 (local.get $p${t}))`));
  } else {
    for (let t = 0; t < T; t++) body.push(`(local.set $kv${t} (v128.load align=4 (local.get $p${t})))`);
    for (let t = 0; touch && t < T; t++) {
      body.push(
        `(local.set $sink (i32.add (local.get $sink) (i32.load (i32.add (local.get $p${t}) (local.get $vDelta)))))`,
      );
    }
    for (let i = 0; i < Q; i++) {
      body.push(`(local.set $x (v128.load offset=${16 * i} align=4 (local.get $qq)))`);
      for (let t = 0; t < T; t++) body.push(add(i, t, `(local.get $kv${t})`));
    }
  }
  return [
    '(loop $next_dots',
    ...indent(body),
    ...range(T).map((t) => `  (local.set $p${t} (i32.add (local.get $p${t}) (i32.const 16)))`),
    `  (local.set $qq (i32.add (local.get $qq) (i32.const ${16 * stride})))`,
    '  (br_if $next_dots (i32.lt_u (local.get $qq) (local.get $qEnd))))',
  ];
}

/**
 * Lines that read a word of every 64-byte line of the key and value records
 * of the tile's slots, $p0 up to $p{T−1} + $touch (the records are $touch =
 * slotBytes long and adjacent; a tile past the last slot repeats a slot, so
 * reads no further), into $sink: keys and values laid out slots first,
 * [batch, slots, kvHeads, headDim], for a row's first head. A head's own
 * rows are 1 / kvHeads of each record, at a stride of slotBytes, which the
 * prefetchers did not follow: from cold caches the
 * streaming encoder's attention (4 heads of 80, 8 steps at context 500, 8
 * layers) took 1.9 ms reading each head's rows, 1.3 ms reading whole
 * records in order for the first head (the others then find theirs in L2).
 * Rows laid out heads first are read in order already: there a touch loop
 * before the dot loop made GPT-2's 4 steps 1.7× slower than dotLoop's touch.
 */
function touchRecords(T: number): string[] {
  const both = (at: string) =>
    `(local.set $sink (i32.add (local.get $sink) (i32.add (i32.load ${at}) (i32.load (i32.add ${at} (local.get $vDelta))))))`;
  return [
    '(local.set $at (local.get $p0))',
    `(local.set $end (i32.add (local.get $p${T - 1}) (local.get $touch)))`,
    '(loop $next_line',
    `  ${both('(local.get $at)')}`,
    '  (local.set $at (i32.add (local.get $at) (i32.const 64)))',
    '  (br_if $next_line (i32.lt_u (local.get $at) (local.get $end))))',
    ';; the last line, where the records do not end on a line',
    both('(i32.sub (local.get $end) (i32.const 4))'),
  ];
}

/**
 * Lines that turn the scores at $probs into p = exp(score − max) in place,
 * four slots per iteration, the k-th vector of an iteration less the maxima
 * in max(k) (each lane's) and added into sums[k]: for one step (a float per
 * slot), one sum whose lanes are slots 0, 1, 2, 3 mod 4; for a group of G
 * steps (G / 4 vectors per slot), G sums, of slots 0, 1, 2, 3 mod 4 for
 * each vector of a slot. Masked scores (−∞) give 0; scores up to n rounded
 * up to 4 must be there. Uses $x, $t1, $pp, $j and the two temporaries
 * named.
 */
function expLoop(
  sums: string[],
  temps: [string, string],
  max: (k: number) => string = () => '$max',
): string[] {
  return [
    ...sums.map((sum) => `(local.set ${sum} ${zero})`),
    '(local.set $pp (local.get $probs))',
    '(local.set $j (i32.const 0))',
    '(loop $next_exp',
    ...sums.flatMap((sum, k) => [
      `  (local.set $t1 (f32x4.sub (v128.load offset=${16 * k} align=4 (local.get $pp)) (local.get ${max(k)})))`,
      ...indent(exp4('$x', '$t1', ...temps)),
      `  (v128.store offset=${16 * k} align=4 (local.get $pp) (local.get $x))`,
      `  (local.set ${sum} (f32x4.add (local.get ${sum}) (local.get $x)))`,
    ]),
    `  (local.set $pp (i32.add (local.get $pp) (i32.const ${16 * sums.length})))`,
    '  (local.set $j (i32.add (local.get $j) (i32.const 4)))',
    '  (br_if $next_exp (i32.lt_u (local.get $j) (local.get $n))))',
  ];
}

/**
 * Lines that write out_i = Σ_j p_ij·v_j / Σ_j p_ij for Q·passes steps over
 * the n slots from value row $vFirst: probabilities at $probs (Q·passes
 * floats per slot), 1 / Σ_j p_ij given by scale(i), output rows out(i).
 * Each pass over the slots sums `width` vectors of Q steps' rows (widths
 * largest first, down to 1 for any headDim) in Q·width independent
 * accumulators; with Q > 1 each value vector is loaded once for the pass's
 * steps, and a stretch of dimensions takes `passes` passes, one after the
 * other over the same value vectors (the later ones find them in cache).
 * Every output float is one chain of adds over the slots in order, however
 * the steps are tiled. Accumulators and operands stay within 14 vector
 * registers.
 */
function weightedValues(
  Q: number,
  widths: number[],
  acc: (i: number, w: number) => string,
  out: (i: number) => string,
  scale: (i: number) => string,
  passes = 1,
): string[] {
  const lines = ['(local.set $d (i32.const 0))'];
  for (const W of widths) {
    const loops = range(passes).flatMap((r) => {
      const step = (i: number) => r * Q + i;
      const body: string[] = [];
      if (Q === 1) {
        body.push(`(local.set $x (v128.load32_splat offset=${4 * step(0)} align=4 (local.get $pp)))`);
        for (let w = 0; w < W; w++) {
          body.push(
            `(local.set ${acc(0, w)} (f32x4.add (local.get ${acc(0, w)}) (f32x4.mul (local.get $x) (v128.load offset=${16 * w} align=4 (local.get $at)))))`,
          );
        }
      } else {
        for (let w = 0; w < W; w++)
          body.push(`(local.set $kv${w} (v128.load offset=${16 * w} align=4 (local.get $at)))`);
        for (let i = 0; i < Q; i++) {
          body.push(`(local.set $x (v128.load32_splat offset=${4 * step(i)} align=4 (local.get $pp)))`);
          for (let w = 0; w < W; w++) {
            body.push(
              `(local.set ${acc(i, w)} (f32x4.add (local.get ${acc(i, w)}) (f32x4.mul (local.get $x) (local.get $kv${w}))))`,
            );
          }
        }
      }
      const stores = range(Q).flatMap((i) => [
        `(local.set $x ${scale(step(i))})`,
        `(local.set $at (i32.add ${out(step(i))} (local.get $d)))`,
        ...range(W).map(
          (w) =>
            `(v128.store offset=${16 * w} align=4 (local.get $at) (f32x4.mul (local.get ${acc(i, w)}) (local.get $x)))`,
        ),
      ]);
      return [
        ...range(Q).flatMap((i) => range(W).map((w) => `(local.set ${acc(i, w)} ${zero})`)),
        '(local.set $at (i32.add (local.get $vFirst) (local.get $d)))',
        '(local.set $pp (local.get $probs))',
        '(local.set $j (i32.const 0))',
        `(loop $next_v${W}`,
        ...indent(body),
        '  (local.set $at (i32.add (local.get $at) (local.get $slotBytes)))',
        `  (local.set $pp (i32.add (local.get $pp) (i32.const ${4 * Q * passes})))`,
        '  (local.set $j (i32.add (local.get $j) (i32.const 1)))',
        `  (br_if $next_v${W} (i32.lt_u (local.get $j) (local.get $n))))`,
        ...stores,
      ];
    });
    lines.push(
      `(block $done${W} (loop $next${W}`,
      `  (br_if $done${W} (i32.gt_u (i32.add (local.get $d) (i32.const ${16 * W})) (local.get $rowBytes)))`,
      ...indent(loops),
      `  (local.set $d (i32.add (local.get $d) (i32.const ${16 * W})))`,
      `  (br $next${W})))`,
    );
  }
  return lines;
}

/**
 * $attendStep(kFirst, vFirst, q, out, probs, n, rowBytes, slotBytes, touch):
 * one query step over n ≥ 1 visible slots, the first key at kFirst and value
 * at vFirst. Scores of STEP_TILE slots at a time, each query vector against
 * STEP_TILE key rows (independent sums instead of one chain of adds per
 * slot), summed four slots to a vector; softmax; then the weighted sum of
 * values, 32, 16, then 4 dimensions per pass. touch: 0, or slotBytes to
 * read the whole key and value records of the slots as the scores go (see
 * touchRecords). probs: 4·(n + STEP_TILE) bytes.
 */
function attendStep(): string {
  const acc = (_: number, t: number) => `$c${t}`;
  const lines = [
    '(func $attendStep (param $kFirst i32) (param $vFirst i32) (param $q i32) (param $out i32) (param $probs i32)',
    '    (param $n i32) (param $rowBytes i32) (param $slotBytes i32) (param $touch i32)',
    '  (local $j i32) (local $d i32) (local $kp i32) (local $pp i32) (local $at i32) (local $last i32)',
    '  (local $end i32) (local $vDelta i32) (local $sink i32)',
    '  (local $qq i32) (local $qEnd i32) (local $x v128) (local $max v128) (local $t0 v128) (local $t1 v128)',
    `  ${range(STEP_TILE)
      .map((t) => `(local $p${t} i32)`)
      .join(' ')}`,
    `  ${range(Math.max(STEP_TILE, 8))
      .map((t) => `(local ${acc(0, t)} v128)`)
      .join(' ')}`,
    '  (local.set $qEnd (i32.add (local.get $q) (local.get $rowBytes)))',
    '  (local.set $vDelta (i32.sub (local.get $vFirst) (local.get $kFirst)))',
    '  ;; scores of slots j … j + STEP_TILE − 1; a tile past the last slot reads the last again, and masks those scores',
    '  (local.set $last (i32.add (local.get $kFirst) (i32.mul (i32.sub (local.get $n) (i32.const 1)) (local.get $slotBytes))))',
    `  (local.set $max ${negInf})`,
    '  (local.set $kp (local.get $kFirst))',
    '  (local.set $pp (local.get $probs))',
    '  (local.set $j (i32.const 0))',
    '  (loop $next_tile',
    '    (local.set $p0 (local.get $kp))',
  ];
  for (let t = 1; t < STEP_TILE; t++) {
    lines.push(
      `    (local.set $p${t} (select (i32.add (local.get $p${t - 1}) (local.get $slotBytes)) (local.get $last)`,
      `      (i32.lt_u (i32.add (local.get $j) (i32.const ${t})) (local.get $n))))`,
    );
  }
  lines.push(
    '    (if (local.get $touch)',
    '      (then',
    ...indent(touchRecords(STEP_TILE), '        '),
    '      ))',
    ...range(STEP_TILE).map((t) => `    (local.set ${acc(0, t)} ${zero})`),
    '    (local.set $qq (local.get $q))',
    ...indent(dotLoop(1, STEP_TILE, acc, false), '    '),
  );
  for (let u = 0; u < STEP_TILE / 4; u++) {
    lines.push(
      ...indent(
        sum4(
          '$x',
          range(4).map((i) => acc(0, 4 * u + i)),
        ),
        '    ',
      ),
      `    ;; −∞ for slots j + ${4 * u} + i ≥ n`,
      `    (local.set $x (v128.bitselect (local.get $x) ${negInf}`,
      `      (i32x4.gt_s (i32x4.splat (i32.sub (local.get $n) (i32.add (local.get $j) (i32.const ${4 * u})))) (v128.const i32x4 0 1 2 3))))`,
      // pmax is one instruction; max, with its NaN rules, a chain of eight on x64 (a NaN score
      // left out of the maximum still reaches the output through its exp)
      '    (local.set $max (f32x4.pmax (local.get $max) (local.get $x)))',
      `    (v128.store offset=${16 * u} align=4 (local.get $pp) (local.get $x))`,
    );
  }
  lines.push(
    `    (local.set $kp (i32.add (local.get $kp) (i32.mul (local.get $slotBytes) (i32.const ${STEP_TILE}))))`,
    `    (local.set $pp (i32.add (local.get $pp) (i32.const ${4 * STEP_TILE})))`,
    `    (local.set $j (i32.add (local.get $j) (i32.const ${STEP_TILE})))`,
    '    (br_if $next_tile (i32.lt_u (local.get $j) (local.get $n))))',
    "  ;; the touched words' sum, stored where the weighted sum writes later, so that the loads stay",
    '  (i32.store (local.get $out) (local.get $sink))',
    '  ;; the maximum in every lane',
    `  (local.set $max (f32x4.pmax (local.get $max) (i8x16.shuffle ${lanes(2, 3, 0, 1)} (local.get $max) (local.get $max))))`,
    `  (local.set $max (f32x4.pmax (local.get $max) (i8x16.shuffle ${lanes(1, 0, 3, 2)} (local.get $max) (local.get $max))))`,
    ...indent(expLoop(['$t0'], ['$c0', '$c1'])),
    `  (local.set $max (f32x4.splat (f32.div (f32.const 1) ${hsum('(local.get $t0)')})))`,
    ...indent(
      weightedValues(
        1,
        [8, 4, 1],
        acc,
        () => '(local.get $out)',
        () => '(local.get $max)',
      ),
    ),
    ')',
  );
  return lines.join('\n');
}

/**
 * $attendGroup{G}(kBase, vBase, q, out, qs, probs, pos, count, window,
 * qStride, rowBytes, slotBytes, touch): G consecutive steps of one row and
 * head at once, the first at position pos (count ≤ G of them real; lanes
 * past the last repeat it, and write its output again, the same values).
 * Step i sees slots lo_i … pos_i; both bounds grow with i, so the group
 * reads the union lo_0 … pos_last, each key and value row once for all its
 * steps: scores of two slots × four steps per pass of the dot loop, G / 4
 * passes per pair of slots (the later ones find the keys in L1), summed to
 * G / 4 vectors per slot whose lanes are the steps (probs[slot][step]),
 * masked to −∞ outside each step's range; softmax lane-wise; the weighted
 * sum of values, 8 then 4 dimensions of four steps per pass over the
 * slots, G / 4 passes per stretch of dimensions (a slot outside a step's
 * range adds 0·v, so cached values are taken to be finite). Each step's
 * output is the one $attendStep gives it, bit for bit (zeros' signs aside).
 * Tried for G = 8 and slower: scores of one slot × eight steps (1.1×),
 * weighted sums of eight steps × 4 dimensions (1.7×). touch: for a head's
 * first group (later ones find the rows in cache), 0 or rowBytes: read the
 * values along with the keys (see dotLoop); slotBytes > rowBytes: read the
 * slots' whole records (see touchRecords). qs: the queries interleaved,
 * [headDim / 4][G][4] (4·G·headDim bytes), then 12·G bytes of lane limits
 * and sums; probs: 4·G·(window + G + 2) bytes.
 */
function attendGroup(G: number): string {
  const P = G / 4;
  const acc = (i: number, t: number) => `$c${i}_${t}`;
  // sums[k]: the sum of the k-th vector of each four slots' probabilities (slot k / P, steps 4·(k mod P) …)
  const sums = range(4 * P).map((k) => `$s${k % P}_${Math.floor(k / P)}`);
  const max = (h: number) => `$max${h}`;
  // At $lims, for steps 4h … 4h + 3: lo_i at 16h, pos_i at 16(P + h), 1 / Σ_j p_ij at 16(2P + h).
  // In memory rather than registers: the dot loop's tile, keys, query and the maxima take 13.
  const lov = (h: number) => `(v128.load offset=${16 * h} align=4 (local.get $lims))`;
  const hiv = (h: number) => `(v128.load offset=${16 * (P + h)} align=4 (local.get $lims))`;
  const lines = [
    `(func $attendGroup${G} (param $kBase i32) (param $vBase i32) (param $q i32) (param $out i32) (param $qs i32)`,
    '    (param $probs i32) (param $pos i32) (param $count i32) (param $window i32) (param $qStride i32)',
    '    (param $rowBytes i32) (param $slotBytes i32) (param $touch i32)',
    '  (local $lo i32) (local $n i32) (local $j i32) (local $d i32) (local $kp i32) (local $pp i32) (local $at i32)',
    '  (local $end i32) (local $vFirst i32) (local $qq i32) (local $qEnd i32) (local $lims i32) (local $p0 i32)',
    '  (local $p1 i32) (local $vDelta i32) (local $sink i32)',
    `  ${range(G)
      .map((i) => `(local $q${i} i32) (local $o${i} i32)`)
      .join(' ')}`,
    '  (local $x v128) (local $kv0 v128) (local $kv1 v128) (local $t0 v128) (local $t1 v128)',
    `  ${range(P)
      .map((h) => `(local ${max(h)} v128)`)
      .join(' ')}`,
    `  ${sums.map((sum) => `(local ${sum} v128)`).join(' ')}`,
    `  ${range(4)
      .map((i) => `(local ${acc(i, 0)} v128) (local ${acc(i, 1)} v128)`)
      .join(' ')}`,
    "  ;; lane i's query and output rows",
  ];
  for (let i = 0; i < G; i++) {
    const offset =
      i === 0
        ? '(i32.const 0)'
        : `(i32.mul (select (i32.const ${i}) (i32.sub (local.get $count) (i32.const 1)) (i32.lt_u (i32.const ${i}) (local.get $count))) (local.get $qStride))`;
    lines.push(
      `  (local.set $q${i} (i32.add (local.get $q) ${offset}))`,
      `  (local.set $o${i} (i32.add (local.get $out) (i32.sub (local.get $q${i}) (local.get $q))))`,
    );
  }
  lines.push(
    `  ;; the queries interleaved, so that one pointer reads all ${G}`,
    '  (local.set $qq (local.get $qs))',
    '  (local.set $d (i32.const 0))',
    '  (loop $next_copy',
    ...range(G).map(
      (i) =>
        `    (v128.store offset=${16 * i} align=4 (local.get $qq) (v128.load align=4 (i32.add (local.get $q${i}) (local.get $d))))`,
    ),
    `    (local.set $qq (i32.add (local.get $qq) (i32.const ${16 * G})))`,
    '    (local.set $d (i32.add (local.get $d) (i32.const 16)))',
    '    (br_if $next_copy (i32.lt_u (local.get $d) (local.get $rowBytes))))',
    '  (local.set $qEnd (local.get $qq))',
    '  (local.set $lims (local.get $qq))',
    '  ;; lane i: the last slot pos_i and first lo_i = max(0, pos_i + 1 − window) step i sees',
  );
  for (let h = 0; h < P; h++) {
    const steps = range(4).map((l) => 4 * h + l);
    lines.push(
      `  (local.set $x (i32x4.min_s (i32x4.add (i32x4.splat (local.get $pos)) (v128.const i32x4 ${steps.join(' ')}))`,
      '    (i32x4.splat (i32.sub (i32.add (local.get $pos) (local.get $count)) (i32.const 1)))))',
      `  (v128.store offset=${16 * (P + h)} align=4 (local.get $lims) (local.get $x))`,
      `  (v128.store offset=${16 * h} align=4 (local.get $lims)`,
      `    (i32x4.max_s (i32x4.sub (local.get $x) (i32x4.splat (i32.sub (local.get $window) (i32.const 1)))) ${zero}))`,
    );
  }
  lines.push(
    '  (local.set $lo (i32.load (local.get $lims)))',
    '  (local.set $n (i32.sub (i32.add (local.get $pos) (local.get $count)) (local.get $lo)))',
    '  (local.set $vFirst (i32.add (local.get $vBase) (i32.mul (local.get $lo) (local.get $slotBytes))))',
    '  (local.set $vDelta (i32.sub (local.get $vBase) (local.get $kBase)))',
    '  ;; scores of slots lo + j and lo + j + 1 (the first again past the last: masked, as it is after every step)',
    ...range(P).map((h) => `  (local.set ${max(h)} ${negInf})`),
    '  (local.set $kp (i32.add (local.get $kBase) (i32.mul (local.get $lo) (local.get $slotBytes))))',
    '  (local.set $pp (local.get $probs))',
    '  (local.set $j (i32.const 0))',
    '  (loop $next_pair',
    '    (local.set $p0 (local.get $kp))',
    '    (local.set $p1 (select (i32.add (local.get $kp) (local.get $slotBytes)) (local.get $kp)',
    '      (i32.lt_u (i32.add (local.get $j) (i32.const 1)) (local.get $n))))',
  );
  for (let h = 0; h < P; h++) {
    const zeros = range(4).map(
      (i) => `    (local.set ${acc(i, 0)} ${zero}) (local.set ${acc(i, 1)} ${zero})`,
    );
    if (h === 0) {
      lines.push(
        ...zeros,
        '    (local.set $qq (local.get $qs))',
        '    (if (i32.eq (local.get $touch) (local.get $rowBytes))',
        '      (then',
        ...indent(dotLoop(4, 2, acc, true, G), '        '),
        '      )',
        '      (else',
        '        (if (local.get $touch)',
        '          (then',
        ...indent(touchRecords(2), '            '),
        '          ))',
        ...indent(dotLoop(4, 2, acc, false, G), '        '),
        '      ))',
      );
    } else {
      lines.push(
        `    ;; steps ${4 * h} … ${4 * h + 3}, over the same two key rows`,
        '    (local.set $p0 (i32.sub (local.get $p0) (local.get $rowBytes)))',
        '    (local.set $p1 (i32.sub (local.get $p1) (local.get $rowBytes)))',
        ...zeros,
        `    (local.set $qq (i32.add (local.get $qs) (i32.const ${16 * 4 * h})))`,
        ...indent(dotLoop(4, 2, acc, false, G), '    '),
      );
    }
    for (const t of [0, 1]) {
      lines.push(
        ...indent(
          sum4(
            '$x',
            range(4).map((i) => acc(i, t)),
          ),
          '    ',
        ),
        `    ;; −∞ for the steps that do not see slot lo + j + ${t}: before their first, or after them`,
        `    (local.set $kv0 (i32x4.splat (i32.add (i32.add (local.get $lo) (local.get $j)) (i32.const ${t}))))`,
        `    (local.set $x (v128.bitselect ${negInf} (local.get $x)`,
        `      (v128.or (i32x4.gt_s ${lov(h)} (local.get $kv0)) (i32x4.gt_s (local.get $kv0) ${hiv(h)}))))`,
        `    (local.set ${max(h)} (f32x4.pmax (local.get ${max(h)}) (local.get $x)))`,
        `    (v128.store offset=${16 * (P * t + h)} align=4 (local.get $pp) (local.get $x))`,
      );
    }
  }
  lines.push(
    '    (local.set $kp (i32.add (local.get $kp) (i32.shl (local.get $slotBytes) (i32.const 1))))',
    `    (local.set $pp (i32.add (local.get $pp) (i32.const ${8 * G})))`,
    '    (local.set $j (i32.add (local.get $j) (i32.const 2)))',
    '    (br_if $next_pair (i32.lt_u (local.get $j) (local.get $n))))',
    "  ;; the touched words' sum, stored where nothing reads it, so that the loads stay",
    '  (i32.store (local.get $qs) (local.get $sink))',
    '  ;; −∞ past the last pair, up to a multiple of 4 slots',
    ...range(2 * P).map((k) => `  (v128.store offset=${16 * k} align=4 (local.get $pp) ${negInf})`),
    '  ;; p = exp(score − max) (every step sees a slot, so no lane is −∞ throughout), and Σ p by slot mod 4',
    ...indent(expLoop(sums, ['$c0_0', '$c0_1'], (k) => max(k % P))),
    "  ;; Σ p per step in the order $attendStep adds a step's p alone (sums of slots j − lo_i mod 4,",
    "  ;; then (0 + 1) + (2 + 3)), so that no step's output depends on which steps share its call (the",
    '  ;; same holds of scores, maxima, exp and the weighted sums): these sums are of slots j − lo_0 mod 4,',
    '  ;; rotated by one in the order where lo_i − lo_0 is odd (by two it is the same sum)',
  );
  for (let h = 0; h < P; h++) {
    const b = range(4).map((k) => get(sums[P * k + h]));
    lines.push(
      `  (local.set $t0 (f32x4.add (f32x4.add ${b[0]} ${b[1]}) (f32x4.add ${b[2]} ${b[3]})))`,
      `  (local.set $t1 (f32x4.add (f32x4.add ${b[1]} ${b[2]}) (f32x4.add ${b[3]} ${b[0]})))`,
      `  (local.set $kv0 (v128.and (i32x4.sub ${lov(h)} (i32x4.splat (local.get $lo))) (v128.const i32x4 1 1 1 1)))`,
      `  (v128.store offset=${16 * (2 * P + h)} align=4 (local.get $lims)`,
      `    (f32x4.div ${f32x4(1)} (v128.bitselect (local.get $t1) (local.get $t0) (i32x4.ne (local.get $kv0) ${zero}))))`,
    );
  }
  lines.push(
    ...indent(
      weightedValues(
        4,
        [2, 1],
        acc,
        (i) => `(local.get $o${i})`,
        (i) => `(v128.load32_splat offset=${32 * P + 4 * i} align=4 (local.get $lims))`,
        P,
      ),
    ),
    ')',
  );
  return lines.join('\n');
}

/**
 * attend(q, keys, values, out, scratch, starts, batch, steps, heads, kvHeads,
 *   headDim, batchStride, headStride, slotStride, window):
 * causal attention of new steps over a cache of keys and values, every row,
 * head and step in one call. q, out: [batch, steps, heads, headDim] (q
 * already scaled). Key/value vector of (row b, KV head g, slot j) at float
 * b·batchStride + g·headStride + j·slotStride of keys/values, so both
 * [batch, kvHeads, slots, headDim] and [batch, slots, kvHeads, headDim]
 * work. Query head h reads KV head h / (heads / kvHeads). Row b's step s
 * sees the last min(window, n) of slots 0 … n − 1, n = starts[b] + s + 1
 * (i32 starts). scratch: 32·(headDim + window + 13) bytes. headDim a
 * multiple of 4. Steps go eight at a time through $attendGroup8 while six
 * or more are left, then up to four through $attendGroup4 while three or
 * more are left (each key and value row read once per group rather than once
 * per step); one or two left after groups go alone through $attendStep.
 */
const attend = `(func (export "attend") (param $q i32) (param $keys i32) (param $values i32) (param $out i32)
    (param $scratch i32) (param $starts i32) (param $batch i32) (param $steps i32) (param $heads i32)
    (param $kvHeads i32) (param $hd i32) (param $batchStride i32) (param $headStride i32) (param $slotStride i32)
    (param $window i32)
  (local $b i32) (local $h i32) (local $s i32) (local $left i32) (local $pos i32) (local $lo i32) (local $qp i32)
  (local $probs i32) (local $rowBytes i32) (local $slotBytes i32) (local $qStride i32) (local $kBase i32)
  (local $vBase i32) (local $perKv i32) (local $touch i32)
  (local.set $rowBytes (i32.shl (local.get $hd) (i32.const 2)))
  (local.set $slotBytes (i32.shl (local.get $slotStride) (i32.const 2)))
  (local.set $qStride (i32.mul (local.get $heads) (local.get $rowBytes)))
  (local.set $perKv (i32.div_u (local.get $heads) (local.get $kvHeads)))
  ;; scratch: a group's queries interleaved (up to 8 rows), its lane limits and sums (96 bytes),
  ;; then the probabilities
  (local.set $probs (i32.add (local.get $scratch) (i32.add (i32.shl (local.get $rowBytes) (i32.const 3)) (i32.const 96))))
  (local.set $b (i32.const 0))
  (loop $next_b
    (local.set $h (i32.const 0))
    (loop $next_h
      ;; this head's first key: b·batchStride + (h / group)·headStride floats
      (local.set $kBase (i32.shl (i32.add (i32.mul (local.get $b) (local.get $batchStride))
        (i32.mul (i32.div_u (local.get $h) (local.get $perKv)) (local.get $headStride)))
        (i32.const 2)))
      (local.set $vBase (i32.add (local.get $values) (local.get $kBase)))
      (local.set $kBase (i32.add (local.get $keys) (local.get $kBase)))
      ;; what the head's first group or step reads ahead: rows laid out heads first (or of one KV
      ;; head), the values along with the keys (touch = rowBytes), for a KV head's first query
      ;; head; slots first with several KV heads, whole records (touch = slotBytes), for the row's
      ;; first head, the others then finding their rows in cache (see touchRecords)
      (local.set $touch (select
        (select (local.get $rowBytes) (i32.const 0) (i32.eqz (i32.rem_u (local.get $h) (local.get $perKv))))
        (select (local.get $slotBytes) (i32.const 0) (i32.eqz (local.get $h)))
        (i32.eq (local.get $slotStride) (local.get $hd))))
      (local.set $s (i32.const 0))
      (loop $next_s
        (local.set $left (i32.sub (local.get $steps) (local.get $s)))
        (local.set $pos (i32.add (i32.load (i32.add (local.get $starts) (i32.shl (local.get $b) (i32.const 2))))
          (local.get $s)))
        (local.set $qp (i32.mul (i32.add (i32.mul (i32.add (i32.mul (local.get $b) (local.get $steps)) (local.get $s))
          (local.get $heads)) (local.get $h)) (local.get $rowBytes)))
        ;; a group of 8 for six or more steps left, of 4 for three to five, or two at the start (it
        ;; reads the values along with the keys); one or two after a group go alone: a group costs
        ;; its lanes' arithmetic whatever its count, and the keys and values are then in cache
        (if (i32.ge_u (local.get $left) (i32.const 6))
          (then
            (call $attendGroup8 (local.get $kBase) (local.get $vBase) (i32.add (local.get $q) (local.get $qp))
              (i32.add (local.get $out) (local.get $qp)) (local.get $scratch) (local.get $probs) (local.get $pos)
              (select (local.get $left) (i32.const 8) (i32.lt_u (local.get $left) (i32.const 8)))
              (local.get $window) (local.get $qStride) (local.get $rowBytes) (local.get $slotBytes)
              (select (local.get $touch) (i32.const 0) (i32.eqz (local.get $s))))
            (local.set $s (i32.add (local.get $s) (i32.const 8))))
          (else (if (i32.or (i32.ge_u (local.get $left) (i32.const 3))
                (i32.and (i32.eqz (local.get $s)) (i32.eq (local.get $left) (i32.const 2))))
            (then
              (call $attendGroup4 (local.get $kBase) (local.get $vBase) (i32.add (local.get $q) (local.get $qp))
                (i32.add (local.get $out) (local.get $qp)) (local.get $scratch) (local.get $probs) (local.get $pos)
                (select (local.get $left) (i32.const 4) (i32.lt_u (local.get $left) (i32.const 4)))
                (local.get $window) (local.get $qStride) (local.get $rowBytes) (local.get $slotBytes)
                (select (local.get $touch) (i32.const 0) (i32.eqz (local.get $s))))
              (local.set $s (i32.add (local.get $s) (i32.const 4))))
            (else
              ;; visible slots lo … pos
              (local.set $lo (select (i32.sub (i32.add (local.get $pos) (i32.const 1)) (local.get $window)) (i32.const 0)
                (i32.gt_u (i32.add (local.get $pos) (i32.const 1)) (local.get $window))))
              ;; a single step reads ahead only whole records (it has no values to read with its keys)
              (call $attendStep
                (i32.add (local.get $kBase) (i32.mul (local.get $lo) (local.get $slotBytes)))
                (i32.add (local.get $vBase) (i32.mul (local.get $lo) (local.get $slotBytes)))
                (i32.add (local.get $q) (local.get $qp)) (i32.add (local.get $out) (local.get $qp)) (local.get $probs)
                (i32.sub (i32.add (local.get $pos) (i32.const 1)) (local.get $lo))
                (local.get $rowBytes) (local.get $slotBytes)
                (select (local.get $touch) (i32.const 0)
                  (i32.and (i32.eqz (local.get $s)) (i32.gt_u (local.get $touch) (local.get $rowBytes)))))
              (local.set $s (i32.add (local.get $s) (i32.const 1)))))))
        (br_if $next_s (i32.lt_u (local.get $s) (local.get $steps))))
      (local.set $h (i32.add (local.get $h) (i32.const 1)))
      (br_if $next_h (i32.lt_u (local.get $h) (local.get $heads))))
    (local.set $b (i32.add (local.get $b) (i32.const 1)))
    (br_if $next_b (i32.lt_u (local.get $b) (local.get $batch)))))`;

/**
 * The part the dot kernels share: each input row's address ($px{r}, rows k
 * floats apart), then the loop over output rows v0 … v1 − 1 with `pointer`
 * set to weight row v.
 */
function dotRowsLoopHead(R: number, pointer: string): string[] {
  const lines: string[] = [];
  for (let r = 0; r < R; r++) {
    lines.push(
      `  (local.set $px${r} (i32.add (local.get $x) (i32.mul (local.get $bytes) (i32.const ${r}))))`,
    );
  }
  lines.push(
    '  (local.set $v (local.get $v0))',
    '  (block $done (loop $next_v',
    '    (br_if $done (i32.ge_u (local.get $v) (local.get $v1)))',
    `    (local.set ${pointer} (i32.add (local.get $w) (i32.mul (local.get $v) (local.get $bytes))))`,
  );
  return lines;
}

/**
 * dots{R}x{E}(x, w, c, k, ldc, v0, v1): c[r][v] = Σ_i x[r][i] · w[v][i] for
 * r < R and v0 ≤ v < v1 in steps of E (v1 − v0 a multiple of E), k a
 * multiple of 4: a product with a weight kept [out, in], as a tied
 * embedding is, without a transposed or packed copy of it. Rows of x are
 * k floats apart, rows of c ldc floats.
 */
function dots(R: number, E: number): string {
  // Weight vectors stay in registers for all R rows; the E·R accumulators are independent chains.
  // Row addresses are locals set once per output tile: the inner loop only adds the offset i.
  const acc = (r: number, e: number) => `$c${r}_${e}`;
  const lines = [
    `(func $dots${R}x${E} (export "dots${R}x${E}") (param $x i32) (param $w i32) (param $c i32) (param $k i32)`,
    '    (param $ldc i32) (param $v0 i32) (param $v1 i32)',
    '  (local $v i32) (local $i i32) (local $bytes i32) (local $pc i32) (local $xi v128)',
  ];
  for (let e = 0; e < E; e++) lines.push(`  (local $w${e} v128) (local $pw${e} i32)`);
  for (let r = 0; r < R; r++) lines.push(`  (local $px${r} i32)`);
  for (let r = 0; r < R; r++) for (let e = 0; e < E; e++) lines.push(`  (local ${acc(r, e)} v128)`);
  lines.push('  (local.set $bytes (i32.shl (local.get $k) (i32.const 2)))');
  lines.push(...dotRowsLoopHead(R, '$pw0'));
  for (let e = 1; e < E; e++)
    lines.push(`    (local.set $pw${e} (i32.add (local.get $pw${e - 1}) (local.get $bytes)))`);
  for (let r = 0; r < R; r++) for (let e = 0; e < E; e++) lines.push(`    (local.set ${acc(r, e)} ${zero})`);
  lines.push('    (local.set $i (i32.const 0))', '    (loop $next_i');
  for (let e = 0; e < E; e++) {
    lines.push(`      (local.set $w${e} (v128.load align=4 (i32.add (local.get $pw${e}) (local.get $i))))`);
  }
  for (let r = 0; r < R; r++) {
    lines.push(`      (local.set $xi (v128.load align=4 (i32.add (local.get $px${r}) (local.get $i))))`);
    for (let e = 0; e < E; e++) {
      lines.push(
        `      (local.set ${acc(r, e)} (f32x4.add (local.get ${acc(r, e)}) (f32x4.mul (local.get $xi) (local.get $w${e}))))`,
      );
    }
  }
  lines.push(
    '      (local.set $i (i32.add (local.get $i) (i32.const 16)))',
    '      (br_if $next_i (i32.lt_u (local.get $i) (local.get $bytes))))',
    '    (local.set $pc (i32.add (local.get $c) (i32.shl (local.get $v) (i32.const 2))))',
  );
  for (let r = 0; r < R; r++) {
    for (let e = 0; e < E; e++) {
      lines.push(`    (f32.store offset=${4 * e} (local.get $pc) ${hsum(`(local.get ${acc(r, e)})`)})`);
    }
    if (r < R - 1)
      lines.push('    (local.set $pc (i32.add (local.get $pc) (i32.shl (local.get $ldc) (i32.const 2))))');
  }
  lines.push(`    (local.set $v (i32.add (local.get $v) (i32.const ${E})))`, '    (br $next_v)))', ')');
  return lines.join('\n');
}

/**
 * dots{R}seq(x, w, c, k, ldc, v0, v1): as dots{R}x1, but each output row's
 * weights are read as one sequential stream, 16 floats per iteration into
 * four accumulators per row (independent chains), then the tail 4 at a time.
 * Several interleaved 3 KB streams (dots with E > 1) ran at half the memory
 * speed of one long stream on this machine.
 */
function dotsSequential(R: number): string {
  const acc = (r: number, u: number) => `$c${r}_${u}`;
  const lines = [
    `(func $dots${R}seq (export "dots${R}seq") (param $x i32) (param $w i32) (param $c i32) (param $k i32)`,
    '    (param $ldc i32) (param $v0 i32) (param $v1 i32)',
    '  (local $v i32) (local $i i32) (local $bytes i32) (local $bytes16 i32) (local $pc i32) (local $pw i32) (local $xi v128)',
    '  (local $w0 v128) (local $w1 v128) (local $w2 v128) (local $w3 v128)',
  ];
  for (let r = 0; r < R; r++) lines.push(`  (local $px${r} i32)`);
  for (let r = 0; r < R; r++) for (let u = 0; u < 4; u++) lines.push(`  (local ${acc(r, u)} v128)`);
  lines.push(
    '  (local.set $bytes (i32.shl (local.get $k) (i32.const 2)))',
    '  (local.set $bytes16 (i32.and (local.get $bytes) (i32.const -64)))',
  );
  lines.push(...dotRowsLoopHead(R, '$pw'));
  for (let r = 0; r < R; r++) for (let u = 0; u < 4; u++) lines.push(`    (local.set ${acc(r, u)} ${zero})`);
  lines.push(
    '    (local.set $i (i32.const 0))',
    '    (block $wide_done (loop $next_wide',
    '      (br_if $wide_done (i32.ge_u (local.get $i) (local.get $bytes16)))',
  );
  for (let u = 0; u < 4; u++) {
    lines.push(
      `      (local.set $w${u} (v128.load offset=${16 * u} align=4 (i32.add (local.get $pw) (local.get $i))))`,
    );
  }
  for (let r = 0; r < R; r++) {
    for (let u = 0; u < 4; u++) {
      lines.push(
        `      (local.set $xi (v128.load offset=${16 * u} align=4 (i32.add (local.get $px${r}) (local.get $i))))`,
        `      (local.set ${acc(r, u)} (f32x4.add (local.get ${acc(r, u)}) (f32x4.mul (local.get $xi) (local.get $w${u}))))`,
      );
    }
  }
  lines.push(
    '      (local.set $i (i32.add (local.get $i) (i32.const 64)))',
    '      (br $next_wide)))',
    '    (block $tail_done (loop $next_tail',
    '      (br_if $tail_done (i32.ge_u (local.get $i) (local.get $bytes)))',
    '      (local.set $w0 (v128.load align=4 (i32.add (local.get $pw) (local.get $i))))',
  );
  for (let r = 0; r < R; r++) {
    lines.push(
      `      (local.set ${acc(r, 0)} (f32x4.add (local.get ${acc(r, 0)}) (f32x4.mul (local.get $w0) (v128.load align=4 (i32.add (local.get $px${r}) (local.get $i))))))`,
    );
  }
  lines.push(
    '      (local.set $i (i32.add (local.get $i) (i32.const 16)))',
    '      (br $next_tail)))',
    '    (local.set $pc (i32.add (local.get $c) (i32.shl (local.get $v) (i32.const 2))))',
  );
  for (let r = 0; r < R; r++) {
    const sum = `(f32x4.add (f32x4.add (local.get ${acc(r, 0)}) (local.get ${acc(r, 1)})) (f32x4.add (local.get ${acc(r, 2)}) (local.get ${acc(r, 3)})))`;
    lines.push(`    (local.set $xi ${sum})`, `    (f32.store (local.get $pc) ${hsum('(local.get $xi)')})`);
    if (r < R - 1)
      lines.push('    (local.set $pc (i32.add (local.get $pc) (i32.shl (local.get $ldc) (i32.const 2))))');
  }
  lines.push('    (local.set $v (i32.add (local.get $v) (i32.const 1)))', '    (br $next_v)))', ')');
  return lines.join('\n');
}

/**
 * standardize(x, out, rows, d, eps, center): per row of x [rows, d],
 * out = (x − m) / √(mean((x − m)²) + eps) with m = mean(x) if center, else
 * 0 (RMSNorm's x / rms(x)): a norm without its affine part (which models
 * fold into the matmul after it) in one kernel instead of five to seven.
 * Sums run 4 lanes wide in f32, then a scalar tail for d mod 4.
 */
const standardize = `(func (export "standardize") (param $x i32) (param $out i32) (param $rows i32) (param $d i32)
    (param $eps f32) (param $center i32)
  (local $r i32) (local $i i32) (local $px i32) (local $po i32) (local $bytes i32) (local $bytes4 i32)
  (local $sum v128) (local $mean f32) (local $v v128) (local $total f32) (local $t f32) (local $scale f32)
  (local.set $bytes (i32.shl (local.get $d) (i32.const 2)))
  (local.set $bytes4 (i32.and (local.get $bytes) (i32.const -16)))
  (block $rows_done (loop $next_row
    (br_if $rows_done (i32.ge_u (local.get $r) (local.get $rows)))
    (local.set $px (i32.add (local.get $x) (i32.mul (local.get $r) (local.get $bytes))))
    (local.set $po (i32.add (local.get $out) (i32.mul (local.get $r) (local.get $bytes))))
    ;; the mean (0 for RMSNorm)
    (local.set $mean (f32.const 0))
    (if (local.get $center) (then
      (local.set $sum ${zero})
      (local.set $i (i32.const 0))
      (block $sum_done (loop $next_sum
        (br_if $sum_done (i32.ge_u (local.get $i) (local.get $bytes4)))
        (local.set $sum (f32x4.add (local.get $sum) (v128.load align=4 (i32.add (local.get $px) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $next_sum)))
      (local.set $total ${hsum('(local.get $sum)')})
      (block $tail_done (loop $next_tail
        (br_if $tail_done (i32.ge_u (local.get $i) (local.get $bytes)))
        (local.set $total (f32.add (local.get $total) (f32.load (i32.add (local.get $px) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $next_tail)))
      (local.set $mean (f32.div (local.get $total) (f32.convert_i32_u (local.get $d))))))
    ;; mean of squared deviations
    (local.set $sum ${zero})
    (local.set $i (i32.const 0))
    (block $sq_done (loop $next_sq
      (br_if $sq_done (i32.ge_u (local.get $i) (local.get $bytes4)))
      (local.set $v (f32x4.sub (v128.load align=4 (i32.add (local.get $px) (local.get $i))) (f32x4.splat (local.get $mean))))
      (local.set $sum (f32x4.add (local.get $sum) (f32x4.mul (local.get $v) (local.get $v))))
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br $next_sq)))
    (local.set $total ${hsum('(local.get $sum)')})
    (block $sq_tail_done (loop $next_sq_tail
      (br_if $sq_tail_done (i32.ge_u (local.get $i) (local.get $bytes)))
      (local.set $t (f32.sub (f32.load (i32.add (local.get $px) (local.get $i))) (local.get $mean)))
      (local.set $total (f32.add (local.get $total) (f32.mul (local.get $t) (local.get $t))))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $next_sq_tail)))
    (local.set $scale (f32.div (f32.const 1)
      (f32.sqrt (f32.add (f32.div (local.get $total) (f32.convert_i32_u (local.get $d))) (local.get $eps)))))
    ;; out = (x − mean) · scale
    (local.set $i (i32.const 0))
    (block $out_done (loop $next_out
      (br_if $out_done (i32.ge_u (local.get $i) (local.get $bytes4)))
      (v128.store align=4 (i32.add (local.get $po) (local.get $i))
        (f32x4.mul (f32x4.sub (v128.load align=4 (i32.add (local.get $px) (local.get $i))) (f32x4.splat (local.get $mean)))
          (f32x4.splat (local.get $scale))))
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br $next_out)))
    (block $out_tail_done (loop $next_out_tail
      (br_if $out_tail_done (i32.ge_u (local.get $i) (local.get $bytes)))
      (f32.store (i32.add (local.get $po) (local.get $i))
        (f32.mul (f32.sub (f32.load (i32.add (local.get $px) (local.get $i))) (local.get $mean)) (local.get $scale)))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $next_out_tail)))
    (local.set $r (i32.add (local.get $r) (i32.const 1)))
    (br $next_row)))
)`;

/** Panels per column block of `product`: 8·K·16 floats of weights (393 KB at K = 768) stay in L2 while every row tile passes over them. */
export const COLUMN_BLOCK = 16;
/** Output rows per block of `dotsProduct`: 64 rows of a 768-wide weight (196 KB) stay in L2 the same way. */
export const ROW_BLOCK = 64;

/** `(if (i32.eq $n 1) (then a(1)) (else (if … a(max)))`: a call chosen by a count 1…max. */
function byCount(n: string, max: number, call: (count: number) => string): string {
  let text = call(max);
  for (let count = max - 1; count >= 1; count--) {
    text = `(if (i32.eq (local.get ${n}) (i32.const ${count})) (then ${call(count)}) (else ${text}))`;
  }
  return text;
}

/**
 * Lines that read one word per 64-byte line of [start, end) (byte-offset
 * expressions, start < end), summed into $touched and stored at `sinkAt`
 * so that the loads stay: a burst of independent loads that brings a
 * block of weights into the cache (see product). Uses $line and $end.
 */
function loadIntoCache(start: string, end: string, sinkAt: string): string {
  return `(local.set $line ${start})
        (local.set $end ${end})
        (loop $next_line
          (local.set $touched (i32.add (local.get $touched) (i32.load (local.get $line))))
          (local.set $line (i32.add (local.get $line) (i32.const 64)))
          (br_if $next_line (i32.lt_u (local.get $line) (local.get $end))))
        (i32.store ${sinkAt} (local.get $touched))`;
}

/**
 * product(at, rows, panels, bias, c, k, ldc, p0, p1, prefetch): the whole packed
 * product for panels p0..p1-1, rows interleaved in tiles of up to 4 from
 * `at` (tile by tile, as `interleave` writes them). One call per thread:
 * threads take disjoint panel ranges.
 *
 * For two rows or more, each column block is first loaded into the cache
 * by a loop that reads one word per 64-byte line (their sum is stored
 * where the block's first output goes, so that the loads stay; the tiles
 * then overwrite it): those loads are independent and
 * many run at once, while a several-row tile that meets its weights in
 * memory runs at neither memory nor arithmetic speed (the hardware's
 * stream prefetch does not keep up, and wasm has no prefetch instruction).
 * On a 2-core Xeon, one thread, 400 MB of weights: 8 rows 109 → 77 ms,
 * 2 rows 52 → 48 ms; one row (38 ms) streams as fast without it. Loading
 * the next block a word per step inside the tile instead was slower (88).
 * On this project's 2-core EPYC the same loads cost time instead (a 4-row
 * verify pass of the shipped 26M-parameter target: 4.5–4.7 ms with them,
 * 3.7–3.9 without), so `prefetch` (0 or 1) turns them on, and the caller
 * picks it by timing both on its first products (packed-linear.ts).
 */
const product = `(func (export "product") (param $at i32) (param $rows i32) (param $panels i32) (param $bias i32)
    (param $c i32) (param $k i32) (param $ldc i32) (param $p0 i32) (param $p1 i32) (param $prefetch i32)
  (local $b i32) (local $be i32) (local $row i32) (local $a i32) (local $n i32) (local $cr i32)
  (local $line i32) (local $end i32) (local $touched i32)
  (local.set $b (local.get $p0))
  (block $done (loop $next_block
    (br_if $done (i32.ge_u (local.get $b) (local.get $p1)))
    (local.set $be (i32.add (local.get $b) (i32.const ${COLUMN_BLOCK})))
    (if (i32.gt_u (local.get $be) (local.get $p1)) (then (local.set $be (local.get $p1))))
    (if (i32.and (i32.ge_u (local.get $rows) (i32.const 2)) (local.get $prefetch))
      (then
        ${loadIntoCache(
          '(i32.add (local.get $panels) (i32.shl (i32.mul (local.get $b) (local.get $k)) (i32.const 5)))',
          '(i32.add (local.get $panels) (i32.shl (i32.mul (local.get $be) (local.get $k)) (i32.const 5)))',
          '(i32.add (local.get $c) (i32.shl (local.get $b) (i32.const 5)))',
        )}))
    (local.set $row (i32.const 0))
    (local.set $a (local.get $at))
    (block $rows_done (loop $next_tile
      (br_if $rows_done (i32.ge_u (local.get $row) (local.get $rows)))
      (local.set $n (i32.sub (local.get $rows) (local.get $row)))
      (if (i32.gt_u (local.get $n) (i32.const ${MAX_TILE_ROWS})) (then (local.set $n (i32.const ${MAX_TILE_ROWS}))))
      (local.set $cr (i32.add (local.get $c) (i32.shl (i32.mul (local.get $row) (local.get $ldc)) (i32.const 2))))
      ${byCount('$n', MAX_TILE_ROWS, (R) => `(call $tile${R} (local.get $a) (local.get $panels) (local.get $bias) (local.get $cr) (local.get $k) (local.get $ldc) (local.get $b) (local.get $be))`)}
      (local.set $a (i32.add (local.get $a) (i32.shl (i32.mul (local.get $n) (local.get $k)) (i32.const 2))))
      (local.set $row (i32.add (local.get $row) (local.get $n)))
      (br $next_tile)))
    (local.set $b (local.get $be))
    (br $next_block)))
)`;

/**
 * dotsProduct(x, w, c, k, rows, ldc, v0, v1, prefetch): c[r][v] = Σ_i x[r][i] · w[v][i]
 * for output rows v0..v1-1 of a weight kept [out, in]. Up to 2 input rows
 * read each weight row as one stream (dots{n}seq: memory-bound); more go 4
 * at a time against 2 weight rows (dots{n}x2, arithmetic-bound). One call
 * per thread: threads take disjoint output ranges. For 2 rows or more each
 * block of weight rows is loaded into the cache first, as in product (a
 * word per line, their sum stored where the block's first output goes): on a 2-core Xeon,
 * one thread, GPT-2's tied head twice over, 2 rows 43 → 36.5 ms, 8 rows
 * 73 → 58 ms (one row: 32 ms either way). `prefetch` as in product.
 */
const dotsProduct = `(func (export "dotsProduct") (param $x i32) (param $w i32) (param $c i32) (param $k i32)
    (param $rows i32) (param $ldc i32) (param $v0 i32) (param $v1 i32) (param $prefetch i32)
  (local $vb i32) (local $ve i32) (local $row i32) (local $n i32) (local $xr i32) (local $cr i32) (local $even i32)
  (local $line i32) (local $end i32) (local $touched i32)
  (local.set $vb (local.get $v0))
  (block $done (loop $next_block
    (br_if $done (i32.ge_u (local.get $vb) (local.get $v1)))
    (local.set $ve (i32.add (local.get $vb) (i32.const ${ROW_BLOCK})))
    (if (i32.gt_u (local.get $ve) (local.get $v1)) (then (local.set $ve (local.get $v1))))
    (if (i32.and (i32.ge_u (local.get $rows) (i32.const 2)) (local.get $prefetch))
      (then
        ${loadIntoCache(
          '(i32.add (local.get $w) (i32.shl (i32.mul (local.get $vb) (local.get $k)) (i32.const 2)))',
          '(i32.add (local.get $w) (i32.shl (i32.mul (local.get $ve) (local.get $k)) (i32.const 2)))',
          '(i32.add (local.get $c) (i32.shl (local.get $vb) (i32.const 2)))',
        )}))
    (if (i32.le_u (local.get $rows) (i32.const 2))
      (then
        ${byCount('$rows', 2, (R) => `(call $dots${R}seq (local.get $x) (local.get $w) (local.get $c) (local.get $k) (local.get $ldc) (local.get $vb) (local.get $ve))`)})
      (else
        (local.set $even (i32.sub (local.get $ve) (i32.and (i32.sub (local.get $ve) (local.get $vb)) (i32.const 1))))
        (local.set $row (i32.const 0))
        (block $rows_done (loop $next_tile
          (br_if $rows_done (i32.ge_u (local.get $row) (local.get $rows)))
          (local.set $n (i32.sub (local.get $rows) (local.get $row)))
          (if (i32.gt_u (local.get $n) (i32.const ${MAX_TILE_ROWS})) (then (local.set $n (i32.const ${MAX_TILE_ROWS}))))
          (local.set $xr (i32.add (local.get $x) (i32.shl (i32.mul (local.get $row) (local.get $k)) (i32.const 2))))
          (local.set $cr (i32.add (local.get $c) (i32.shl (i32.mul (local.get $row) (local.get $ldc)) (i32.const 2))))
          (if (i32.gt_u (local.get $even) (local.get $vb))
            (then ${byCount('$n', MAX_TILE_ROWS, (R) => `(call $dots${R}x2 (local.get $xr) (local.get $w) (local.get $cr) (local.get $k) (local.get $ldc) (local.get $vb) (local.get $even))`)}))
          (if (i32.lt_u (local.get $even) (local.get $ve))
            (then ${byCount('$n', MAX_TILE_ROWS, (R) => `(call $dots${R}x1 (local.get $xr) (local.get $w) (local.get $cr) (local.get $k) (local.get $ldc) (local.get $even) (local.get $ve))`)}))
          (local.set $row (i32.add (local.get $row) (local.get $n)))
          (br $next_tile)))))
    (local.set $vb (local.get $ve))
    (br $next_block)))
)`;

/**
 * `(f32x4.add (local.get $acc) (f32x4.mul (local.get $a) (local.get $b)))`,
 * the kernels' multiply-accumulate, as one `f32x4.relaxed_madd` (relaxed
 * SIMD): a fused multiply-add where the hardware has one, which V8 emits on
 * x64 with FMA3 (its result may round once instead of twice; both are
 * allowed). Every accumulation in the product loops is written in exactly
 * that form; anything else is left as it is. On a 2-core Xeon it took
 * GPT-2's 8-step extendStep from 72 to 63 ms.
 */
export function fuseMultiplyAdds(text: string): string {
  return text.replace(
    /\(f32x4\.add \(local\.get (\$\w+)\) \(f32x4\.mul \(local\.get (\$\w+)\) \(local\.get (\$\w+)\)\)\)/g,
    (_match, acc: string, a: string, b: string) =>
      `(f32x4.relaxed_madd (local.get ${a}) (local.get ${b}) (local.get ${acc}))`,
  );
}

/** Which memory a build imports, and whether it uses relaxed SIMD's fused multiply-add. */
export interface KernelBuild {
  memory: 'tfjs' | 'shared';
  fma: boolean;
}

/**
 * The module's text. `shared`: it imports a shared memory (core's weight
 * arena, which worker threads instantiate the same module over) instead of
 * tfjs-backend-wasm's own, which is not shared.
 */
export function wasmKernelsWat({ memory, fma }: KernelBuild = { memory: 'tfjs', fma: false }): string {
  // Products only: attention keeps one rounding for its one-step and grouped paths, which
  // must give a step the same result whichever steps share its call.
  const fuse = fma ? fuseMultiplyAdds : (text: string) => text;
  const tiles = Array.from({ length: MAX_TILE_ROWS }, (_, i) => fuse(tile(i + 1)));
  const dotTiles = Array.from({ length: MAX_TILE_ROWS }, (_, i) => [dots(i + 1, 1), dots(i + 1, 2)])
    .flat()
    .map(fuse);
  return [
    '(module',
    memory === 'shared'
      ? '(import "tfjs" "memory" (memory 1 65536 shared))'
      : '(import "tfjs" "memory" (memory 1))',
    interleave,
    packPanels,
    standardize,
    ...tiles,
    ...dotTiles,
    fuse(dotsSequential(1)),
    fuse(dotsSequential(2)),
    product,
    dotsProduct,
    attendStep(),
    ...GROUPS.map(attendGroup),
    attend,
    ')',
  ].join('\n');
}

/** A module whose one function uses relaxed SIMD: whether it validates says whether the engine has it. */
const RELAXED_SIMD_PROBE =
  '(module (func (param v128 v128 v128) (result v128) (f32x4.relaxed_madd (local.get 0) (local.get 1) (local.get 2))))';

async function assemble(name: string, text: string, features: Record<string, boolean>): Promise<Uint8Array> {
  const { default: wabtInit } = await import('wabt');
  const wabt = await wabtInit();
  const module = wabt.parseWat(name, text, features);
  try {
    // wabt's index.d.ts declares validate() without parameters, but index.js's takes the same features as
    // parseWat (without them the relaxed SIMD kernels fail validation).
    (module.validate as (features: Record<string, boolean>) => void).call(module, features);
    return module.toBinary({}).buffer;
  } finally {
    module.destroy();
  }
}

/** Assembles the text with wabt (a dev dependency: only this script and its test need it). */
export function assembleWasmKernels(
  build: KernelBuild = { memory: 'tfjs', fma: false },
): Promise<Uint8Array> {
  return assemble('specstream-kernels.wat', wasmKernelsWat(build), {
    simd: true,
    threads: build.memory === 'shared',
    relaxed_simd: build.fma,
  });
}

export function assembleRelaxedSimdProbe(): Promise<Uint8Array> {
  return assemble('probe.wat', RELAXED_SIMD_PROBE, { simd: true, relaxed_simd: true });
}

// ---------------------------------------------------------------------------
// Quantized products (a module of their own over the weight arena; see
// quantKernelsWat and src/kernel-sets/wasm/quant-matrix.ts for the layout).
// ---------------------------------------------------------------------------

/**
 * Rows per tile of the quantized products: a tile reads each block of
 * weights once for its rows. Two: one thread on this project's 2-core EPYC
 * (768×3072, warm cache) ran q8 at 24 (1 row), 28 (2), 21–24 (4) GMAC/s
 * with tiles of 4 or 3 rows and about 28 at any row count with 2; q4r 44
 * at 2–8 rows with tiles of 2, 40 with 4. Wider tiles spill accumulators.
 */
export const QUANT_TILE_ROWS = 2;
/** Quads (4 output columns) per column block: the tiles of a product's rows pass over a block while it is in L2. */
export const QUANT_COLUMN_BLOCK = 16;

/** The quantized weight formats: bytes of quants per block of 32 inputs × 4 columns. */
export const QUANT_BLOCK_BYTES = { q8: 128, q4: 64 } as const;

const i8x16 = (c: number) =>
  `(v128.const i8x16 ${range(16)
    .map(() => c)
    .join(' ')})`;

/**
 * `into` = the four f16 scales at `at` (u16 bits) as f32: the magnitude's
 * bits shifted into f32 position and multiplied by 2¹¹², which is exact
 * for normal and subnormal halves alike (infinities and NaN are refused
 * when a matrix is built), then the sign. Uses $h and the constants
 * $c7fff, $c8000, $c112.
 */
function halfScales(into: string, at: string): string[] {
  return [
    `(local.set $h (v128.load16x4_u ${at}))`,
    `(local.set ${into} (v128.or`,
    '  (f32x4.mul (i32x4.shl (v128.and (local.get $h) (local.get $c7fff)) (i32.const 13)) (local.get $c112))',
    '  (i32x4.shl (v128.and (local.get $h) (local.get $c8000)) (i32.const 16))))',
  ];
}

/**
 * quantizeRows(x, rows, k, out): activations quantized per block of 32, as
 * the quantized products read them. x: f32 [rows, k], k a multiple of 32,
 * so the n = rows·k/32 blocks are consecutive. Per block, d = amax/127 and
 * q = nearest(x·127/amax) in −127…127 (0 for an all-zero block). Writes at
 * `out`: d f32 [n], Σq i32 [n] (for q4's offset of 8), q as i16 [n·32],
 * then q as i8 [n·32].
 */
const quantizeRows = `(func (export "quantizeRows") (param $x i32) (param $rows i32) (param $k i32) (param $out i32)
  (local $n i32) (local $i i32) (local $pd i32) (local $ps i32) (local $p16 i32) (local $p8 i32) (local $px i32)
  (local $m v128) (local $id v128) (local $amax f32)
  ${range(8)
    .map((i) => `(local $v${i} v128) (local $q${i} v128)`)
    .join(' ')}
  (local $h0 v128) (local $h1 v128) (local $h2 v128) (local $h3 v128)
  (local.set $n (i32.mul (local.get $rows) (i32.shr_u (local.get $k) (i32.const 5))))
  (local.set $pd (local.get $out))
  (local.set $ps (i32.add (local.get $out) (i32.shl (local.get $n) (i32.const 2))))
  (local.set $p16 (i32.add (local.get $ps) (i32.shl (local.get $n) (i32.const 2))))
  (local.set $p8 (i32.add (local.get $p16) (i32.shl (local.get $n) (i32.const 6))))
  (local.set $px (local.get $x))
  (block $done (loop $next_block
    (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
    ${range(8)
      .map((i) => `(local.set $v${i} (v128.load offset=${16 * i} align=4 (local.get $px)))`)
      .join('\n    ')}
    (local.set $m (f32x4.max
      (f32x4.max (f32x4.max (f32x4.abs (local.get $v0)) (f32x4.abs (local.get $v1))) (f32x4.max (f32x4.abs (local.get $v2)) (f32x4.abs (local.get $v3))))
      (f32x4.max (f32x4.max (f32x4.abs (local.get $v4)) (f32x4.abs (local.get $v5))) (f32x4.max (f32x4.abs (local.get $v6)) (f32x4.abs (local.get $v7))))))
    (local.set $m (f32x4.max (local.get $m) (i8x16.shuffle ${lanes(2, 3, 0, 1)} (local.get $m) (local.get $m))))
    (local.set $m (f32x4.max (local.get $m) (i8x16.shuffle ${lanes(1, 0, 3, 2)} (local.get $m) (local.get $m))))
    (local.set $amax (f32x4.extract_lane 0 (local.get $m)))
    (f32.store (local.get $pd) (f32.div (local.get $amax) (f32.const 127)))
    (local.set $id (f32x4.splat (select (f32.div (f32.const 127) (local.get $amax)) (f32.const 0) (f32.gt (local.get $amax) (f32.const 0)))))
    ${range(8)
      .map(
        (i) =>
          `(local.set $q${i} (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (local.get $v${i}) (local.get $id)))))`,
      )
      .join('\n    ')}
    ${range(4)
      .map(
        (i) => `(local.set $h${i} (i16x8.narrow_i32x4_s (local.get $q${2 * i}) (local.get $q${2 * i + 1})))`,
      )
      .join('\n    ')}
    ${range(4)
      .map((i) => `(v128.store offset=${16 * i} align=2 (local.get $p16) (local.get $h${i}))`)
      .join('\n    ')}
    (v128.store align=1 (local.get $p8) (i8x16.narrow_i16x8_s (local.get $h0) (local.get $h1)))
    (v128.store offset=16 align=1 (local.get $p8) (i8x16.narrow_i16x8_s (local.get $h2) (local.get $h3)))
    (local.set $m (i32x4.add (i32x4.add (i32x4.add (local.get $q0) (local.get $q1)) (i32x4.add (local.get $q2) (local.get $q3)))
      (i32x4.add (i32x4.add (local.get $q4) (local.get $q5)) (i32x4.add (local.get $q6) (local.get $q7)))))
    (i32.store (local.get $ps) (i32.add
      (i32.add (i32x4.extract_lane 0 (local.get $m)) (i32x4.extract_lane 1 (local.get $m)))
      (i32.add (i32x4.extract_lane 2 (local.get $m)) (i32x4.extract_lane 3 (local.get $m)))))
    (local.set $px (i32.add (local.get $px) (i32.const 128)))
    (local.set $pd (i32.add (local.get $pd) (i32.const 4)))
    (local.set $ps (i32.add (local.get $ps) (i32.const 4)))
    (local.set $p16 (i32.add (local.get $p16) (i32.const 64)))
    (local.set $p8 (i32.add (local.get $p8) (i32.const 32)))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $next_block)))
)`;

/**
 * The kinds of quantized product: q8 and q4 multiply 8-bit activations by
 * the weights widened to i16 (i32x4.dot_i16x8_s); q4r multiplies them by
 * the nibbles as they are with relaxed SIMD's i16x8.relaxed_dot_i8x16_i7x16_s
 * (nibbles 0…15 are valid 7-bit operands), then takes 8·Σx off each block.
 */
export type QuantKind = 'q8' | 'q4' | 'q4r';

/**
 * quantTile{kind}{R}(x16, x8, xd, xs, k, w, bias, c, ldc, nb, q0, q1): for
 * quads q0..q1−1 of a quantized matrix at w (layout in quant-matrix.ts),
 * c[r][4q + j] = bias[4q + j] + Σ_b d_w[b][4q + j]·dx[r][b]·Σ_i qx[r][32b + i]·qw[32b + i][4q + j],
 * r < R: the R rows' quantized activations from x16 (i16, rows 2k bytes
 * apart), x8 (i8, k apart), xd (scales, 4·nb apart), xs (sums, 4·nb apart).
 *
 * Each weight vector holds 4 inputs × 4 columns (bytes [column][input]),
 * and a splat of the row's 4 activations lines up with it, so the products
 * land in per-column lanes with no horizontal sums: for q8 and q4 the i16
 * halves (columns 0–1 and 2–3) give two pairs of lanes per column, A and
 * B, folded together once per block; q4r's 16-bit pair sums stay 16-bit
 * through the block (|x·q| ≤ 127·15, eight pairs of them < 2¹⁵) and widen once.
 * Integer sums are exact; each block adds one f32 product into the row's total.
 */
function quantTile(kind: QuantKind, R: number): string {
  const rows = range(R);
  const blockBytes = kind === 'q8' ? QUANT_BLOCK_BYTES.q8 : QUANT_BLOCK_BYTES.q4;
  const lines = [
    `(func $quantTile_${kind}_${R} (param $x16 i32) (param $x8 i32) (param $xd i32) (param $xs i32) (param $k i32)`,
    '    (param $w i32) (param $bias i32) (param $c i32) (param $ldc i32) (param $nb i32) (param $q0 i32) (param $q1 i32)',
    '  (local $q i32) (local $b i32) (local $pw i32) (local $ps i32) (local $pc i32) (local $quadBytes i32)',
    '  (local $odd i32) (local $last i32)',
    '  (local $v v128) (local $lo v128) (local $hi v128) (local $xv v128) (local $h v128) (local $d v128)',
    '  (local $c15 v128) (local $c8 v128) (local $c7fff v128) (local $c8000 v128) (local $c112 v128)',
    ...rows.map(
      (r) =>
        `  (local $px${r} i32) (local $pd${r} i32) (local $A${r} v128) (local $B${r} v128) (local $t${r} v128)`,
    ),
    `  (local.set $quadBytes (i32.add (i32.mul (local.get $nb) (i32.const ${blockBytes}))`,
    '    (i32.shl (i32.shr_u (i32.add (local.get $nb) (i32.const 1)) (i32.const 1)) (i32.const 4))))',
    '  (local.set $q (local.get $q0))',
    '  (local.set $pw (i32.add (local.get $w) (i32.mul (local.get $q0) (local.get $quadBytes))))',
    // Constants in locals: V8 builds a v128.const afresh at each use, inside the loop.
    `  (local.set $c15 ${i8x16(15)}) (local.set $c8 ${i8x16(8)})`,
    '  (local.set $c7fff (v128.const i32x4 0x7fff 0x7fff 0x7fff 0x7fff))',
    '  (local.set $c8000 (v128.const i32x4 0x8000 0x8000 0x8000 0x8000))',
    '  (local.set $c112 (v128.const f32x4 0x1p112 0x1p112 0x1p112 0x1p112))',
    '  (block $done (loop $next_quad',
    '    (br_if $done (i32.ge_u (local.get $q) (local.get $q1)))',
    '    (if (local.get $bias)',
    `      (then (local.set $t0 (v128.load align=4 (i32.add (local.get $bias) (i32.shl (local.get $q) (i32.const 4))))))`,
    `      (else (local.set $t0 ${zero})))`,
  ];
  for (const r of rows) {
    if (r > 0) lines.push(`    (local.set $t${r} (local.get $t0))`);
    // q8/q4 read i16 activations, q4r i8 ones.
    const [base, stride] =
      kind === 'q4r' ? ['$x8', '(local.get $k)'] : ['$x16', '(i32.shl (local.get $k) (i32.const 1))'];
    lines.push(
      `    (local.set $px${r} (i32.add (local.get ${base}) (i32.mul (i32.const ${r}) ${stride})))`,
      `    (local.set $pd${r} (i32.add (local.get $xd) (i32.mul (i32.const ${r}) (i32.shl (local.get $nb) (i32.const 2)))))`,
    );
  }
  lines.push('    (local.set $b (i32.const 0))', '    (loop $next_block');
  // Blocks go in pairs, each pair's 2 × 4 scales after its quants (a lone last block: after its own).
  const body: string[] = [
    '(local.set $odd (i32.and (local.get $b) (i32.const 1)))',
    '(local.set $last (i32.eq (i32.add (local.get $b) (i32.const 1)) (local.get $nb)))',
    `(local.set $ps (i32.add (local.get $pw) (i32.add (i32.const ${blockBytes})`,
    `  (select (i32.const 8) (select (i32.const 0) (i32.const ${blockBytes}) (local.get $last)) (local.get $odd)))))`,
  ];
  /** A_r += dot(lo, x), B_r += dot(hi, x) for the weight vector in $v (i8, signed) against inputs 4·quad… */
  const widened = (
    quad: number,
    first: boolean,
    lo = '(i16x8.extend_low_i8x16_s (local.get $v))',
    hi = '(i16x8.extend_high_i8x16_s (local.get $v))',
  ) => {
    body.push(`(local.set $lo ${lo})`, `(local.set $hi ${hi})`);
    for (const r of rows) {
      body.push(`(local.set $xv (v128.load64_splat offset=${8 * quad} align=2 (local.get $px${r})))`);
      for (const [acc, half] of [
        [`$A${r}`, '$lo'],
        [`$B${r}`, '$hi'],
      ]) {
        const dot = `(i32x4.dot_i16x8_s (local.get ${half}) (local.get $xv))`;
        body.push(`(local.set ${acc} ${first ? dot : `(i32x4.add (local.get ${acc}) ${dot})`})`);
      }
    }
  };
  if (kind === 'q8') {
    // Loaded and widened in one (pmovsxbw from memory on x64): columns 0–1, then 2–3.
    for (let j = 0; j < 8; j++) {
      widened(
        j,
        j === 0,
        `(v128.load8x8_s offset=${16 * j} align=1 (local.get $pw))`,
        `(v128.load8x8_s offset=${16 * j + 8} align=1 (local.get $pw))`,
      );
    }
  } else if (kind === 'q4') {
    for (let t = 0; t < 4; t++) {
      body.push(
        `(local.set $h (v128.load offset=${16 * t} align=4 (local.get $pw)))`,
        '(local.set $v (i8x16.sub (v128.and (local.get $h) (local.get $c15)) (local.get $c8)))',
      );
      widened(t, t === 0);
      body.push('(local.set $v (i8x16.sub (i8x16.shr_u (local.get $h) (i32.const 4)) (local.get $c8)))');
      widened(4 + t, false);
    }
  } else {
    for (let t = 0; t < 4; t++) {
      body.push(
        `(local.set $h (v128.load offset=${16 * t} align=4 (local.get $pw)))`,
        '(local.set $lo (v128.and (local.get $h) (local.get $c15)))',
        '(local.set $hi (i8x16.shr_u (local.get $h) (i32.const 4)))',
      );
      for (const r of rows) {
        for (const [half, offset] of [
          ['$lo', 4 * t],
          ['$hi', 16 + 4 * t],
        ] as const) {
          const dot = `(i16x8.relaxed_dot_i8x16_i7x16_s (v128.load32_splat offset=${offset} align=1 (local.get $px${r})) (local.get ${half}))`;
          body.push(
            `(local.set $A${r} ${t === 0 && half === '$lo' ? dot : `(i16x8.add (local.get $A${r}) ${dot})`})`,
          );
        }
      }
    }
  }
  body.push(...halfScales('$d', '(local.get $ps)'));
  for (const r of rows) {
    const sums =
      kind === 'q4r'
        ? `(i32x4.sub (i32x4.extadd_pairwise_i16x8_s (local.get $A${r}))
    (i32x4.splat (i32.shl (i32.load (i32.add (local.get $pd${r}) (i32.sub (local.get $xs) (local.get $xd)))) (i32.const 3))))`
        : `(i32x4.add (i8x16.shuffle ${lanes(0, 2, 4, 6)} (local.get $A${r}) (local.get $B${r}))
    (i8x16.shuffle ${lanes(1, 3, 5, 7)} (local.get $A${r}) (local.get $B${r})))`;
    body.push(
      `(local.set $t${r} (f32x4.add (local.get $t${r}) (f32x4.mul (f32x4.convert_i32x4_s ${sums})`,
      `  (f32x4.mul (local.get $d) (v128.load32_splat align=4 (local.get $pd${r}))))))`,
      `(local.set $px${r} (i32.add (local.get $px${r}) (i32.const ${kind === 'q4r' ? 32 : 64})))`,
      `(local.set $pd${r} (i32.add (local.get $pd${r}) (i32.const 4)))`,
    );
  }
  body.push(
    `(local.set $pw (i32.add (local.get $pw) (i32.add (i32.const ${blockBytes})`,
    '  (select (i32.const 16) (i32.const 0) (i32.or (local.get $odd) (local.get $last))))))',
    '(local.set $b (i32.add (local.get $b) (i32.const 1)))',
    '(br_if $next_block (i32.lt_u (local.get $b) (local.get $nb)))',
  );
  lines.push(...indent(body, '      '), '    )');
  lines.push('    (local.set $pc (i32.add (local.get $c) (i32.shl (local.get $q) (i32.const 4))))');
  for (const r of rows) {
    lines.push(`    (v128.store align=4 (local.get $pc) (local.get $t${r}))`);
    if (r < R - 1)
      lines.push('    (local.set $pc (i32.add (local.get $pc) (i32.shl (local.get $ldc) (i32.const 2))))');
  }
  lines.push('    (local.set $q (i32.add (local.get $q) (i32.const 1)))', '    (br $next_quad)))', ')');
  return lines.join('\n');
}

/**
 * quant{kind}(x, rows, w, bias, c, k, ldc, q0, q1): c [rows, ldc] = the
 * activations at x (as quantizeRows wrote them) times quads q0..q1−1 of the
 * quantized matrix at w, plus bias (4·quads floats, or 0 for none). One
 * call per thread: threads take disjoint quad ranges. Quads go by column
 * blocks of QUANT_COLUMN_BLOCK; each block passes through tiles of up to
 * QUANT_TILE_ROWS rows (the later tiles find its weights in cache).
 */
function quantProduct(kind: QuantKind): string {
  const args = (R: number) =>
    `(call $quantTile_${kind}_${R} (i32.add (local.get $x16) (i32.shl (i32.mul (local.get $row) (local.get $k)) (i32.const 1)))
          (i32.add (local.get $x8) (i32.mul (local.get $row) (local.get $k)))
          (i32.add (local.get $xd) (i32.shl (i32.mul (local.get $row) (local.get $nb)) (i32.const 2)))
          (i32.add (local.get $xs) (i32.shl (i32.mul (local.get $row) (local.get $nb)) (i32.const 2)))
          (local.get $k) (local.get $w) (local.get $bias)
          (i32.add (local.get $c) (i32.shl (i32.mul (local.get $row) (local.get $ldc)) (i32.const 2)))
          (local.get $ldc) (local.get $nb) (local.get $qb) (local.get $qe))`;
  return `(func (export "quant${kind}") (param $x i32) (param $rows i32) (param $w i32) (param $bias i32)
    (param $c i32) (param $k i32) (param $ldc i32) (param $q0 i32) (param $q1 i32)
  (local $nb i32) (local $xd i32) (local $xs i32) (local $x16 i32) (local $x8 i32)
  (local $qb i32) (local $qe i32) (local $row i32) (local $n i32)
  (local.set $nb (i32.shr_u (local.get $k) (i32.const 5)))
  (local.set $xd (local.get $x))
  (local.set $xs (i32.add (local.get $xd) (i32.shl (i32.mul (local.get $rows) (local.get $nb)) (i32.const 2))))
  (local.set $x16 (i32.add (local.get $xs) (i32.shl (i32.mul (local.get $rows) (local.get $nb)) (i32.const 2))))
  (local.set $x8 (i32.add (local.get $x16) (i32.shl (i32.mul (local.get $rows) (local.get $k)) (i32.const 1))))
  (local.set $qb (local.get $q0))
  (block $done (loop $next_block
    (br_if $done (i32.ge_u (local.get $qb) (local.get $q1)))
    (local.set $qe (i32.add (local.get $qb) (i32.const ${QUANT_COLUMN_BLOCK})))
    (if (i32.gt_u (local.get $qe) (local.get $q1)) (then (local.set $qe (local.get $q1))))
    (local.set $row (i32.const 0))
    (block $rows_done (loop $next_tile
      (br_if $rows_done (i32.ge_u (local.get $row) (local.get $rows)))
      (local.set $n (i32.sub (local.get $rows) (local.get $row)))
      (if (i32.gt_u (local.get $n) (i32.const ${QUANT_TILE_ROWS})) (then (local.set $n (i32.const ${QUANT_TILE_ROWS}))))
      ${byCount('$n', QUANT_TILE_ROWS, args)}
      (local.set $row (i32.add (local.get $row) (local.get $n)))
      (br $next_tile)))
    (local.set $qb (local.get $qe))
    (br $next_block)))
)`;
}

/**
 * The quantized kernels' module, over the weight arena's shared memory:
 * quantizeRows, quantq8, quantq4, and with `relaxed` quantq4r too (the
 * relaxed build loads only where relaxed SIMD's dot product validates and
 * gives right answers: V8 11.3's i32x4.relaxed_dot_i8x16_i7x16_add_s, in
 * Node 20, returns twice the dot product and drops the addend, so the
 * kernels use the i16x8 form, which it gets right; quant-kernels.ts checks).
 */
export function quantKernelsWat({ relaxed }: { relaxed: boolean }): string {
  const kinds: QuantKind[] = relaxed ? ['q8', 'q4', 'q4r'] : ['q8', 'q4'];
  return [
    '(module',
    '(import "tfjs" "memory" (memory 1 65536 shared))',
    quantizeRows,
    ...kinds.flatMap((kind) => range(QUANT_TILE_ROWS).map((r) => quantTile(kind, r + 1))),
    ...kinds.map(quantProduct),
    ')',
  ].join('\n');
}

/**
 * A module whose `dot` stores i16x8.relaxed_dot_i8x16_i7x16_s of the 16 bytes
 * at 0 and the 16 at 16 at 32, for quant-kernels.ts to compare with the exact
 * pair sums before it trusts the relaxed quantized kernels.
 */
const RELAXED_DOT_PROBE = `(module (memory (export "memory") 1)
  (func (export "dot") (v128.store (i32.const 32)
    (i16x8.relaxed_dot_i8x16_i7x16_s (v128.load (i32.const 0)) (v128.load (i32.const 16))))))`;

export function assembleQuantKernels(relaxed: boolean): Promise<Uint8Array> {
  return assemble('specstream-quant-kernels.wat', quantKernelsWat({ relaxed }), {
    simd: true,
    threads: true,
    relaxed_simd: relaxed,
  });
}

export function assembleRelaxedDotProbe(): Promise<Uint8Array> {
  return assemble('relaxed-dot-probe.wat', RELAXED_DOT_PROBE, { simd: true, relaxed_simd: true });
}

/** The formatter's line width (biome.json). */
const LINE_WIDTH = 110;

function base64Constant(name: string, bytes: Uint8Array): string[] {
  const base64 = Buffer.from(bytes).toString('base64');
  const lines = base64.match(/.{1,100}/g) ?? [];
  // As the formatter writes it: one line where it fits.
  const oneLine = `export const ${name} = '${base64}';`;
  if (oneLine.length <= LINE_WIDTH) return [oneLine];
  return [
    `export const ${name} =`,
    ...lines.map((line, i) => `  '${line}'${i === lines.length - 1 ? ';' : ' +'}`),
  ];
}

export interface KernelBinaries {
  tfjs: Uint8Array;
  shared: Uint8Array;
  tfjsFma: Uint8Array;
  sharedFma: Uint8Array;
  probe: Uint8Array;
  quant: Uint8Array;
  quantRelaxed: Uint8Array;
  relaxedDotProbe: Uint8Array;
}

/** Each constant of the generated file: its name, its doc comment, the binary it holds. */
const GENERATED_CONSTANTS: [name: string, doc: string, binary: keyof KernelBinaries][] = [
  ['WASM_KERNELS_BASE64', "Over tfjs-backend-wasm's memory.", 'tfjs'],
  [
    'WASM_SHARED_KERNELS_BASE64',
    "The same kernels over a shared memory (core's weight arena and its worker threads).",
    'shared',
  ],
  ['WASM_KERNELS_FMA_BASE64', 'WASM_KERNELS_BASE64 with fused multiply-adds (relaxed SIMD).', 'tfjsFma'],
  [
    'WASM_SHARED_KERNELS_FMA_BASE64',
    'WASM_SHARED_KERNELS_BASE64 with fused multiply-adds (relaxed SIMD).',
    'sharedFma',
  ],
  ['RELAXED_SIMD_PROBE_BASE64', 'A module that validates only where the engine has relaxed SIMD.', 'probe'],
  ['WASM_QUANT_KERNELS_BASE64', "The quantized products, over the weight arena's shared memory.", 'quant'],
  [
    'WASM_QUANT_KERNELS_RELAXED_BASE64',
    "WASM_QUANT_KERNELS_BASE64 and a q4 product on relaxed SIMD's 8-bit dot product.",
    'quantRelaxed',
  ],
  [
    'RELAXED_DOT_PROBE_BASE64',
    "A module that checks relaxed SIMD's i16x8 dot product (quant-kernels.ts).",
    'relaxedDotProbe',
  ],
];

export function binaryModuleSource(b: KernelBinaries): string {
  return [
    '// Generated by packages/core/scripts/wasm-kernels.ts from the WebAssembly text there; do not edit.',
    '// Regenerate: node --import tsx packages/core/scripts/wasm-kernels.ts',
    '',
    ...GENERATED_CONSTANTS.flatMap(([name, doc, binary]) => [
      `/** ${doc} */`,
      ...base64Constant(name, b[binary]),
      '',
    ]),
  ].join('\n');
}

export async function assembleAll(): Promise<KernelBinaries> {
  return {
    tfjs: await assembleWasmKernels({ memory: 'tfjs', fma: false }),
    shared: await assembleWasmKernels({ memory: 'shared', fma: false }),
    tfjsFma: await assembleWasmKernels({ memory: 'tfjs', fma: true }),
    sharedFma: await assembleWasmKernels({ memory: 'shared', fma: true }),
    probe: await assembleRelaxedSimdProbe(),
    quant: await assembleQuantKernels(false),
    quantRelaxed: await assembleQuantKernels(true),
    relaxedDotProbe: await assembleRelaxedDotProbe(),
  };
}

export const GENERATED_PATH = join(
  dirname(fileURLToPath(import.meta.url)),
  '../src/kernel-sets/wasm/wasm-binary.ts',
);

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(GENERATED_PATH, binaryModuleSource(await assembleAll()));
  console.log(`wrote ${GENERATED_PATH}`);
}
