"""Speech from Debian's TTS engines, as 16 kHz float32 arrays.

espeak-ng (7 English accents × its voice variants, speed and pitch drawn per
utterance) and flite (awb, rms, slt for training; kal16 never trained on).
The engines come from `tools/speech/fetch-tts.sh` (Debian packages unpacked
under TTS_ROOT, default .tts/root); a stand-in libpcaudio lets espeak-ng run
where PulseAudio is absent, since it only ever writes to stdout here.
"""

from __future__ import annotations

import os
import random
import subprocess
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

SAMPLE_RATE = 16000
ROOT = Path(os.environ.get("TTS_ROOT", Path(__file__).resolve().parents[2] / ".tts" / "root"))
LIB = ROOT / "usr/lib/x86_64-linux-gnu"
ENV = {**os.environ, "LD_LIBRARY_PATH": f"{LIB}:{os.environ.get('LD_LIBRARY_PATH', '')}"}

ESPEAK_ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029"]
ESPEAK_VARIANTS = (
    [f"m{i}" for i in range(1, 9)] + [f"f{i}" for i in range(1, 6)]
    + ["klatt", "klatt2", "klatt3", "klatt4", "croak", "whisper", "Alex", "Andy", "annie", "boris", "david",
       "ed", "edward", "grandma", "grandpa", "iven", "john", "linda", "max", "michel", "paul", "quincy",
       "steph", "travis", "victor", "zac", "belinda", "anika", "aunty", "benjamin", "kaukovalta"]
)
FLITE_TRAIN = ["awb", "rms", "slt"]
FLITE_HELDOUT = ["kal16"]


@dataclass(frozen=True)
class Voice:
    engine: str  # 'espeak' | 'flite'
    name: str  # accent+variant, or the flite voice
    speed: float  # espeak words per minute, or flite's duration stretch
    pitch: int  # espeak 0..99; flite: mean f0 in Hz (0: the voice's own)

    def label(self) -> str:
        return f"{self.engine}:{self.name}:{self.speed:g}:{self.pitch}"


def random_training_voice(rng: random.Random, flite_share: float = 0.35) -> Voice:
    if rng.random() < flite_share:
        return Voice("flite", rng.choice(FLITE_TRAIN), round(rng.uniform(0.8, 1.3), 2), rng.choice([0, 0, rng.randint(80, 220)]))
    return Voice("espeak", f"{rng.choice(ESPEAK_ACCENTS)}+{rng.choice(ESPEAK_VARIANTS)}", rng.randint(120, 220), rng.randint(20, 80))


def _pcm16(data: bytes) -> np.ndarray:
    return np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0


def render(text: str, voice: Voice) -> np.ndarray:
    """16 kHz mono float32 samples of `text` in `voice`."""
    if voice.engine == "espeak":
        out = subprocess.run(
            [str(ROOT / "usr/bin/espeak-ng"), f"--path={LIB / 'espeak-ng-data'}", "-v", voice.name,
             "-s", str(int(voice.speed)), "-p", str(voice.pitch), "--stdout", text],
            env=ENV, capture_output=True, check=True,
        ).stdout
        # espeak-ng writes a 44-byte RIFF header with unknown length when streaming; 22050 Hz.
        rate, audio = 22050, _pcm16(out[44:])
    else:
        args = [str(ROOT / "usr/bin/flite"), "-voice", voice.name, "--setf", f"duration_stretch={voice.speed}"]
        if voice.pitch:
            args += ["--setf", f"int_f0_target_mean={voice.pitch}"]
        out = subprocess.run(args + ["-t", text, "-o", "/dev/stdout"], env=ENV, capture_output=True, check=True).stdout
        rate, audio = int.from_bytes(out[24:28], "little"), _pcm16(out[44:])
    if rate != SAMPLE_RATE:
        g = gcd(rate, SAMPLE_RATE)
        audio = resample_poly(audio, SAMPLE_RATE // g, rate // g).astype(np.float32)
    return audio


def render_job(job: tuple[str, Voice]) -> np.ndarray:
    return render(*job)
