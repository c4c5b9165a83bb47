"""The run's leaderboard CSV: a file xrbench did not write is never merged into or overwritten, and
concurrent runs sharing an output folder keep each other's rows (docs/reliability.md)."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from _results_fixtures import write_result
from xrbench.results import leaderboard
from xrbench.results.record import ResultRecord


def _records(tmp_path: Path, task: str = "toy") -> list[ResultRecord]:
    return [ResultRecord.read(write_result(tmp_path / "r", task=task, value=0.8, ci=(0.7, 0.9)))]


def _own(tmp_path: Path, columns: list[str] = leaderboard.COLUMNS) -> str:
    """The text of a leaderboard xrbench wrote, keeping only ``columns`` (an older release)."""
    path = tmp_path / "own.csv"
    leaderboard.update(path, _records(tmp_path, "old-task"))
    lines = [line.split(",")[: len(columns)] for line in path.read_text().splitlines()]
    return "".join(",".join(cells) + "\n" for cells in lines)


@pytest.mark.parametrize("make,reason", [
    (lambda h, r: "rank,team,score\n1,us,0.99\n", "its header is not xrbench's leaderboard header"),
    (lambda h, r: f"{h},extra\n", "its header is not xrbench's leaderboard header"),
    (lambda h, r: f"{h}\n{r}\n{r},1\n", f"line 3 has {len(leaderboard.COLUMNS) + 1} cells; the header has {len(leaderboard.COLUMNS)}"),
    (lambda h, r: f"{h}\n{r}\n" + r.replace(",0.8,", ",high,", 1) + "\n",
     "line 3, column 'value': 'high' is not a number"),
    (lambda h, r: f"{h}\n" + "," * (len(leaderboard.COLUMNS) - 1) + "\n", "line 2 has no task or model"),
    (lambda h, r: b"\xff\xfe", "it is not UTF-8 text"),
])
def test_a_foreign_file_is_kept_and_rows_go_beside_it(make, reason, tmp_path):
    header, row = _own(tmp_path).splitlines()[:2]
    data = make(header, row)
    data = data if isinstance(data, bytes) else data.encode()
    path = tmp_path / "leaderboard.csv"
    path.write_bytes(data)
    assert leaderboard.foreign_reason(path) == reason
    assert leaderboard.destination(path) == (tmp_path / "leaderboard.xrbench.csv",
                                             f"{path} was not written by xrbench ({reason})")
    written = leaderboard.update(path, _records(tmp_path))
    assert written == tmp_path / "leaderboard.xrbench.csv"
    assert path.read_bytes() == data  # not a byte lost
    assert [r["task"] for r in leaderboard.read_rows(written)] == ["toy"]


def test_the_fresh_file_is_reused_and_a_foreign_one_there_too_is_skipped(tmp_path):
    path = tmp_path / "leaderboard.csv"
    path.write_text("a,b\n1,2\n")
    assert leaderboard.update(path, _records(tmp_path, "t1")) == tmp_path / "leaderboard.xrbench.csv"
    assert leaderboard.update(path, _records(tmp_path, "t2")) == tmp_path / "leaderboard.xrbench.csv"
    assert sorted(r["task"] for r in leaderboard.read_rows(tmp_path / "leaderboard.xrbench.csv")) == ["t1", "t2"]
    (tmp_path / "leaderboard.xrbench.csv").write_text("not,ours\n")
    assert leaderboard.update(path, _records(tmp_path, "t3")) == tmp_path / "leaderboard.xrbench-2.csv"
    assert (tmp_path / "leaderboard.xrbench.csv").read_text() == "not,ours\n"


@pytest.mark.parametrize("n_columns", [leaderboard.FIRST_RELEASE, len(leaderboard.COLUMNS)])
def test_own_files_of_this_and_older_releases_are_merged_in_place(n_columns, tmp_path):
    path = tmp_path / "leaderboard.csv"
    path.write_text(_own(tmp_path, leaderboard.COLUMNS[:n_columns]))
    assert leaderboard.foreign_reason(path) is None
    assert leaderboard.update(path, _records(tmp_path)) == path
    assert sorted(r["task"] for r in leaderboard.read_rows(path)) == ["old-task", "toy"]
    assert path.read_text().splitlines()[0] == ",".join(leaderboard.COLUMNS)


def test_absent_and_empty_files_are_ours(tmp_path):
    assert leaderboard.foreign_reason(tmp_path / "none.csv") is None
    (tmp_path / "empty.csv").write_text("")
    assert leaderboard.foreign_reason(tmp_path / "empty.csv") is None


def test_the_published_demo_leaderboard_is_recognised_as_ours():
    demo = Path(__file__).parents[1] / "leaderboards" / "demo.csv"
    if not demo.is_file():
        pytest.skip("leaderboards/demo.csv not in this checkout")
    assert leaderboard.foreign_reason(demo) is None


WORKER = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from xrbench.results import leaderboard
    from xrbench.results.record import ResultRecord
    out, tag, template = Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
    recs = [ResultRecord.from_dict({**template, "task": f"{tag}-{i}"}) for i in range(40)]
    (out / f"ready-{tag}").touch()
    while len(list(out.glob("ready-*"))) < 2:  # start together, so that the updates interleave
        pass
    for rec in recs:
        leaderboard.update(out / "leaderboard.csv", [rec])
""")


def test_concurrent_updates_keep_every_row(tmp_path):
    """Two processes updating one leaderboard, each with its own tasks, interleaved."""
    template = write_result(tmp_path / "r", value=0.5, ci=(0.4, 0.6), predictions=False).read_text()
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path), tag, template]) for tag in ("a", "b")]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    tasks = sorted(r["task"] for r in leaderboard.read_rows(tmp_path / "leaderboard.csv"))
    assert tasks == sorted(f"{t}-{i}" for t in "ab" for i in range(40))
