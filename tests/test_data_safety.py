"""Data that cannot leak and cannot be stale: content digests, split disjointness, path aliases,
symlinks, no fallback across split folders, and dataset roots found where downloads leave them."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import xxhash

import xrbench.data.datasets  # noqa: F401  (registers the packaged loaders)
from xrbench.cli import main
from xrbench.data import digest
from xrbench.data.base import DatasetLoader
from xrbench.data.datasets.rsna_boneage import RSNABoneAge
from xrbench.data.images import write_raster
from xrbench.data.paths import index_by_name, locate_root, safe_join
from xrbench.data.sample import Sample
from xrbench.errors import DataError
from xrbench.registry import DATASETS


@DATASETS.register("toy-safety", overwrite=True)
class ToySafety(DatasetLoader):
    """``index.csv`` of ``image,split`` rows; one patient per row. Only for tests."""

    name = "toy-safety"
    anatomy = "none"
    title = "toy"

    def load(self) -> list[Sample]:
        lines = (self.root / "index.csv").read_text().split()
        out = []
        for row, line in enumerate(lines, start=1):
            rel, split = line.split(",")
            out.append(Sample(id=f"r{row}", image=safe_join(self.root, rel, source=self.root / "index.csv", row=row),
                              patient=f"p{row}", split=split))
        return out

    @classmethod
    def write_demo(cls, dest: Path, *, n: int, seed: int) -> None:
        toy(Path(dest))


def toy(root: Path, rows=(("a.png", "train"), ("b.png", "val"), ("c.png", "test")), same=()) -> Path:
    """PNGs with distinct content (except the names in ``same``, which get one content)."""
    for k, (rel, _) in enumerate(rows):
        img = np.zeros((8, 8))
        img[0, 0] = 0.5 if Path(rel).name in same else k / 10
        if not (root / rel).exists():
            write_raster(root / rel, img)
    (root / "index.csv").write_text("".join(f"{r},{s}\n" for r, s in rows))
    return root


@pytest.fixture(autouse=True)
def home(xr_home):
    digest._memo.clear()
    return xr_home


# --------------------------------------------------------------------------- digests


def test_file_digest_is_xxh3_128_of_the_bytes_and_is_memoised_in_process_and_on_disk(tmp_path, monkeypatch):
    f = tmp_path / "x.bin"
    f.write_bytes(b"some image bytes" * 1000)
    calls = []
    real_hash = digest.xxh3_file
    monkeypatch.setattr(digest, "xxh3_file", lambda p: calls.append(p) or real_hash(p))
    assert digest.file_digest(f) == xxhash.xxh3_128(f.read_bytes()).hexdigest()
    assert digest.file_digest(f) == digest.file_digest(str(f)) and len(calls) == 1  # in-process memo
    digest._memo.clear()  # a new process: the persistent memo answers
    assert digest.file_digest(f) == xxhash.xxh3_128(f.read_bytes()).hexdigest() and len(calls) == 1
    assert digest.memo_path().is_file()


def test_an_edit_in_place_at_the_same_size_gets_a_new_digest(tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(b"A" * 64)
    before, st = digest.file_digest(f), f.stat()
    f.write_bytes(b"B" * 64)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # as any write does, past timer granularity
    assert f.stat().st_size == st.st_size
    assert digest.file_digest(f) == xxhash.xxh3_128(b"B" * 64).hexdigest() != before


def test_a_corrupt_memo_is_moved_aside_and_rebuilt(tmp_path, capsys):
    digest.memo_path().parent.mkdir(parents=True)
    digest.memo_path().write_bytes(b"this is not sqlite" * 100)
    f = tmp_path / "x.bin"
    f.write_bytes(b"abc")
    assert digest.file_digest(f) == xxhash.xxh3_128(b"abc").hexdigest()
    assert "was not a database" in capsys.readouterr().err
    assert list(digest.memo_path().parent.glob("digests.sqlite.corrupt-*"))


def test_image_manifest_hash_follows_content_not_size(tmp_path):
    root = toy(tmp_path / "d")
    loader = ToySafety(root)
    before = loader.image_manifest_hash(loader.samples())
    png, st = root / "a.png", (root / "a.png").stat()
    data = bytearray(png.read_bytes())
    data[len(data) // 2] ^= 0xFF  # edited in place: same size, other bytes
    png.write_bytes(bytes(data))
    os.utime(png, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert png.stat().st_size == st.st_size
    fresh = ToySafety(root)
    after = fresh.image_manifest_hash(fresh.samples())
    assert after != before
    again = ToySafety(root)
    assert again.image_manifest_hash(again.samples()) == after


# --------------------------------------------------------------------------- splits cannot share an image


def test_the_same_path_in_two_splits_is_an_error_naming_both_samples(tmp_path):
    root = toy(tmp_path / "d", rows=(("a.png", "train"), ("b.png", "val"), ("a.png", "test")))
    with pytest.raises(DataError, match=r"a\.png is used in both train and test: samples r1 and r3"):
        ToySafety(root).samples()


def test_an_alias_spelling_is_refused_in_safe_join(tmp_path):
    with pytest.raises(DataError, match=r"'study1/\.\./study1/img\.png' is not in normal form \(it means "
                                        r"'study1/img\.png'\)"):
        safe_join(tmp_path, "study1/../study1/img.png", source=tmp_path / "t.csv", row=3)
    for alias in ("study1//img.png", "./study1/img.png", "study1/./img.png"):
        with pytest.raises(DataError, match="not in normal form"):
            safe_join(tmp_path, alias)
    assert safe_join(tmp_path, ".hidden/img.png") == tmp_path / ".hidden/img.png"
    with pytest.raises(DataError, match="escapes the dataset root"):
        safe_join(tmp_path, "study1/../../x.png")


def test_identical_content_in_two_splits_is_an_error_before_any_feature(tmp_path):
    root = toy(tmp_path / "d", rows=(("a.png", "train"), ("b.png", "val"), ("copy/a2.png", "test")),
               same=("a.png", "a2.png"))
    loader = ToySafety(root)
    loader.image_manifest_hash(loader.split("train"))
    loader.image_manifest_hash(loader.split("val"))
    with pytest.raises(DataError, match=r"samples r1 \(train, .*a\.png\) and r3 \(test, .*a2\.png\) have "
                                        r"identical content"):
        loader.image_manifest_hash(loader.split("test"))  # checked against the splits hashed before


def test_identical_content_within_one_split_is_not_a_leak(tmp_path):
    root = toy(tmp_path / "d", rows=(("a.png", "train"), ("a2.png", "train"), ("b.png", "val"), ("c.png", "test")),
               same=("a.png", "a2.png"))
    loader = ToySafety(root)
    assert len(loader.image_digests(loader.samples())) == 4


def test_data_check_reports_content_shared_by_two_splits(tmp_path, capsys):
    root = toy(tmp_path / "d", rows=(("a.png", "train"), ("b.png", "val"), ("copy/a2.png", "test")),
               same=("a.png", "a2.png"))
    code = main(["data", "check", "--dataset", "toy-safety", "--root", str(root), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 2 and any("identical content" in e and "r1" in e and "r3" in e for e in report["errors"])


# --------------------------------------------------------------------------- symlinks


def test_a_symlink_leaving_the_root_is_an_error_unless_allowed(tmp_path, capsys):
    outside = toy(tmp_path / "elsewhere", rows=(("x.png", "train"), ("y.png", "train"), ("z.png", "train")))
    root = toy(tmp_path / "d", rows=(("a.png", "train"), ("b.png", "val")))
    (root / "c.png").symlink_to(outside / "z.png")
    (root / "index.csv").write_text("a.png,train\nb.png,val\nc.png,test\n")
    loader = ToySafety(root)
    with pytest.raises(DataError, match=r"c\.png: sample r3 is reached through a symlink that leaves the dataset "
                                        r"root .*allow_symlinks=True"):
        loader.image_manifest_hash(loader.samples())
    allowed = ToySafety(root, allow_symlinks=True)
    assert len(allowed.image_digests(allowed.samples())) == 3
    code = main(["data", "check", "--dataset", "toy-safety", "--root", str(root), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 2 and any("symlink that leaves the dataset root" in e for e in report["errors"])
    code = main(["data", "check", "--dataset", "toy-safety", "--root", str(root), "--json", "--allow-symlinks"])
    assert code == 0, json.loads(capsys.readouterr().out)["errors"]


def test_a_symlinked_folder_leaving_the_root_is_caught_too(tmp_path):
    outside = toy(tmp_path / "elsewhere", rows=(("z.png", "train"),))
    root = toy(tmp_path / "d", rows=(("a.png", "train"), ("b.png", "val")))
    (root / "linked").symlink_to(outside, target_is_directory=True)
    (root / "index.csv").write_text("a.png,train\nb.png,val\nlinked/z.png,test\n")
    loader = ToySafety(root)
    with pytest.raises(DataError, match="symlink that leaves the dataset root"):
        loader.image_digests(loader.samples())


def test_a_symlink_inside_the_root_to_another_sample_is_the_same_file(tmp_path):
    root = toy(tmp_path / "d", rows=(("a.png", "train"), ("b.png", "val")))
    (root / "c.png").symlink_to(root / "a.png")
    (root / "index.csv").write_text("a.png,train\nb.png,val\nc.png,test\n")
    loader = ToySafety(root)
    with pytest.raises(DataError, match=r"samples r1 .* and r3 .* are the same file"):
        loader.image_digests(loader.samples())


def test_a_symlinked_root_is_fine(tmp_path):
    real = toy(tmp_path / "real")
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    loader = ToySafety(tmp_path / "link")
    assert len(loader.image_digests(loader.samples())) == 3


def test_index_by_name_refuses_symlinks_out_and_names_found_twice(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x.png").write_bytes(b"x")
    root = tmp_path / "root"
    (root / "images").mkdir(parents=True)
    (root / "images" / "x.png").symlink_to(tmp_path / "out" / "x.png")
    with pytest.raises(DataError, match="symlink to .*outside the dataset root"):
        index_by_name(root, (".png",))
    assert index_by_name(root, (".png",), allow_symlinks=True) == {"x.png": root / "images" / "x.png"}
    (root / "images" / "x.png").unlink()
    for sub in ("images_001/images", "images_002/images"):
        (root / sub).mkdir(parents=True)
        (root / sub / "y.png").write_bytes(b"y")
    with pytest.raises(DataError, match=r"file name y\.png is found twice \(.*images_001/images/y\.png and "
                                        r".*images_002/images/y\.png\)"):
        index_by_name(root, (".png",))


def test_nih_refuses_an_image_symlinked_out_of_the_root(tmp_path):
    from xrbench.data.datasets.nih_cxr14 import NIHChestXray14

    NIHChestXray14.write_demo(tmp_path / "nih", n=24, seed=0)
    victim = sorted((tmp_path / "nih" / "images").iterdir())[0]
    (tmp_path / "elsewhere").mkdir()
    victim.rename(tmp_path / "elsewhere" / victim.name)
    victim.symlink_to(tmp_path / "elsewhere" / victim.name)
    with pytest.raises(DataError, match="outside the dataset root"):
        NIHChestXray14(tmp_path / "nih").samples()
    assert len(NIHChestXray14(tmp_path / "nih", allow_symlinks=True).samples()) == 24


# --------------------------------------------------------------------------- no fallback across split folders


def test_boneage_test_row_never_falls_back_to_a_training_image(tmp_path, capsys):
    root = tmp_path / "boneage"
    for kind, folder, first in (("train", "boneage-training-dataset/boneage-training-dataset", 1377),
                                ("test", "boneage-test-dataset/boneage-test-dataset", 4360)):
        for k in range(8):
            img = np.zeros((8, 8))
            img[0, 0], img[0, 1] = k / 10, 0.5 if kind == "test" else 0.0
            write_raster(root / folder / f"{first + k}.png", img)
    (root / "boneage-training-dataset.csv").write_text(
        "id,boneage,male\n" + "".join(f"{1377 + k},{100 + k},True\n" for k in range(8)))
    (root / "Bone Age Test Set").mkdir()
    (root / "Bone Age Test Set" / "Bone age ground truth.csv").write_text(
        "Case ID,Sex,Ground truth bone age (months)\n4360,M,100\n1377,F,33\n")  # 1377.png is a training image
    samples = {s.id: s for s in RSNABoneAge(root).samples()}
    assert samples["test/1377"].image == root / "Bone Age Test Set" / "1377.png"  # missing, not the train file
    assert samples["train/1377"].image == root / "boneage-training-dataset/boneage-training-dataset/1377.png"
    code = main(["data", "check", "--dataset", "rsna-boneage", "--root", str(root), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 2 and report["splits"]["test"]["missing"] == ["Bone Age Test Set/1377.png"]


def test_boneage_images_in_folders_naming_no_split_are_counted_not_used(tmp_path):
    root = tmp_path / "boneage"
    (root / "images").mkdir(parents=True)
    (root / "images" / "1377.png").write_bytes(b"")
    (root / "boneage-training-dataset.csv").write_text("id,boneage,male\n1377,100,True\n")
    loader = RSNABoneAge(root)
    (sample,) = loader.samples()
    assert sample.image == root / "1377.png" and loader.report_extra()["images_outside_split_folders"] == 1


# --------------------------------------------------------------------------- roots found where downloads leave them


PHYSIONET = {"mimic-cxr": "mimic-cxr-jpg/2.1.0", "vindr-cxr": "vindr-cxr/1.0.0",
             "vindr-spinexr": "vindr-spinexr/1.0.0", "ms-cxr": "ms-cxr/1.1.0"}


@pytest.mark.parametrize("name", sorted(PHYSIONET))
def test_physionet_wget_tree_is_found_from_its_top(tmp_path, name):
    cls = DATASETS.get(name)
    flat, nested = tmp_path / "flat", tmp_path / "physionet.org" / "files" / PHYSIONET[name]
    cls.write_demo(flat, n=24, seed=0)
    cls.write_demo(nested, n=24, seed=0)
    want = [(s.id, s.split, s.image.relative_to(flat)) for s in cls(flat).samples()]
    for top in (tmp_path / "physionet.org", tmp_path / "physionet.org" / "files", nested.parent):
        got = cls(top).samples()
        assert [(s.id, s.split, s.image.relative_to(nested)) for s in got] == want


@pytest.mark.parametrize("name, nesting", [("fracatlas", "FracAtlas"),  # figshare: FracAtlas/FracAtlas/
                                           ("siim-acr", "siim/siim-acr-pneumothorax"),  # Kaggle zips in zips
                                           ("chexpert", "chexpert/download"), ("mura", "mura/unzipped"),
                                           ("nih-cxr14", "nih/ChestX-ray14/data")])
def test_kaggle_and_figshare_nesting_is_found(tmp_path, name, nesting):
    cls = DATASETS.get(name)
    cls.write_demo(tmp_path / "top" / nesting, n=24, seed=0)
    assert len(cls(tmp_path / "top").samples()) >= 20


def test_two_candidate_roots_are_an_error_listing_both(tmp_path):
    from xrbench.data.datasets.mimic_cxr import MIMICCXR

    for version in ("2.0.0", "2.1.0"):
        MIMICCXR.write_demo(tmp_path / "physionet.org" / "files" / "mimic-cxr-jpg" / version, n=24, seed=0)
    with pytest.raises(DataError, match=r"2 candidate dataset folders found: .*mimic-cxr-jpg/2\.0\.0, "
                                        r".*mimic-cxr-jpg/2\.1\.0; point the root at one of them"):
        MIMICCXR(tmp_path / "physionet.org").samples()


def test_roots_deeper_than_four_levels_are_not_searched(tmp_path):
    deep = tmp_path / "a" / "b" / "c" / "d" / "e"
    deep.mkdir(parents=True)
    (deep / "marker.txt").write_text("x")
    assert locate_root(tmp_path / "a", "marker.txt") == deep
    with pytest.raises(DataError, match="up to 4 levels deep"):
        locate_root(tmp_path, "marker.txt")


def test_allow_symlinks_must_be_a_boolean(tmp_path):
    from xrbench.errors import ConfigError

    with pytest.raises(ConfigError, match="allow_symlinks='yes'; expected true or false"):
        ToySafety(tmp_path, allow_symlinks="yes")
