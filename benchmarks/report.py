"""results.json -> results.md: the tables benchmarks/README.md quotes."""

from __future__ import annotations

from typing import Any

PUBLISHED_CLIP_RECALL10 = 0.49


def _f(x: Any, digits: int = 3) -> str:
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(map(_f, r)) + " |" for r in rows)]


def text_fusion(t: dict[str, Any]) -> list[str]:
    """Each text query set: ndcg@10 of each signal alone, the fused default, and tune's
    5-fold cross-validated default and tuned figures."""
    out = ["## Text fusion: every text query set (ndcg@10)", ""]
    rows = []
    for name, row in t.items():
        best = max(row["bm25"]["ndcg@10"], row["dense_text"]["ndcg@10"])
        cv = row["tune"]["cv_mean"]
        s = row["tune"]["settings"]
        weights = ", ".join(f"{k}={v:g}" for k, v in sorted(s["weights"].items()))
        rows.append([name, row["bm25"]["ndcg@10"], row["dense_text"]["ndcg@10"], row["fused"]["ndcg@10"],
                     f"{row['fused']['ndcg@10'] - best:+.3f}", cv["default"], cv["tuned"], f"{s['method']}, {weights}"])
    header = ["query set", "bm25", "dense text", "fused default", "default − best signal", "default, 5-fold CV", "tuned, 5-fold CV", "tuned on all queries"]
    return out + _table(header, rows) + [""]


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    out = [
        "# mmsearch benchmark results",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; Python {m['python']}, torch {m['torch']}. "
        f"Started {r['started']}; total {r['total_s'] / 60:.1f} min" + (f"; --limit {r['limit']}" if r["limit"] else "") + ".",
        "",
    ]
    if "myntra_quality" in r:
        q = r["myntra_quality"]
        out += ["## Myntra quality (dev split store, dev queries)", "", f"Queries: {q['queries']}", ""]
        out += ["### Text → product (attribute queries, graded)", ""]
        rows = []
        for bridge in ("zeroshot", "aligned"):
            for config, rep in q[bridge]["attributes"].items():
                met = rep["metrics"]
                rows.append([config, bridge, met["ndcg@10"], met["recall@10"], met["map"], met["mrr"]])
        out += _table(["configuration", "text→image bridge", "ndcg@10", "recall@10", "map", "mrr"], rows) + [""]
        out += ["### Text → image, known item (title as query, `--modality image`)", ""]
        rows = [[b, q[b]["known_item"]["metrics"]["recall@1"], q[b]["known_item"]["metrics"]["recall@10"], q[b]["known_item"]["metrics"]["mrr"]] for b in ("zeroshot", "aligned")]
        rows.append(["published fashion-tuned CLIP (reference)", "", PUBLISHED_CLIP_RECALL10, ""])
        out += _table(["bridge", "recall@1", "recall@10", "mrr"], rows) + [""]
        out += ["### Image → product (512-px photo vs 60x80 thumbnails)", ""]
        e, c = q["zeroshot"]["photo_exact"]["metrics"], q["zeroshot"]["photo_category"]["metrics"]
        out += _table(
            ["protocol", "recall@1", "recall@10", "mrr", "precision@10", "ndcg@10"],
            [["same product", e["recall@1"], e["recall@10"], e["mrr"], "", ""], ["same article type", "", c["recall@10"], c["mrr"], c["precision@10"], c["ndcg@10"]]],
        ) + [""]
        if "myntra_photo" in r:
            out += ["### Image → product, by the image signal alone and with the near-duplicate signal (recall@1 / recall@10)", ""]
            rows = [[name, *(f"{m[s]['recall@1']:.3f} / {m[s]['recall@10']:.3f}" for s in ("image", "image,duplicate"))] for name, m in r["myntra_photo"].items()]
            out += _table(["query set", "`--modality image`", "`--modality image,duplicate`"], rows) + [""]
        a = r["align"]
        out += [f"Alignment trained on the train store: {a['pairs_train']} pairs, {a['seconds']:.0f} s training "
                f"({a['wall_s']:.0f} s wall, peak {a['peak_rss_mib']:.0f} MiB); held-out recall@1/@10 "
                f"{a['val']['recall@1']:.3f}/{a['val']['recall@10']:.3f} vs zero-shot {a['zeroshot_val'].get('recall@1', 0):.3f}/"
                f"{a['zeroshot_val'].get('recall@10', 0):.3f} on the same {a['pairs_val']} held-out pairs.", ""]
    if "text_fusion" in r:
        out += text_fusion(r["text_fusion"])
    if "fsdd" in r:
        f = r["fsdd"]
        out += ["## FSDD audio → audio (other speakers' clips, same digit relevant)", ""]
        out += _table(["encoder", "map", "precision@10"], [[name, e["map"], e["precision@10"]] for name, e in f["encoders"].items()]) + [""]
        if f.get("same_speaker"):
            out += ["## FSDD audio → audio (the same speaker's other takes, same digit relevant)", ""]
            out += _table(["encoder", "map", "precision@10"], [[name, e["map"], e["precision@10"]] for name, e in f["same_speaker"].items()]) + [""]
        if f.get("latency"):
            lat = f["latency"]
            out += ["### Audio query latency (one speaker's store, 2,250 clips, k=10)", ""]
            out += _table(
                ["queries", "in-process p50 ms", "in-process p95 ms", "cold `mmsearch query --audio` p50 ms"],
                [[lat["queries"], lat["in_process_ms"]["p50"], lat["in_process_ms"]["p95"], lat["cold_process_ms"]["p50"]]],
            ) + [""]
    out += ["## Speed and size", ""]
    rows = []
    for key in ("myntra_train_store", "myntra_dev_store"):
        if key in r:
            s = r[key]
            for modality, e in s["embed"].items():
                rows.append([key, modality, e["items"], e["per_second"], s["embed_peak_rss_mib"]])
    if "myntra_train_photos" in r:
        p = r["myntra_train_photos"]
        rows.append(["myntra_train_photos", "image (512-px photos)", p["items"], p["per_second"], p["embed_peak_rss_mib"]])
    if "fsdd" in r:
        rows.append(["fsdd", "audio", r["fsdd"]["clips"], r["fsdd"]["clips_per_second"], r["fsdd"]["embed_peak_rss_mib"]])
    out += ["### Embedding throughput", ""] + _table(["store", "modality", "items", "items/s", "embed peak RSS MiB"], rows) + [""]
    rows = []
    for key in ("myntra_train_store", "myntra_dev_store"):
        if key in r:
            s = r[key]
            parts = ", ".join(f"{p} {t:.1f}s" for p, t in s["index_parts_s"].items())
            rows.append([key, s["index_wall_s"], parts, s["index_size_mib"], s["index_peak_rss_mib"], s["rerun_embed_s"], s["rerun_index_s"]])
    out += ["### Index build and re-runs on an unchanged catalog", ""]
    out += _table(["store", "index wall s", "parts", "size MiB", "peak RSS MiB", "re-run embed s", "re-run index s"], rows) + [""]
    if "speed" in r:
        sp = r["speed"]
        out += ["### Query latency (train store, fused search, WANDS query texts)", ""]
        out += _table(
            ["in-process p50 ms", "in-process p95 ms", "cold `mmsearch query` p50 ms"],
            [[sp["in_process_ms"]["p50"], sp["in_process_ms"]["p95"], sp["cold_process_ms"]["p50"]]],
        ) + [""]
        if "filtered" in sp:
            rows = [[w, f["allowed_fraction"], f["p50_ms"], f["p95_ms"], f["text_recall@10_vs_exact"]] for w, f in sp["filtered"].items()]
            out += ["### Filtered fused queries (train store, 100 WANDS query texts)", ""]
            out += _table(["--where", "products allowed", "p50 ms", "p95 ms", "text recall@10 vs exact"], rows) + [""]
        rows = [
            [
                n, s["items"], s.get("nodes", s["items"]), s["dim"], s.get("method", "hnsw"), s.get("ef_search", 100),
                s["hnsw_recall@10_vs_exact"], s.get("mmsearch_recall@10_vs_exact", s["hnsw_recall@10_vs_exact"]),
                s["raw_hnswlib_ms"], s["mmsearch_path_ms"], s["numpy_exact_ms"],
            ]
            for n, s in sp["search_paths"].items()
        ]
        out += ["### Search paths on the same vectors (per query, k=10)", ""]
        out += _table(
            ["index, queries", "items", "graph nodes", "dim", "method", "calibrated ef", "HNSW recall@10 at that ef",
             "mmsearch recall@10", "raw hnswlib ms", "mmsearch ms", "numpy exact ms"],
            rows,
        ) + [""]
    return "\n".join(out)
