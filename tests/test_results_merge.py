"""xrbench leaderboard: merging records/CSVs, refusing incomparable results, rank rule, Markdown."""
from __future__ import annotations

import csv
import io

import pytest
from _results_fixtures import toy_scores, write_result

from xrbench.cli import main
from xrbench.results import leaderboard
from xrbench.results.board import Cell, build, ci_ranks
from xrbench.results.markdown import leaderboard_markdown
from xrbench.results.merge import ResultsError, load, merge
from xrbench.results.record import ResultRecord


def _rows(path):
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_two_models_from_two_runs_merge_into_canonical_csv(tmp_path):
    y, s, p = toy_scores(seed=1)
    write_result(tmp_path / "run-a", model="m1", y=y, s=s, patients=p, value=0.8, ci=(0.7, 0.9))
    y2, s2, _ = toy_scores(seed=2, noise=2.0)
    write_result(tmp_path / "machine-b", model="m2", weights="/ckpt/m2.safetensors", weights_sha256="ab" * 32,
                 y=y2, s=s2, patients=p, value=0.6, ci=(0.5, 0.7))
    out = tmp_path / "lb.csv"
    assert main(["leaderboard", str(tmp_path / "run-a"), str(tmp_path / "machine-b"), "-o", str(out)]) == 0
    text = out.read_text()
    assert text.splitlines()[0] == ",".join(leaderboard.COLUMNS)
    assert leaderboard.COLUMNS[:21] == [  # the first release's columns stay first, in order
        "task", "task_version", "model", "weights", "metric", "direction", "value", "ci_low", "ci_high",
        "n_train", "n_val", "n_test", "seed", "label_fraction", "data", "xrbench_version", "git_sha",
        "dataset_hash", "config_hash", "device", "seconds"]
    rows = _rows(out)
    assert [(r["model"], r["weights"], r["value"], r["ci_low"], r["ci_high"]) for r in rows] == [
        ("m1", "random-init", "0.8", "0.7", "0.9"), ("m2", "/ckpt/m2.safetensors", "0.6", "0.5", "0.7")]
    assert rows[1]["weights_sha256"] == "ab" * 32 and rows[0]["n_seeds"] == "1" and rows[0]["sd"] == ""
    assert rows[0]["dataset_hash"] == "d" * 16 and rows[0]["family"] == "linear" and rows[0]["n_test"] == "200"


def test_dataset_hash_mismatch_is_refused_naming_task_hashes_and_files(tmp_path, capsys):
    a = write_result(tmp_path / "a", model="m1", value=0.8, ci=(0.7, 0.9))
    b = write_result(tmp_path / "b", model="m2", value=0.7, ci=(0.6, 0.8), dataset_hash="e" * 16)
    with pytest.raises(ResultsError) as e:
        merge([tmp_path / "a", tmp_path / "b"])
    msg = str(e.value)
    assert "task 'toy': dataset_hash disagrees" in msg and "d" * 16 in msg and "e" * 16 in msg
    assert str(a) in msg and str(b) in msg
    assert main(["leaderboard", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(tmp_path / "x.csv")]) == 2
    assert "refusing to merge incomparable numbers" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize("field,kw,needle", [
    ("task_version", {"task_version": 2}, "task_version disagrees (the task definition changed): '1'"),
    ("config_hash", {"config_hash": "f" * 16}, "config_hash disagrees"),
    # a record hashes the samples it evaluated, so another --limit lands here too: the reason says so
    ("dataset_hash", {"dataset_hash": "e" * 16},
     "dataset_hash disagrees (the evaluated samples differ: other dataset files, or another --limit): 'dddd"),
    ("data", {"data": "real"}, "data disagrees (synthetic-demo and real results never mix): 'synthetic-demo'"),
])
def test_other_incomparable_facts_are_refused(tmp_path, field, kw, needle):
    write_result(tmp_path / "a", model="m1", value=0.8, ci=(0.7, 0.9))
    write_result(tmp_path / "b", model="m2", value=0.7, ci=(0.6, 0.8), **kw)
    with pytest.raises(ResultsError, match="task 'toy'") as e:
        merge([tmp_path / "a", tmp_path / "b"])
    assert needle in str(e.value)


def test_limited_run_differs_in_test_size_and_is_refused(tmp_path):
    y, s, p = toy_scores()
    write_result(tmp_path / "a", model="m1", y=y, s=s, patients=p)
    write_result(tmp_path / "b", model="m2", y=y[:50], s=s[:50], patients=p[:50])
    with pytest.raises(ResultsError, match="n_test disagrees .*'200' in .* vs '50'"):
        merge([tmp_path / "a", tmp_path / "b"])


def test_seeds_fold_into_one_row_mean_sd_and_mean_ci(tmp_path):
    write_result(tmp_path, seed=0, value=0.80, ci=(0.70, 0.90))
    write_result(tmp_path, seed=1, value=0.70, ci=(0.60, 0.80))
    write_result(tmp_path, seed=0, label_fraction=0.1, value=0.6, ci=(0.5, 0.7))
    rows = sorted(merge([tmp_path]), key=lambda r: r["label_fraction"])
    assert [(r["label_fraction"], r["seed"], r["n_seeds"]) for r in rows] == [("0.1", "0", "1"), ("1", "0;1", "2")]
    full = rows[1]
    assert float(full["value"]) == pytest.approx(0.75) and float(full["sd"]) == pytest.approx(0.0707107, 1e-5)
    assert float(full["ci_low"]) == pytest.approx(0.65) and float(full["ci_high"]) == pytest.approx(0.85)
    assert full["seconds"] == "3"


def test_run_leaderboard_update_folds_seeds_and_replaces_rows(tmp_path):
    recs = [ResultRecord.read(write_result(tmp_path / "r", seed=k, value=v, ci=(v - .1, v + .1)))
            for k, v in ((0, 0.8), (1, 0.6))]
    path = tmp_path / "leaderboard.csv"
    leaderboard.update(path, recs)
    leaderboard.update(path, recs)
    rows = _rows(path)
    assert len(rows) == 1 and rows[0]["seed"] == "0;1" and float(rows[0]["value"]) == pytest.approx(0.7)


def test_csv_and_json_of_the_same_result_collapse_conflicts_refuse(tmp_path):
    write_result(tmp_path / "r", model="m1", value=0.8, ci=(0.7, 0.9))
    lb = tmp_path / "lb.csv"
    assert main(["leaderboard", str(tmp_path / "r"), "-o", str(lb)]) == 0
    # the CSV of another machine with a first-release header (fewer columns) merges too
    old = tmp_path / "old.csv"
    with open(old, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=leaderboard.COLUMNS[:21], extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerow({**_rows(lb)[0], "model": "m0", "value": "0.5", "ci_low": "0.4", "ci_high": "0.6"})
    rows = merge([tmp_path / "r", lb, old])
    assert sorted((r["model"], r["value"]) for r in rows) == [("m0", "0.5"), ("m1", "0.8")]
    assert next(r for r in rows if r["model"] == "m0")["family"] == ""
    conflict = tmp_path / "conflict.csv"
    conflict.write_text(lb.read_text().replace(",0.8,", ",0.9,"))
    with pytest.raises(ResultsError, match="two different results for model 'm1'"):
        merge([tmp_path / "r", conflict])


def test_same_weights_label_for_two_files_is_refused(tmp_path):
    write_result(tmp_path / "a", weights="ckpt.safetensors", weights_sha256="1" * 64, seed=0)
    write_result(tmp_path / "b", weights="ckpt.safetensors", weights_sha256="2" * 64, seed=1)
    with pytest.raises(ResultsError, match="names different files"):
        load([tmp_path / "a", tmp_path / "b"])


@pytest.mark.parametrize("content,needle", [
    ("{not json", "not a readable JSON file"),
    ('{"task": "t", "metrics": {}, "primary_metric": "auroc", "model": "m"}', "malformed result record"),
])
def test_malformed_record_exits_2(tmp_path, capsys, content, needle):
    write_result(tmp_path / "r")
    (tmp_path / "r" / "broken.json").write_text(content)
    assert main(["leaderboard", str(tmp_path / "r"), "-o", str(tmp_path / "x.md")]) == 2
    err = capsys.readouterr().err
    assert needle in err and "broken.json" in err


def test_bad_inputs_exit_2(tmp_path, capsys):
    write_result(tmp_path / "r")
    assert main(["leaderboard", str(tmp_path / "r"), "-o", str(tmp_path / "x.xlsx")]) == 2
    assert "the suffix of -o picks it" in capsys.readouterr().err
    assert main(["leaderboard", str(tmp_path / "nope"), "-o", str(tmp_path / "x.csv")]) == 2
    (tmp_path / "bad.csv").write_text("task,model\nx,y\n")
    assert main(["leaderboard", str(tmp_path / "bad.csv"), "-o", str(tmp_path / "x.csv")]) == 2
    assert "not a leaderboard CSV: missing column(s)" in capsys.readouterr().err


def _cell(v, lo, hi):
    return Cell(v, lo, hi, float("nan"), 1)


def test_rank_rule_ties_overlapping_cis():
    cells = [_cell(0.85, 0.80, 0.90), _cell(0.80, 0.75, 0.85), _cell(0.55, 0.50, 0.60), _cell(0.50, 0.45, 0.58)]
    assert ci_ranks(cells, "higher") == [1, 1, 3, 3]  # A~B overlap; C, D each beaten by A and B only
    # lower is better (MAE): the intervals flip sides
    mae = [_cell(10, 9, 11), _cell(10.5, 9.5, 12), _cell(20, 18, 22)]
    assert ci_ranks(mae, "lower") == [1, 1, 3]
    # no CI: the point value is the interval; a missing value has no rank
    assert ci_ranks([_cell(0.9, float("nan"), float("nan")), _cell(0.8, float("nan"), float("nan")),
                     _cell(float("nan"), float("nan"), float("nan"))], "higher") == [1, 2, None]


def _row(model, task, value, lo, hi, direction="higher", family="linear", lf="1"):
    return {"task": task, "model": model, "weights": "w", "label_fraction": lf, "metric": "auroc",
            "direction": direction, "value": str(value), "ci_low": str(lo), "ci_high": str(hi),
            "family": family, "data": "real", "n_seeds": "1", "seed": "0"}


def test_mean_rank_over_tasks_orders_the_board():
    rows = [_row("A", "t1", 0.9, 0.85, 0.95), _row("B", "t1", 0.7, 0.65, 0.75), _row("C", "t1", 0.88, 0.8, 0.92),
            _row("A", "mae", 12, 11, 13, "lower", "regression"), _row("B", "mae", 8, 7, 9, "lower", "regression")]
    board = build(rows)
    ranks = {s.model: (s.cells["t1"].rank, s.cells["mae"].rank if "mae" in s.cells else None, s.mean_rank)
             for s in board.series}
    assert ranks == {"A": (1, 2, 1.5), "B": (3, 1, 2.0), "C": (1, None, 1.0)}
    assert [s.model for s in board.series] == ["C", "A", "B"]
    assert [t.name for t in board.tasks] == ["t1", "mae"]  # by family: linear < regression
    assert board.series[1].cells["t1"].best and board.series[2].cells["mae"].best


def test_markdown_table_bold_best_and_provenance():
    rows = [_row("A", "t1", 0.9, 0.85, 0.95), _row("B|x", "t1", 0.7, 0.65, 0.75)]
    rows[0].update(dataset_hash="dh", config_hash="ch", task_version="3", n_test="40", git_sha="g1")
    md = leaderboard_markdown(rows, "My board").splitlines()
    assert md[0] == "# My board"
    i = md.index("| # | model | weights | label fraction | mean rank | t1 (auroc ↑) |")
    assert md[i + 1] == "|---|---|---|---|---|---|"
    assert md[i + 2] == "| 1 | A | w | 1 | 1.00 | **0.900** [0.850, 0.950] |"
    assert md[i + 3] == "| 2 | B\\|x | w | 1 | 2.00 | 0.700 [0.650, 0.750] |"
    assert "| t1 | linear | 3 | auroc | real | dh | ch | 40 |" in md
    assert not any("synthetic demo data" in line for line in md)


def test_run_summary_shows_the_csv_numbers_for_several_seeds(tmp_path):
    """The table `xrbench run` prints showed the first seed's CI beside the seed mean, while the
    leaderboard CSV has the mean of the seeds' bounds: two different intervals for one row."""
    from xrbench.results import leaderboard
    from xrbench.results.record import ResultRecord
    from xrbench.results.summary import summary_table

    recs = [ResultRecord.read(write_result(tmp_path, seed=k, value=v, ci=ci))
            for k, v, ci in [(0, 0.8, (0.7, 0.9)), (1, 0.7, (0.5, 0.8))]]
    row = leaderboard.rows_of(recs)[0]
    assert (row["value"], row["ci_low"], row["ci_high"]) == ("0.75", "0.6", "0.85")
    line = summary_table(recs).splitlines()[2]
    assert "0.750 ± 0.071  [0.600, 0.850]" in line
    assert summary_table(recs).splitlines()[0].split()[6] == "n_scored"
