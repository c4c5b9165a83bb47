"""A user dataset declared in YAML (CSV + folder, HF save_to_disk, parquet) runs a user task via --include."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

import xrbench.data.datasets  # noqa: F401  (registers the loaders)
from xrbench.data.images import write_raster
from xrbench.errors import ConfigError, DataError
from xrbench.registry import DATASETS

from _encoder_fixtures import write_package

TASK = {"name": "my-spots", "version": 1, "description": "user task on a user dataset", "dataset": "generic",
        "dataset_options": {"spec": "mine/dataset.yaml"}, "family": "linear",
        "target": {"type": "binary", "labels": ["spot"]}, "protocol": {"name": "linear"},
        "metrics": ["auroc"], "primary": {"metric": "auroc"}, "bootstrap": {"n": 100}}


def spot_images(n=40, seed=0):
    """(image [32, 32], label) pairs: a bright spot on noise when label is 1."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32]
    for i in range(n):
        img = 0.3 + 0.05 * rng.standard_normal((32, 32))
        y = i % 2
        if y:
            cy, cx = rng.integers(8, 24, 2)
            img = img + 0.5 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 18.0)
        yield np.clip(img, 0, 1), y


def write_csv_dataset(root):
    rows = ["path,pid,split,spot,view"]
    for i, (img, y) in enumerate(spot_images()):
        write_raster(root / "mine" / "img" / f"{i:03d}.png", img)
        rows.append(f"img/{i:03d}.png,p{i // 2},{('train', 'train', 'valid', 'test')[(i // 2) % 4]},{y},PA")
    (root / "mine" / "table.csv").write_text("\n".join(rows) + "\n")
    spec = {"name": "my-spots", "format": "csv", "path": "table.csv",
            "columns": {"image": "path", "patient": "pid", "split": "split", "labels": ["spot"], "meta": ["view"]}}
    (root / "mine" / "dataset.yaml").write_text(yaml.safe_dump(spec))
    return spec


def write_hf_dataset(root, *, fmt="hf-disk"):
    import io

    import datasets
    from PIL import Image

    recs = []
    for i, (img, y) in enumerate(spot_images()):
        buf = io.BytesIO()
        Image.fromarray((img * 255).astype(np.uint8)).save(buf, format="PNG")
        recs.append({"image": {"bytes": buf.getvalue(), "path": None}, "patient": f"p{i // 2}", "spot": y})
    ds = datasets.Dataset.from_list(recs, features=datasets.Features(
        {"image": datasets.Image(), "patient": datasets.Value("string"), "spot": datasets.Value("int64")}))
    (root / "mine").mkdir(parents=True, exist_ok=True)
    if fmt == "hf-disk":
        ds.save_to_disk(str(root / "mine" / "hf"))
    else:
        (root / "mine" / "data").mkdir()
        ds.to_parquet(str(root / "mine" / "data" / "train-00000.parquet"))
    spec = {"name": "my-spots-hf", "format": fmt, "path": "hf" if fmt == "hf-disk" else "data",
            "columns": {"image": "image", "patient": "patient", "labels": ["spot"]},
            "patient_split": {"val": 0.25, "test": 0.25, "seed": 0}}
    (root / "mine" / "dataset.yaml").write_text(yaml.safe_dump(spec))
    return recs


@pytest.fixture
def encoder_spec(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    return write_package(tmp_path, f"xrb_generic_{tmp_path.name.replace('-', '_')}")


def run_user_task(tmp_path, root, encoder_spec):
    from xrbench.cli import main

    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "my-spots.yaml").write_text(yaml.safe_dump(TASK))
    out = tmp_path / "out"
    code = main(["run", "--model", f"module:{encoder_spec}", "--task", "my-spots", "--include", str(tasks),
                 "--data", f"generic={root}", "--output", str(out), "--bootstrap", "100", "--workers", "0",
                 "--device", "cpu"])
    assert code == 0
    return json.loads((out / "tiny-module" / "my-spots" / "seed0.json").read_text())


def test_csv_dataset_runs_a_user_task_end_to_end(tmp_path, xr_home, encoder_spec):
    root = tmp_path / "data"
    write_csv_dataset(root)
    loader = DATASETS.get("generic")(root, spec="mine/dataset.yaml")
    counts = {s: len(loader.split(s)) for s in ("train", "val", "test")}
    assert counts == {"train": 20, "val": 10, "test": 10}
    s = loader.split("val")[0]
    assert s.id == "img/004.png" and s.patient == "p2" and s.labels == {"spot": 0.0} and s.meta == {"view": "PA"}
    assert s.image == root / "mine" / "img" / "004.png"
    rec = run_user_task(tmp_path, root, encoder_spec)
    assert rec["data"] == "real" and rec["dataset"] == "generic" and rec["n"]["test"] == 10
    assert rec["metrics"]["auroc"]["value"] > 0.7  # the spot is visible to the tiny conv net


def test_hf_save_to_disk_dataset_materialises_images_and_runs(tmp_path, xr_home, encoder_spec):
    root = tmp_path / "data"
    recs = write_hf_dataset(root)
    loader = DATASETS.get("generic")(root, spec="mine/dataset.yaml")
    samples = loader.samples()
    assert len(samples) == 40 and {s.split for s in samples} == {"train", "val", "test"}
    assert loader.root.parent == xr_home / "generic"  # written once, under XRBENCH_HOME
    assert samples[3].image.read_bytes() == recs[3]["image"]["bytes"]  # byte for byte, not re-encoded
    assert samples[3].id == "row-000003" and samples[3].labels == {"spot": 1.0}
    by_patient = {}
    for smp in samples:
        by_patient.setdefault(smp.patient, set()).add(smp.split)
    assert all(len(v) == 1 for v in by_patient.values())  # the seeded split is patient-disjoint
    again = DATASETS.get("generic")(root, spec="mine/dataset.yaml")
    assert [s.image for s in again.samples()] == [s.image for s in samples]
    assert not [p for p in (xr_home / "generic").iterdir() if p.name.startswith(".")]  # no temp leftovers
    rec = run_user_task(tmp_path, root, encoder_spec)
    assert rec["data"] == "real" and rec["n"]["train"] + rec["n"]["val"] + rec["n"]["test"] == 40


def test_parquet_dataset_reads_the_same_rows(tmp_path, xr_home):
    root = tmp_path / "data"
    recs = write_hf_dataset(root, fmt="parquet")
    samples = DATASETS.get("generic")(root, spec="mine/dataset.yaml").samples()
    assert [s.labels["spot"] for s in samples] == [float(r["spot"]) for r in recs]
    assert samples[0].image.read_bytes() == recs[0]["image"]["bytes"]


def test_missing_column_is_named(tmp_path):
    root = tmp_path / "data"
    spec = write_csv_dataset(root)
    spec["columns"]["labels"] = ["spots"]
    (root / "mine" / "dataset.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(DataError, match=r"table\.csv, field 'spots': column 'spots' \(columns\.labels\[spots\]\) "
                                        r"is not in the data; found \['path', 'pid', 'split', 'spot', 'view'\]\. "
                                        r"Did you mean: spot, split\?"):
        DATASETS.get("generic")(root, spec="mine/dataset.yaml").samples()


def test_paths_stay_inside_their_roots(tmp_path):
    root = tmp_path / "data"
    spec = write_csv_dataset(root)
    with pytest.raises(DataError, match="escapes the dataset root"):
        DATASETS.get("generic")(root, spec="../outside.yaml")
    (root / "mine" / "dataset.yaml").write_text(yaml.safe_dump({**spec, "root": "../.."}))
    with pytest.raises(DataError, match=r"dataset\.yaml: key 'root' \(from the spec's folder\) 'mine/\.\./\.\.' "
                                        r"escapes the dataset root"):
        DATASETS.get("generic")(root, spec="mine/dataset.yaml")
    (root / "mine" / "dataset.yaml").write_text(yaml.safe_dump(spec))
    table = (root / "mine" / "table.csv").read_text().replace("img/000.png", "../../secret.png")
    (root / "mine" / "table.csv").write_text(table)
    with pytest.raises(DataError, match=r"table\.csv, row 2: image path '\.\./\.\./secret\.png' escapes"):
        DATASETS.get("generic")(root, spec="mine/dataset.yaml").samples()


def test_spec_is_strict_and_values_are_checked(tmp_path):
    root = tmp_path / "data"
    spec = write_csv_dataset(root)
    (root / "mine" / "dataset.yaml").write_text(yaml.safe_dump({**spec, "colums": {}}))
    with pytest.raises(ConfigError, match=r"key 'colums': unknown key\. Did you mean: columns\?"):
        DATASETS.get("generic")(root, spec="mine/dataset.yaml")
    cols = {k: v for k, v in spec["columns"].items() if k != "labels"}
    (root / "mine" / "dataset.yaml").write_text(yaml.safe_dump({**spec, "columns": {**cols, "lables": ["spot"]}}))
    with pytest.raises(ConfigError, match=r"key 'columns\.lables': unknown key\. Did you mean: labels"):
        DATASETS.get("generic")(root, spec="mine/dataset.yaml")
    (root / "mine" / "dataset.yaml").write_text(yaml.safe_dump({**spec, "patient_split": {"vall": 0.1}}))
    with pytest.raises(ConfigError, match=r"key 'patient_split\.vall': unknown key\. Did you mean: val\?"):
        DATASETS.get("generic")(root, spec="mine/dataset.yaml")
    (root / "mine" / "dataset.yaml").write_text(yaml.safe_dump(spec))
    table = (root / "mine" / "table.csv").read_text()
    (root / "mine" / "table.csv").write_text(table.replace(",valid,", ",holdout,", 1))
    with pytest.raises(DataError, match=r"table\.csv, row 6, field 'split': split value 'holdout' is not one of"):
        DATASETS.get("generic")(root, spec="mine/dataset.yaml").samples()
    (root / "mine" / "table.csv").write_text(table.replace("train,1,", "train,maybe,", 1))
    with pytest.raises(DataError, match=r"field 'spot': 'maybe' is not a label value"):
        DATASETS.get("generic")(root, spec="mine/dataset.yaml").samples()


def test_duplicate_ids_name_both_rows(tmp_path):
    root = tmp_path / "data"
    spec = write_csv_dataset(root)
    table = (root / "mine" / "table.csv").read_text().splitlines()
    path = lambda line: line.split(",")[0]  # noqa: E731
    spec["columns"]["id"] = "path"  # the id column holds the path: row 4 repeats row 3's
    table[3] = table[3].replace(path(table[3]), path(table[2]), 1)
    (root / "mine" / "table.csv").write_text("\n".join(table) + "\n")
    (root / "mine" / "dataset.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(DataError, match=rf"table\.csv, row 4, field 'path': id '{path(table[2])}' is also the id "
                                        r"of row 3; ids must be unique"):
        DATASETS.get("generic")(root, spec="mine/dataset.yaml").samples()


def test_a_task_label_the_dataset_lacks_is_refused_before_any_work(tmp_path, xr_home, encoder_spec, capsys):
    """`labels: [spots]` in the task used to read as blank (negative) on every image: a run with
    an all-negative label and exit 0. Now exit 2 naming the task file and the closest label."""
    from xrbench.cli import main

    root = tmp_path / "data"
    write_csv_dataset(root)
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "my-spots.yaml").write_text(yaml.safe_dump({**TASK, "target": {"type": "binary", "labels": ["spots"]}}))
    out = tmp_path / "out"
    code = main(["run", "--model", f"module:{encoder_spec}", "--task", "my-spots", "--include", str(tasks),
                 "--data", f"generic={root}", "--output", str(out), "--workers", "0", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert (f"{tasks / 'my-spots.yaml'}: key 'target.labels': ['spots'] is not a label of dataset 'generic' "
            "(its labels: ['spot']). Did you mean: spot?") in err
    assert not out.exists() and not (xr_home / "features").exists()


def test_a_class_index_outside_the_classes_is_refused(tmp_path):
    """With `classes: [a, b]` a value 7 was taken as class 7 (data check: OK); a multiclass task then
    stopped with an internal error (a tensor shape mismatch in the head)."""
    from xrbench.families import create_family
    from xrbench.tasks.schema import TaskSpec

    root = tmp_path / "data"
    spec = write_csv_dataset(root)
    table = (root / "mine" / "table.csv").read_text().splitlines()
    grades = ["grade"] + [str(i % 2) for i in range(len(table) - 1)]
    grades[3] = "7"
    (root / "mine" / "table.csv").write_text("\n".join(f"{a},{b}" for a, b in zip(table, grades)) + "\n")
    spec["columns"]["target"] = "grade"
    (root / "mine" / "dataset.yaml").write_text(yaml.safe_dump({**spec, "classes": ["a", "b"]}))
    with pytest.raises(DataError, match=r"table\.csv, row 4, field 'grade': '7' is neither one of the classes "
                                        r"\['a', 'b'\] nor a class index 0\.\.1"):
        DATASETS.get("generic")(root, spec="mine/dataset.yaml").samples()
    (root / "mine" / "dataset.yaml").write_text(yaml.safe_dump(spec))  # no classes: 7 is a number
    sample = next(s for s in DATASETS.get("generic")(root, spec="mine/dataset.yaml").samples() if s.target == 7)
    task = TaskSpec.model_validate({**TASK, "target": {"type": "multiclass", "labels": ["a", "b"]},
                                    "metrics": ["accuracy"], "primary": {"metric": "accuracy"}})
    with pytest.raises(DataError, match=rf"sample '{sample.id}': class 7 is outside the task's 2 classes"):
        create_family(task).target(sample)
