"""Voice queries: a spoken query is transcribed offline (Whisper base from the packaged
weights, joined once into the model cache) and its words are searched.

Spoken queries are synthesised here with Piper (the packaged en_US "joe" voice, a test
dependency), as the benchmark does (benchmarks/voice.py), and also passed through an
8 kHz telephone band. Real human speech: a few FSDD recordings (train split), skipped
without ../shared."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mmsearch import speech
from mmsearch.encoders.onnx import CACHE_ENV
from mmsearch.errors import MMSearchError

from .conftest import SAMPLE, SHARED, cli_imports, run_cli

PHRASES = {"mug": "red coffee mug", "doorbell": "wireless doorbell", "shirt": "striped t-shirt"}
#: a word of each phrase that Whisper base hears right, clean and through a telephone band
HEARD = {"mug": "coffee", "doorbell": "doorbell", "shirt": "striped"}
FSDD = SHARED / "fsdd"
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SPEECH_MODULES = {"faster_whisper", "ctranslate2", "av"}


@pytest.fixture(scope="session")
def spoken(tmp_path_factory) -> dict[str, Path]:
    """Each phrase spoken by Piper (``NAME``) and through a telephone band (``NAME-tel``,
    8 kHz), a second of silence, two seconds of a chord (music, no words), two of white
    noise, one of a 440 Hz tone and a text file named .wav."""
    voice_bench = pytest.importorskip("benchmarks.voice")
    pytest.importorskip("piper", reason="piper-tts (a test dependency) is not installed")
    folder = tmp_path_factory.mktemp("spoken")
    voice = voice_bench.piper_voice()
    clips = {}
    for name, text in PHRASES.items():
        clips[name] = voice_bench.speak(voice, text, folder / f"{name}.wav")
        clips[f"{name}-tel"] = voice_bench.telephone(clips[name], folder / f"{name}-tel.wav")
    rate = 16_000
    sf.write(folder / "silence.wav", np.zeros(rate, np.float32), rate)
    t = np.arange(2 * rate) / rate
    sf.write(folder / "chord.wav", (0.2 * sum(np.sin(2 * np.pi * f * t) for f in (262, 330, 392))).astype(np.float32), rate)
    sf.write(folder / "noise.wav", (0.02 * np.random.default_rng(0).standard_normal(2 * rate)).astype(np.float32), rate)
    sf.write(folder / "tone.wav", (0.3 * np.sin(2 * np.pi * 440 * t[:rate])).astype(np.float32), rate)
    (folder / "notes.wav").write_text("not a recording\n")
    return {**clips, **{name: folder / f"{name}.wav" for name in ("silence", "chord", "noise", "tone", "notes")}}


def voice_json(store: Path, clip: Path, *args: str) -> dict:
    return json.loads(run_cli("query", "--voice", str(clip), "-k", "5", "--json", *args, store=store).stdout)


def one_line_error(proc, *words: str) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert all(w in lines[0] for w in words), lines[0]
    return lines[0]


# -- query --voice ---------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("suffix", ["", "-tel"], ids=["clean", "telephone-8khz"])
def test_a_spoken_query_ranks_its_product_first(sample_store, spoken, suffix):
    for name, expected in (("mug", "p001"), ("doorbell", "p018")):
        answer = voice_json(sample_store, spoken[name + suffix])
        assert set(answer) == {"voice", "results"}
        assert set(answer["voice"]) == {"transcript", "language", "language_probability", "seconds"}
        assert answer["voice"]["language"] == "en" and answer["voice"]["seconds"] > 0
        assert HEARD[name] in answer["voice"]["transcript"].lower()
        assert answer["results"][0]["id"] == expected, answer


@pytest.mark.slow
def test_the_table_shows_the_transcript_above_the_results(sample_store, spoken):
    out = run_cli("query", "--voice", str(spoken["doorbell"]), "-k", "3", store=sample_store).stdout
    heard = out.index("heard: ")
    assert "doorbell" in out[heard : out.index("\n", heard)].lower()
    assert heard < out.index("p018")


@pytest.mark.slow
def test_a_voice_query_combines_with_filters_and_a_photo(sample_store, spoken):
    cheap = voice_json(sample_store, spoken["mug"], "--max-price", "13")
    assert cheap["results"] and all(r["price"] <= 13 for r in cheap["results"])
    assert cheap["results"][0]["id"] == "p001"
    photo = voice_json(sample_store, spoken["shirt"], "--image", str(SAMPLE / "queries" / "q_p007.png"))
    top = photo["results"][0]
    assert top["id"] == "p007" and {"lexical", "image"} <= {s for s, v in top["scores"].items() if v is not None}
    plain = json.loads(run_cli("query", "striped t-shirt", "-k", "5", "--json", store=sample_store).stdout)
    assert isinstance(plain, list)  # without --voice the output is the list it always was


def test_text_and_voice_together_and_a_stray_language_are_usage_errors(fake_store, tmp_path):
    both = run_cli("query", "red mug", "--voice", str(tmp_path / "said.wav"), store=fake_store, check=2)
    one_line_error(both, "TEXT", "--voice")
    stray = run_cli("query", "red mug", "--language", "en", store=fake_store, check=2)
    one_line_error(stray, "--language", "--voice")


@pytest.mark.slow
def test_an_unknown_language_is_a_usage_error_and_a_known_one_is_used(fake_store, spoken):
    one_line_error(run_cli("query", "--voice", str(spoken["mug"]), "--language", "klingon", store=fake_store, check=2), "klingon")
    answer = voice_json(fake_store, spoken["mug"], "--language", "EN")
    assert answer["voice"]["language"] == "en" and answer["voice"]["language_probability"] == 1


@pytest.mark.slow
@pytest.mark.parametrize(
    "clip, words",
    [
        ("silence", ["silence.wav", "silent"]),
        ("chord", ["chord.wav", "no words were recognised"]),
        ("noise", ["noise.wav", "no words were recognised"]),
        ("notes", ["notes.wav", "not a readable audio file"]),
    ],
)
def test_silence_music_and_a_non_audio_file_are_one_line_errors(fake_store, spoken, clip, words):
    one_line_error(run_cli("query", "--voice", str(spoken[clip]), store=fake_store, check=1), *words)


@pytest.mark.slow
def test_a_catalog_prompt_does_not_turn_noise_or_a_tone_into_words(spoken):
    """Given a long prompt of shop words, Whisper alone wrote words for white noise and
    a tone; the speech gate keeps them wordless, and lets the spoken queries through."""
    from mmsearch.media import load_audio

    prompt = "Casual, Men, Apparel, Women, Topwear, Accessories, Black, Footwear, Shoes, Tshirts, White, Blue, Sports, Brown, Shirts."
    listener = speech.transcriber()
    for clip in ("noise", "tone"):
        assert listener.words(speech.prepared(load_audio(spoken[clip])), None, prompt) == ("", "", 0.0), clip
    for clip in ("mug", "doorbell-tel"):
        assert speech.has_speech(speech.prepared(load_audio(spoken[clip]))), clip


def test_a_missing_voice_file_is_one_line(fake_store, tmp_path):
    one_line_error(run_cli("query", "--voice", str(tmp_path / "gone.wav"), store=fake_store, check=1), "gone.wav", "not found")


@pytest.mark.slow
def test_a_plain_query_imports_no_speech_model(fake_store, tmp_path):
    assert cli_imports(tmp_path, "query", "red mug", "--json", store=fake_store) & SPEECH_MODULES == set()
    assert cli_imports(tmp_path, "--help") & SPEECH_MODULES == set()


# -- eval's voice column --------------------------------------------------------------------
def write_queries(path: Path, rows: list[dict[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, ["query_id", "text", "voice"])
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.mark.slow
def test_eval_with_a_voice_column_matches_the_typed_queries(sample_store, spoken, tmp_path):
    qrels = tmp_path / "qrels.csv"
    qrels.write_text("query_id,product_id,relevance\nmug,p001,2\nmug,p002,1\nmug,p005,1\ndoorbell,p018,2\ndoorbell,p021,1\nshirt,p007,2\n")
    for name in PHRASES:
        (tmp_path / "clips").mkdir(exist_ok=True)
        (tmp_path / "clips" / f"{name}.wav").write_bytes(spoken[name].read_bytes())
    typed = write_queries(tmp_path / "typed.csv", [{"query_id": n, "text": t} for n, t in PHRASES.items()])
    voiced = write_queries(tmp_path / "voiced.csv", [{"query_id": n, "voice": f"clips/{n}.wav"} for n in PHRASES])  # relative to the CSV
    args = ("eval", "--qrels", str(qrels), "-k", "1", "-k", "10", "--json")
    by_text = json.loads(run_cli(*args, "--queries", str(typed), store=sample_store).stdout)
    by_voice = json.loads(run_cli(*args, "--queries", str(voiced), store=sample_store).stdout)
    assert "voice" not in by_text and set(by_voice["voice"]) == set(PHRASES)
    assert all(h["transcript"] and h["language"] == "en" for h in by_voice["voice"].values())
    assert by_voice["metrics"]["ndcg@1"] == by_text["metrics"]["ndcg@1"] == 1.0
    assert by_voice["metrics"]["ndcg@10"] >= 0.95 * by_text["metrics"]["ndcg@10"]
    assert by_voice["metrics"]["latency_ms_p50"] > by_text["metrics"]["latency_ms_p50"]  # the transcription is part of the query


@pytest.mark.slow
def test_eval_scores_a_clip_without_words_as_zero_and_says_so(sample_store, spoken, tmp_path):
    qrels = tmp_path / "qrels.csv"
    qrels.write_text("query_id,product_id,relevance\nmug,p001,1\nhum,p018,1\n")
    queries = write_queries(tmp_path / "q.csv", [{"query_id": "mug", "voice": str(spoken["mug"])}, {"query_id": "hum", "voice": str(spoken["chord"])}])
    proc = run_cli("eval", "--queries", str(queries), "--qrels", str(qrels), "--json", store=sample_store)
    report = json.loads(proc.stdout)
    assert report["voice"]["hum"]["transcript"] == "" and report["metrics"]["ndcg@10"] == 0.5
    assert "1 voice query with no words recognised, scored 0: hum" in proc.stderr


def test_eval_refuses_a_query_with_both_text_and_voice_by_its_line(fake_store, tmp_path):
    queries = write_queries(tmp_path / "q.csv", [{"query_id": "a", "text": "mug"}, {"query_id": "b", "text": "mug", "voice": "b.wav"}])
    (tmp_path / "qrels.csv").write_text("query_id,product_id,relevance\na,p001,1\n")
    proc = run_cli("eval", "--queries", str(queries), "--qrels", str(tmp_path / "qrels.csv"), store=fake_store, check=1)
    one_line_error(proc, "line 3", "'b'", "both text and voice")


# -- serve ------------------------------------------------------------------------------
@pytest.mark.slow
def test_serve_takes_a_spoken_query_in_the_api_and_the_page(fake_store, spoken):
    from fastapi.testclient import TestClient

    from mmsearch import serve

    with TestClient(serve.create_app(fake_store)) as c:
        with open(spoken["mug"], "rb") as fh:
            api = c.post("/api/search", files={"voice": ("mug.wav", fh, "audio/wav")}, data={"k": "3"})
        with open(spoken["mug"], "rb") as fh:
            both = c.post("/api/search", files={"voice": ("mug.wav", fh, "audio/wav")}, data={"q": "lamp"})
        with open(spoken["notes"], "rb") as fh:
            broken = c.post("/api/search", files={"voice": ("notes.wav", fh, "audio/wav")})
        with open(spoken["doorbell"], "rb") as fh:
            page = c.post("/", files={"voice": ("bell.wav", fh, "audio/wav")}, data={"q": "", "k": "3"})
    assert api.status_code == 200, api.text
    body = api.json()
    assert HEARD["mug"] in body["voice"]["transcript"].lower() and body["voice"]["language"] == "en"
    assert body["results"][0]["id"] == "p001"
    assert both.status_code == 400 and "not both" in both.json()["error"]
    assert broken.status_code == 400 and "uploaded voice 'notes.wav'" in broken.json()["error"]
    assert page.status_code == 200 and 'id="transcript"' in page.text and 'data-id="p018"' in page.text
    assert page.text.index('id="transcript"') < page.text.index('data-id="p018"')


# -- the model cache ----------------------------------------------------------------------
def test_the_weights_are_joined_once_and_a_damaged_copy_is_joined_again(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    folder = speech.model_folder()
    model = folder / "model.bin"
    parts = [s for s in speech.sources() if s.name in speech.MODEL_PARTS]
    assert model.stat().st_size == sum(s.path.stat().st_size for s in parts)
    recorded = json.loads((folder / speech.CHECKSUMS).read_text())
    assert set(recorded) == {"model.bin", "config.json", "tokenizer.json", "vocabulary.txt"}
    first = model.stat()
    assert speech.model_folder() == folder
    again = model.stat()
    assert (again.st_ino, again.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)  # reused, not written again
    with open(model, "r+b") as fh:  # one flipped byte in the middle, size unchanged
        fh.seek(first.st_size // 2)
        byte = fh.read(1)
        fh.seek(first.st_size // 2)
        fh.write(bytes([byte[0] ^ 0xFF]))
    assert not speech.intact(folder)
    assert speech.model_folder() == folder and speech.intact(folder)
    assert model.stat().st_ino != first.st_ino
    (folder / "tokenizer.json").unlink()
    assert speech.model_folder() == folder and (folder / "tokenizer.json").is_file()
    assert not list(folder.glob(".*partial"))


def test_an_unusable_cache_is_one_line(tmp_path, monkeypatch):
    blocked = tmp_path / "cache-file"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setenv(CACHE_ENV, str(blocked))
    with pytest.raises(MMSearchError) as caught:
        speech.model_folder()
    message = str(caught.value)
    assert "\n" not in message and "model cache" in message and "not usable" in message and f"${CACHE_ENV}" in message


# -- real voices ---------------------------------------------------------------------------
@pytest.mark.slow
def test_real_recordings_of_spoken_digits_are_transcribed():
    if not (FSDD / "clips.csv").exists():
        pytest.skip("../shared/data/fsdd is absent")
    from benchmarks import datasets

    with open(FSDD / "clips.csv", encoding="utf-8") as fh:
        clips = datasets.only_allowed(csv.DictReader(fh), ["train", "dev"])
    chosen = [next(c for c in clips if c["speaker"] == s and c["digit"] == d) for s, d in (("george", "3"), ("jackson", "5"), ("lucas", "7"), ("nicolas", "2"), ("theo", "9"), ("yweweler", "4"))]
    listener = speech.transcriber()
    heard = [" ".join(listener.transcribe(FSDD / c["file"]).text.lower().strip(".!?").split()) for c in chosen]
    right = sum(h in (DIGITS[int(c["digit"])], c["digit"]) for h, c in zip(heard, chosen))
    assert right >= 5, list(zip([c["digit"] for c in chosen], heard))
