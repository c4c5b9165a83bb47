"""CheXpert loader on hand-written files in the official layout, and on its phantom demo."""
import gzip
import math
from pathlib import Path

import numpy as np
import pytest

from xrbench.data.base import patient_split
from xrbench.data.datasets.chexpert import COMPETITION, HEADER, OBSERVATIONS, CheXpert
from xrbench.data.images import read_image, write_raster
from xrbench.errors import DataError
from xrbench.registry import DATASETS

NAN = math.nan
HEAD = ",".join(HEADER)
# Path,Sex,Age,Frontal/Lateral,AP/PA, then the 14 observations in file order
TRAIN = [
    "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,1.0,,,,,,,,,0.0,,,,1.0",
    "CheXpert-v1.0-small/train/patient00002/study2/view1_frontal.jpg,Female,87,Frontal,AP,,,-1.0,1.0,,-1.0,-1.0,,-1.0,,-1.0,,1.0,",
    "CheXpert-v1.0-small/train/patient00002/study2/view2_lateral.jpg,Female,87,Lateral,,,,-1.0,1.0,,-1.0,-1.0,,-1.0,,-1.0,,1.0,",
    "CheXpert-v1.0-small/train/patient00003/study1/view1_frontal.jpg,Male,0,Frontal,PA,,,,,,1.0,,,,,,,,",
]
VALID = [
    "CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg,Male,73,Frontal,AP,0.0,1.0,1.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0",
    "CheXpert-v1.0-small/valid/patient64542/study1/view2_lateral.jpg,Unknown,70,Lateral,LL,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,1.0",
]


def labels(**kw) -> dict:
    out = dict.fromkeys(OBSERVATIONS, NAN)
    out.update({k.replace("_", " "): v for k, v in kw.items()})
    return out


def same_labels(got: dict, want: dict) -> bool:
    return list(got) == list(want) and all(got[k] == want[k] or (got[k] != got[k] and want[k] != want[k]) for k in got)


def write_fixture(root: Path, *, folder="CheXpert-v1.0-small", header=HEAD, train=TRAIN, valid=VALID,
                  gz=False, images=True) -> Path:
    d = root / folder
    d.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train.csv", train), ("valid.csv", valid)):
        text = "\n".join([header, *rows]) + "\n"
        if gz:
            with gzip.open(d / (name + ".gz"), "wt") as f:
                f.write(text)
        else:
            (d / name).write_text(text)
    if images:
        for row in train + valid:
            rel = row.split(",")[0].split("/", 1)[1]
            write_raster(d / rel, np.full((8, 8), 0.5, np.float32), bits=8)
    return d


def test_registered():
    assert DATASETS.get("chexpert") is CheXpert
    assert CheXpert.label_names == OBSERVATIONS and set(COMPETITION) <= set(OBSERVATIONS)
    assert len(HEADER) == 19


def test_exact_samples(tmp_path):
    d = write_fixture(tmp_path)
    samples = {s.id: s for s in CheXpert(tmp_path).samples()}
    assert list(samples) == [
        "train/patient00001/study1/view1_frontal.jpg", "train/patient00002/study2/view1_frontal.jpg",
        "train/patient00002/study2/view2_lateral.jpg", "train/patient00003/study1/view1_frontal.jpg",
        "valid/patient64541/study1/view1_frontal.jpg", "valid/patient64542/study1/view2_lateral.jpg"]

    s = samples["train/patient00001/study1/view1_frontal.jpg"]
    assert s.image == d / "train/patient00001/study1/view1_frontal.jpg" and s.image.is_file()
    assert s.patient == "patient00001" and s.group is None
    assert same_labels(s.labels, labels(No_Finding=1.0, Pneumothorax=0.0, Support_Devices=1.0))
    assert s.meta == {"sex": "F", "age": 68, "frontal": True, "view": "AP", "study": "patient00001/study1"}

    s = samples["train/patient00002/study2/view1_frontal.jpg"]
    assert same_labels(s.labels, labels(Cardiomegaly=-1.0, Lung_Opacity=1.0, Edema=-1.0, Consolidation=-1.0,
                                        Atelectasis=-1.0, Pleural_Effusion=-1.0, Fracture=1.0))

    lateral = samples["train/patient00002/study2/view2_lateral.jpg"]  # Lateral with an empty AP/PA: kept
    assert lateral.meta == {"sex": "F", "age": 87, "frontal": False, "view": "Lateral",
                            "study": "patient00002/study2"}
    assert same_labels(lateral.labels, s.labels)

    age0 = samples["train/patient00003/study1/view1_frontal.jpg"]  # Age 0 = unknown
    assert age0.meta["age"] is None and age0.meta["sex"] == "M" and age0.meta["view"] == "PA"

    v = samples["valid/patient64541/study1/view1_frontal.jpg"]
    assert v.split == "test" and v.patient == "patient64541"
    assert same_labels(v.labels, {**dict.fromkeys(OBSERVATIONS, 0.0), "Enlarged Cardiomediastinum": 1.0,
                                  "Cardiomegaly": 1.0, "Lung Opacity": 1.0})
    ll = samples["valid/patient64542/study1/view2_lateral.jpg"]
    assert ll.meta == {"sex": None, "age": 70, "frontal": False, "view": "LL", "study": "patient64542/study1"}


def test_splits_valid_is_test_and_val_is_patient_split_of_train(tmp_path):
    write_fixture(tmp_path)
    loader = CheXpert(tmp_path, seed=3)
    expected = patient_split(["patient00001", "patient00002", "patient00003"], seed=3, val=0.1, salt="chexpert")
    for s in loader.samples():
        assert s.split == ("test" if s.id.startswith("valid/") else expected[s.patient])


@pytest.mark.parametrize("folder, prefix", [("CheXpert-v1.0-small", "CheXpert-v1.0-small/"),
                                            ("CheXpert-v1.0", "CheXpert-v1.0/"),
                                            ("CheXpert-v1.0-small", "")])
@pytest.mark.parametrize("given", ["parent", "folder"])
def test_root_and_path_prefix_variants(tmp_path, folder, prefix, given):
    fix = lambda rows: [prefix + r.split("/", 1)[1] for r in rows]  # noqa: E731
    d = write_fixture(tmp_path, folder=folder, train=fix(TRAIN), valid=fix(VALID), images=False)
    samples = CheXpert(tmp_path if given == "parent" else d).samples()
    assert [s.image for s in samples] == [d / r.split(",")[0].removeprefix(prefix) for r in fix(TRAIN + VALID)]


def test_stanford_aimi_download_of_the_full_set_in_its_batch_folders(tmp_path):
    """The AIMI download (chexpertchestxrays-u20210408) unzips to four folders: batch 1 holds the CSVs
    and valid/, the train patients sit directly in batches 2-4; Path still says CheXpert-v1.0/train/."""
    top = tmp_path / "chexpertchestxrays-u20210408"
    fix = lambda rows: ["CheXpert-v1.0/" + r.split("/", 1)[1] for r in rows]  # noqa: E731
    first = write_fixture(top, folder="CheXpert-v1.0 batch 1 (validate & csv)", train=fix(TRAIN),
                          valid=fix(VALID), images=False)
    where = {"patient00001": "CheXpert-v1.0 batch 2 (train 1)", "patient00002": "CheXpert-v1.0 batch 3 (train 2)",
             "patient00003": "CheXpert-v1.0 batch 4 (train 3)"}
    for row in TRAIN:
        rel = row.split(",")[0].split("/", 2)[2]  # patientNNNNN/studyN/viewN_*.jpg
        write_raster(top / where[rel.split("/")[0]] / rel, np.full((8, 8), 0.5, np.float32), bits=8)
    for row in VALID:
        write_raster(first / row.split(",")[0].split("/", 1)[1], np.full((8, 8), 0.5, np.float32), bits=8)
    (top / "train_cheXbert.csv").write_text(HEAD + "\n")
    for root in (top, tmp_path):
        samples = {s.id: s for s in CheXpert(root).samples()}
        assert samples["train/patient00002/study2/view2_lateral.jpg"].image == \
            top / "CheXpert-v1.0 batch 3 (train 2)/patient00002/study2/view2_lateral.jpg"
        assert samples["valid/patient64541/study1/view1_frontal.jpg"].image == \
            first / "valid/patient64541/study1/view1_frontal.jpg"
        assert all(s.image.is_file() for s in samples.values()) and len(samples) == 6
    from xrbench.data.check import check_dataset
    report = check_dataset("chexpert", top)
    assert [report["splits"][k]["missing"] for k in ("train", "val", "test")] == [[], [], []]
    for item in list(first.iterdir()):  # batch 1's contents moved up into the download folder
        item.rename(top / item.name)
    first.rmdir()
    samples = {s.id: s for s in CheXpert(top).samples()}
    assert samples["train/patient00001/study1/view1_frontal.jpg"].image == \
        top / "CheXpert-v1.0 batch 2 (train 1)/patient00001/study1/view1_frontal.jpg"
    assert all(s.image.is_file() for s in samples.values()) and len(samples) == 6


def test_csv_gz_and_stray_spaces_in_header(tmp_path):
    spaced = ", ".join(f" {h} " for h in HEADER)
    write_fixture(tmp_path, header=spaced, gz=True, images=False)
    plain = tmp_path / "plain"
    write_fixture(plain, images=False)
    got = CheXpert(tmp_path).samples()
    want = CheXpert(plain).samples()
    assert [s.id for s in got] == [s.id for s in want]
    assert all(same_labels(a.labels, b.labels) and a.meta == b.meta for a, b in zip(got, want))


@pytest.mark.parametrize("row, match", [
    (TRAIN[0].replace(",1.0,,,,", ",2.0,,,,", 1), r"train.csv, row 2, field 'No Finding'.*expected 1.0, 0.0, -1.0"),
    (TRAIN[0].replace(",68,", ",sixty,"), r"row 2, field 'Age'"),
    (TRAIN[0].replace(",Frontal,", ",Oblique,"), r"row 2, field 'Frontal/Lateral'"),
    (TRAIN[0].replace("patient00001/", "p1/"), r"row 2, field 'Path'.*patient<digits>"),
    (TRAIN[0].replace("CheXpert-v1.0-small/train", "../../etc"), r"escapes the dataset root"),
])
def test_malformed_rows_raise(tmp_path, row, match):
    write_fixture(tmp_path, train=[row], images=False)
    with pytest.raises(DataError, match=match):
        CheXpert(tmp_path).samples()


def test_missing_column(tmp_path):
    write_fixture(tmp_path, header=HEAD.replace(",Edema,", ",Oedema,"), images=False)
    with pytest.raises(DataError, match=r"train.csv: missing column\(s\) 'Edema'"):
        CheXpert(tmp_path).samples()


def test_missing_files_and_wrong_root(tmp_path):
    write_fixture(tmp_path)
    with pytest.raises(DataError, match="not a dataset root"):
        CheXpert(tmp_path / "CheXpert-v1.0-small" / "train").samples()  # a sub-folder is not a root
    (tmp_path / "CheXpert-v1.0-small" / "valid.csv").unlink()
    with pytest.raises(DataError, match="none of the expected files exist: valid.csv"):
        CheXpert(tmp_path).samples()


# --------------------------------------------------------------------------- the phantom demo


def fake_case(findings, uncertain=(), report="", **kw):
    from types import SimpleNamespace
    return SimpleNamespace(findings=findings, uncertain=frozenset(uncertain),
                           report={"findings": report, "impression": ""}, **kw)


def test_report_labels_follow_the_report_wording():
    from xrbench.data.datasets.chexpert import report_labels

    case = fake_case({"Pleural Effusion": 0.6, "Nodule": 0.3, "Edema": 0.5}, uncertain={"Edema", "Pneumonia"},
                     report="Moderate left pleural effusion. A 12 mm nodule in the right upper lobe. Possible "
                            "mild edema. Pneumonia cannot be excluded. No pneumothorax. Heart size is normal.")
    got = report_labels(case)
    want = dict.fromkeys(OBSERVATIONS, "")
    want.update({"Pleural Effusion": "1.0", "Lung Lesion": "1.0", "Edema": "-1.0", "Pneumonia": "-1.0",
                 "Pneumothorax": "0.0", "Cardiomegaly": "0.0"})
    assert got == want
    truth = report_labels(case, truth=True)  # valid.csv: 0/1 truth, uncertain wording ignored
    assert truth == {**dict.fromkeys(OBSERVATIONS, "0.0"), "Pleural Effusion": "1.0", "Lung Lesion": "1.0",
                     "Edema": "1.0"}
    normal = fake_case({"Support Devices": 1.0}, report="Lungs are clear. No effusion.")
    assert report_labels(normal)["No Finding"] == "1.0" and report_labels(normal)["Pleural Effusion"] == "0.0"
    assert report_labels(normal, truth=True)["No Finding"] == "1.0"
    assert report_labels(case)["No Finding"] == "" and report_labels(case, truth=True)["No Finding"] == "0.0"


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """One demo for the module (the phantom takes ~50 ms an image on one core)."""
    root = tmp_path_factory.mktemp("chexpert-demo")
    CheXpert.write_demo(root, n=80, seed=0)
    return root


def test_demo_layout_and_loading(demo):
    folder = demo / "CheXpert-v1.0-small"
    for name in ("train.csv", "valid.csv"):
        assert (folder / name).read_text().splitlines()[0] == HEAD
    samples = CheXpert(demo).samples()
    assert len(samples) == 80 and all(s.image.is_file() for s in samples)
    assert read_image(samples[0].image).shape == (256, 256)
    laterals = [s for s in samples if not s.meta["frontal"]]
    assert laterals and all(s.meta["view"] == "Lateral" and s.id.endswith("view2_lateral.jpg") for s in laterals)
    studies = {}
    for s in samples:
        studies.setdefault(s.patient, set()).add(s.meta["study"])
    assert any(len(v) > 1 for v in studies.values())  # patients with several studies
    train_values = {v if v == v else "nan" for s in samples if s.split != "test" for v in s.labels.values()}
    assert train_values == {1.0, 0.0, -1.0, "nan"}
    test = [s for s in samples if s.split == "test"]
    assert test and {v for s in test for v in s.labels.values()} <= {0.0, 1.0}
    by_split = {}
    for s in samples:
        by_split.setdefault(s.patient, set()).add(s.split)
    assert all(len(v) == 1 for v in by_split.values())  # patient-disjoint


def test_demo_is_deterministic(tmp_path, demo):
    CheXpert.write_demo(tmp_path / "a", n=24, seed=4)
    CheXpert.write_demo(tmp_path / "b", n=24, seed=4)
    rel = "CheXpert-v1.0-small/train.csv"
    assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    assert (tmp_path / "a" / rel).read_bytes() != (demo / rel).read_bytes()  # another seed and size
    first = CheXpert(tmp_path / "a").samples()[0].image
    assert first.read_bytes() == (tmp_path / "b" / first.relative_to(tmp_path / "a")).read_bytes()


def test_demo_competition_labels_have_enough_positives(demo):
    samples = CheXpert(demo).samples()
    for label in COMPETITION:
        positives = sum(s.labels[label] == 1.0 for s in samples)
        assert positives / len(samples) >= 0.2, (label, positives)
        assert 0 < sum(s.labels[label] == 1.0 for s in samples if s.split == "test") < len(
            [s for s in samples if s.split == "test"])
