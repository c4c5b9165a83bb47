"""``xrbench data check`` / ``data preview``: exact reports on hand-made fixtures, clear failures,
the demo of every packaged loader, and the contact sheet's size and drawing."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import xrbench.data.datasets  # noqa: F401  (registers the packaged loaders)
from xrbench.cli import main
from xrbench.data.base import DatasetLoader
from xrbench.data.check import check_dataset
from xrbench.data.images import write_dicom, write_raster
from xrbench.data.paths import safe_join
from xrbench.data.preview import preview_all, sheet_size
from xrbench.data.sample import Box, MaskRef, Sample
from xrbench.data.tables import find_file, read_table, resolve_columns
from xrbench.registry import DATASETS

COLUMNS = ("image", "patient", "split", "finding", "target", "box", "mask", "report")
TOY_ROWS = [
    "image,patient,split,finding,target,box,mask,report",
    "images/a.png,p1,train,1,0,2 2 8 8,masks/a.png,small blob in the upper left.",
    "images/b.png,p2,train,0,1,,,",
    "images/c.png,p2,train,-1,1,,rle:3 4,",
    "images/d.png,p3,val,1,1,4 4 12 12,,",
    "images/e.png,p4,test,,0,,,",
]
TOP_KEYS = ["dataset", "root", "ok", "manifest_hash", "errors", "splits", "extra"]
SPLIT_KEYS = ["samples", "patients", "missing", "unreadable", "truncated", "boxes", "phrases", "masks",
              "reports", "landmarks", "labels", "targets"]


@DATASETS.register("toy-check", overwrite=True)
class ToyCheck(DatasetLoader):
    """``index.csv`` + 16x16 PNGs; ``mask`` is a PNG path or ``rle:<SIIM RLE>``. Only for tests."""

    name = "toy-check"
    anatomy = "none"
    title = "toy"
    label_names = ("finding",)

    def load(self) -> list[Sample]:
        path = find_file(self.root, "index.csv")
        df = read_table(path)
        cols = resolve_columns(df, path, COLUMNS)
        out = []
        for line, rec in enumerate(df.to_dict("records"), start=2):
            get = lambda c: rec[cols[c]] if isinstance(rec[cols[c]], str) else ""  # noqa: E731
            image = safe_join(self.root, get("image"), source=path, row=line)
            mask = None
            if get("mask").startswith("rle:"):
                mask = MaskRef("siim-rle", (get("mask")[4:],), 16, 16)
            elif get("mask"):
                mask = MaskRef("png", safe_join(self.root, get("mask")), 16, 16)
            out.append(Sample(
                id=image.stem, image=image, patient=get("patient"), split=get("split"),
                labels={"finding": float(get("finding")) if get("finding") else math.nan},
                target=int(get("target")) if get("target") else None, mask=mask,
                boxes=[Box(*map(float, get("box").split()), "blob")] if get("box") else [],
                text={"findings": get("report")} if get("report") else {}))
        return out

    def report_extra(self) -> dict:
        listed = {s.image.name for s in self.samples()}
        return {"unlabelled": sorted(p.name for p in (self.root / "images").glob("*.png") if p.name not in listed)}

    @classmethod
    def write_demo(cls, dest: Path, *, n: int, seed: int) -> None:
        write_toy(Path(dest))


def write_toy(root: Path, rows: list[str] = TOY_ROWS) -> Path:
    img = np.zeros((16, 16))
    img[2:8, 2:8] = 0.9
    for k, name in enumerate("abcde"):  # distinct content: identical images in two splits are a leak
        img[15, 15] = k / 8
        write_raster(root / "images" / f"{name}.png", img)
    write_raster(root / "images" / "stray.png", img)
    write_raster(root / "masks" / "a.png", img > 0)
    (root / "index.csv").write_text("\n".join(rows) + "\n")
    return root


def run_check(capsys, *args: str) -> tuple[int, dict]:
    code = main(["data", "check", *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture
def toy(tmp_path) -> Path:
    return write_toy(tmp_path / "toy")


def _split(samples, patients, boxes, masks, reports, finding, targets) -> dict:
    pos, neg, unk, unc = finding
    return {"samples": samples, "patients": patients, "missing": [], "unreadable": [], "truncated": [], "boxes": boxes,
            "phrases": 0, "masks": masks, "reports": reports, "landmarks": 0,
            "labels": {"finding": {"positive": pos, "negative": neg, "unknown": unk, "uncertain": unc}},
            "targets": {"counts": targets}}


# --------------------------------------------------------------------------- toy: exact report


def test_json_report_is_exact_on_hand_made_fixture(toy, capsys):
    code, report = run_check(capsys, "--dataset", "toy-check", "--root", str(toy))
    assert code == 0
    assert report == {
        "dataset": "toy-check", "root": str(toy), "ok": True,
        "manifest_hash": ToyCheck(toy).manifest_hash(), "errors": [],
        "splits": {
            "train": _split(3, 2, 1, 2, 1, (1, 1, 1, 1), {"0": 1, "1": 2}),
            "val": _split(1, 1, 1, 0, 0, (1, 0, 0, 0), {"0": 0, "1": 1}),
            "test": _split(1, 1, 0, 0, 0, (0, 0, 1, 0), {"0": 1, "1": 0}),
        },
        "extra": {"unlabelled": ["stray.png"]},
    }
    assert list(report) == TOP_KEYS and all(list(s) == SPLIT_KEYS for s in report["splits"].values())


def test_root_may_be_the_folder_holding_the_dataset(tmp_path, capsys):
    write_toy(tmp_path / "toy-check")
    code, report = run_check(capsys, "--dataset", "toy-check", "--root", str(tmp_path))
    assert code == 0 and report["root"] == str(tmp_path / "toy-check")


def test_human_output_is_a_table(toy, capsys):
    assert main(["data", "check", "--dataset", "toy-check", "--root", str(toy)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "OK"
    train = next(line for line in out if line.startswith("train "))
    assert train.split() == ["train", "3", "2", "0", "0", "0", "1", "0", "2", "1", "0"]
    assert next(line for line in out if line.startswith("finding")).split() == \
        ["finding", "1/1/1(1)", "1/0/0(0)", "0/0/1(0)"]
    assert "unlabelled: 1 (stray.png)" in out


def test_renamed_column_fails_naming_file_and_column(toy, capsys):
    (toy / "index.csv").write_text("\n".join([TOY_ROWS[0].replace("finding", "findings"), *TOY_ROWS[1:]]))
    code, report = run_check(capsys, "--dataset", "toy-check", "--root", str(toy))
    assert code == 2 and not report["ok"] and report["splits"] == {} and report["manifest_hash"] is None
    [error] = report["errors"]
    assert str(toy / "index.csv") in error and "'finding'" in error and "findings" in error


def test_missing_image_is_listed_relative_to_root(toy, capsys):
    (toy / "images" / "b.png").unlink()
    code, report = run_check(capsys, "--dataset", "toy-check", "--root", str(toy))
    assert code == 2
    assert report["splits"]["train"]["missing"] == ["images/b.png"]
    assert report["errors"] == ["train: 1 image(s) missing: images/b.png"]


def test_path_escaping_the_root_fails(toy, capsys):
    (toy / "index.csv").write_text("\n".join([*TOY_ROWS, "../outside.png,p9,test,1,0,,,"]))
    code, report = run_check(capsys, "--dataset", "toy-check", "--root", str(toy))
    assert code == 2
    [error] = report["errors"]
    assert "row 7" in error and "'../outside.png' escapes the dataset root" in error


def test_corrupt_image_passes_header_check_and_fails_deep(toy, capsys):
    data = (toy / "images" / "d.png").read_bytes()
    (toy / "images" / "d.png").write_bytes(data[: len(data) // 2])  # header intact, pixels cut before any row
    assert run_check(capsys, "--dataset", "toy-check", "--root", str(toy))[0] == 0
    code, report = run_check(capsys, "--dataset", "toy-check", "--root", str(toy), "--deep")
    assert code == 2
    [entry] = report["splits"]["val"]["unreadable"]
    assert entry["id"] == "d" and entry["path"] == "images/d.png"
    assert entry["error"] == "is truncated and decodes to a blank image (nothing of the image is left)"
    assert report["errors"] == [f"val: 1 file(s) unreadable: d ({entry['error']})"]
    assert report["splits"]["val"]["truncated"] == []


def test_not_an_image_fails_without_deep(toy, capsys):
    (toy / "images" / "e.png").write_text("not a png")
    code, report = run_check(capsys, "--dataset", "toy-check", "--root", str(toy))
    assert code == 2
    assert [u["id"] for u in report["splits"]["test"]["unreadable"]] == ["e"]


def test_malformed_rle_found_by_deep_with_sample_id(tmp_path, capsys):
    rows = [r.replace("rle:3 4", "rle:3 4 5") for r in TOY_ROWS]
    root = write_toy(tmp_path / "toy", rows)
    assert run_check(capsys, "--dataset", "toy-check", "--root", str(root))[0] == 0  # strings not decoded
    code, report = run_check(capsys, "--dataset", "toy-check", "--root", str(root), "--deep")
    assert code == 2
    assert report["splits"]["train"]["unreadable"] == [{
        "id": "c", "path": "images/c.png",
        "error": "mask: RLE '3 4 5' has 3 numbers; expected (gap, length) pairs"}]


def test_mask_of_wrong_size_fails(toy, capsys):
    write_raster(toy / "masks" / "a.png", np.ones((8, 16)))
    code, report = run_check(capsys, "--dataset", "toy-check", "--root", str(toy))
    assert code == 2
    assert report["splits"]["train"]["unreadable"] == [
        {"id": "a", "path": "masks/a.png", "error": "mask file is 8x16; expected 16x16"}]


def test_patient_in_two_splits_and_bad_label_value_fail(tmp_path, capsys):
    rows = [*TOY_ROWS[:-1], "images/e.png,p2,test,0.5,0,,,"]
    code, report = run_check(capsys, "--dataset", "toy-check", "--root", str(write_toy(tmp_path / "t", rows)))
    assert code == 2
    assert report["errors"] == [
        "label 'finding' has a value other than 1, 0, -1 (uncertain) or NaN (unknown) on 1 sample(s): e",
        "patients in both train and test: p2 (1 patient(s))"]


def test_empty_split_and_loader_missing_entries_fail(tmp_path, capsys, monkeypatch):
    root = write_toy(tmp_path / "t", [r for r in TOY_ROWS if ",val," not in r])
    monkeypatch.setattr(ToyCheck, "report_extra", lambda self: {"missing": ["x1", "x2"], "skipped": 3})
    code, report = run_check(capsys, "--dataset", "toy-check", "--root", str(root))
    assert code == 2 and report["extra"] == {"missing": ["x1", "x2"], "skipped": 3}
    assert report["errors"] == [
        "val: no samples (every split needs some; the runner fits on train, selects on val and scores test)",
        "2 entries of the dataset files have no image (loader's 'missing'): x1, x2"]


def test_unknown_dataset_is_a_usage_error(capsys):
    assert main(["data", "check", "--dataset", "chexpurt"]) == 2
    assert "Did you mean: chexpert" in capsys.readouterr().err


# --------------------------------------------------------------------------- real loaders

CHEX_HEADER = ("Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,"
               "Lung Opacity,Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,"
               "Pleural Effusion,Pleural Other,Fracture,Support Devices")
EDEMA = ("1.0", "0.0", "-1.0", "")  # patient i: Edema = EDEMA[i % 4]


@pytest.fixture
def chexpert(tmp_path) -> Path:
    """CheXpert-v1.0-small by hand: 30 train patients (Edema cycling 1/0/-1/blank), 1 valid patient."""
    folder = tmp_path / "chex" / "CheXpert-v1.0-small"
    img = np.full((24, 20), 0.4)
    train = [CHEX_HEADER]
    for i in range(1, 31):
        rel = f"train/patient{i:05d}/study1/view1_frontal.jpg"
        img[0, 0] = i / 40  # distinct content: identical images in two splits are a leak
        write_raster(folder / rel, img)
        cells = [""] * 14
        cells[5] = EDEMA[i % 4]
        train.append(",".join([f"CheXpert-v1.0-small/{rel}", "Female", str(40 + i), "Frontal", "PA", *cells]))
    img[0, 0] = 1.0
    write_raster(folder / "valid/patient64541/study1/view1_frontal.jpg", img)
    (folder / "train.csv").write_text("\n".join(train) + "\n")
    (folder / "valid.csv").write_text(CHEX_HEADER + "\nCheXpert-v1.0-small/valid/patient64541/study1/"
                                      "view1_frontal.jpg,Male,73,Frontal,AP,0.0,0.0,1.0,0.0,0.0,1.0,0.0,0.0,"
                                      "0.0,0.0,1.0,0.0,0.0,1.0\n")
    return tmp_path / "chex"


def test_chexpert_hand_made_fixture_passes_with_exact_counts(chexpert, capsys):
    code, report = run_check(capsys, "--dataset", "chexpert", "--root", str(chexpert), "--deep")
    assert code == 0, report["errors"]
    sp = report["splits"]
    assert sp["train"]["samples"] + sp["val"]["samples"] == 30 and sp["test"]["samples"] == 1
    edema = [sp[s]["labels"]["Edema"] for s in ("train", "val")]
    assert {k: sum(e[k] for e in edema) for k in edema[0]} == \
        {"positive": 7, "negative": 8, "unknown": 15, "uncertain": 8}
    assert sp["test"]["labels"]["Cardiomegaly"] == {"positive": 1, "negative": 0, "unknown": 0, "uncertain": 0}


def test_chexpert_renamed_column_and_escaping_path_fail(chexpert, capsys):
    train = chexpert / "CheXpert-v1.0-small" / "train.csv"
    original = train.read_text()
    train.write_text(original.replace(",Edema,", ",Oedema,", 1))
    code, report = run_check(capsys, "--dataset", "chexpert", "--root", str(chexpert))
    assert code == 2 and "train.csv" in report["errors"][0] and "'Edema'" in report["errors"][0]
    train.write_text(original.replace("CheXpert-v1.0-small/train/patient00007",
                                      "CheXpert-v1.0-small/../../elsewhere/patient00007"))
    code, report = run_check(capsys, "--dataset", "chexpert", "--root", str(chexpert))
    assert code == 2 and "escapes the dataset root" in report["errors"][0]


def test_chexpert_missing_and_truncated_images(chexpert, capsys):
    """A truncated JPEG is listed as truncated (a run decodes it partially and warns), not as an
    unreadable file; a missing image and a non-image file stay errors (exit 2)."""
    folder = chexpert / "CheXpert-v1.0-small"
    (folder / "train/patient00003/study1/view1_frontal.jpg").unlink()
    jpg = folder / "valid/patient64541/study1/view1_frontal.jpg"
    write_raster(jpg, np.random.default_rng(0).random((240, 200)))
    jpg.write_bytes(jpg.read_bytes()[:-3000])  # cut in its pixel data
    (folder / "train/patient00004/study1/view1_frontal.jpg").write_bytes(b"<html>Not Found</html>")
    head = folder / "train/patient00005/study1/view1_frontal.jpg"  # 371 bytes: cut in its tables
    head.write_bytes(head.read_bytes()[:-60])
    code, report = run_check(capsys, "--dataset", "chexpert", "--root", str(chexpert), "--deep")
    assert code == 2
    missing = report["splits"]["train"]["missing"] + report["splits"]["val"]["missing"]
    assert missing == ["CheXpert-v1.0-small/train/patient00003/study1/view1_frontal.jpg"]
    assert report["splits"]["test"]["truncated"] == [
        {"id": report["splits"]["test"]["truncated"][0]["id"],
         "path": "CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg"}]
    assert report["splits"]["test"]["unreadable"] == []
    bad = report["splits"]["train"]["unreadable"] + report["splits"]["val"]["unreadable"]
    assert sorted((u["path"].split("/")[2], u["error"].split(":")[0]) for u in bad) == [
        ("patient00004", "cannot be decoded as an image (UnidentifiedImageError"),
        ("patient00005", "cannot be decoded as an image (OSError")]
    assert not any("patient64541" in e for e in report["errors"])
    # without --deep only headers are read: the truncated file is not found, and is no error either
    code, report = run_check(capsys, "--dataset", "chexpert", "--root", str(chexpert))
    assert all(s["truncated"] == [] for s in report["splits"].values())
    # the table lists it under its split
    assert main(["data", "check", "--dataset", "chexpert", "--root", str(chexpert), "--deep"]) == 2
    out = capsys.readouterr().out
    assert "truncated test: 1 image file(s) end early" in out and "truncated_images" in out


def test_siim_malformed_rle_fails_naming_row(tmp_path, capsys):
    root = tmp_path / "siim"
    for k, uid in enumerate(("1.2.3.1", "1.2.3.2", "1.2.3.3")):
        write_dicom(root / "dicom-images-train" / f"9.{k}" / f"8.{k}" / f"{uid}.dcm", np.zeros((16, 16)),
                    bits_stored=8, sop_uid=uid)
    (root / "train-rle.csv").write_text("ImageId, EncodedPixels\n1.2.3.1, -1\n1.2.3.2, 3 4\n1.2.3.3, 5 3 10\n")
    code, report = run_check(capsys, "--dataset", "siim-acr", "--root", str(root))
    assert code == 2
    [error] = report["errors"]
    assert "train-rle.csv" in error and "row 4" in error and "EncodedPixels" in error and "'5 3 10'" in error


PACKAGED = sorted(n for n, c in DATASETS.items() if c.__module__.startswith("xrbench.data.datasets."))


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory):
    """One small demo per dataset for the whole module (XRBENCH_DEMO_SCALE=0.35: 35-70 images)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XRBENCH_HOME", str(tmp_path_factory.mktemp("xrhome")))
        mp.setenv("XRBENCH_DEMO_SCALE", "0.35")
        yield


@pytest.mark.parametrize("name", PACKAGED)
def test_demo_of_every_packaged_dataset_passes_deep_check(name, demo_home):
    from xrbench.data.demo import demo_root

    demo_root(name, quiet=True)
    report = check_dataset(name, deep=True)
    assert report["ok"], report["errors"]
    assert list(report) == TOP_KEYS and report["manifest_hash"]
    for split in report["splits"].values():
        assert list(split) == SPLIT_KEYS and split["samples"] > 0


# --------------------------------------------------------------------------- preview


def test_preview_draws_ground_truth_at_expected_size(toy, tmp_path, capsys):
    out = tmp_path / "sheet.png"
    assert main(["data", "preview", "--dataset", "toy-check", "--root", str(toy), "-o", str(out), "--n", "4"]) == 0
    assert f"wrote {out} (536x656)" in capsys.readouterr().out
    with Image.open(out) as im:
        assert im.size == sheet_size(4) == (536, 656)
        # tile 0 is sample 'a' (box + mask + label + report), 16 px -> 256 px: mask [2:8] -> [32:128]
        r, g, b = im.convert("RGB").getpixel((8 + 80, 36 + 80))
        assert r > g + 60 and r > b + 60  # the translucent red mask over the bright blob
        r, g, b = im.convert("RGB").getpixel((8 + 200, 36 + 200))
        assert abs(r - g) < 5 and abs(g - b) < 5  # unmasked background stays grey


def test_preview_all_makes_one_tile_per_dataset_and_reports_failures(xr_home, monkeypatch):
    @DATASETS.register("toy-broken", overwrite=True)
    class Broken(ToyCheck):
        name = "toy-broken"

        @classmethod
        def write_demo(cls, dest, *, n, seed):
            raise NotImplementedError("no phantom yet")

    sheet, failed = preview_all(["toy-check", "toy-broken"])
    assert sheet.size == sheet_size(1) == (272, 346)
    assert failed == ["toy-broken: NotImplementedError: no phantom yet"]


def test_preview_needs_exactly_one_of_dataset_or_all(capsys):
    assert main(["data", "preview"]) == 2
    assert main(["data", "preview", "--all", "--dataset", "toy-check"]) == 2
    assert "either --dataset NAME or --all" in capsys.readouterr().err
