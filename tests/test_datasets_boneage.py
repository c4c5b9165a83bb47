"""RSNA bone age: the three table schemas, Kaggle double nesting, True/False vs M/F, splits, errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xrbench.data.base import patient_split
from xrbench.data.datasets.rsna_boneage import RSNABoneAge
from xrbench.data.images import read_image
from xrbench.data.phantom.hand import generate_hands
from xrbench.errors import DataError


def touch_png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")  # the loader indexes names; it never decodes


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def kaggle_fixture(root: Path) -> Path:
    write(root / "boneage-training-dataset.csv", "id,boneage,male\n1377,180,False\n1378,12,True\n1379,94.5,True\n")
    write(root / "boneage-test-dataset.csv", "Case ID,Sex\n4360,M\n")  # no ground truth: ignored
    for i in (1377, 1378, 1379):
        touch_png(root / "boneage-training-dataset" / "boneage-training-dataset" / f"{i}.png")
    touch_png(root / "boneage-test-dataset" / "boneage-test-dataset" / "4360.png")
    return root


def official_fixture(root: Path) -> Path:
    write(root / "Bone Age Training Set" / "train.csv", "id,boneage,male\n1377,180,False\n1378,12,True\n")
    write(root / "Bone Age Validation Set" / "Validation Dataset.csv",
          "Image ID,male,Bone Age (months)\n1386,TRUE,150\n1392,FALSE,60.25\n")
    write(root / "Bone Age Test Set" / "Bone age ground truth.csv",
          "Case ID,Sex,Ground truth bone age (months)\n4360,M,168.934\n1377,F,33\n")
    for i in (1377, 1378):
        touch_png(root / "Bone Age Training Set" / "boneage-training-dataset" / f"{i}.png")
    for i in (1386, 1392):
        touch_png(root / "Bone Age Validation Set" / "boneage-validation-dataset-1" / f"{i}.png")
    for i in (4360, 1377):  # 1377 also names a training image: the table's own folder wins
        touch_png(root / "Bone Age Test Set" / "images" / f"{i}.png")
    return root


def rows(samples):
    return [(s.id, s.image, s.patient, s.split, s.target, s.meta) for s in samples]


def test_kaggle_layout_with_double_nesting_and_carved_val_and_test(tmp_path):
    kaggle_fixture(tmp_path)
    carve = patient_split(["train/1377", "train/1378", "train/1379"], seed=1, val=0.1, test=0.1,
                          salt="rsna-boneage")
    nest = tmp_path / "boneage-training-dataset" / "boneage-training-dataset"
    ds = RSNABoneAge(tmp_path, seed=1)
    assert rows(ds.samples()) == [
        ("train/1377", nest / "1377.png", "train/1377", carve["train/1377"], 180.0,
         {"sex": "F", "official_split": "train"}),
        ("train/1378", nest / "1378.png", "train/1378", carve["train/1378"], 12.0,
         {"sex": "M", "official_split": "train"}),
        ("train/1379", nest / "1379.png", "train/1379", carve["train/1379"], 94.5,
         {"sex": "M", "official_split": "train"}),
    ]
    assert ds.report_extra() == {"ignored_tables": ["boneage-test-dataset.csv"],  # no ground truth
                                 "images_outside_split_folders": 0}


def test_carved_splits_cover_val_and_test_on_a_larger_kaggle_table(tmp_path):
    write(tmp_path / "boneage-training-dataset.csv",
          "id,boneage,male\n" + "".join(f"{i},{i % 200},{'True' if i % 2 else 'False'}\n" for i in range(100)))
    splits = [s.split for s in RSNABoneAge(tmp_path, seed=0).samples()]
    assert 0 < splits.count("val") < 30 and 0 < splits.count("test") < 30 and splits.count("train") > 50


def test_official_layout_maps_train_validation_and_test_with_their_own_schemas(tmp_path):
    official_fixture(tmp_path)
    train = tmp_path / "Bone Age Training Set" / "boneage-training-dataset"
    val = tmp_path / "Bone Age Validation Set" / "boneage-validation-dataset-1"
    test = tmp_path / "Bone Age Test Set" / "images"
    assert rows(RSNABoneAge(tmp_path).samples()) == [
        ("train/1377", train / "1377.png", "train/1377", "train", 180.0, {"sex": "F", "official_split": "train"}),
        ("train/1378", train / "1378.png", "train/1378", "train", 12.0, {"sex": "M", "official_split": "train"}),
        ("validation/1386", val / "1386.png", "validation/1386", "val", 150.0,
         {"sex": "M", "official_split": "validation"}),
        ("validation/1392", val / "1392.png", "validation/1392", "val", 60.25,
         {"sex": "F", "official_split": "validation"}),
        ("test/4360", test / "4360.png", "test/4360", "test", 168.934, {"sex": "M", "official_split": "test"}),
        ("test/1377", test / "1377.png", "test/1377", "test", 33.0, {"sex": "F", "official_split": "test"}),
    ]


def test_parent_folder_headers_with_spaces_and_gzip_are_accepted(tmp_path):
    import gzip

    root = tmp_path / "download" / "rsna"
    official_fixture(root)
    csv = root / "Bone Age Validation Set" / "Validation Dataset.csv"
    (csv.parent / "Validation Dataset.csv.gz").write_bytes(
        gzip.compress(b" Image ID , male , Bone Age (months) \n1386,True,150\n1392,False,60.25\n"))
    csv.unlink()
    samples = RSNABoneAge(tmp_path / "download").samples()
    assert [(s.id, s.split, s.target, s.meta["sex"]) for s in samples if s.split == "val"] == [
        ("validation/1386", "val", 150.0, "M"), ("validation/1392", "val", 60.25, "F")]


def test_upper_case_extension_and_macos_litter(tmp_path):
    kaggle_fixture(tmp_path)
    nest = tmp_path / "boneage-training-dataset" / "boneage-training-dataset"
    (nest / "1378.png").rename(nest / "1378.PNG")
    touch_png(nest / "._1379.png")  # AppleDouble file beside 1379.png
    touch_png(tmp_path / "__MACOSX" / "._boneage-training-dataset.csv")
    touch_png(tmp_path / "__MACOSX" / "extra" / "._4000.png")
    ds = RSNABoneAge(tmp_path)
    assert [s.image for s in ds.samples()] == [nest / "1377.png", nest / "1378.PNG", nest / "1379.png"]
    assert ds.report_extra() == {"ignored_tables": ["boneage-test-dataset.csv"], "images_outside_split_folders": 0}


def test_an_image_that_is_not_found_keeps_a_path_for_data_check(tmp_path):
    write(tmp_path / "boneage-training-dataset.csv", "id,boneage,male\n1377,180,False\n")
    (sample,) = RSNABoneAge(tmp_path).samples()
    assert sample.image == tmp_path / "1377.png" and not sample.image.exists()


@pytest.mark.parametrize("table, message", [
    ("id,boneage,male\n1377,180,Unknown\n", r"row 2, field 'male': 'Unknown' is not a sex"),
    ("id,boneage,male\n1377,,True\n", r"row 2, field 'boneage': is blank"),
    ("id,boneage,male\n1377,ten,True\n", r"row 2, field 'boneage': 'ten' is not a number"),
    ("id,boneage,male\n1377,400,True\n", r"row 2, field 'boneage': bone age 400.0 is outside"),
    ("id,boneage,male\n1377,10,True\n../x,10,True\n", r"row 3, field 'id': '../x' is not an image id"),
])
def test_malformed_rows_are_errors(tmp_path, table, message):
    write(tmp_path / "boneage-training-dataset.csv", table)
    with pytest.raises(DataError, match=message):
        RSNABoneAge(tmp_path).samples()


@pytest.mark.parametrize("rel, header, message", [
    ("Bone Age Validation Set/Validation Dataset.csv", "Image ID,male,Bone Age\n1386,TRUE,150\n",
     r"Validation Dataset.csv: looks like the validation table but misses column\(s\) 'Bone Age \(months\)'"),
    ("Bone Age Training Set/train.csv", "id,boneage\n1377,180\n",
     r"train.csv: looks like the train table but misses column\(s\) 'male'; found columns \['id', 'boneage'\]"),
    ("Bone Age Test Set/Bone age ground truth.csv", "Case ID,Ground truth bone age (months)\n4360,168\n",
     r"ground truth.csv: looks like the test table but misses column\(s\) 'Sex'"),
])
def test_a_table_with_ground_truth_but_a_missing_column_is_an_error(tmp_path, rel, header, message):
    # before: the damaged table was set aside as "ignored" and its split silently carved from train
    official_fixture(tmp_path)
    write(tmp_path / rel, header)
    with pytest.raises(DataError, match=message):
        RSNABoneAge(tmp_path).samples()


def test_test_ground_truth_only_as_a_spreadsheet_is_an_error_not_a_carved_test_split(tmp_path):
    official_fixture(tmp_path)
    gt = tmp_path / "Bone Age Test Set" / "Bone age ground truth.csv"
    gt.unlink()
    touch_png(gt.with_suffix(".xlsx"))
    with pytest.raises(DataError, match=r"ground truth.xlsx: looks like the test ground truth, but xrbench "
                                        r"reads CSV only: save it as CSV"):
        RSNABoneAge(tmp_path).samples()
    gt.write_text("Case ID,Sex,Ground truth bone age (months)\n4360,M,168.934\n")  # saved as CSV beside it
    ds = RSNABoneAge(tmp_path)
    assert [s.id for s in ds.samples() if s.split == "test"] == ["test/4360"]
    assert ds.report_extra()["ignored_tables"] == ["Bone Age Test Set/Bone age ground truth.xlsx"]


def test_tables_without_ground_truth_are_still_set_aside(tmp_path):
    kaggle_fixture(tmp_path)
    write(tmp_path / "image_paths.csv", "id,image_path\n1377,a.png\n")  # "image" is not an age column
    ds = RSNABoneAge(tmp_path)
    assert len(ds.samples()) == 3
    assert ds.report_extra()["ignored_tables"] == ["boneage-test-dataset.csv", "image_paths.csv"]


def test_no_training_table_or_two_of_them_are_errors(tmp_path):
    write(tmp_path / "a" / "boneage-test-dataset.csv", "Case ID,Sex\n4360,M\n")
    with pytest.raises(DataError, match="no training table found"):
        RSNABoneAge(tmp_path / "a").samples()
    kaggle_fixture(tmp_path / "b")
    official_fixture(tmp_path / "b")
    with pytest.raises(DataError, match="several train tables found"):
        RSNABoneAge(tmp_path / "b").samples()


def test_writer_round_trip_gives_the_phantom_bone_ages_sexes_and_pixels(tmp_path):
    RSNABoneAge.write_demo(tmp_path, n=14, seed=3)
    cases = generate_hands(14, seed=3)
    samples = RSNABoneAge(tmp_path).samples()
    assert [s.split for s in samples].count("val") == 2 and [s.split for s in samples].count("test") == 2
    # the writer puts cases[0:2] in test, [2:4] in validation and the rest in the Kaggle training table
    order = {"train": 4, "validation": 2, "test": 0}
    counters = {"train": 0, "validation": 0, "test": 0}
    for s in samples:
        kind = s.meta["official_split"]
        case = cases[order[kind] + counters[kind]]
        counters[kind] += 1
        assert s.target == pytest.approx(case.bone_age) and s.meta["sex"] == ("M" if case.male else "F")
        np.testing.assert_allclose(read_image(s.image), case.image, atol=0.5 / 255 + 1e-6)
    assert (tmp_path / "boneage-training-dataset" / "boneage-training-dataset").is_dir()
    assert (tmp_path / "Bone Age Validation Set" / "Validation Dataset.csv").read_text().startswith(
        "Image ID,male,Bone Age (months)\n")
