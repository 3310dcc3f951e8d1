"""`mmsearch eval --report DIR` and `--compare`: the page and report.json agree with the
evaluation's own numbers and with QRELS, the folder stands alone, and bad options are
one line before anything is evaluated. The fake-encoder store: what is tested is the
report, not what the models find."""

from __future__ import annotations

import csv
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mmsearch.evaluation import score_run

from .conftest import SAMPLE, cli_imports, run_cli

QUERIES = SAMPLE / "queries.csv"
KS = ("-k", "10", "-k", "5")  # the first -k given (10) orders the queries
RANK = "ndcg@10"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None):
        self.tag, self.attrs, self.parent, self.children, self.text = tag, attrs, parent, [], ""

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def all(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[Node]:
        """Descendants with this tag, class and attribute values (attrs: data_x -> data-x)."""
        found = []
        for child in self.children:
            wanted = {k.replace("_", "-"): v for k, v in attrs.items()}
            if (tag in (None, child.tag)) and (cls is None or cls in child.classes) and all(child.attrs.get(k) == v for k, v in wanted.items()):
                found.append(child)
            found += child.all(tag, cls, **attrs)
        return found

    def one(self, *args, **kwargs) -> Node:
        found = self.all(*args, **kwargs)
        assert len(found) == 1, (args, kwargs, len(found))
        return found[0]

    def all_text(self) -> str:
        return self.text + "".join(c.all_text() for c in self.children)


class Page(HTMLParser):
    """index.html as a tree of Nodes (html.parser; void elements closed at once)."""

    def __init__(self, text: str):
        super().__init__()
        self.root = self.at = Node("#root", {}, None)
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: v or "" for k, v in attrs}, self.at)
        self.at.children.append(node)
        if tag not in VOID:
            self.at = node

    def handle_startendtag(self, tag, attrs):
        self.at.children.append(Node(tag, {k: v or "" for k, v in attrs}, self.at))

    def handle_endtag(self, tag):
        node = self.at
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.at = node.parent

    def handle_data(self, data):
        self.at.text += data


def page(folder: Path) -> Node:
    return Page((folder / "index.html").read_text(encoding="utf-8")).root


def report_json(folder: Path) -> dict:
    return json.loads((folder / "report.json").read_text(encoding="utf-8"))


def grades(path: Path) -> dict[tuple[str, str], int]:
    with open(path, encoding="utf-8") as fh:
        return {(r["query_id"], r["product_id"]): int(r["relevance"]) for r in csv.DictReader(fh)}


def evaluate(store: Path, folder: Path, *args: str, qrels: Path = SAMPLE / "qrels.csv", queries: Path = QUERIES, check=0):
    return run_cli("eval", "--queries", str(queries), "--qrels", str(qrels), *args, "--report", str(folder), store=store, check=check)


@pytest.fixture(scope="module")
def qrels(tmp_path_factory) -> Path:
    """sample_data's judgments, plus grade 0 for every product q01-q03 do not judge: so
    results of those queries are judged not relevant, the others' are unjudged."""
    path = tmp_path_factory.mktemp("qrels") / "qrels.csv"
    judged = grades(SAMPLE / "qrels.csv")
    with open(SAMPLE / "products.csv", encoding="utf-8") as fh:
        products = [row["id"] for row in csv.DictReader(fh)]
    zero = [(q, p, 0) for q in ("q01", "q02", "q03") for p in products if (q, p) not in judged]
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["query_id", "product_id", "relevance"])
        writer.writerows([*((q, p, g) for (q, p), g in judged.items()), *zero])
    return path


@pytest.fixture(scope="module")
def made(fake_store_template, qrels, tmp_path_factory) -> tuple[Path, dict]:
    """One report (into a folder that does not exist yet) and the --json of the same run."""
    folder = tmp_path_factory.mktemp("made") / "reports" / "first"
    proc = evaluate(fake_store_template, folder, *KS, "--json", qrels=qrels)
    return folder, json.loads(proc.stdout)


def test_the_metrics_table_and_report_json_hold_the_json_metrics(made):
    folder, printed = made
    doc = report_json(folder)
    rows = [tr for tr in page(folder).one("table", id="metrics").all("tr") if "data-metric" in tr.attrs]
    shown = {tr.attrs["data-metric"]: float(tr.one("td", cls="value").attrs["data-value"]) for tr in rows}
    assert shown == printed["metrics"] and list(shown) == list(printed["metrics"])
    assert doc["metrics"] == printed["metrics"] and doc["skipped"] == printed["skipped"] and doc["fusion"] == printed["fusion"]
    assert doc["k"] == [5, 10] and doc["rank_metric"] == RANK and doc["queries"] == printed["queries"] == 16
    assert doc["format"] == "mmsearch-eval-report/1" and doc["generation"].startswith("gen-") and doc["created_at"]


def test_queries_are_listed_worst_first_with_the_results_that_were_scored(made, qrels):
    folder, _ = made
    doc = report_json(folder)
    rows = page(folder).one("table", id="per-query").all("tr", cls="query")
    order = [tr.attrs["data-query-id"] for tr in rows]
    assert order == [q["id"] for q in doc["per_query"]]
    assert order == sorted(order, key=lambda q: (next(e for e in doc["per_query"] if e["id"] == q)["metrics"][RANK], q))
    assert len(set(order)) == 16
    for tr, entry in zip(rows, doc["per_query"]):
        shown = {m.attrs["data-metric"]: float(m.one("td").attrs["data-value"]) for m in tr.one("table", cls="qmetrics").all("tr")}
        assert shown == entry["metrics"]
    # the listed top 10 are the ranking that was scored: scored again, they give the same ndcg@10
    run = {e["id"]: {r["id"]: 100.0 - r["rank"] for r in e["results"]} for e in doc["per_query"]}
    judged: dict[str, dict[str, int]] = {}
    for (q, p), g in grades(qrels).items():
        judged.setdefault(q, {})[p] = g
    again = score_run(run, judged, [10])
    assert {q: m[RANK] for q, m in again.items()} == pytest.approx({e["id"]: e["metrics"][RANK] for e in doc["per_query"]})


def test_every_result_is_marked_as_qrels_judges_it(made, qrels):
    folder, _ = made
    judged = grades(qrels)
    kinds = set()
    for tr in page(folder).one("table", id="per-query").all("tr", cls="query"):
        qid = tr.attrs["data-query-id"]
        results = tr.all("div", cls="result")
        assert 0 < len(results) <= 10
        for div in results:
            grade = judged.get((qid, div.attrs["data-product-id"]))
            card = div.one("article", cls="card")
            kind = "unjudged" if grade is None else "relevant" if grade > 0 else "not relevant"
            kinds.add(kind)
            assert ("relevant" in card.classes) == (grade is not None and grade > 0), (qid, div.attrs)
            assert ("not-relevant" in card.classes) == (grade is None or grade <= 0), (qid, div.attrs)
            assert ("unjudged" in div.classes) == (grade is None) == bool(div.all("span", cls="unjudged-mark"))
            assert div.attrs["data-grade"] == ("" if grade is None else str(grade))
            label = card.one("div", cls="grade").all_text()
            assert label == (f"relevant (grade {grade})" if grade and grade > 0 else "not relevant")
        shown = {div.attrs["data-product-id"] for div in results}
        relevant = {p for (q, p), g in judged.items() if q == qid and g > 0}
        missed = {li.attrs["data-product-id"]: int(li.attrs["data-grade"]) for div in tr.all("div", cls="missed") for li in div.all("li")}
        assert missed == {p: judged[qid, p] for p in relevant - shown}, qid
    assert kinds == {"relevant", "not relevant", "unjudged"}


def test_the_plot_is_an_inline_svg_and_its_curves_meet_the_metrics(made):
    folder, printed = made
    assert page(folder).one("figure", id="plot").all("svg")
    curves = report_json(folder)["curves"]
    assert curves["k"] == list(range(1, 21))
    for k in (5, 10):
        assert curves["recall"][k - 1] == printed["metrics"][f"recall@{k}"]
        assert curves["precision"][k - 1] == printed["metrics"][f"precision@{k}"]
    assert curves["recall"] == sorted(curves["recall"])  # recall never falls as k grows


def links(folder: Path) -> list[str]:
    """Every src and href in the page, each checked to stay inside ``folder``."""
    found = []
    for node in page(folder).all():
        for attr in ("src", "href", "xlink:href"):
            value = node.attrs.get(attr)
            if value is None:
                continue
            assert not value.startswith(("/", "http:", "https:", "file:", "//")), value
            if not value.startswith(("#", "data:")):
                assert (folder / value).is_file(), value
                found.append(value)
    return found


def test_the_folder_stands_alone_wherever_it_is_moved(fake_store, tmp_path):
    folder = tmp_path / "report"
    evaluate(fake_store, folder, "--quiet")
    (folder / "media" / "notes.txt").write_text("mine")  # not the report's: kept
    stale = folder / "media" / ("0" * 20 + ".jpg")  # named like the report's own: a left-over
    stale.write_bytes(b"old")
    evaluate(fake_store, folder, "--quiet")
    assert not stale.exists() and (folder / "media" / "notes.txt").exists()
    moved = shutil.move(folder, tmp_path / "elsewhere" / "zipped")
    files = links(Path(moved))
    assert any(f.endswith(".jpg") for f in files) and any(f.endswith(".wav") for f in files)
    assert {p.name for p in (Path(moved) / "media").iterdir()} == {Path(f).name for f in files} | {"notes.txt"}
    root = page(Path(moved))
    assert not root.all("script") and not root.all("link")  # nothing to fetch, no CDN
    with open(QUERIES, encoding="utf-8") as fh:
        asked = list(csv.DictReader(fh))
    for q in asked:
        tr = root.one("tr", cls="query", data_query_id=q["query_id"])
        assert bool(tr.all("img", cls="query-image")) == bool(q["image"])
        assert bool(tr.all("audio", cls="query-audio")) == bool(q["audio"])
        if q["text"]:
            assert q["text"] in tr.one("div", cls="qtext").all_text()


def test_report_json_round_trips_with_every_query(made):
    folder, _ = made
    text = (folder / "report.json").read_text(encoding="utf-8")
    doc = json.loads(text)
    assert json.loads(json.dumps(doc)) == doc
    entry = next(e for e in doc["per_query"] if e["id"] == "q12")
    assert entry["query"] == {"label": "sound q_p018.wav", "text": None, "image": None, "audio": "q_p018.wav", "modalities": None}
    assert all(set(r) == {"rank", "id", "title", "score", "grade"} for e in doc["per_query"] for r in e["results"])
    assert all([r["rank"] for r in e["results"]] == list(range(1, len(e["results"]) + 1)) for e in doc["per_query"])
    assert "compare" not in doc


def test_a_run_compared_with_itself_changes_nothing(made, fake_store_template, qrels, tmp_path):
    first, _ = made
    evaluate(fake_store_template, tmp_path / "again", *KS, "--compare", str(first / "report.json"), "--quiet", qrels=qrels)
    cmp = report_json(tmp_path / "again")["compare"]
    assert (cmp["better"], cmp["worse"], cmp["same"], cmp["changed"]) == (0, 0, 16, [])
    assert cmp["only_this"] == cmp["only_other"] == [] and cmp["metric"] == RANK
    assert all(m["delta"] == 0 for name, m in cmp["metrics"].items() if not name.startswith(("latency", "qps")))
    summary = page(tmp_path / "again").one("section", id="compare").one("p", id="compare-summary")
    assert (summary.attrs["data-better"], summary.attrs["data-worse"], summary.attrs["data-same"]) == ("0", "0", "16")


def test_compare_counts_wins_and_losses_and_queries_of_one_run(fake_store, tmp_path):
    """Run B: rrf fusion, without q01 and q02, with a query q99 run A does not have."""
    evaluate(fake_store, tmp_path / "a", "--quiet")
    queries, qrels = tmp_path / "queries.csv", tmp_path / "qrels.csv"
    text = QUERIES.read_text(encoding="utf-8").replace(",queries/", f",{SAMPLE}/queries/")  # media paths stay valid
    rows = [line for line in text.splitlines() if not line.startswith(("q01,", "q02,"))]
    queries.write_text("\n".join([*rows, "q99,ceramic mug,,,"]) + "\n", encoding="utf-8")
    qrels.write_text((SAMPLE / "qrels.csv").read_text(encoding="utf-8") + "q99,p001,1\n", encoding="utf-8")
    evaluate(fake_store, tmp_path / "b", "--fusion", "rrf", "--compare", str(tmp_path / "a" / "report.json"), "--quiet", queries=queries, qrels=qrels)
    a, b = report_json(tmp_path / "a"), report_json(tmp_path / "b")
    ndcg = {name: {e["id"]: e["metrics"]["ndcg@10"] for e in doc["per_query"]} for name, doc in (("a", a), ("b", b))}
    both = ndcg["a"].keys() & ndcg["b"].keys()
    delta = {q: ndcg["b"][q] - ndcg["a"][q] for q in both}
    cmp = b["compare"]
    assert cmp["better"] == sum(d > 1e-6 for d in delta.values()) and cmp["worse"] == sum(d < -1e-6 for d in delta.values())
    assert cmp["better"] + cmp["worse"] + cmp["same"] == len(both) == 14 and cmp["better"] + cmp["worse"] > 0
    assert cmp["only_this"] == ["q99"] and cmp["only_other"] == ["q01", "q02"]
    assert cmp["metrics"]["map"]["delta"] == pytest.approx(b["metrics"]["map"] - a["metrics"]["map"], abs=1e-6)
    changed = [c["id"] for c in cmp["changed"]]
    assert changed == sorted((q for q in both if abs(delta[q]) > 1e-6), key=lambda q: (round(delta[q], 6), q))
    section = page(tmp_path / "b").one("section", id="compare")
    assert [tr.attrs["data-query-id"] for tr in section.one("table", id="compare-queries").all("tr", cls="changed")] == changed
    assert "q99" in section.one("p", id="only-this").all_text() and "q01, q02" in section.one("p", id="only-other").all_text()


@pytest.mark.parametrize("case", ["missing", "not json", "eval --json", "other -k", "no common query", "no --report"])
def test_a_bad_compare_option_is_one_line_before_anything_runs(case, made, fake_store, tmp_path):
    first, printed = made
    other = tmp_path / "other.json"
    doc = report_json(first)
    contents = {
        "not json": "{not json",
        "eval --json": json.dumps(printed),
        "other -k": json.dumps({**doc, "k": [10]}),
        "no common query": json.dumps({**doc, "per_query": [{**e, "id": "x" + e["id"]} for e in doc["per_query"]]}),
    }
    if case in contents:
        other.write_text(contents[case], encoding="utf-8")
    report = [] if case == "no --report" else ["--report", str(tmp_path / "out")]
    args = ("eval", "--queries", str(QUERIES), "--qrels", str(SAMPLE / "qrels.csv"), *KS, *report, "--compare", str(other))
    proc = run_cli(*args, store=fake_store, check=2)
    assert proc.stderr.startswith("error: --compare") and proc.stderr.count("\n") == 1, proc.stderr
    assert "16/16" not in proc.stderr and not (tmp_path / "out").exists()  # nothing evaluated, nothing written


def test_an_unwritable_report_folder_is_one_line_before_anything_runs(fake_store, tmp_path):
    (tmp_path / "file").write_text("a file, not a folder")
    proc = evaluate(fake_store, tmp_path / "file" / "report", check=1)
    assert proc.stderr.startswith("error: --report") and proc.stderr.count("\n") == 1 and "16/16" not in proc.stderr


def test_the_report_is_written_when_a_metric_fails_its_bar(fake_store, tmp_path):
    proc = evaluate(fake_store, tmp_path / "r", "--fail-under", "ndcg@10=0.99", check=4)
    assert "below threshold" in proc.stderr and (tmp_path / "r" / "index.html").is_file() and (tmp_path / "r" / "report.json").is_file()


@pytest.mark.slow
def test_matplotlib_and_jinja_load_only_for_a_report(fake_store, tmp_path):
    eval_args = ("eval", "--queries", str(QUERIES), "--qrels", str(SAMPLE / "qrels.csv"), "--quiet")
    for args in (("query", "red mug"), eval_args):
        assert cli_imports(tmp_path, *args, store=fake_store) & {"matplotlib", "jinja2"} == set(), args
    assert {"matplotlib", "jinja2"} <= cli_imports(tmp_path, *eval_args, "--report", str(tmp_path / "r"), store=fake_store)
