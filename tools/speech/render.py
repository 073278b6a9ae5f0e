"""Speech from Debian's TTS engines, as 16 kHz float32 arrays.

espeak-ng (7 English accents × its voice variants, speed and pitch drawn per
utterance), flite (awb, rms, slt for training; kal16 never trained on) and
festival's ked diphone voice (residual-LPC diphones, like kal16, but another
speaker; duration stretch and mean pitch drawn per utterance) and slt HTS voice,
GnuSpeech (articulatory synthesis: a tube model of the vocal tract, in Node through
tools/speech/gnuspeech-server.mjs) and SVOX Pico (HMM synthesis, its en-US and en-GB voices,
through tools/speech/svoxpico-server.mjs). The engines come from `tools/speech/fetch-tts.sh`
(Debian packages and npm packages unpacked under TTS_ROOT, default .tts/root);
stand-ins for libpcaudio and libpulse-simple let espeak-ng and festival run where
PulseAudio is absent, since they only ever write to stdout here.
"""

from __future__ import annotations

import os
import random
import re
import json
import select
import shutil
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
# festival's voices that may be trained on: ked's residual-LPC diphones and slt's HTS
# (statistical parametric) voice, 32 kHz. Never kal_diphone (festvox-kallpc16k): kal is the
# held-out speaker; fetch-tts.sh does not fetch it. A corpus draws from the first
# `festival_voices` of them (train_speech.py --festival-voices; the shipped recogniser: both).
FESTIVAL_TRAIN = ["ked_diphone", "cmu_us_slt_arctic_hts"]
FESTIVAL_SHARE = ROOT / "usr/share/festival"
# GnuSpeech's voice presets that may be trained on (its "baby" is left out), its package folder
# and the Node that runs it (fetch-tts.sh unpacks one beside the engines when there is none).
GNUSPEECH_TRAIN = ["male", "female", "large_child", "small_child"]
GNUSPEECH_PACKAGE = ROOT / "gnuspeech"
GNUSPEECH_SERVER = Path(__file__).resolve().parent / "gnuspeech-server.mjs"
# SVOX Pico's two voices (both women's, lingware from Debian's libttspico-data) and its package folder.
PICO_TRAIN = ["en-US", "en-GB"]
PICO_PACKAGE = ROOT / "svoxpico"
PICO_SERVER = Path(__file__).resolve().parent / "svoxpico-server.mjs"
KED_F0 = (105, 15)  # ked_diphone's own int_lr_params target mean and standard deviation (Hz)


@dataclass(frozen=True)
class Voice:
    engine: str  # 'espeak' | 'flite' | 'festival' | 'gnuspeech' | 'pico'
    name: str  # accent+variant, or the flite, festival, GnuSpeech or Pico voice
    speed: float  # espeak words per minute, flite's / festival's duration stretch, GnuSpeech's tempo, Pico's rate (%)
    pitch: int  # espeak 0..99; flite, festival: mean f0 in Hz (0: the voice's own); GnuSpeech: semitones; Pico: % of its f0

    def label(self) -> str:
        return f"{self.engine}:{self.name}:{self.speed:g}:{self.pitch}"


def random_training_voice(rng: random.Random, flite_share: float = 0.35, festival_share: float = 0.0,
                          festival_voices: int = 1, gnuspeech_share: float = 0.0, pico_share: float = 0.0) -> Voice:
    """A voice drawn from `rng`: festival with probability festival_share, flite with flite_share,
    GnuSpeech with gnuspeech_share, Pico with pico_share, espeak-ng otherwise. One uniform draw
    picks the engine, festival's slice first, GnuSpeech's last (the top of [0, 1)) and Pico's just
    below it, so with festival_share 0 the draws (and voices) are those of the version without
    festival: the speech bench's held-out renderings (render_heldout.py) are unchanged; with
    festival_voices 1 (ked alone) the draws are those of the version with ked alone, with
    gnuspeech_share 0 those of the version without GnuSpeech, and with pico_share 0 those of the
    version without Pico."""
    r = rng.random()
    if r >= 1 - gnuspeech_share:
        # Tempo 0.8–1.25; pitch offset in semitones around the presets' own (the package's default is −4).
        return Voice("gnuspeech", rng.choice(GNUSPEECH_TRAIN), round(rng.uniform(0.8, 1.25), 2), rng.randint(-9, 2))
    if r >= 1 - gnuspeech_share - pico_share:
        # Rate 80–125% (as the other engines' ranges); f0 60–130% of the voices' own ~170 Hz, down to a man's.
        return Voice("pico", rng.choice(PICO_TRAIN), rng.randint(80, 125), rng.randint(60, 130))
    if r < festival_share:
        # Duration stretch 0.8–1.3 (the voice's own is 1.1); mean f0 70–160 Hz, or (1 in 3) its own 105 Hz.
        name, stretch = rng.choice(FESTIVAL_TRAIN[:festival_voices]), round(rng.uniform(0.8, 1.3), 2)
        pitch = rng.randint(70, 160) if rng.random() < 2 / 3 else 0
        # The HTS voice's pitch cannot be moved from here (its engine takes no f0 target): its own.
        return Voice("festival", name, stretch, 0 if name.endswith("_hts") else pitch)
    if r < festival_share + flite_share:
        return Voice("flite", rng.choice(FLITE_TRAIN), round(rng.uniform(0.8, 1.3), 2), rng.choice([0, 0, rng.randint(80, 220)]))
    return Voice("espeak", f"{rng.choice(ESPEAK_ACCENTS)}+{rng.choice(ESPEAK_VARIANTS)}", rng.randint(120, 220), rng.randint(20, 80))


def _pcm16(data: bytes) -> np.ndarray:
    return np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0


class _LongRunning:
    """One long-running engine process per Python process (each Pool worker gets its own, never its
    parent's pipes), fed on stdin and answering on stdout; killed and restarted after a failure."""

    proc: subprocess.Popen | None = None
    pid = 0

    @classmethod
    def command(cls) -> list[str]:
        raise NotImplementedError

    @classmethod
    def _process(cls) -> subprocess.Popen:
        if cls.proc is None or cls.pid != os.getpid() or cls.proc.poll() is not None:
            cls.proc = subprocess.Popen(cls.command(), env={**ENV, "OMP_NUM_THREADS": "1"}, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            cls.pid = os.getpid()
        return cls.proc

    @classmethod
    def _fail(cls, what: str, error: Exception) -> RuntimeError:
        proc = cls.proc
        if proc is not None:
            proc.kill()
            proc.wait()
        cls.proc = None
        return RuntimeError(f"{cls.__name__.strip('_').lower()} failed (exit status {proc and proc.returncode}) on: {what}")

    @classmethod
    def _read(cls, n: int, timeout: float) -> bytes:
        fd, out = cls.proc.stdout.fileno(), bytearray()
        while len(out) < n:
            if not select.select([fd], [], [], timeout)[0]:
                raise TimeoutError(f"no answer in {timeout:g} s")
            chunk = os.read(fd, n - len(out))
            if not chunk:
                raise EOFError("the engine exited")
            out += chunk
        return bytes(out)

    @classmethod
    def _answer(cls, request: str, timeout: float) -> bytes:
        """A JSON request to one of our Node servers, and its length-prefixed wave (b"" if refused)."""
        proc = cls._process()
        try:
            proc.stdin.write(request.encode() + b"\n")
            proc.stdin.flush()
            n = int.from_bytes(cls._read(4, timeout), "little")
            return cls._read(n, timeout) if n else b""
        except Exception as e:
            raise cls._fail(request, e) from e


def _node() -> str:
    node = ROOT / "usr/bin/node"
    return str(node) if node.exists() else shutil.which("node") or "node"


class _NodeServer(_LongRunning):
    """One of our Node servers (tools/speech/*-server.mjs): JSON lines in, a 4-byte length and a
    RIFF wave out (length 0 for text the engine cannot speak). Starting Node and the wasm module
    costs ~0.3 s. A subclass names its server, package folder and voices, and the request's fields."""

    server: Path
    package: Path
    voices: list[str]

    @classmethod
    def command(cls) -> list[str]:
        return [_node(), str(cls.server), str(cls.package)]

    @classmethod
    def fields(cls, voice: Voice) -> dict:
        raise NotImplementedError

    @classmethod
    def wave(cls, text: str, voice: Voice, timeout: float = 120.0) -> bytes:
        if voice.name not in cls.voices:
            raise ValueError(f"{voice.engine} voice {voice.name!r} is not one of {cls.voices}")
        return cls._answer(json.dumps(dict(text=text, voice=voice.name, **cls.fields(voice))), timeout)


class _GnuSpeech(_NodeServer):
    """gnuspeech-server.mjs: 44.1 kHz waves; tempo, and a pitch offset in semitones."""

    server, package, voices = GNUSPEECH_SERVER, GNUSPEECH_PACKAGE, GNUSPEECH_TRAIN

    @classmethod
    def fields(cls, voice: Voice) -> dict:
        return dict(tempo=voice.speed, pitchOffset=voice.pitch)


class _Pico(_NodeServer):
    """svoxpico-server.mjs: 16 kHz waves; rate and pitch in percent."""

    server, package, voices = PICO_SERVER, PICO_PACKAGE, PICO_TRAIN

    @classmethod
    def fields(cls, voice: Voice) -> dict:
        return dict(speed=voice.speed, pitch=voice.pitch)


class _Festival(_LongRunning):
    """One long-running festival per process (each Pool worker gets its own): starting festival
    and loading the diphone database costs ~150 ms, more than synthesising a sentence. It reads
    Scheme on stdin (--pipe) and answers each utterance with a RIFF wave on stdout (16 kHz for
    ked). Every utterance re-selects the voice first, which resets its parameters, so an
    utterance's audio does not depend on the ones before it."""

    @classmethod
    def command(cls) -> list[str]:
        return [str(ROOT / "usr/bin/festival"), "--libdir", str(FESTIVAL_SHARE), "--datadir", str(FESTIVAL_SHARE), "--pipe"]

    @classmethod
    def wave(cls, script: str, timeout: float = 120.0) -> bytes:
        proc = cls._process()
        try:
            proc.stdin.write(script.encode() + b"\n(fflush)\n")
            proc.stdin.flush()
            header = cls._read(44, timeout)
            if header[:4] != b"RIFF" or header[36:40] != b"data":
                raise RuntimeError(f"festival answered {header[:44]!r} instead of a RIFF header")
            return header + cls._read(int.from_bytes(header[40:44], "little"), timeout)
        except Exception as e:
            raise cls._fail(script, e) from e


def _festival_script(text: str, voice: Voice) -> str:
    if voice.name not in FESTIVAL_TRAIN:
        raise ValueError(f"festival voice {voice.name!r} is not one of {FESTIVAL_TRAIN}")
    if voice.name.endswith("_hts"):
        # hts_engine ignores Duration_Stretch; its -r is a speaking rate, the stretch's inverse.
        lines = [f"(voice_{voice.name})", f"(set! hts_engine_params (append hts_engine_params (list '(\"-r\" {1 / voice.speed:.4f}))))"]
    else:
        lines = [f"(voice_{voice.name})", f"(Parameter.set 'Duration_Stretch {voice.speed:g})"]
    if voice.pitch:
        # Mean f0 moved, its range kept in proportion to the mean.
        std = round(voice.pitch * KED_F0[1] / KED_F0[0])
        lines.append(f"(set! int_lr_params '((target_f0_mean {voice.pitch}) (target_f0_std {std}) (model_f0_mean 170) (model_f0_std 34)))")
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    lines.append(f'(utt.save.wave (SynthText "{quoted}") "-" \'riff)')
    return "\n".join(lines)


def render(text: str, voice: Voice) -> np.ndarray:
    """16 kHz mono float32 samples of `text` in `voice`."""
    if voice.engine == "festival":
        if not re.search(r"[A-Za-z0-9]", text):
            return np.zeros(SAMPLE_RATE // 10, dtype=np.float32)  # festival crashes on text with no words
        out = _Festival.wave(_festival_script(text, voice))
        rate, audio = int.from_bytes(out[24:28], "little"), _pcm16(out[44:])
    elif voice.engine == "espeak":
        out = subprocess.run(
            [str(ROOT / "usr/bin/espeak-ng"), f"--path={LIB / 'espeak-ng-data'}", "-v", voice.name,
             "-s", str(int(voice.speed)), "-p", str(voice.pitch), "--stdout", text],
            env=ENV, capture_output=True, check=True,
        ).stdout
        # espeak-ng writes a 44-byte RIFF header with unknown length when streaming; 22050 Hz.
        rate, audio = 22050, _pcm16(out[44:])
    elif voice.engine in ("gnuspeech", "pico"):
        out = (_GnuSpeech if voice.engine == "gnuspeech" else _Pico).wave(text, voice)
        if len(out) < 44 or out[:4] != b"RIFF" or out[36:40] != b"data":
            # Text refused (GnuSpeech's with nothing to say; Pico's none so far): a tenth of a second of silence, as for festival.
            return np.zeros(SAMPLE_RATE // 10, dtype=np.float32)
        rate, audio = int.from_bytes(out[24:28], "little"), _pcm16(out[44:44 + int.from_bytes(out[40:44], "little")])
    elif voice.engine == "flite":
        args = [str(ROOT / "usr/bin/flite"), "-voice", voice.name, "--setf", f"duration_stretch={voice.speed}"]
        if voice.pitch:
            args += ["--setf", f"int_f0_target_mean={voice.pitch}"]
        out = subprocess.run(args + ["-t", text, "-o", "/dev/stdout"], env=ENV, capture_output=True, check=True).stdout
        rate, audio = int.from_bytes(out[24:28], "little"), _pcm16(out[44:])
    else:
        raise ValueError(f"unknown engine {voice.engine!r}")
    if rate != SAMPLE_RATE:
        g = gcd(rate, SAMPLE_RATE)
        audio = resample_poly(audio, SAMPLE_RATE // g, rate // g).astype(np.float32)
    return audio


def render_job(job: tuple[str, Voice]) -> np.ndarray:
    return render(*job)
