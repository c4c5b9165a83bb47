"""The HTML leaderboard in a real browser (headless Chromium): table, sorting, chart, screenshot.

Chromium is the Debian ``chromium`` package; the fixture installs it when missing (root + apt-get)
and skips with the reason when it cannot.
"""
from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser

import pytest
from _results_fixtures import toy_scores, write_result

from xrbench.results import browser
from xrbench.results.html import leaderboard_html
from xrbench.results.merge import merge


@pytest.fixture(scope="module")
def chromium():
    if browser.find_chromium() is None and os.geteuid() == 0 and shutil.which("apt-get"):
        try:
            subprocess.run("apt-get update && apt-get install -y chromium", shell=True, check=False,
                           capture_output=True, timeout=900, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        except subprocess.TimeoutExpired:
            pass
    exe = browser.find_chromium()
    if exe is None:
        pytest.skip("Chromium is not installed and could not be installed (apt-get install -y chromium)")
    return exe


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """Three models on two tasks of two families; 'strong' best on t-linear, 'weak' best on t-knn."""
    root = tmp_path_factory.mktemp("page")
    y, s, p = toy_scores(seed=1)
    for model, linear, knn in (("strong", (0.91, 0.88, 0.94), (0.60, 0.55, 0.65)),
                               ("middle", (0.80, 0.76, 0.84), (0.70, 0.66, 0.74)),
                               ("weak", (0.62, 0.57, 0.67), (0.78, 0.74, 0.82))):
        write_result(root / "r", model=model, task="t-linear", y=y, s=s, patients=p, value=linear[0], ci=linear[1:])
        write_result(root / "r", model=model, task="t-knn", family="knn", y=y, s=s, patients=p,
                     value=knn[0], ci=knn[1:])
    html = root / "board.html"
    html.write_text(leaderboard_html(merge([root / "r"]), "Test board"))
    return html


class Tables(HTMLParser):
    """Rows of every table by id: the text of each cell, and which cells hold <strong>."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.strong: dict[str, list[list[bool]]] = {}
        self.headers: dict[str, list[dict]] = {}
        self.svg_bars = 0
        self._t = self._cell = None
        self._in_head = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._t = a.get("id")
            self.tables[self._t], self.strong[self._t], self.headers[self._t] = [], [], []
        elif tag == "thead":
            self._in_head = True
        elif tag == "tbody":
            self._in_head = False
        elif tag == "tr" and self._t and not self._in_head:
            self.tables[self._t].append([])
            self.strong[self._t].append([])
        elif tag == "th" and self._t:
            self.headers[self._t].append(a)
        elif tag == "td" and self._t:
            self._cell = []
            self.strong[self._t][-1].append(False)
        elif tag == "strong" and self._cell is not None:
            self.strong[self._t][-1][-1] = True
        elif tag == "rect" and "bar" in (a.get("class") or ""):
            self.svg_bars += 1

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.tables[self._t][-1].append(" ".join(" ".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._t = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _parse(dom: str) -> Tables:
    t = Tables()
    t.feed(dom)
    return t


def _models(t: Tables) -> list[str]:
    return [r[0] for r in t.tables["leaderboard"]]


def test_page_renders_table_ranks_best_and_chart(chromium, page):
    dom = browser.dump_dom(page)
    t = _parse(dom)
    assert [h["data-key"] for h in t.headers["leaderboard"]] == [
        "model", "weights", "label_fraction", "mean_rank", "n_tasks", "task:t-knn", "task:t-linear"]
    rows = {r[0]: r for r in t.tables["leaderboard"]}
    # ranks: t-linear strong 1, middle 2, weak 3; t-knn weak 1, middle 1 (CIs overlap), strong 3
    assert rows["strong"][3:5] == ["2.00", "2"] and rows["middle"][3] == "1.50" and rows["weak"][3] == "2.00"
    assert rows["strong"][6] == "0.910 [0.880, 0.940] rank 1"
    assert rows["middle"][5] == "0.700 [0.660, 0.740] rank 1"
    bold = {r[0]: s for r, s in zip(t.tables["leaderboard"], t.strong["leaderboard"])}
    assert bold["strong"][6] and not bold["middle"][6] and bold["weak"][5] and not bold["strong"][5]
    assert _models(t)[0] == "middle"  # default order: mean rank
    assert len(t.tables["results"]) == 6 and t.svg_bars == 6  # 2 families x 3 models
    assert "synthetic demo data" in dom


@pytest.mark.parametrize("fragment,order", [
    ("sort=task:t-linear", ["strong", "middle", "weak"]),             # natural: best first
    ("sort=task:t-linear&order=asc", ["weak", "middle", "strong"]),
    ("sort=task:t-knn", ["weak", "middle", "strong"]),
    ("sort=model&order=desc", ["weak", "strong", "middle"]),
])
def test_sort_from_address_hash(chromium, page, fragment, order):
    t = _parse(browser.dump_dom(page, fragment))
    assert _models(t) == order
    key = re.search(r"sort=([^&]+)", fragment).group(1)
    sorted_th = [h for h in t.headers["leaderboard"] if "aria-sort" in h]
    assert [h["data-key"] for h in sorted_th] == [key]


def test_sort_the_provenance_table_by_value(chromium, page):
    t = _parse(browser.dump_dom(page, "table=results&sort=value&order=desc"))
    values = [float(r[6]) for r in t.tables["results"]]
    assert values == sorted(values, reverse=True) and values[0] == 0.91


def test_clicking_a_header_sorts_and_toggles(chromium, page, tmp_path):
    clicked = tmp_path / "clicked.html"
    click = "<script>var th=document.querySelector('th[data-key=\"task:t-knn\"]');th.click();th.click();</script>"
    clicked.write_text(page.read_text().replace("</body>", click + "</body>"))
    t = _parse(browser.dump_dom(clicked))
    assert _models(t) == ["strong", "middle", "weak"]  # first click best first, second reverses
    assert [h.get("aria-sort") for h in t.headers["leaderboard"] if h["data-key"] == "task:t-knn"] == ["ascending"]


def test_screenshot_is_a_real_png(chromium, page, tmp_path):
    png = browser.screenshot(page, tmp_path / "shot.png", size=(1100, 900))
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", head[16:24]) == (1100, 900)
    assert png.stat().st_size > 20_000  # a rendered page, not a blank canvas
