"""The GPU side of the peers comparison: Hugging Face transformers on torch, decoding the
shipped pair's held-out prompts greedily, as `pnpm bench --only peers` does on CPU.

    python3 tools/peers/transformers_peers.py [--device cuda] [--out DIR]

Loads models/specstream-docs-target and models/specstream-docs-draft (Hugging Face folders,
no network) and, for each dtype (fp32, bf16) and mode (eager: dynamic cache, no compile;
compile: static cache and torch.compile of the forward), decodes every prompt with the target
alone, with `assistant_model=draft` (assisted generation) and with `prompt_lookup_num_tokens`.
Reports per setting decode tokens/s (tokens after the first over the time from the first token
to the last, timed by a streamer that synchronizes the device at each token) and the time to
the first token for prompts of 24 and 500 tokens (the held-out texts joined and cut, as the
CPU suite makes them; median of --ttft-reps after one warm-up). Prints one JSON line and
writes it to $OUT/transformers-peers.json (--out, else $OUT, else the current directory).

Prompts are token ids from the target's tokenizer.json (ByteLevel BPE, no special tokens
added: the ids specstream and node-llama-cpp get). Greedy decoding with EOS suppressed until
the token count is reached (min_new_tokens), so every setting decodes the same number of
tokens; outputs are compared with the plain run of the same dtype and mode ("same_as_plain").

A setting transformers refuses (say, assisted generation with a static cache) is recorded
with its error instead of stopping the run. --smoke: 2 prompts, 8 tokens, TTFT at 24 tokens
only, one rep, fp32 eager unless --dtypes/--modes say otherwise (a check that runs on a CPU in seconds).
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", default=str(ROOT / "models/specstream-docs-target"))
    ap.add_argument("--draft", default=str(ROOT / "models/specstream-docs-draft"))
    ap.add_argument("--prompts", default=str(ROOT / "models/heldout-prompts.json"))
    ap.add_argument("--prompts-count", type=int, default=8, help="prompts each setting decodes (the CPU suite's 8)")
    ap.add_argument("--tokens", type=int, default=96, help="new tokens per prompt (the CPU suite's 96)")
    ap.add_argument("--prompt-tokens", type=int, default=128, help="prompts are cut to this many tokens")
    ap.add_argument("--ttft-tokens", default="24,500")
    ap.add_argument("--ttft-reps", type=int, default=3)
    ap.add_argument("--dtypes", default=None, help="default fp32,bf16 (--smoke: fp32)")
    ap.add_argument("--modes", default=None, help="default eager,compile (--smoke: eager)")
    ap.add_argument("--drafters", default="plain,draft,lookup")
    ap.add_argument("--lookup-tokens", type=int, default=10, help="prompt_lookup_num_tokens")
    ap.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    ap.add_argument("--out", default=None, help="default: $OUT, else the current directory")
    ap.add_argument("--max-tokens", type=int, default=None, help="caps --tokens (a quick check)")
    ap.add_argument("--smoke", action="store_true", help="tiny run: 2 prompts, 8 tokens, fp32 eager")
    args = ap.parse_args()
    if args.smoke:
        args.prompts_count, args.tokens, args.ttft_tokens, args.ttft_reps = 2, 8, "24", 1
    args.dtypes = args.dtypes or ("fp32" if args.smoke else "fp32,bf16")
    args.modes = args.modes or ("eager" if args.smoke else "eager,compile")
    if args.max_tokens is not None:
        args.tokens = min(args.tokens, args.max_tokens)
    if args.tokens < 2:
        ap.error("--tokens must be at least 2 (decode speed needs a token after the first)")
    return args


def main() -> None:
    args = parse_args()
    import torch
    import transformers
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM
    from transformers.generation.streamers import BaseStreamer

    transformers.logging.set_verbosity_error()  # not the max_length notice at every call
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    tokenizer = Tokenizer.from_file(str(Path(args.target) / "tokenizer.json"))
    texts = json.loads(Path(args.prompts).read_text(encoding="utf-8"))["prompts"]
    encode = lambda text: tokenizer.encode(text, add_special_tokens=False).ids  # noqa: E731
    decode_prompts = [encode(t)[: args.prompt_tokens] for t in texts[: args.prompts_count]]
    joined = encode("\n\n".join(texts))
    ttft_lengths = [int(n) for n in args.ttft_tokens.split(",") if n.strip()]
    if ttft_lengths and max(ttft_lengths) > len(joined):
        sys.exit(f"the prompts hold {len(joined)} tokens, fewer than {max(ttft_lengths)}")
    ttft_prompts = [joined[:n] for n in ttft_lengths]

    class Clock(BaseStreamer):
        """Times each new token: generate() calls put() with the prompt first, then the tokens."""

        def __init__(self):
            self.calls = 0
            self.times = []

        def put(self, value):
            self.calls += 1
            if self.calls == 1:
                return  # the prompt
            sync()
            now = time.perf_counter()
            self.times.extend([now] * value.numel())

        def end(self):
            pass

    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "target": args.target,
        "draft": args.draft,
        "prompts": len(decode_prompts),
        "prompt_tokens": [len(p) for p in decode_prompts],
        "new_tokens": args.tokens,
        "ttft_tokens": ttft_lengths,
        "ttft_reps": args.ttft_reps,
        "lookup_tokens": args.lookup_tokens,
        "settings": [],
    }

    for dtype_name in args.dtypes.split(","):
        dtype = dtypes[dtype_name]
        for mode in args.modes.split(","):
            target = AutoModelForCausalLM.from_pretrained(args.target, dtype=dtype).to(device).eval()
            draft = AutoModelForCausalLM.from_pretrained(args.draft, dtype=dtype).to(device).eval()
            if mode == "compile":
                # A static cache makes every decode step the same shapes; transformers compiles the
                # forward of a model with a static cache itself (generation_config.compile_config).
                for m in (target, draft):
                    m.generation_config.cache_implementation = "static"
            plain_outputs = None
            for drafter in args.drafters.split(","):
                row = {"dtype": dtype_name, "mode": mode, "drafter": drafter}
                if mode == "compile":
                    # transformers compiles a static-cache forward itself only on these devices.
                    row["compiled"] = device.type in ("cuda", "xpu")
                extra = {}
                if drafter == "draft":
                    extra["assistant_model"] = draft
                elif drafter == "lookup":
                    extra["prompt_lookup_num_tokens"] = args.lookup_tokens

                def run(ids, new_tokens, clock=None):
                    prompt = torch.tensor([ids], device=device)
                    with torch.no_grad():
                        out = target.generate(
                            prompt,
                            attention_mask=torch.ones_like(prompt),
                            max_new_tokens=new_tokens,
                            min_new_tokens=new_tokens,
                            do_sample=False,
                            streamer=clock,
                            **extra,
                        )
                    return out[0, len(ids):].tolist()

                try:
                    t = time.perf_counter()
                    # Warm-up: compiles (each shape once), allocator, kernels' autotuning.
                    longest = max(decode_prompts + ttft_prompts, key=len)
                    run(longest, args.tokens)
                    for p in ttft_prompts:
                        run(p, 2)
                    row["warmup_s"] = round(time.perf_counter() - t, 2)
                    ttft = {}
                    for n, p in zip(ttft_lengths, ttft_prompts):
                        samples = []
                        for _ in range(args.ttft_reps):
                            clock = Clock()
                            sync()
                            start = time.perf_counter()
                            run(p, 2, clock)
                            samples.append((clock.times[0] - start) * 1000)
                        ttft[str(n)] = round(statistics.median(samples), 2)
                    tokens = 0
                    seconds = 0.0
                    outputs = []
                    for p in decode_prompts:
                        clock = Clock()
                        sync()
                        outputs.append(run(p, args.tokens, clock))
                        tokens += len(clock.times) - 1
                        seconds += clock.times[-1] - clock.times[0]
                    row["tokens_per_s"] = round(tokens / seconds, 2) if seconds > 0 else None
                    row["ttft_ms"] = ttft
                    if drafter == "plain":
                        plain_outputs = outputs
                    elif plain_outputs is not None:
                        same = sum(a == b for a, b in zip(outputs, plain_outputs))
                        row["same_as_plain"] = f"{same}/{len(outputs)}"
                    row["outputs"] = outputs
                except Exception as error:  # noqa: BLE001 — one refused setting must not end the run
                    row["error"] = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
                result["settings"].append(row)
                print(
                    f"{dtype_name} {mode} {drafter}: "
                    + (row["error"] if "error" in row else f"{row['tokens_per_s']} tok/s, TTFT {row['ttft_ms']} ms"),
                    file=sys.stderr,
                    flush=True,
                )
            del target, draft
            if device.type == "cuda":
                torch.cuda.empty_cache()

    line = json.dumps(result)
    print(line)
    out_dir = Path(args.out or os.environ.get("OUT") or ".")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "transformers-peers.json").write_text(line + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
