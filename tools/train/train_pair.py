"""Trains specstream's shipped pair on one GPU: a byte-level BPE tokenizer, a
Llama target and a Llama draft distilled from it, then exports Hugging Face
folders (f16 safetensors), the reference files our tests read and a report.

    python3 tools/train/train_pair.py --corpus .data/corpus --out OUT [--smoke]

Stages (each prints its wall time): tokenizer → encode → target → draft →
export → evaluate. Every random choice is seeded. Time caps (--target-seconds,
--draft-seconds) bound the two training loops so the whole run fits a
10-minute command; the step count reached is in the report. Checkpoints go to
OUT/work so that a cut-off run resumes (the tokenizer, encoded corpus and the
finished target are reused when present).
"""

import argparse
import json
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

DOC_SEPARATOR = "\n\f\n"
EOS = "<|endoftext|>"

TARGET = dict(hidden_size=512, num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=4,
              head_dim=64, intermediate_size=1280)
DRAFT = dict(hidden_size=256, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             head_dim=64, intermediate_size=1024)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


# ---------------------------------------------------------------- tokenizer
def train_tokenizer(train_text: str, vocab: int, path: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        min_frequency=2,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    docs = train_text.split(DOC_SEPARATOR)
    tok.train_from_iterator(docs, trainer=trainer, length=len(docs))
    assert tok.get_vocab_size() == vocab, f"tokenizer has {tok.get_vocab_size()} entries, wanted {vocab}"
    tok.save(str(path))


def encode_docs(tok, text: str, eos_id: int) -> np.ndarray:
    ids: list[int] = []
    for enc in tok.encode_batch(text.split(DOC_SEPARATOR)):
        ids.extend(enc.ids)
        ids.append(eos_id)
    return np.asarray(ids, dtype=np.int32)


# ---------------------------------------------------------------- models
def llama_config(shape: dict, vocab: int, context: int, eos_id: int):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab,
        max_position_embeddings=context,
        rms_norm_eps=1e-5,
        hidden_act="silu",
        tie_word_embeddings=True,
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        initializer_range=0.02,
        **shape,
    )


def new_model(config, device):
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM(config).to(device)


def add_dropout(model, p: float) -> None:
    """Dropout on the embeddings and on each attention and MLP output, in training only.
    Llama in transformers has no residual dropout; with ~2.7M training tokens for a 26M
    model the target overfits within a few epochs without it. Hooks leave the exported
    checkpoint untouched."""

    def hook(module, _inputs, output):
        if not module.training:
            return output
        if isinstance(output, tuple):
            return (F.dropout(output[0], p, True), *output[1:])
        return F.dropout(output, p, True)

    model.model.embed_tokens.register_forward_hook(hook)
    for layer in model.model.layers:
        layer.self_attn.register_forward_hook(hook)
        layer.mlp.register_forward_hook(hook)


def batches(data: np.ndarray, seq: int, batch: int, gen: np.random.Generator):
    """Random windows of seq+1 tokens (input and shifted target)."""
    high = len(data) - seq - 1
    while True:
        starts = gen.integers(0, high, size=batch)
        x = np.stack([data[s : s + seq + 1] for s in starts])
        yield torch.from_numpy(x.astype(np.int64))


def cosine_lr(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def eval_loss(model, data: np.ndarray, seq: int, device, bf16: bool = True, max_windows: int = 10_000) -> float:
    """Mean next-token cross-entropy over non-overlapping windows of seq tokens; bf16=False
    computes in fp32 throughout (the reported perplexities)."""
    model.eval()
    n = min((len(data) - 1) // seq, max_windows)
    total, count = 0.0, 0
    for i in range(0, n, 32):
        rows = [data[j * seq : j * seq + seq + 1] for j in range(i, min(n, i + 32))]
        x = torch.from_numpy(np.stack(rows).astype(np.int64)).to(device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda"):
            logits = model(x[:, :-1]).logits
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="sum")
        total += loss.item()
        count += x[:, 1:].numel()
    model.train()
    return total / count


def train_loop(name, model, data, valid, args, device, seconds, epochs, teacher=None):
    """AdamW, cosine schedule over an estimated step budget, best-on-valid checkpoint.
    With a teacher, the loss is KL(teacher ‖ student) on every position plus a little
    cross-entropy on the text (distillation for agreement with the target)."""
    gen = np.random.default_rng(args.seed + (1 if teacher is not None else 0))
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.95), fused=device.type == "cuda",
    )
    it = batches(data, args.seq, args.batch, gen)
    start = time.time()
    epoch_steps = len(data) // (args.seq * args.batch)
    max_steps = min(args.max_steps, int(epochs * epoch_steps))
    step, budget, best, best_step = 0, max_steps, float("inf"), -1
    best_state = None
    history = []
    while step < budget:
        x = next(it).to(device, non_blocking=True)
        lr = cosine_lr(step, budget, args.lr, args.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(x[:, :-1]).logits.float()
            ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
            if teacher is not None:
                with torch.no_grad():
                    t_logp = F.log_softmax(teacher(x[:, :-1]).logits.float(), dim=-1)
                s_logp = F.log_softmax(logits, dim=-1)
                kl = F.kl_div(s_logp.reshape(-1, s_logp.shape[-1]), t_logp.reshape(-1, t_logp.shape[-1]),
                              log_target=True, reduction="batchmean")
                loss = kl + 0.1 * ce
            else:
                loss = ce
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        elapsed = time.time() - start
        if step == 50:
            # Fix the schedule's length from the measured speed, so the cosine ends at the cap.
            per_step = elapsed / step
            budget = min(max_steps, max(100, int(seconds / per_step * 0.92)))
            log(f"{name}: {per_step * 1000:.1f} ms/step → {budget} steps in ≤{seconds}s")
        capped = elapsed > seconds * 1.05
        if step % args.eval_every == 0 or step == budget or capped:
            v = eval_loss(model, valid, args.seq, device)
            history.append({"step": step, "seconds": round(elapsed, 1), "train": round(loss.item(), 4),
                            "valid": round(v, 4)})
            log(f"{name} step {step}/{budget} loss {loss.item():.4f} valid {v:.4f} ppl {math.exp(v):.2f} lr {lr:.2e}")
            if v < best:
                best, best_step = v, step
                best_state = {k: t.detach().clone() for k, t in model.state_dict().items()}
        if capped:
            log(f"{name}: time cap reached at step {step}")
            break
    model.load_state_dict(best_state)
    return {"steps": step, "best_step": best_step, "valid_loss": best, "seconds": round(time.time() - start, 1),
            "history": history, "epochs": round(step * args.batch * args.seq / len(data), 2)}


# ---------------------------------------------------------------- export
def export_folder(model, tok_path: Path, dest: Path, eos_id: int, context: int) -> None:
    from transformers import GenerationConfig

    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    half = model.to(torch.float16)
    half.config.dtype = "float16"
    half.save_pretrained(dest, safe_serialization=True, max_shard_size="60MB")
    model.to(torch.float32)
    GenerationConfig(bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=eos_id, do_sample=False,
                     max_length=context).save_pretrained(dest)
    shutil.copy(tok_path, dest / "tokenizer.json")
    (dest / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": EOS, "eos_token": EOS, "unk_token": EOS,
        "pad_token": EOS, "model_max_length": context, "add_prefix_space": False,
    }, indent=2) + "\n")


def reference_file(dest_dir: Path, out_file: Path, heldout_ids: np.ndarray, device, seq: int, new: int):
    """What transformers computes from the exported (f16) folder in fp32: logits of held-out
    windows and a greedy continuation, saved like the shared fixtures' reference.safetensors."""
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(dest_dir, dtype=torch.float32).to(device).eval()
    ids = torch.from_numpy(np.stack([heldout_ids[1000 : 1000 + seq], heldout_ids[5000 : 5000 + seq]]).astype(np.int64))
    prompt = torch.from_numpy(heldout_ids[9000:9016].astype(np.int64))[None]
    with torch.no_grad():
        logits = model(ids.to(device)).logits.float().cpu()
        greedy = model.generate(prompt.to(device), max_new_tokens=new, min_new_tokens=new, do_sample=False,
                                attention_mask=torch.ones_like(prompt).to(device)).cpu()
    out_file.parent.mkdir(parents=True, exist_ok=True)
    save_file({
        "input_ids": ids.to(torch.int32).contiguous(),
        "logits": logits.contiguous(),
        "greedy_prompt": prompt.to(torch.int32).contiguous(),
        "greedy_output": greedy.to(torch.int32).contiguous(),
    }, str(out_file))
    # The smallest top-1/top-2 margin tells how close a tie a 1e-4 logit error could flip.
    top2 = logits.topk(2, dim=-1).values
    margin = (top2[..., 0] - top2[..., 1]).min().item()
    return model, margin


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default=".data/corpus")
    ap.add_argument("--out", required=True)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--context", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--max-steps", type=int, default=20_000)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--target-seconds", type=float, default=240)
    ap.add_argument("--draft-seconds", type=float, default=150)
    ap.add_argument("--target-epochs", type=float, default=16)
    ap.add_argument("--draft-epochs", type=float, default=20)
    ap.add_argument("--dropout", type=float, default=0.1, help="target only (the draft is distilled)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes and caps: checks the pipeline end to end")
    args = ap.parse_args()
    if args.smoke:
        args.vocab, args.target_seconds, args.draft_seconds, args.eval_every = 1024, 8, 6, 40
        args.batch, args.seq = 16, 128

    t0 = time.time()
    seed_all(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = False  # training in bf16 autocast; fp32 evals stay exact
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(args.out)
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    corpus = Path(args.corpus)
    train_text = (corpus / "train.txt").read_text(encoding="utf-8")
    valid_text = (corpus / "valid.txt").read_text(encoding="utf-8")
    heldout_text = (corpus / "heldout.txt").read_text(encoding="utf-8")
    report: dict = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                    "torch": torch.__version__, "seed": args.seed, "args": vars(args)}
    import tokenizers
    import transformers

    report["transformers"] = transformers.__version__
    report["tokenizers"] = tokenizers.__version__

    # Tokenizer, from the train split only.
    tok_path = work / "tokenizer.json"
    t = time.time()
    if not tok_path.exists():
        train_tokenizer(train_text, args.vocab, tok_path)
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tok_path))
    eos_id = tok.token_to_id(EOS)
    train_ids = encode_docs(tok, train_text, eos_id)
    valid_ids = encode_docs(tok, valid_text, eos_id)
    heldout_ids = encode_docs(tok, heldout_text, eos_id)
    report["tokens"] = {"train": len(train_ids), "valid": len(valid_ids), "heldout": len(heldout_ids),
                        "bytes_per_token": round(len(train_text.encode()) / len(train_ids), 3)}
    report["tokenizer_seconds"] = round(time.time() - t, 1)
    log(f"tokenizer + encode: {time.time() - t:.1f}s, {report['tokens']}")

    # Target.
    target_cfg = llama_config(TARGET if not args.smoke else dict(TARGET, num_hidden_layers=2), args.vocab,
                              args.context, eos_id)
    target = new_model(target_cfg, device)
    ckpt = work / "target.pt"
    if ckpt.exists():
        saved = torch.load(ckpt, map_location=device)
        target.load_state_dict(saved["state"])
        report["target_training"] = saved["training"]
        log("target: resumed finished checkpoint")
    else:
        seed_all(args.seed)
        target = new_model(target_cfg, device)
        if args.dropout > 0:
            add_dropout(target, args.dropout)
        report["target_training"] = train_loop("target", target, train_ids, valid_ids, args, device,
                                               args.target_seconds, args.target_epochs)
        torch.save({"state": target.state_dict(), "training": report["target_training"]}, ckpt)
    target.eval()
    for p in target.parameters():
        p.requires_grad_(False)

    # Draft, distilled from the target.
    seed_all(args.seed + 1)
    draft_cfg = llama_config(DRAFT if not args.smoke else dict(DRAFT, num_hidden_layers=1), args.vocab,
                             args.context, eos_id)
    draft = new_model(draft_cfg, device)
    report["draft_training"] = train_loop("draft", draft, train_ids, valid_ids, args, device, args.draft_seconds,
                                          args.draft_epochs, teacher=target)
    draft.eval()

    # Export and evaluate from the exported files (what ships), in fp32.
    models_dir = out / "models"
    heldout_seq = args.seq
    results = {}
    for name, model in (("target", target), ("draft", draft)):
        dest = models_dir / f"specstream-docs-{name}"
        export_folder(model, tok_path, dest, eos_id, args.context)
        loaded, margin = reference_file(dest, models_dir / "reference" / f"{name}.safetensors", heldout_ids, device,
                                        24, 32)
        torch.backends.cuda.matmul.allow_tf32 = False
        loss = eval_loss(loaded, heldout_ids, heldout_seq, device, bf16=False)
        params = sum(p.numel() for p in loaded.parameters())
        results[name] = {"model": loaded, "heldout_loss": loss, "heldout_ppl": math.exp(loss), "params": params,
                         "reference_min_margin": margin}
        log(f"{name}: {params / 1e6:.2f}M params, held-out ppl {math.exp(loss):.2f}, ref margin {margin:.2e}")

    # Agreement: how often the draft's argmax equals the target's on held-out text (teacher forcing).
    tm, dm = results["target"]["model"], results["draft"]["model"]
    agree, total, accept = 0, 0, 0.0
    with torch.no_grad():
        n = (len(heldout_ids) - 1) // heldout_seq
        for i in range(0, n, 16):
            rows = [heldout_ids[j * heldout_seq : (j + 1) * heldout_seq] for j in range(i, min(n, i + 16))]
            x = torch.from_numpy(np.stack(rows).astype(np.int64)).to(device)
            tl, dl = tm(x).logits.float(), dm(x).logits.float()
            agree += (tl.argmax(-1) == dl.argmax(-1)).sum().item()
            # Expected acceptance of one sampled draft token at temperature 1: Σ min(p, q).
            accept += torch.minimum(tl.softmax(-1), dl.softmax(-1)).sum(-1).sum().item()
            total += x.numel()
    report["greedy_agreement"] = agree / total
    report["sampling_acceptance_t1"] = accept / total

    # Greedy continuations of held-out prompts, and the prompts file the benches read.
    docs = [d for d in heldout_text.split(DOC_SEPARATOR) if len(d) > 2000]
    prompts = []
    for d in docs:
        paras = [p.strip() for p in d.split("\n\n") if 200 <= len(p.strip()) <= 600 and not p.strip().startswith("..")]
        prompts.extend(paras[:6])
    prompts = prompts[:48]
    (models_dir / "heldout-prompts.json").write_text(json.dumps({"source": "held-out split of the corpus",
                                                                  "prompts": prompts}, indent=1) + "\n")
    samples = []
    for p in prompts[:5]:
        ids = torch.tensor([tok.encode(p).ids], device=device)
        out_ids = tm.generate(ids, max_new_tokens=48, do_sample=False, attention_mask=torch.ones_like(ids))
        samples.append({"prompt": p, "continuation": tok.decode(out_ids[0, ids.shape[1]:].tolist())})
    report["samples"] = samples

    # Tokenizer reference (texts → ids → decoded), like the shared tokenizer fixture.
    texts = [p[:300] for p in prompts[:12]] + ["héllo wörld — ✓ 你好 \t tabs\n\nnewlines  ", "def f(x):\n    return x ** 2\n"]
    (models_dir / "reference" / "tokenizer.json").write_text(json.dumps(
        [{"text": s, "ids": tok.encode(s).ids, "decoded": tok.decode(tok.encode(s).ids)} for s in texts],
        indent=1, ensure_ascii=False) + "\n")

    for name in ("target", "draft"):
        r = results[name]
        report[name] = {k: v for k, v in r.items() if k != "model"}
    report["total_seconds"] = round(time.time() - t0, 1)
    (models_dir / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    log(f"done in {report['total_seconds']}s: target ppl {report['target']['heldout_ppl']:.2f}, draft ppl "
        f"{report['draft']['heldout_ppl']:.2f}, greedy agreement {report['greedy_agreement']:.3f}, "
        f"Σmin(p,q) {report['sampling_acceptance_t1']:.3f}")
    for s in samples[:3]:
        print("PROMPT:", s["prompt"][-200:], "\nCONT:", s["continuation"], "\n---", flush=True)


if __name__ == "__main__":
    main()
