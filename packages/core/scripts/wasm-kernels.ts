/**
 * Source of core's WebAssembly SIMD kernels, written as WebAssembly text
 * generated here (the row tiles are unrolled), and the script that assembles
 * it into src/kernels/wasm-binary.ts:
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
    `(func (export "tile${R}") (param $at i32) (param $panels i32) (param $bias i32) (param $c i32)`,
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

/**
 * exp(x) for four lanes, x ≤ 0: 2ⁿ·e^r with n = round(x·log₂e) and
 * r = x − n·ln2 (ln2 in two parts, Cody–Waite), |r| ≤ ln2/2, e^r by its
 * degree-6 Taylor polynomial (relative error below 2e-7). Lanes below −87
 * (2ⁿ would leave the normal range), −∞ and NaN give exactly 0.
 */
const exp4 = `(func $exp4 (param $x v128) (result v128)
  (local $n v128) (local $r v128) (local $p v128)
  (local.set $n (f32x4.nearest (f32x4.mul (local.get $x) (v128.const f32x4 ${Array(4).fill(Math.LOG2E).join(' ')}))))
  (local.set $r (f32x4.sub (local.get $x) (f32x4.mul (local.get $n) (v128.const f32x4 0.693359375 0.693359375 0.693359375 0.693359375))))
  (local.set $r (f32x4.sub (local.get $r) (f32x4.mul (local.get $n) (v128.const f32x4 -2.12194440e-4 -2.12194440e-4 -2.12194440e-4 -2.12194440e-4))))
  (local.set $p (v128.const f32x4 ${Array(4)
    .fill(1 / 720)
    .join(' ')}))
${[1 / 120, 1 / 24, 1 / 6, 0.5, 1, 1]
  .map(
    (c) =>
      `  (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (v128.const f32x4 ${Array(4).fill(c).join(' ')})))`,
  )
  .join('\n')}
  (v128.and
    (f32x4.mul (local.get $p)
      (i32x4.shl (i32x4.add (i32x4.trunc_sat_f32x4_s (local.get $n)) (v128.const i32x4 127 127 127 127)) (i32.const 23)))
    (f32x4.ge (local.get $x) (v128.const f32x4 -87 -87 -87 -87))))`;

const hsum = (v: string) =>
  `(f32.add (f32.add (f32x4.extract_lane 0 ${v}) (f32x4.extract_lane 1 ${v})) (f32.add (f32x4.extract_lane 2 ${v}) (f32x4.extract_lane 3 ${v})))`;

/**
 * attend(q, keys, values, out, probs, starts, batch, steps, heads, kvHeads,
 *   headDim, batchStride, headStride, slotStride, window):
 * causal attention of new steps over a cache of keys and values, every row,
 * head and step in one call. q, out: [batch, steps, heads, headDim] (q
 * already scaled). Key/value vector of (row b, KV head g, slot j) at float
 * b·batchStride + g·headStride + j·slotStride of keys/values, so both
 * [batch, kvHeads, slots, headDim] and [batch, slots, kvHeads, headDim]
 * work. Query head h reads KV head h / (heads / kvHeads). Row b's step s
 * sees the last min(window, n) of slots 0 … n − 1, n = starts[b] + s + 1
 * (i32 starts). probs: scratch for window + 4 floats. headDim a multiple of 4.
 */
const attend = `(func (export "attend") (param $q i32) (param $keys i32) (param $values i32) (param $out i32)
    (param $probs i32) (param $starts i32) (param $batch i32) (param $steps i32) (param $heads i32)
    (param $kvHeads i32) (param $hd i32) (param $batchStride i32) (param $headStride i32) (param $slotStride i32)
    (param $window i32)
  (local $b i32) (local $h i32) (local $s i32) (local $j i32) (local $d i32) (local $n i32) (local $n4 i32)
  (local $lo i32) (local $slotBytes i32)
  (local $rowBytes i32) (local $kBase i32) (local $vBase i32) (local $qp i32) (local $op i32) (local $kp i32)
  (local $vp i32) (local $pp i32) (local $hd16 i32) (local $max f32) (local $score f32) (local $inv v128)
  (local $acc v128) (local $sum v128) (local $p v128) (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
  (local.set $rowBytes (i32.shl (local.get $hd) (i32.const 2)))
  (local.set $slotBytes (i32.shl (local.get $slotStride) (i32.const 2)))
  (local.set $hd16 (i32.and (local.get $hd) (i32.const -16)))
  (local.set $b (i32.const 0))
  (loop $next_b
    (local.set $h (i32.const 0))
    (loop $next_h
      ;; this head's first key: b·batchStride + (h / group)·headStride floats
      (local.set $kBase (i32.shl (i32.add (i32.mul (local.get $b) (local.get $batchStride))
        (i32.mul (i32.div_u (local.get $h) (i32.div_u (local.get $heads) (local.get $kvHeads))) (local.get $headStride)))
        (i32.const 2)))
      (local.set $vBase (i32.add (local.get $values) (local.get $kBase)))
      (local.set $kBase (i32.add (local.get $keys) (local.get $kBase)))
      (local.set $s (i32.const 0))
      (loop $next_s
        ;; visible slots lo … lo + n − 1
        (local.set $n (i32.add (i32.add (i32.load (i32.add (local.get $starts) (i32.shl (local.get $b) (i32.const 2))))
          (local.get $s)) (i32.const 1)))
        (local.set $lo (select (i32.sub (local.get $n) (local.get $window)) (i32.const 0)
          (i32.gt_u (local.get $n) (local.get $window))))
        (local.set $n (i32.sub (local.get $n) (local.get $lo)))
        (local.set $qp (i32.mul (i32.add (i32.mul (i32.add (i32.mul (local.get $b) (local.get $steps)) (local.get $s))
          (local.get $heads)) (local.get $h)) (local.get $rowBytes)))
        (local.set $op (i32.add (local.get $out) (local.get $qp)))
        (local.set $qp (i32.add (local.get $q) (local.get $qp)))
        ;; scores q·k_j for the n visible slots, and their maximum
        (local.set $max (f32.const -inf))
        (local.set $kp (i32.add (local.get $kBase) (i32.mul (local.get $lo) (local.get $slotBytes))))
        (local.set $pp (local.get $probs))
        (local.set $j (i32.const 0))
        (loop $next_score
          (local.set $acc (v128.const i32x4 0 0 0 0))
          (local.set $d (i32.const 0))
          (loop $next_d
            (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul
              (v128.load align=4 (i32.add (local.get $qp) (local.get $d)))
              (v128.load align=4 (i32.add (local.get $kp) (local.get $d))))))
            (local.set $d (i32.add (local.get $d) (i32.const 16)))
            (br_if $next_d (i32.lt_u (local.get $d) (local.get $rowBytes))))
          (local.set $score ${hsum('(local.get $acc)')})
          (f32.store (local.get $pp) (local.get $score))
          (local.set $max (f32.max (local.get $max) (local.get $score)))
          (local.set $kp (i32.add (local.get $kp) (local.get $slotBytes)))
          (local.set $pp (i32.add (local.get $pp) (i32.const 4)))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br_if $next_score (i32.lt_u (local.get $j) (local.get $n))))
        ;; pad to a multiple of 4 with -inf (exp gives 0), then p_j = exp(score_j - max) and their sum
        (local.set $n4 (i32.and (i32.add (local.get $n) (i32.const 3)) (i32.const -4)))
        (block $padded (loop $pad
          (br_if $padded (i32.ge_u (local.get $j) (local.get $n4)))
          (f32.store (local.get $pp) (f32.const -inf))
          (local.set $pp (i32.add (local.get $pp) (i32.const 4)))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br $pad)))
        (local.set $sum (v128.const i32x4 0 0 0 0))
        (local.set $pp (local.get $probs))
        (local.set $j (i32.const 0))
        (loop $next_exp
          (local.set $p (call $exp4 (f32x4.sub (v128.load align=4 (local.get $pp)) (f32x4.splat (local.get $max)))))
          (v128.store align=4 (local.get $pp) (local.get $p))
          (local.set $sum (f32x4.add (local.get $sum) (local.get $p)))
          (local.set $pp (i32.add (local.get $pp) (i32.const 16)))
          (local.set $j (i32.add (local.get $j) (i32.const 4)))
          (br_if $next_exp (i32.lt_u (local.get $j) (local.get $n4))))
        (local.set $inv (f32x4.splat (f32.div (f32.const 1) ${hsum('(local.get $sum)')})))
        ;; out = Σ_j p_j·v_j / Σ p: 16 dimensions per pass over the probabilities, then 4 at a time
        (local.set $d (i32.const 0))
        (block $wide_done (loop $next_wide
          (br_if $wide_done (i32.ge_u (local.get $d) (i32.shl (local.get $hd16) (i32.const 2))))
          (local.set $a0 (v128.const i32x4 0 0 0 0)) (local.set $a1 (v128.const i32x4 0 0 0 0))
          (local.set $a2 (v128.const i32x4 0 0 0 0)) (local.set $a3 (v128.const i32x4 0 0 0 0))
          (local.set $vp (i32.add (i32.add (local.get $vBase) (i32.mul (local.get $lo) (local.get $slotBytes))) (local.get $d)))
          (local.set $pp (local.get $probs))
          (local.set $j (i32.const 0))
          (loop $next_v
            (local.set $p (v128.load32_splat align=4 (local.get $pp)))
            (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $p) (v128.load align=4 (local.get $vp)))))
            (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $p) (v128.load offset=16 align=4 (local.get $vp)))))
            (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (local.get $p) (v128.load offset=32 align=4 (local.get $vp)))))
            (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul (local.get $p) (v128.load offset=48 align=4 (local.get $vp)))))
            (local.set $vp (i32.add (local.get $vp) (local.get $slotBytes)))
            (local.set $pp (i32.add (local.get $pp) (i32.const 4)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br_if $next_v (i32.lt_u (local.get $j) (local.get $n))))
          (local.set $vp (i32.add (local.get $op) (local.get $d)))
          (v128.store align=4 (local.get $vp) (f32x4.mul (local.get $a0) (local.get $inv)))
          (v128.store offset=16 align=4 (local.get $vp) (f32x4.mul (local.get $a1) (local.get $inv)))
          (v128.store offset=32 align=4 (local.get $vp) (f32x4.mul (local.get $a2) (local.get $inv)))
          (v128.store offset=48 align=4 (local.get $vp) (f32x4.mul (local.get $a3) (local.get $inv)))
          (local.set $d (i32.add (local.get $d) (i32.const 64)))
          (br $next_wide)))
        (block $narrow_done (loop $next_narrow
          (br_if $narrow_done (i32.ge_u (local.get $d) (local.get $rowBytes)))
          (local.set $a0 (v128.const i32x4 0 0 0 0))
          (local.set $vp (i32.add (i32.add (local.get $vBase) (i32.mul (local.get $lo) (local.get $slotBytes))) (local.get $d)))
          (local.set $pp (local.get $probs))
          (local.set $j (i32.const 0))
          (loop $next_v4
            (local.set $a0 (f32x4.add (local.get $a0)
              (f32x4.mul (v128.load32_splat align=4 (local.get $pp)) (v128.load align=4 (local.get $vp)))))
            (local.set $vp (i32.add (local.get $vp) (local.get $slotBytes)))
            (local.set $pp (i32.add (local.get $pp) (i32.const 4)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br_if $next_v4 (i32.lt_u (local.get $j) (local.get $n))))
          (v128.store align=4 (i32.add (local.get $op) (local.get $d)) (f32x4.mul (local.get $a0) (local.get $inv)))
          (local.set $d (i32.add (local.get $d) (i32.const 16)))
          (br $next_narrow)))
        (local.set $s (i32.add (local.get $s) (i32.const 1)))
        (br_if $next_s (i32.lt_u (local.get $s) (local.get $steps))))
      (local.set $h (i32.add (local.get $h) (i32.const 1)))
      (br_if $next_h (i32.lt_u (local.get $h) (local.get $heads))))
    (local.set $b (i32.add (local.get $b) (i32.const 1)))
    (br_if $next_b (i32.lt_u (local.get $b) (local.get $batch)))))`;

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
    `(func (export "dots${R}x${E}") (param $x i32) (param $w i32) (param $c i32) (param $k i32)`,
    '    (param $ldc i32) (param $v0 i32) (param $v1 i32)',
    '  (local $v i32) (local $i i32) (local $bytes i32) (local $pc i32) (local $xi v128)',
  ];
  for (let e = 0; e < E; e++) lines.push(`  (local $w${e} v128) (local $pw${e} i32)`);
  for (let r = 0; r < R; r++) lines.push(`  (local $px${r} i32)`);
  for (let r = 0; r < R; r++) for (let e = 0; e < E; e++) lines.push(`  (local ${acc(r, e)} v128)`);
  lines.push('  (local.set $bytes (i32.shl (local.get $k) (i32.const 2)))');
  for (let r = 0; r < R; r++) {
    lines.push(
      `  (local.set $px${r} (i32.add (local.get $x) (i32.mul (local.get $bytes) (i32.const ${r}))))`,
    );
  }
  lines.push(
    '  (local.set $v (local.get $v0))',
    '  (block $done (loop $next_v',
    '    (br_if $done (i32.ge_u (local.get $v) (local.get $v1)))',
    '    (local.set $pw0 (i32.add (local.get $w) (i32.mul (local.get $v) (local.get $bytes))))',
  );
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
    `(func (export "dots${R}seq") (param $x i32) (param $w i32) (param $c i32) (param $k i32)`,
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
  for (let r = 0; r < R; r++) {
    lines.push(
      `  (local.set $px${r} (i32.add (local.get $x) (i32.mul (local.get $bytes) (i32.const ${r}))))`,
    );
  }
  lines.push(
    '  (local.set $v (local.get $v0))',
    '  (block $done (loop $next_v',
    '    (br_if $done (i32.ge_u (local.get $v) (local.get $v1)))',
    '    (local.set $pw (i32.add (local.get $w) (i32.mul (local.get $v) (local.get $bytes))))',
  );
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

export function wasmKernelsWat(): string {
  const tiles = Array.from({ length: MAX_TILE_ROWS }, (_, i) => tile(i + 1));
  const dotTiles = Array.from({ length: MAX_TILE_ROWS }, (_, i) => [dots(i + 1, 1), dots(i + 1, 2)]).flat();
  return [
    '(module',
    '(import "tfjs" "memory" (memory 1))',
    interleave,
    packPanels,
    ...tiles,
    ...dotTiles,
    dotsSequential(1),
    dotsSequential(2),
    exp4,
    attend,
    ')',
  ].join('\n');
}

/** Assembles the text with wabt (a dev dependency: only this script and its test need it). */
export async function assembleWasmKernels(): Promise<Uint8Array> {
  const { default: wabtInit } = await import('wabt');
  const wabt = await wabtInit();
  const module = wabt.parseWat('specstream-kernels.wat', wasmKernelsWat(), { simd: true });
  try {
    module.validate();
    return module.toBinary({}).buffer;
  } finally {
    module.destroy();
  }
}

export function binaryModuleSource(bytes: Uint8Array): string {
  const base64 = Buffer.from(bytes).toString('base64');
  const lines = base64.match(/.{1,100}/g) ?? [];
  return [
    '// Generated by packages/core/scripts/wasm-kernels.ts from the WebAssembly text there; do not edit.',
    '// Regenerate: node --import tsx packages/core/scripts/wasm-kernels.ts',
    'export const WASM_KERNELS_BASE64 =',
    ...lines.map((line, i) => `  '${line}'${i === lines.length - 1 ? ';' : ' +'}`),
    '',
  ].join('\n');
}

export const GENERATED_PATH = join(dirname(fileURLToPath(import.meta.url)), '../src/kernels/wasm-binary.ts');

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(GENERATED_PATH, binaryModuleSource(await assembleWasmKernels()));
  console.log(`wrote ${GENERATED_PATH}`);
}
