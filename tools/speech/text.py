"""Text for the speech models: the normaliser both models and the TypeScript
side share, and sentence extraction from the reStructuredText corpus.

normalize(text) gives the *spoken* form the synthesizer reads and espeak-ng /
flite are asked to say: lowercase ASCII words, numbers written out, and the
punctuation . , ? ! kept (it shapes pauses). transcript(spoken) drops that
punctuation: what the recogniser is trained to write. The TypeScript port
(packages/models/src/speech/normalize-text.ts) must give the same strings;
a test compares it with `normalization-examples.json`, written by
`python3 tools/speech/text.py --examples`.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import unicodedata
from pathlib import Path

ONES = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
SYMBOLS = {"&": " and ", "%": " percent ", "+": " plus ", "=": " equals ", "@": " at "}
PUNCTUATION = ".,?!"


def below_thousand(n: int) -> list[str]:
    words: list[str] = []
    if n >= 100:
        words += [ONES[n // 100], "hundred"]
        n %= 100
        if n:
            words.append("and")
    if n >= 20:
        words.append(TENS[n // 10])
        if n % 10:
            words.append(ONES[n % 10])
    elif n or not words:
        words.append(ONES[n])
    return words


def number_words(digits: str) -> str:
    """A run of digits: a cardinal up to 999999 (no leading zero), else digit by digit."""
    if len(digits) > 6 or (len(digits) > 1 and digits[0] == "0"):
        return " ".join(ONES[int(d)] for d in digits)
    n = int(digits)
    if n >= 1000:
        return " ".join(below_thousand(n // 1000) + ["thousand"] + (below_thousand(n % 1000) if n % 1000 else []))
    return " ".join(below_thousand(n))


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)  # 1,000 -> 1000
    text = re.sub(r"(?<=\d)\.(?=\d)", " point ", text)
    text = re.sub(r"\d+", lambda m: f" {number_words(m.group(0))} ", text)
    for symbol, words in SYMBOLS.items():
        text = text.replace(symbol, words)
    text = re.sub(r"(?<=[a-z])'(?=[a-z])", "\x00", text)  # apostrophes inside words survive
    text = re.sub(r"[^a-z\x00.,?!]+", " ", text).replace("\x00", "'")
    text = re.sub(r"\s*([.,?!])[\s.,?!]*", r"\1 ", text)  # one mark, then a space
    text = re.sub(r"\s+", " ", text).strip()
    return text.lstrip(PUNCTUATION + " ")


def transcript(spoken: str) -> str:
    return re.sub(r"\s+", " ", re.sub(f"[{re.escape(PUNCTUATION)}]", " ", spoken)).strip()


# --- sentences from reStructuredText -------------------------------------------------------------

ROLE = re.compile(r":[a-z:]+:`(?:[^`<]*<)?~?([^`>]*)>?`")
REJECT = re.compile(r"[_/\\(){}\[\]<>#$|~^`*\"=;:]")


def rst_paragraphs(text: str):
    """Prose paragraphs: no directives, literal blocks, tables, titles or indented code."""
    block: list[str] = []
    literal_indent = None
    for line in text.splitlines() + [""]:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if literal_indent is not None:
            if stripped and indent <= literal_indent:
                literal_indent = None
            else:
                continue
        if not stripped:
            if block:
                yield " ".join(block)
            block = []
            continue
        if stripped.startswith(("..", "+", "|", "=", "-", "*", ">>>", "...")) or re.fullmatch(r"[=\-~^#*+`'\"]+", stripped):
            if block:
                yield " ".join(block)
            block = []
            if stripped.startswith(".."):
                literal_indent = indent
            continue
        block.append(stripped)
        if stripped.endswith("::"):
            literal_indent = indent
            yield " ".join(block)
            block = []


def sentences(text: str, min_words: int = 4, max_words: int | None = 22, max_word_letters: int | None = 16,
              max_chars: int | None = 160):
    """Prose sentences, normalised; the defaults are the spoken corpus's (short enough to render and
    train on), and lm_text() lifts the length caps."""
    for paragraph in rst_paragraphs(text):
        paragraph = ROLE.sub(lambda m: m.group(1).split(".")[-1], paragraph)
        paragraph = re.sub(r"\*([^*]+)\*", r"\1", paragraph)
        for sentence in re.split(r"(?<=[.?!])\s+(?=[A-Z])", paragraph):
            sentence = sentence.strip()
            if not sentence.endswith((".", "?", "!")) or REJECT.search(sentence):
                continue
            if re.search(r"[a-zA-Z]\.[a-zA-Z]", sentence):  # e.g. os.path, i.e.
                continue
            spoken = normalize(sentence)
            words = transcript(spoken).split()
            if (len(words) >= min_words and (max_words is None or len(words) <= max_words)
                    and (max_word_letters is None or all(len(w) <= max_word_letters for w in words))
                    and (max_chars is None or len(spoken) <= max_chars)):
                yield spoken


PHRASES = [
    "yes", "no", "thank you", "good morning", "good night", "see you later", "how are you",
    "please call me back", "turn on the lights", "what time is it", "set a timer", "stop",
    "start the recording", "open the file", "play the next song", "cancel that", "read it again",
]


def number_phrases(rng: random.Random, count: int) -> list[str]:
    templates = [
        "the answer is {n}.", "call {d}.", "it costs {n} dollars.", "page {n}.", "chapter {n}, line {n}.",
        "there are {n} items in the list.", "version {n} point {n}.", "{n} plus {n} equals {n}.",
        "room {n}, floor {n}.", "the year {y}.", "set the volume to {n} percent.", "{n}, {n}, {n}.",
    ]
    out = []
    for _ in range(count):
        t = rng.choice(templates)
        while "{" in t:
            t = t.replace("{n}", str(rng.choice([rng.randint(0, 20), rng.randint(0, 999), rng.randint(0, 99999)])), 1)
            t = t.replace("{d}", " ".join(str(rng.randint(0, 9)) for _ in range(rng.randint(3, 8))), 1)
            t = t.replace("{y}", str(rng.randint(1900, 2030)), 1)
        out.append(normalize(t))
    return out


def build(corpus: Path, seed: int = 5150, phrases: int = 1500) -> dict:
    rng = random.Random(seed)
    train = sorted(set(sentences((corpus / "train.txt").read_text())))
    heldout = sorted(set(sentences((corpus / "heldout.txt").read_text())) - set(train))
    rng.shuffle(train)
    rng.shuffle(heldout)
    extra = [normalize(p) for p in PHRASES] + number_phrases(rng, phrases)
    held_numbers = number_phrases(random.Random(seed + 1), 40)
    return {
        "train": train + extra,
        "heldout": heldout + [s for s in held_numbers if s not in set(extra)],
    }


def lm_text(corpus: Path, data: dict) -> str:
    """The recogniser's lm-text.txt, one transcript per line, sorted, each once: the training
    sentences (number phrases and commands included) and every other prose sentence of the
    training split with at least 3 words, whatever its length. Never a held-out sentence."""
    lines = {transcript(s) for s in data["train"]}
    lines |= {transcript(s) for s in sentences((corpus / "train.txt").read_text(), min_words=3, max_words=None,
                                               max_word_letters=None, max_chars=None)}
    heldout = {transcript(s) for s in data["heldout"]}
    lines -= heldout
    return "".join(line + "\n" for line in sorted(lines))


EXAMPLES = [
    "Hello, World!", "It's 3.11 -- not 3.10.", "Use 1,000,000 or 1,234 items & 50% more.",
    "Café au lait costs 007 dollars?", "  Multiple   spaces... and dashes - here ", "x = y + 2",
    "The year 1999 had 365 days.", "don't 'quote' me", "Ümlaut, naïve, façade!", "12345678",
    "...Leading dots, then words", "1,000abc and 1,23 and 12,345,678", "pi is 3.14159; e is 2.718.",
    "mail me@example.org or call 555-0100!", "rock'n'roll isn't 'it'", "Tabs\tand\nnew lines\r\n",
    "\u0663 apples and \u0967\u0968 pears, \uff11\uff12 fullwidth, \u00b2 squared",
    "ΟΔΟΣ means road; ß and ø stay out", "a\u0903b keeps its gap, e\u0301 loses its accent",
    "Hmm?! Really... yes, 100%.", "0 1 10 100 1000 10000 100000 1000000 007 0",
    "x=1+2 & y@3", "emoji 😀 between words", "  ,leading comma and trailing spaces,   ",
]

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=Path(".data/corpus"))
    parser.add_argument("--out", type=Path, default=Path(".data/speech/sentences.json"))
    parser.add_argument("--examples", type=Path, help="write normalisation examples (input, spoken, transcript) here")
    parser.add_argument("--lm-text", type=Path,
                        help="also write the recogniser's lm-text.txt here (the beam's character LM and its words): "
                             "the training sentences' transcripts and the training split's other prose sentences of "
                             "3 or more words, sorted, one per line; never a held-out sentence")
    args = parser.parse_args()
    if args.examples:
        rows = [{"input": t, "spoken": normalize(t), "transcript": transcript(normalize(t))} for t in EXAMPLES]
        args.examples.write_text(json.dumps(rows, indent=1) + "\n")
    else:
        data = build(args.corpus)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(data))
        if args.lm_text:
            args.lm_text.write_text(lm_text(args.corpus, data))
        print({k: len(v) for k, v in data.items()})
