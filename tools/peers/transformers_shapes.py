"""Hugging Face transformers' greedy decode speed on two random-init model shapes, to stand
beside specstream's WebGPU numbers for the same shapes (no weights, no tokenizer, no network).

    python3 tools/peers/transformers_shapes.py --out $OUT/transformers-shapes.json

Shapes (random init after torch.manual_seed(0)): gpt2-small (GPT2Config() defaults: 768 wide,
12 layers, 12 heads, vocab 50257) and llama-0.5b (2048 wide, 8 layers, 32 heads, 8 KV heads,
FFN 8192, vocab 32000, untied head). Modes: "eager" (dynamic cache, no compile) at --batches,
and "compile-static" (the gpt-fast recipe as transformers runs it: a static cache, and generate
compiling the decoding forward with CompileConfig(mode="reduce-overhead", fullgraph=True,
dynamic=False)) at --compile-batches; each in fp32 and bf16.

Each row times generate() on a deterministic prompt of --prompt-tokens ids per sequence, greedy,
EOS suppressed by min_new_tokens = max_new_tokens (as transformers_peers.py does), after a
warm-up (two for compile): the median of --reps runs with N = --tokens new tokens (t_N) and with
N = 1 (t_1, reported as ttftMs). Decode tokens/s = batch * (N - 1) / (t_N - t_1); stepMs =
(t_N - t_1) / (N - 1). paramBytes counts each parameter once; bytesPerStep leaves out embedding
tables (a step reads one row of each) but keeps the LM head's weight when tied to them, and
weightGBperS = bytesPerStep / stepMs / 1e6. Also measures the device's copy bandwidth
(1 GiB copied 20 times, 2 * bytes / time). Rows run cheapest first (every eager row, batch by
batch; then the compile rows, bf16 before fp32); once --max-seconds have passed the rest are
recorded as skipped. A row that raises is recorded with its error.

CPU smoke test: --device cpu --shapes gpt2-small --batches 1 --compile-batches '' --tokens 4
--prompt-tokens 8 --reps 1
"""

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHAPES = ("gpt2-small", "llama-0.5b")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--batches", default="1,8,32", help="batch sizes of the eager rows")
    ap.add_argument("--compile-batches", default="1", help="batch sizes of the compile rows ('' for none)")
    ap.add_argument("--tokens", type=int, default=64, help="new tokens of the long generate (N)")
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--max-seconds", type=float, default=400, help="rows starting later are skipped")
    ap.add_argument("--out", default=str(ROOT / "bench-results/transformers-shapes.json"))
    args = ap.parse_args()
    ints = lambda text: [int(x) for x in text.split(",") if x.strip()]  # noqa: E731
    args.shapes = [s for s in args.shapes.split(",") if s.strip()]
    args.batches, args.compile_batches = ints(args.batches), ints(args.compile_batches)
    if unknown := set(args.shapes) - set(SHAPES):
        ap.error(f"unknown shapes {sorted(unknown)}; known: {', '.join(SHAPES)}")
    if args.tokens < 2:
        ap.error("--tokens must be at least 2 (decode speed needs a token after the first)")
    return args


def make_config(shape: str):
    from transformers import GPT2Config, LlamaConfig

    if shape == "gpt2-small":
        return GPT2Config()
    return LlamaConfig(
        vocab_size=32000, hidden_size=2048, num_hidden_layers=8, num_attention_heads=32,
        num_key_value_heads=8, intermediate_size=8192, max_position_embeddings=4096,
        rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
    )


def row_order(args) -> list:
    """(shape, mode, dtype, batch) in run order: every eager row (batch by batch, each shape), then
    the compile rows, which each spend most of a minute compiling: a time budget drops those last."""
    eager = [(shape, "eager", dtype, b) for b in args.batches for shape in args.shapes for dtype in ("fp32", "bf16")]
    compiled = [(shape, "compile-static", dtype, b) for b in args.compile_batches for shape in args.shapes
                for dtype in ("bf16", "fp32")]
    return eager + compiled


def weight_bytes(model, torch) -> tuple:
    """(all parameter bytes, bytes a decode step reads: no embedding tables, a tied head once)."""
    size = lambda p: p.numel() * p.element_size()  # noqa: E731
    params = {p.data_ptr(): p for p in model.parameters()}  # tied weights once
    tables = {m.weight.data_ptr() for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    head = model.get_output_embeddings()
    head_ptr = head.weight.data_ptr() if head is not None else None
    total = sum(size(p) for p in params.values())
    per_step = sum(size(p) for ptr, p in params.items() if ptr not in tables or ptr == head_ptr)
    return total, per_step


def copy_bandwidth(torch, device) -> dict:
    n = (1 << 30) if device.type == "cuda" else (1 << 26)
    src = torch.empty(n, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        for _ in range(20):
            dst.copy_(src)
        end.record()
        torch.cuda.synchronize()
        seconds = start.elapsed_time(end) / 1000
    else:
        t = time.perf_counter()
        for _ in range(20):
            dst.copy_(src)
        seconds = time.perf_counter() - t
    del src, dst
    return {"bytes": n, "copies": 20, "GBperS": round(2 * n * 20 / seconds / 1e9, 1)}


def main() -> None:
    args = parse_args()
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, CompileConfig

    transformers.logging.set_verbosity_error()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    started = time.perf_counter()
    result = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "cuda": torch.version.cuda,
        "promptTokens": args.prompt_tokens,
        "newTokens": args.tokens,
        "reps": args.reps,
        "compile": {"mode": "reduce-overhead", "fullgraph": True, "dynamic": False, "cache": "static"},
    }
    result["copyBandwidth"] = copy_bandwidth(torch, device)
    print(f"copy bandwidth: {result['copyBandwidth']['GBperS']} GB/s", flush=True)

    models = {}

    def get_model(shape, mode, dtype, compile_mode="reduce-overhead"):
        key = (shape, mode, dtype, compile_mode)
        if key not in models:
            base = models.get((shape, "eager", "fp32", "reduce-overhead"))
            if base is None:
                torch.manual_seed(0)
                with torch.device(device):
                    base = AutoModelForCausalLM.from_config(make_config(shape))
                base = models[(shape, "eager", "fp32", "reduce-overhead")] = base.to(device).eval()
            if key != (shape, "eager", "fp32", "reduce-overhead"):
                model = copy.deepcopy(base).to(dtypes[dtype]).eval()
                if mode == "compile-static":
                    # transformers compiles the decoding forward itself for a static cache, marking
                    # each CUDA-graph step (a forward compiled by hand here reused graph outputs that
                    # the next replay had overwritten: "accessing tensor output of CUDAGraphs ...").
                    model.generation_config.cache_implementation = "static"
                    model.generation_config.compile_config = CompileConfig(
                        fullgraph=True, dynamic=False, mode=compile_mode
                    )
                models[key] = model
        return models[key]

    # Every (dtype, batch) of a compiled forward is its own graph; let them all stay compiled.
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, 64)

    rows = []
    for shape, mode, dtype, batch in row_order(args):
        row = {"shape": shape, "mode": mode, "dtype": dtype, "batch": batch}
        rows.append(row)
        if time.perf_counter() - started > args.max_seconds:
            row["error"] = "skipped: time budget"
            print(f"{shape} {mode} {dtype} b{batch}: {row['error']}", flush=True)
            continue

        def measure(compile_mode):
            t0 = time.perf_counter()
            model = get_model(shape, mode, dtype, compile_mode)
            vocab = model.config.vocab_size
            ids = [[(i * 131 + r * 17 + 5) % vocab for i in range(args.prompt_tokens)] for r in range(batch)]
            prompt = torch.tensor(ids, device=device)
            mask = torch.ones_like(prompt)
            pad = model.config.eos_token_id if model.config.eos_token_id is not None else 0

            def timed(n):
                sync()
                t = time.perf_counter()
                with torch.no_grad():
                    model.generate(prompt, attention_mask=mask, do_sample=False, max_new_tokens=n,
                                   min_new_tokens=n, pad_token_id=pad)
                sync()
                return time.perf_counter() - t

            for _ in range(2 if mode == "compile-static" else 1):
                timed(args.tokens)  # the long one first: sizes the static cache for both
                timed(1)
            row["warmupS"] = round(time.perf_counter() - t0, 2)
            t_n = statistics.median(timed(args.tokens) for _ in range(args.reps))
            t_1 = statistics.median(timed(1) for _ in range(args.reps))
            step = (t_n - t_1) / (args.tokens - 1) * 1000
            param_bytes, step_bytes = weight_bytes(model, torch)
            row.update(
                tokensPerS=round(batch * (args.tokens - 1) / (t_n - t_1), 2) if t_n > t_1 else None,
                stepMs=round(step, 3),
                ttftMs=round(t_1 * 1000, 2),
                paramBytes=param_bytes,
                bytesPerStep=step_bytes,
                weightGBperS=round(step_bytes / step / 1e6, 1) if step > 0 else None,
            )

        # A compile row that fails with CUDA graphs (mode reduce-overhead) is tried once more
        # without them (mode default), and says so.
        for compile_mode in ("reduce-overhead", "default") if mode == "compile-static" else ("reduce-overhead",):
            try:
                if mode == "compile-static":
                    row["compileMode"] = compile_mode
                measure(compile_mode)
                row.pop("error", None)
                break
            except Exception as error:  # noqa: BLE001 — one failing row must not end the run
                text = str(error).strip().splitlines()
                row["error"] = f"{type(error).__name__}: {text[0] if text else ''}"[:500]
                if compile_mode == "reduce-overhead" and mode == "compile-static":
                    row["reduceOverheadError"] = row["error"]
                models.pop((shape, mode, dtype, compile_mode), None)
                torch._dynamo.reset()
                if cuda:
                    torch.cuda.empty_cache()
        print(f"{shape} {mode} {dtype} b{batch}: " + (row.get("error") or
              f"{row['tokensPerS']} tok/s, {row['stepMs']} ms/step, TTFT {row['ttftMs']} ms, "
              f"{row['weightGBperS']} GB/s of weights, warm-up {row['warmupS']} s"), flush=True)

    result["rows"] = rows
    result["seconds"] = round(time.perf_counter() - started, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")

    print(f"\n{result['device']}, torch {result['torch']}, transformers {result['transformers']}, "
          f"copy {result['copyBandwidth']['GBperS']} GB/s")
    print(f"{'shape':<11} {'mode':<15} {'dtype':<5} {'batch':>5} {'tok/s':>10} {'ms/step':>8} "
          f"{'TTFT ms':>8} {'GB/s':>7}")
    for r in rows:
        if "error" in r:
            print(f"{r['shape']:<11} {r['mode']:<15} {r['dtype']:<5} {r['batch']:>5}  {r['error'][:80]}")
        else:
            print(f"{r['shape']:<11} {r['mode']:<15} {r['dtype']:<5} {r['batch']:>5} {r['tokensPerS']!s:>10} "
                  f"{r['stepMs']:>8} {r['ttftMs']:>8} {r['weightGBperS']!s:>7}")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
