"""report.html on a hand-made sweep folder: the numbers behind it by hand (top-K curve,
Pareto front), the page's sections, tables and self-containedness, and the page itself in a
real headless Chromium (rendered, no console errors, no network, figures not blank, tables
sort), whose screenshot is kept as a test artefact.

Without Chromium the browser test is skipped with the reason; under CI (``CI`` set, as
``.ci/run`` does, which installs Debian's ``chromium``) it fails instead.
"""
from __future__ import annotations

import base64
import io
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from conftest import DATA_ROOT, REPO, data_file

from handmade import manifest, write_folder
from handmade import row as hand_row

from orchestrator.plan import Job
from orchestrator.reduce import compute_metrics, load_config, reduce_sweep, valid_shards
from orchestrator.report import StatusSummary
from orchestrator.report_data import CURVE_PERCENTS, pareto_front, precision_curve
from orchestrator.report_html import HTML_FILE, Section, write_html_report
from orchestrator.store import ScoreStore

SECTIONS = ("ranking", "scatter", "heatmap", "frontier", "topk", "failures", "search")
ARTEFACTS = Path(os.environ.get("PROXYSWEEP_TEST_ARTEFACTS", REPO / "test-artefacts"))
CELLS = [str(i) for i in range(0, 400, 5)]  # 80 NB201 cells
#: proxy -> (seconds per cell, higher is better); scores below make the front known
PROXIES = {"oracle": (4.0, True), "inverse": (2.0, False), "cheap": (0.5, True), "costly_noise": (8.0, True)}
CONFIG = {
    "sweep": {"name": "hand_html", "space": "nb201", "datasets": ["cifar10"], "proxies": ["params"], "seeds": [0, 1],
              "shard_size": 5},
    "space": {"nb201": {"truth": {"cifar10": "cifar10_valid_test"}}},
    "metrics": {"top_k_percent": [10, 50], "kendall_top_percent": 50},
    "data": {"root": str(DATA_ROOT), "images": {"cifar10": "cifar10_smoke.npz"}},
    "cells": {"select": "all"},
    "out_dir": "unused",
}


def truth_of(ids: list[str]) -> np.ndarray:
    import pyarrow.parquet as pq

    table = pq.read_table(data_file("nb201_accuracy.parquet"), columns=["arch_index", "cifar10_valid_test"])
    acc = dict(zip(table["arch_index"].to_pylist(), table["cifar10_valid_test"].to_pylist()))
    return np.array([acc[int(i)] for i in ids])


def hand_rows() -> list[dict]:
    """oracle: the accuracy itself (rho 1, 4 s); inverse: minus accuracy plus a little noise,
    lower-is-better (rho just under 1, 2 s); cheap: accuracy plus much noise (0.5 s);
    costly_noise: noise (rho near 0, 8 s). Front: oracle, inverse, cheap."""
    acc = truth_of(CELLS)
    rows = []
    for seed in (0, 1):
        rng = np.random.default_rng(seed)
        spread = np.std(acc)
        scores = {"oracle": acc, "inverse": -acc + rng.normal(0, 0.1 * spread, len(acc)),
                  "cheap": acc + rng.normal(0, 1.0 * spread, len(acc)), "costly_noise": rng.normal(size=len(acc))}
        for proxy, values in scores.items():
            for cell, value in zip(CELLS, values):
                r = hand_row(Job("nb201", "cifar10", seed), cell, proxy, float(value))
                r["seconds"] = PROXIES[proxy][0]
                rows.append(r)
        failed = hand_row(Job("nb201", "cifar10", seed), "400", "cheap", None, "error")
        failed["error"] = "RuntimeError: <boom> & out of memory"
        rows.append(failed)
    return rows


@pytest.fixture(scope="module")
def hand_report(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("html")
    write_folder(folder, manifest("nb201", {p: up for p, (_, up) in PROXIES.items()}), hand_rows(), CONFIG)
    reduce_sweep(folder)
    return folder


class Tables(HTMLParser):
    """Each table's rows by table id: (row class, [cell text]) per body row; section ids."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tables: dict[str, list[tuple[str, list[str]]]] = {}
        self.sections: list[str] = []
        self._table: str | None = None
        self._in_body = self._in_cell = False
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a["id"])
        elif tag == "table":
            self._table = a["id"]
            self.tables[self._table] = []
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.tables[self._table].append((a.get("class", ""), []))
        elif tag == "td" and self._in_body:
            self._in_cell = True
            self.tables[self._table][-1][1].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_body = False
        elif tag == "td":
            self._in_cell = False

    def handle_data(self, data: str) -> None:
        if self._in_cell:
            rows = self.tables[self._table]
            rows[-1][1][-1] += data


def test_precision_curve_by_hand() -> None:
    # n = 5: k = ceil(5 K / 100) is 1 for K <= 20, 2 for K <= 40, 3 for K <= 50.
    # proxy order 0,1,2,..; true order 1,2,3,4,0: top 1 {0} vs {1}: 0; top 2 {0,1} vs {1,2}: 1/2;
    # top 3 {0,1,2} vs {1,2,3}: 2/3
    curve = precision_curve(np.array([5.0, 4, 3, 2, 1]), np.array([1.0, 5, 4, 3, 2]))
    k = CURVE_PERCENTS
    assert np.allclose(curve, np.where(k <= 20, 0.0, np.where(k <= 40, 0.5, 2 / 3)))
    # ties at the cut-off are all in: top 1 of scores (1, 1, 0, 0) is cells {0, 1}, of
    # accuracies (1, 0, 1, 0) cells {0, 2}: one of the two chosen is right
    assert precision_curve(np.array([1.0, 1, 0, 0]), np.array([1.0, 0, 1, 0]), [25])[0] == 0.5
    # an infinite score ranks first (NASWOT's -inf last)
    assert precision_curve(np.array([np.inf, 0, -np.inf]), np.array([3.0, 2, 1]), [34])[0] == 1.0


def test_pareto_front_by_hand() -> None:
    quality = [0.9, 0.5, 0.4, 0.9, 0.7, np.nan, 0.1]
    cost = [4.0, 1.0, 2.0, 5.0, 1.0, 0.1, 0.5]
    # 1 (0.5, 1 s) is beaten by 4 (0.7, 1 s); 2 by 4; 3 by 0 (same quality, dearer);
    # 5 has no quality; 6 is the cheapest scored
    assert pareto_front(quality, cost).tolist() == [True, False, False, False, True, False, True]
    assert pareto_front([0.5, 0.5], [1.0, 1.0]).tolist() == [True, True]  # equal: neither dominates


def test_page_sections_tables_and_no_network(hand_report) -> None:
    page = (hand_report / HTML_FILE).read_text()
    parsed = Tables(page)
    assert parsed.sections == list(SECTIONS)
    for sid in SECTIONS:
        assert f'href="#{sid}"' in page
    # self-contained: no address outside the file, no external style or script
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:[a-z]+:)?//""", page, re.I)
    assert not re.search(r"https?://|<link|@import|url\(", page)
    assert page.count('data-figure="') == 4  # scatter, heatmap, frontier, top-K for the one dataset
    assert page.count('src="data:image/png;base64,') == 4
    # the ranking table: one row per proxy, sortable by every column (the script wires each table)
    assert "table.sortable" in page and 'class="sortable" id="ranking-nb201-cifar10-cifar10_valid_test"' in page
    ranking = parsed.tables["ranking-nb201-cifar10-cifar10_valid_test"]
    assert sorted(r[1][0] for r in ranking) == sorted(PROXIES)
    assert ranking[0][1][0] == "oracle" and ranking[0][1][4].startswith("1.000")  # by |Spearman|, then Kendall
    # the reducer's pooled interval: the oracle's rho is 1 on every resample of the cells
    assert ranking[0][1][4] == "1.000[1.000, 1.000]"
    # Pareto front marked, in the figure's table
    front = {cells[0] for cls, cells in parsed.tables["frontier-nb201-cifar10-cifar10_valid_test"] if cls == "pareto"}
    assert front == {"oracle", "inverse", "cheap"}
    # top-K: the oracle picks the best cells at every K
    topk = {cells[0]: cells[1:] for _, cells in parsed.tables["topk-nb201-cifar10-cifar10_valid_test"]}
    assert topk["oracle"] == ["1.000"] * 6
    # failures and time, with the error text escaped
    status = {cells[0]: cells[1:] for _, cells in parsed.tables["status"]}
    assert status["cheap"] == ["160", "0", "2", "0.500"]
    assert "RuntimeError: &lt;boom&gt; &amp; out of memory" in page
    assert "No search simulations in this sweep" in page


def test_intervals_comparisons_and_extra_sections(hand_report) -> None:
    """metrics.parquet's pooled rows with intervals (the statistics' layout) and a
    comparisons table are shown; an extra section with id "search" fills that section."""
    summary = StatusSummary()
    shards = valid_shards(ScoreStore(hand_report), quarantine=False)[1]
    settings = load_config(hand_report)
    partitions = compute_metrics(shards, settings, lambda p: PROXIES[p][1], summary)[2]
    metrics = pa.Table.from_pylist([
        dict(space="nb201", dataset="cifar10", truth="cifar10_valid_test", proxy=p, seed=None, aggregate="pooled",
             metric="spearman", value=v, n_cells=80, ci_low=v - 0.05, ci_high=min(1.0, v + 0.05), ci_level=0.95,
             ci_method="bootstrap", n_boot=1000, note=None)
        for p, v in (("oracle", 1.0), ("inverse", 0.9), ("cheap", 0.95), ("costly_noise", 0.0))])
    comparisons = pa.Table.from_pylist([
        dict(space="nb201", dataset="cifar10", truth="cifar10_valid_test", metric="spearman", proxy_a="oracle",
             proxy_b="cheap", seed=None, difference=0.05, ci_low=0.01, ci_high=0.09, p_value=0.01, p_holm=0.03,
             n_cells=80, n_boot=1000, method="paired bootstrap"),
        dict(space="nb201", dataset="cifar10", truth="cifar10_valid_test", metric="spearman", proxy_a="oracle",
             proxy_b="cheap", seed=0, difference=0.04, ci_low=0.0, ci_high=0.08, p_value=0.05, p_holm=0.1,
             n_cells=80, n_boot=1000, method="paired bootstrap")])
    out = hand_report / "variant"
    out.mkdir()
    path = write_html_report(out, settings, metrics, comparisons, partitions, summary,
                             [Section("search", "Search simulations", "<p>random search found it</p>")])
    page = path.read_text()
    parsed = Tables(page)
    assert parsed.sections == list(SECTIONS)
    assert "<p>random search found it</p>" in page and "No search simulations" not in page
    ranking = {cells[0]: cells for _, cells in parsed.tables["ranking-nb201-cifar10-cifar10_valid_test"]}
    assert ranking["inverse"][4] == "0.900[0.850, 0.950]"
    assert "95% bootstrap" in page
    # cheap (0.95 at 0.5 s) now beats inverse (0.9 at 2 s)
    assert {c[0] for cls, c in parsed.tables["frontier-nb201-cifar10-cifar10_valid_test"] if cls == "pareto"} == {"oracle", "cheap"}
    assert [c[:4] for _, c in parsed.tables["comparisons-nb201-cifar10-cifar10_valid_test"]] == [
        ["oracle", "cheap", "spearman", "0.050[0.010, 0.090]"]]  # the pooled row only
    # the verdict report.md gives, on the page too (the pooled comparison only)
    assert "<li>oracle vs cheap: +0.05 [0.01, 0.09], p = 0.01 (Holm 0.03): separable</li>" in page


# --- the page in a real browser ------------------------------------------------------------

PAGE_FACTS = """(() => {
  const box = e => { const r = e.getBoundingClientRect(); return [r.left + scrollX, r.top + scrollY, r.width, r.height]; };
  return {
    height: document.documentElement.scrollHeight,
    sections: [...document.querySelectorAll("section")].map(s => [s.id, s.querySelector("h2").textContent,
                                                                  s.getBoundingClientRect().height]),
    sortable: [...document.querySelectorAll("table.sortable")].map(t => t.getAttribute("data-sortable")),
    figures: [...document.querySelectorAll("figure.plot img")].map(i => [i.closest("figure").id, i.complete,
                                                                        i.naturalWidth, box(i)]),
  };
})()"""
SORT_BY = """(() => {
  const table = document.getElementById("ranking-nb201-cifar10-cifar10_valid_test");
  table.tHead.rows[0].cells[%d].click();
  return [...table.tBodies[0].rows].map(r => r.cells[0].textContent);
})()"""


def need_chromium() -> str:
    from browser import CHROMIUM

    if CHROMIUM is None:
        why = "Chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    return CHROMIUM


def inked(image, box: list[float]) -> tuple[float, float]:
    """Shares of the pixels in ``box`` (x, y, width, height) that are not near-white, and
    that are coloured (not grey: data drawn, not only axes and text)."""
    x, y, w, h = (int(round(v)) for v in box)
    pixels = np.asarray(image.crop((x, y, x + w, y + h)).convert("RGB")).astype(np.int16)
    return float(np.mean(pixels.min(axis=2) < 200)), float(np.mean(pixels.max(axis=2) - pixels.min(axis=2) > 40))


def test_report_renders_in_chromium(hand_report) -> None:
    from browser import Browser
    from PIL import Image

    binary = need_chromium()
    page = hand_report / HTML_FILE
    with Browser(binary) as browser:
        tab = browser.page(1400, 4000)
        browser.call("Page.navigate", {"url": page.as_uri()}, tab)
        browser.wait_for("Page.loadEventFired", tab)
        facts = browser.evaluate(tab, PAGE_FACTS)
        assert [s[0] for s in facts["sections"]] == list(SECTIONS)
        assert all(h > 40 for *_, h in facts["sections"]), facts["sections"]  # each drew a heading and content
        assert facts["sortable"] == ["ready"] * len(facts["sortable"]) and len(facts["sortable"]) >= 4
        # sorting by proxy name (column 0), then again (descending); by cost (column 3)
        assert browser.evaluate(tab, SORT_BY % 0) == sorted(PROXIES)
        assert browser.evaluate(tab, SORT_BY % 0) == sorted(PROXIES, reverse=True)
        assert browser.evaluate(tab, SORT_BY % 3) == sorted(PROXIES, key=lambda p: PROXIES[p][0])
        # the whole page in one screenshot: a viewport as tall as the page
        browser.resize(tab, 1400, min(facts["height"], 16000))
        facts = browser.evaluate(tab, PAGE_FACTS)
        shot = base64.b64decode(browser.call("Page.captureScreenshot", {"format": "png"}, tab)["data"])
        problems, requested = browser.problems(), browser.requested()
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    (ARTEFACTS / "report-html.png").write_bytes(shot)
    shutil.copyfile(page, ARTEFACTS / "report.html")
    assert problems == []
    assert all(url.startswith(("file:", "data:", "about:")) for url in requested), requested
    image = Image.open(io.BytesIO(shot))
    assert image.size[0] == 1400
    assert len(facts["figures"]) == 4
    for figure_id, complete, width, box in facts["figures"]:
        assert complete and width > 100, figure_id  # the data: PNG decoded
        assert box[2] > 100 and box[3] > 100, (figure_id, box)
        ink, colour = inked(image, box)
        assert ink > 0.01 and colour > 0.001, f"{figure_id} looks blank in the screenshot ({ink:.3f}, {colour:.4f})"
