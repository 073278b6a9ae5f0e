"""Splits a folder of text files by file into train / valid / held-out.

Files are ordered by the SHA-256 of their relative path (stable across
machines and Debian revisions that keep the paths) and taken into held-out,
then valid, until each holds at least its share of the bytes (2% each); the
rest is train. Held-out is never seen by tokenizer or model training; valid
picks the best checkpoint. Documents are joined with a form feed line so a
trainer can split them again.
"""

import hashlib
import json
import sys
from pathlib import Path

SHARES = {"heldout": 0.02, "valid": 0.02}
SEPARATOR = "\n\f\n"


def main(src: str, out: str) -> None:
    root = Path(src)
    files = sorted(p for p in root.rglob("*.txt") if p.is_file())
    if not files:
        raise SystemExit(f"no .txt files under {src}")
    texts = {p.relative_to(root).as_posix(): p.read_text(encoding="utf-8") for p in files}
    total = sum(len(t.encode()) for t in texts.values())
    order = sorted(texts, key=lambda name: hashlib.sha256(name.encode()).hexdigest())
    splits: dict[str, list[str]] = {"heldout": [], "valid": [], "train": []}
    taken = 0
    for name, share in SHARES.items():
        size = 0
        while size < share * total:
            rel = order[taken]
            taken += 1
            splits[name].append(rel)
            size += len(texts[rel].encode())
    splits["train"] = order[taken:]
    dest = Path(out)
    dest.mkdir(parents=True, exist_ok=True)
    summary = {}
    for name, rels in splits.items():
        rels = sorted(rels)
        body = SEPARATOR.join(texts[r] for r in rels)
        (dest / f"{name}.txt").write_text(body, encoding="utf-8")
        summary[name] = {"files": len(rels), "bytes": len(body.encode()), "paths": rels}
    (dest / "split.json").write_text(json.dumps(summary, indent=1) + "\n")
    for name, s in summary.items():
        print(f"{name}: {s['files']} files, {s['bytes'] / 1e6:.2f} MB")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
