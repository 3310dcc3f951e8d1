"""Audio search quality: the speech-band CMVN summary, the DTW re-rank over stored MFCC
frame sequences, and the previous encoder still loading. Quality tests run on a slice
of FSDD (spoken digits) from the shared data and are skipped without it."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from mmsearch import Query, Searcher, Store, build_index, embed, ingest
from mmsearch.audio_rerank import SEQ_PART, SequencePart, dtw_costs
from mmsearch.encoders import load_encoder

from .conftest import SHARED

FSDD = SHARED / "fsdd"
#: a speaker outside the slice's catalog, and clips of his that the previous encoder
#: (librosa-mfcc:v1) ranked a wrong digit first on this slice
QUERIES = ["recordings/0_george_10.wav", "recordings/3_george_7.wav", "recordings/7_george_6.wav", "recordings/8_george_12.wav"]


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def test_dtw_aligns_a_sequence_with_its_slowed_copy_and_is_deterministic():
    rng = np.random.default_rng(0)
    word = _unit(rng.normal(size=(20, 12)))
    slowed = np.repeat(word, 2, axis=0)  # the same word said at half the speed
    other = _unit(rng.normal(size=(40, 12)))
    a = np.stack([np.pad(word, ((0, 20), (0, 0))), np.pad(word, ((0, 20), (0, 0)))])
    b = np.stack([slowed, other])
    lengths_a, lengths_b = np.array([20, 20]), np.array([40, 40])
    costs = dtw_costs(a, lengths_a, b, lengths_b)
    assert costs[0] < 1e-5 and costs[1] > 0.3
    # one pair at a time (no padding) gives the same costs as the padded batch, every time
    single = [dtw_costs(word[None], np.array([20]), s[None], np.array([40]))[0] for s in (slowed, other)]
    np.testing.assert_allclose(costs, single, rtol=1e-6)
    assert np.array_equal(costs, dtw_costs(a, lengths_a, b, lengths_b))


def test_stored_sequences_never_load_pickles(tmp_path):
    """The part's .npy files are read with allow_pickle=False: an object array (which
    would run code on load) is refused, not unpickled."""
    np.save(tmp_path / f"{SEQ_PART}.frames.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / f"{SEQ_PART}.offsets.npy", np.array([0, 1]))
    (tmp_path / f"{SEQ_PART}.ids.json").write_text('["p"]', encoding="utf-8")
    with pytest.raises(ValueError, match="allow_pickle"):
        SequencePart(tmp_path)


def test_previous_audio_model_loads_by_name_and_by_id():
    old = load_encoder("audio", "librosa-mfcc-v1")
    assert (old.id, old.name, old.dim) == ("librosa-mfcc:v1", "librosa-mfcc-v1", 242)
    assert load_encoder("audio", "librosa-mfcc:v1").name == "librosa-mfcc-v1"
    assert load_encoder("audio").id == "librosa-mfcc:v2"


# -- FSDD slice ---------------------------------------------------------------------
needs_fsdd = pytest.mark.skipif(not (FSDD / "clips.csv").exists(), reason="no FSDD data in /work/shared")


def _slice_store(root: Path, model: str) -> Store:
    """Four speakers' takes 5-9 of every digit (200 clips; train split only)."""
    rows = [r for r in csv.DictReader(open(FSDD / "clips.csv", encoding="utf-8")) if r["split"] == "train"]
    catalog = root / "catalog.csv"
    with open(catalog, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "title", "audio"])
        for r in rows:
            if r["speaker"] in ("jackson", "nicolas", "theo", "yweweler") and 5 <= int(r["take"]) < 10:
                writer.writerow([Path(r["file"]).stem, "recording", r["file"]])
    store = Store(root / "store")
    with store.writer("test"):
        ingest(store, catalog, media_dir=FSDD)
        embed(store, models={"audio": model}, modalities=["audio"])
        build_index(store)
    return store


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    return {model: _slice_store(tmp_path_factory.mktemp(model), model) for model in ("librosa-mfcc", "librosa-mfcc-v1")}


def _first_digits(searcher: Searcher) -> list[str]:
    return [searcher.search(Query(audio=FSDD / q), k=1)[0].id[0] for q in QUERIES]


@needs_fsdd
@pytest.mark.slow
def test_digit_finds_the_same_digit_by_another_speaker_first(stores):
    wanted = [Path(q).name[0] for q in QUERIES]
    assert _first_digits(Searcher(stores["librosa-mfcc"])) == wanted
    old = _first_digits(Searcher(stores["librosa-mfcc-v1"]))
    assert all(a != b for a, b in zip(old, wanted))  # what the previous encoder ranked first


@needs_fsdd
@pytest.mark.slow
def test_rerank_uses_the_stored_sequences_and_is_deterministic(stores):
    store = stores["librosa-mfcc"]
    searcher = Searcher(store)
    assert searcher.part(SEQ_PART).count == 200
    query = Query(audio=FSDD / QUERIES[1])
    first = searcher.search(query, k=20)
    assert first == Searcher(store).search(query, k=20) == searcher.search(query, k=20)
    # the order differs from the summary vectors' cosine order: the alignment decided it
    cosine = searcher.part("audio").score(searcher.query_vectors(query, ["audio"])["audio"][1], {r.id for r in first})
    assert [r.id for r in first] != sorted(cosine, key=lambda p: (-cosine[p], p))
    # no sequence part for the previous model: its cosine order stands
    assert Searcher(stores["librosa-mfcc-v1"]).part(SEQ_PART) is None


@needs_fsdd
@pytest.mark.slow
def test_index_built_by_the_previous_default_still_answers(stores):
    """Stores embedded before the default changed recorded the model as "librosa-mfcc"
    with id librosa-mfcc:v1: a query loads the encoder by that id, not the new default
    (whose vectors have another length)."""
    searcher = Searcher(stores["librosa-mfcc-v1"])
    manifest_path = searcher.folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["parts"]["audio"]["model"]["name"] = "librosa-mfcc"
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    reopened = Searcher(stores["librosa-mfcc-v1"])
    assert [r.id for r in reopened.search(Query(audio=FSDD / QUERIES[0]), k=5)] == [
        r.id for r in searcher.search(Query(audio=FSDD / QUERIES[0]), k=5)
    ]
    assert reopened.encoder("audio").id == "librosa-mfcc:v1"
