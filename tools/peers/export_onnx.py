"""Export a Llama checkpoint (HF folder) to the ONNX layout transformers.js loads offline.

Used by the peers suite (bench/peers, the transformers.js contender): `pnpm bench --only peers`
expects the export of models/specstream-docs-target under .data/peers/onnx/ and says so when it
is missing. Usage:

    python tools/peers/export_onnx.py [--model models/specstream-docs-target]
        [--out .data/peers/onnx/specstream-docs-target] [--opset 18] [--no-verify]

What it writes (the folder transformers.js's AutoModelForCausalLM.from_pretrained reads with
`env.allowRemoteModels = false` and `env.localModelPath` set to the folder's parent):

    config.json             the model's config, dtype float32, plus a "transformers.js_config"
                            block (dtype fp32: the session file is onnx/model.onnx)
    generation_config.json  copied
    tokenizer.json, tokenizer_config.json  copied
    onnx/model.onnx         one file (no external data: the target is ~105 MB in fp32)

The graph: inputs input_ids, attention_mask, position_ids (int64, [batch_size, sequence_length]
and [batch_size, total_sequence_length] for the mask) and past_key_values.{i}.key / .value
(float32, [batch_size, num_key_value_heads, past_sequence_length, head_dim]); outputs logits
([batch_size, sequence_length, vocab]) and present.{i}.key / .value ([batch_size,
num_key_value_heads, total_sequence_length, head_dim]). transformers.js builds the first call's
empty cache from the past inputs' metadata: it resolves a dimension named `batch_size` to the
batch and any other symbolic dimension to 0, so the heads and head_dim dims are static and the
batch dim must be named exactly `batch_size` (the script renames the exporter's symbols).

How it was made: torch.onnx.export with the dynamo exporter (torch 2.13 CPU, onnxscript 0.7)
on transformers 5.18's LlamaForCausalLM in fp32 with eager attention, wrapped in a module that
turns the flat past tensors into a DynamicCache and the returned cache back into flat tensors.
The virtualenv came from this machine's local wheels only, no network:

    python3 -m venv /tmp/specstream-onnx-venv
    /tmp/specstream-onnx-venv/bin/pip install --no-index --find-links /opt/wheels \\
        --find-links /opt/pypi/files --find-links /opt/pypi-more/files \\
        "torch==2.13.0+cpu" "transformers==5.18.0" onnx onnxruntime onnxscript

(optimum is not among the local wheels, hence the hand-made wrapper.) Verification (unless
--no-verify): onnxruntime 1.30 (CPU) runs a prefill of a short prompt with an empty past and
then one decode step on the returned present tensors; both steps' logits are compared with the
HF model's (max abs difference, argmax agreement), and 16 greedy tokens from each must match.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch
from torch import nn


class FlatCacheLlama(nn.Module):
    """LlamaForCausalLM with its KV cache as flat tensors in and out (transformers.js's names)."""

    def __init__(self, model: nn.Module, layers: int):
        super().__init__()
        self.model = model
        self.layers = layers

    def forward(self, input_ids, attention_mask, position_ids, past):
        from transformers import DynamicCache

        cache = DynamicCache(
            ddp_cache_data=[(past[2 * i], past[2 * i + 1]) for i in range(self.layers)],
            config=self.model.config,
        )
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=cache,
            use_cache=True,
        )
        present = []
        for layer in out.past_key_values.layers:
            present += [layer.keys, layer.values]
        return (out.logits, *present)


def load(model_dir: Path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, attn_implementation="eager"
    )
    model.eval()
    return model


def rename_symbols(onnx_path: Path, names: dict[str, list[tuple[int, str]]]) -> None:
    """Give the graph's inputs' and outputs' symbolic dimensions the names transformers.js reads."""
    import onnx

    m = onnx.load(str(onnx_path))
    for value in list(m.graph.input) + list(m.graph.output):
        for axis, name in names.get(value.name, []):
            dim = value.type.tensor_type.shape.dim[axis]
            if dim.HasField("dim_value"):
                raise SystemExit(
                    f"{value.name}: axis {axis} came out static ({dim.dim_value}), expected dynamic"
                )
            dim.dim_param = name
    onnx.save(m, str(onnx_path))


def export(model, out: Path, opset: int) -> Path:
    cfg = model.config
    layers = cfg.num_hidden_layers
    kv_heads = cfg.num_key_value_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    wrapper = FlatCacheLlama(model, layers).eval()

    batch, seq, past_len = 2, 3, 5
    input_ids = torch.randint(0, cfg.vocab_size, (batch, seq), dtype=torch.int64)
    attention_mask = torch.ones(batch, past_len + seq, dtype=torch.int64)
    position_ids = torch.arange(past_len, past_len + seq, dtype=torch.int64).expand(batch, seq)
    past = [torch.randn(batch, kv_heads, past_len, head_dim) for _ in range(2 * layers)]

    # Every axis that varies is DYNAMIC (torch.export infers that the mask is past + new tokens
    # long and that the batch is shared); the symbols get transformers.js's names afterwards.
    d = torch.export.Dim.DYNAMIC
    dynamic_shapes = {
        "input_ids": {0: d, 1: d},
        "attention_mask": {0: d, 1: d},
        "position_ids": {0: d, 1: d},
        "past": [{0: d, 2: d} for _ in range(2 * layers)],
    }
    input_names = ["input_ids", "attention_mask", "position_ids"] + [
        f"past_key_values.{i}.{kind}" for i in range(layers) for kind in ("key", "value")
    ]
    output_names = ["logits"] + [
        f"present.{i}.{kind}" for i in range(layers) for kind in ("key", "value")
    ]
    onnx_dir = out / "onnx"
    onnx_dir.mkdir(parents=True, exist_ok=True)
    path = onnx_dir / "model.onnx"
    t = time.time()
    program = torch.onnx.export(
        wrapper,
        (input_ids, attention_mask, position_ids, past),
        dynamo=True,
        dynamic_shapes=dynamic_shapes,
        input_names=input_names,
        output_names=output_names,
        opset_version=opset,
        external_data=False,
        optimize=True,
    )
    program.save(str(path), external_data=False)
    for extra in onnx_dir.glob("model.onnx.data"):
        raise SystemExit(f"unexpected external data file {extra}: transformers.js would not find it")
    names: dict[str, list[tuple[int, str]]] = {
        "input_ids": [(0, "batch_size"), (1, "sequence_length")],
        "attention_mask": [(0, "batch_size"), (1, "total_sequence_length")],
        "position_ids": [(0, "batch_size"), (1, "sequence_length")],
        "logits": [(0, "batch_size"), (1, "sequence_length")],
    }
    for i in range(layers):
        for kind in ("key", "value"):
            names[f"past_key_values.{i}.{kind}"] = [(0, "batch_size"), (2, "past_sequence_length")]
            names[f"present.{i}.{kind}"] = [(0, "batch_size"), (2, "total_sequence_length")]
    rename_symbols(path, names)
    print(f"exported {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.time() - t:.0f} s")
    return path


def write_folder(model_dir: Path, out: Path) -> None:
    config = json.loads((model_dir / "config.json").read_text())
    config["dtype"] = "float32"
    config["transformers.js_config"] = {"dtype": "fp32", "use_external_data_format": False}
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    for name in ("generation_config.json", "tokenizer.json", "tokenizer_config.json"):
        if (model_dir / name).exists():
            shutil.copy2(model_dir / name, out / name)


def verify(model, path: Path, prompt: list[int], steps: int = 16) -> dict:
    import numpy as np
    import onnxruntime as ort

    cfg = model.config
    layers = cfg.num_hidden_layers
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    past_names = [f"past_key_values.{i}.{k}" for i in range(layers) for k in ("key", "value")]
    meta = {i.name: i.shape for i in sess.get_inputs()}
    report: dict = {"inputs": meta, "outputs": [o.name for o in sess.get_outputs()]}

    def run(ids: list[int], past: list, start: int):
        n = len(ids)
        feeds = {
            "input_ids": np.array([ids], dtype=np.int64),
            "attention_mask": np.ones((1, start + n), dtype=np.int64),
            "position_ids": np.arange(start, start + n, dtype=np.int64)[None, :],
        }
        for name, value in zip(past_names, past):
            feeds[name] = value
        out = sess.run(None, feeds)
        return out[0], out[1:]

    empty = [np.zeros((1, cfg.num_key_value_heads, 0, head_dim), np.float32) for _ in past_names]
    logits, present = run(prompt, empty, 0)
    with torch.no_grad():
        ref = model(torch.tensor([prompt]), use_cache=True)
    diff = float(np.abs(logits - ref.logits.numpy()).max())
    same_argmax = bool((logits.argmax(-1) == ref.logits.numpy().argmax(-1)).all())
    report["prefill"] = {"maxAbsDiff": diff, "argmaxSame": same_argmax}

    # Greedy decode in both, step by step (ONNX with its own present tensors as the next past).
    ours, theirs = [], []
    nxt = int(logits[0, -1].argmax())
    step_diffs = []
    pos = len(prompt)
    with torch.no_grad():
        hf_cache = ref.past_key_values
        hf_next = int(ref.logits[0, -1].argmax())
        for _ in range(steps):
            ours.append(nxt)
            theirs.append(hf_next)
            logits, present = run([nxt], present, pos)
            r = model(torch.tensor([[hf_next]]), past_key_values=hf_cache, use_cache=True)
            hf_cache = r.past_key_values
            step_diffs.append(float(np.abs(logits[0, -1] - r.logits[0, -1].numpy()).max()))
            nxt = int(logits[0, -1].argmax())
            hf_next = int(r.logits[0, -1].argmax())
            pos += 1
    report["decode"] = {
        "steps": steps,
        "maxAbsDiff": max(step_diffs),
        "greedySame": ours == theirs,
        "onnx": ours,
        "hf": theirs,
    }
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models/specstream-docs-target")
    ap.add_argument("--out", default=".data/peers/onnx/specstream-docs-target")
    ap.add_argument("--opset", type=int, default=18)
    ap.add_argument("--no-verify", action="store_true")
    args = ap.parse_args()
    model_dir, out = Path(args.model), Path(args.out)
    torch.manual_seed(0)
    model = load(model_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = export(model, out, args.opset)
    write_folder(model_dir, out)
    print(f"wrote {out}: {sorted(str(p.relative_to(out)) for p in out.rglob('*') if p.is_file())}")
    if args.no_verify:
        return 0
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    prompt = tok.encode("The speculative decoder drafts a few tokens and the target").ids
    report = verify(model, path, prompt)
    print(json.dumps(report, indent=1, default=str))
    (out / "export-check.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    ok = report["prefill"]["maxAbsDiff"] < 1e-3 and report["decode"]["maxAbsDiff"] < 1e-3
    ok = ok and report["prefill"]["argmaxSame"] and report["decode"]["greedySame"]
    print("verify:", "ok" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
