"""Recomputes the parity logits in models/specstream-speech-recognizer/reference/reference.json
on the CPU in fp32, from the exported f16 weights and the stored log-mel files.

The first training run computed them on the GPU with TF32 matmuls and convolutions (about
1e-3 off fp32); train_speech.py now turns TF32 off before it exports.

    python3 tools/speech/recognizer_reference.py [models/specstream-speech-recognizer]
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from train_speech import reload_recognizer  # noqa: E402

folder = Path(sys.argv[1] if len(sys.argv) > 1 else "models/specstream-speech-recognizer")
model = reload_recognizer(folder, torch.device("cpu")).eval()
path = folder / "reference" / "reference.json"
entries = json.loads(path.read_text())
n_mels = json.loads((folder / "config.json").read_text())["n_mels"]
with torch.no_grad():
    for entry in entries:
        if "mel_file" not in entry:
            continue
        mel = np.fromfile(folder / "reference" / entry["mel_file"], dtype="<f4").reshape(1, -1, n_mels)
        entry["logits"] = model(torch.from_numpy(mel.copy()))[0].numpy().round(6).tolist()
path.write_text(json.dumps(entries))
print(f"rewrote {path}")
