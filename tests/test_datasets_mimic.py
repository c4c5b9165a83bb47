"""MIMIC-CXR-JPG (+ reports) and MS-CXR loaders on hand-written official layouts, and their demos."""
import gzip
import math
from pathlib import Path

import numpy as np
import pytest

from xrbench.data.base import patient_split
from xrbench.data.datasets.mimic_cxr import LABELS, MIMICCXR, report_sections, section_text
from xrbench.data.datasets.ms_cxr import MSCXR
from xrbench.data.images import write_raster
from xrbench.data.sample import Box, Phrase
from xrbench.errors import ConfigError, DataError
from xrbench.registry import DATASETS

NAN = math.nan
D1 = "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014"  # p10000032 s50414267 PA
D2 = "174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962"  # p10000032 s50414267 LATERAL
D3 = "2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab"  # p10000032 s53189527 AP
D4 = "68b5c4b1-227d0485-9cc38c3f-7b84ab51-4b472714"  # p11000011 s51234567 PA (no labels row)
D5 = "ea030e7a-2e3b1346-bc518786-7a8fd698-f673b44c"  # p11000011 s51234567 blank ViewPosition
META_HEAD = ("dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns,StudyDate,"
             "StudyTime,ProcedureCodeSequence_CodeMeaning,ViewCodeSequence_CodeMeaning,"
             "PatientOrientationCodeSequence_CodeMeaning")
META = [
    f"{D1},10000032,50414267,CHEST (PA AND LAT),PA,3056,2544,21800506,213014.531,CHEST (PA AND LAT),postero-anterior,Erect",
    f"{D2},10000032,50414267,CHEST (PA AND LAT),LATERAL,3056,2544,21800506,213014.531,CHEST (PA AND LAT),lateral,Erect",
    f"{D3},10000032,53189527,CHEST (PORTABLE AP),AP,2705,2539,21800626,165500.312,CHEST (PORTABLE AP),antero-posterior,",
    f"{D4},11000011,51234567,CHEST (PA AND LAT),PA,3056,2544,21830101,101010.000,CHEST (PA AND LAT),postero-anterior,Erect",
    f"{D5},11000011,51234567,,,3056,2544,21830101,101010.000,,,",
]
CHEX_HEAD = "subject_id,study_id," + ",".join(LABELS)
CHEX = [  # 14 labels in LABELS order
    "10000032,50414267,,,,,,,,,1.0,,,,,",
    "10000032,53189527,,,-1.0,1.0,,,,,,0.0,,,0.0,1.0",
]
SPLIT_HEAD = "dicom_id,study_id,subject_id,split"
SPLIT = [f"{D1},50414267,10000032,train", f"{D2},50414267,10000032,train", f"{D3},53189527,10000032,train",
         f"{D4},51234567,11000011,validate", f"{D5},51234567,11000011,validate"]
REPORT = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)
 
 INDICATION:  ___F with new onset ascites  // eval for infection
 
 TECHNIQUE:  Chest PA and lateral
 
 COMPARISON:  None.
 
 FINDINGS: 
 
 There is no focal consolidation, pleural effusion or pneumothorax.  Bilateral
 nodular opacities that most likely represent nipple shadows. The
 cardiomediastinal silhouette is normal.
 
 IMPRESSION: 
 
 No acute cardiopulmonary process.
"""
REPORT_SECTIONS = {
    "preamble": "FINAL REPORT", "examination": "CHEST (PA AND LAT)",
    "indication": "___F with new onset ascites // eval for infection", "technique": "Chest PA and lateral",
    "comparison": "None.",
    "findings": "There is no focal consolidation, pleural effusion or pneumothorax. Bilateral nodular opacities "
                "that most likely represent nipple shadows. The cardiomediastinal silhouette is normal.",
    "impression": "No acute cardiopulmonary process.",
}
NO_HEADERS = """                                 FINAL REPORT
 Portable chest: lines and tubes in standard position.
"""


def lab(**kw) -> dict:
    out = dict.fromkeys(LABELS, NAN)
    out.update({k.replace("_", " "): v for k, v in kw.items()})
    return out


def same_labels(got: dict, want: dict) -> bool:
    return list(got) == list(want) and all(got[k] == want[k] or (got[k] != got[k] and want[k] != want[k]) for k in got)


def write_csv(path: Path, head: str, rows: list[str], gz: bool) -> None:
    text = "\n".join([head, *rows]) + "\n"
    if gz:
        with gzip.open(path.with_name(path.name + ".gz"), "wt") as f:
            f.write(text)
    else:
        path.write_text(text)


def write_mimic(d: Path, *, gz=False, reports="files", meta=META, chex=CHEX, split=SPLIT,
                image_size=(16, 16)) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    write_csv(d / "mimic-cxr-2.0.0-metadata.csv", META_HEAD, meta, gz)
    write_csv(d / "mimic-cxr-2.0.0-chexpert.csv", CHEX_HEAD, chex, gz)
    write_csv(d / "mimic-cxr-2.0.0-split.csv", SPLIT_HEAD, split, gz)
    for row in meta:
        dicom, subject, study = row.split(",")[:3]
        write_raster(d / f"files/p{subject[:2]}/p{subject}/s{study}/{dicom}.jpg",
                     np.full(image_size, 0.5, np.float32), bits=8)
    if reports:
        files = d / reports
        (files / "p10/p10000032").mkdir(parents=True, exist_ok=True)
        (files / "p10/p10000032/s50414267.txt").write_text(REPORT)
        (files / "p10/p10000032/s53189527.txt").write_text(NO_HEADERS)
    return d


def jpg(d: Path, subject: str, study: str, dicom: str) -> Path:
    return d / f"files/p{subject[:2]}/p{subject}/s{study}/{dicom}.jpg"


# --------------------------------------------------------------------------- reports


def test_section_text_official_report():
    assert section_text(REPORT) == REPORT_SECTIONS


def test_section_text_without_headers_is_full_report():
    assert section_text(NO_HEADERS) == {"full report": "FINAL REPORT Portable chest: lines and tubes in standard position."}


def test_section_text_last_occurrence_wins_names_are_normalised_and_empty_findings_dropped():
    text = ("WET READ: ___ 5:00 PM\n FINDINGS: \n \n \n CONCLUSION: first.\n \n"
            " IMPRESSION: \n \n Second impression.\n \n COMPARISONS: ___.\n")
    assert section_text(text) == {"preamble": "WET READ: ___ 5:00 PM", "impression": "Second impression.",
                                  "comparison": "___."}


def test_section_text_last_paragraph_when_no_findings_or_impression():
    text = "FINAL REPORT\n INDICATION: Cough.\n \n Heart size is normal.\n \n Lungs are clear.\n"
    assert section_text(text) == {"preamble": "FINAL REPORT", "indication": "Cough.",
                                  "last_paragraph": "Heart size is normal. Lungs are clear."}


def test_official_custom_rules_override_the_parse_of_the_listed_studies():
    # s50525523 is one of the official custom spans: characters [201, 349) are its findings
    text = "x" * 201 + "  The lungs are clear.\n \n No effusion.  " + "y" * 200 + "\n IMPRESSION: Normal.\n"
    got = report_sections(text, "s50525523")
    assert got["findings"] == " ".join(text[201:349].split()) and "impression" not in got
    empty = report_sections(text, "s58235663")  # an empty span: the report has no findings at all
    assert "findings" not in empty and "impression" not in empty and empty["preamble"].startswith("xxx")
    # s50913680: its conclusion is written under RECOMMENDATIONS
    text = "FINAL REPORT\n FINDINGS: Clear lungs.\n \n RECOMMENDATION(S): Follow-up CT.\n"
    assert report_sections(text, "s50913680") == {"preamble": "FINAL REPORT", "findings": "Clear lungs.",
                                                 "recommendations": "Follow-up CT.", "impression": "Follow-up CT."}
    assert report_sections(text, "s50414267") == section_text(text)  # any other study: the plain parse


# --------------------------------------------------------------------------- MIMIC-CXR-JPG


def test_registered():
    assert DATASETS.get("mimic-cxr") is MIMICCXR and DATASETS.get("ms-cxr") is MSCXR
    assert len(LABELS) == 14 and list(LABELS) == sorted(LABELS)


def test_mimic_exact_samples_default_frontal_views(tmp_path):
    d = write_mimic(tmp_path / "physionet.org/files/mimic-cxr-jpg/2.0.0")
    samples = MIMICCXR(tmp_path / "physionet.org/files/mimic-cxr-jpg").samples()  # the parent
    assert [s.id for s in samples] == [D1, D3, D4]  # LATERAL and blank ViewPosition are not PA/AP
    a, b, c = samples
    assert a.image == jpg(d, "10000032", "50414267", D1) and a.image.is_file()
    assert (a.patient, a.group, a.split, a.meta) == ("10000032", "50414267", "train", {"view": "PA"})
    assert same_labels(a.labels, lab(No_Finding=1.0))
    assert a.text == REPORT_SECTIONS
    assert (b.group, b.split, b.meta) == ("53189527", "train", {"view": "AP"})
    assert same_labels(b.labels, lab(Consolidation=-1.0, Edema=1.0, Pleural_Effusion=0.0, Pneumothorax=0.0,
                                     Support_Devices=1.0))
    assert b.text == section_text(NO_HEADERS)
    assert (c.patient, c.group, c.split) == ("11000011", "51234567", "val")  # validate -> val
    assert c.labels == {} and c.text == {}  # no labels row, no report


def test_mimic_views_option(tmp_path):
    d = write_mimic(tmp_path)
    every = MIMICCXR(d, views="all").samples()
    assert [(s.id, s.meta["view"]) for s in every] == [(D1, "PA"), (D2, "LATERAL"), (D3, "AP"), (D4, "PA"), (D5, None)]
    assert every[1].text == every[0].text and every[1].group == every[0].group  # same study, same report
    assert [s.id for s in MIMICCXR(d, views=["lateral"]).samples()] == [D2]
    assert [s.id for s in MIMICCXR(d, views="PA").samples()] == [D1, D4]
    with pytest.raises(ConfigError, match="views"):
        MIMICCXR(d, views=3).samples()


def test_mimic_negbio_labels_option(tmp_path):
    d = write_mimic(tmp_path, reports=None)
    negbio = [CHEX[0].replace(",1.0,", ",0.0,"), CHEX[1]]
    write_csv(d / "mimic-cxr-2.0.0-negbio.csv", CHEX_HEAD, negbio, gz=True)
    assert same_labels(MIMICCXR(d).samples()[0].labels, lab(No_Finding=1.0))  # chexpert by default
    assert same_labels(MIMICCXR(d, labels="negbio").samples()[0].labels, lab(No_Finding=0.0))
    with pytest.raises(ConfigError, match="labels"):
        MIMICCXR(d, labels="chexbert")
    (d / "mimic-cxr-2.0.0-negbio.csv.gz").unlink()
    with pytest.raises(DataError, match="none of the expected files exist: mimic-cxr-2.0.0-negbio.csv"):
        MIMICCXR(d, labels="negbio").samples()


def test_mimic_csv_gz_and_stray_spaces(tmp_path):
    spaced = dict(meta=META, chex=CHEX, split=SPLIT)
    d = write_mimic(tmp_path / "gz", gz=True, **spaced)
    head = (tmp_path / "gz/mimic-cxr-2.0.0-split.csv.gz")
    with gzip.open(head, "wt") as f:
        f.write("\n".join([" dicom_id , study_id,subject_id , split", *SPLIT]) + "\n")
    want = MIMICCXR(write_mimic(tmp_path / "plain")).samples()
    got = MIMICCXR(d).samples()
    assert [(s.id, s.split, s.text) for s in got] == [(s.id, s.split, s.text) for s in want]
    assert all(same_labels(a.labels, b.labels) for a, b in zip(got, want))


def test_mimic_reports_in_a_separate_tree_and_reports_root(tmp_path):
    d = write_mimic(tmp_path / "mimic", reports="mimic-cxr-reports/files")
    assert MIMICCXR(d).samples()[0].text == REPORT_SECTIONS
    other = write_mimic(tmp_path / "other", reports=None)
    assert MIMICCXR(other).samples()[0].text == {}
    assert MIMICCXR(other, reports_root=d / "mimic-cxr-reports").samples()[0].text == REPORT_SECTIONS
    assert MIMICCXR(other, reports_root=d / "mimic-cxr-reports/files").samples()[0].text == REPORT_SECTIONS
    assert MIMICCXR(other, reports_root=d).samples()[0].text == REPORT_SECTIONS  # the folder above mimic-cxr-reports/
    with pytest.raises(DataError, match="reports_root does not exist"):
        MIMICCXR(other, reports_root=tmp_path / "nope").samples()


def write_reports(files: Path, first: str = REPORT) -> None:
    """The two reports of the fixture, as ``mimic-cxr-reports.zip`` unzips them (no images, no CSVs)."""
    (files / "p10/p10000032").mkdir(parents=True, exist_ok=True)
    (files / "p10/p10000032/s50414267.txt").write_text(first)
    (files / "p10/p10000032/s53189527.txt").write_text(NO_HEADERS)


@pytest.mark.parametrize("unzipped", ["files", "mimic-cxr-reports/files"])
def test_mimic_reports_found_in_the_physionet_mimic_cxr_project_beside_the_jpg_one(tmp_path, unzipped):
    """``wget -r`` of both projects: the reports come with mimic-cxr, not mimic-cxr-jpg, so they sit in
    ``physionet.org/files/mimic-cxr/<version>/files`` next to ``.../mimic-cxr-jpg/<version>``."""
    files = tmp_path / "physionet.org" / "files"
    jpg = write_mimic(files / "mimic-cxr-jpg" / "2.1.0", reports=None)
    write_reports(files / "mimic-cxr" / "2.1.0" / unzipped)
    for top in (tmp_path / "physionet.org", files, jpg):
        samples = {s.id: s for s in MIMICCXR(top).samples()}
        assert samples[D1].text == REPORT_SECTIONS
        assert samples[D3].text == section_text(NO_HEADERS) == {"full report": "FINAL REPORT Portable chest: "
                                                                 "lines and tubes in standard position."}
        assert samples[D1].image == jpg / f"files/p10/p10000032/s50414267/{D1}.jpg"
    # another version of the reports project does not win over the JPG's own version
    write_reports(files / "mimic-cxr" / "2.2.0" / "files", first=NO_HEADERS)
    assert MIMICCXR(jpg).samples()[0].text == REPORT_SECTIONS


def test_mimic_reports_found_in_the_gsutil_copy_of_the_mimic_cxr_bucket(tmp_path):
    """``gsutil cp -r gs://mimic-cxr-jpg-2.1.0.physionet.org gs://mimic-cxr-2.0.0.physionet.org .``"""
    jpg = write_mimic(tmp_path / "mimic-cxr-jpg-2.1.0.physionet.org", reports=None)
    write_reports(tmp_path / "mimic-cxr-2.0.0.physionet.org" / "files")
    for top in (tmp_path, jpg):
        assert MIMICCXR(top).samples()[0].text == REPORT_SECTIONS


def test_mimic_reports_read_from_the_unextracted_physionet_zip(tmp_path):
    """``mimic-cxr-reports.zip`` as downloaded (members ``files/p10/p10000032/s50414267.txt``) is read in
    place, found beside the JPG project or given as reports_root; a text-mode read's newlines."""
    import zipfile

    files = tmp_path / "physionet.org" / "files"
    jpg = write_mimic(files / "mimic-cxr-jpg" / "2.1.0", reports=None)
    project = files / "mimic-cxr" / "2.1.0"
    project.mkdir(parents=True)
    with zipfile.ZipFile(project / "mimic-cxr-reports.zip", "w") as z:
        z.writestr("files/p10/p10000032/s50414267.txt", REPORT.replace("\n", "\r\n"))
        z.writestr("mimic-cxr-reports/files/p10/p10000032/s53189527.txt", NO_HEADERS)  # another prefix
    loader = MIMICCXR(tmp_path)
    samples = {s.id: s for s in loader.samples()}
    assert samples[D1].text == REPORT_SECTIONS and samples[D3].text == section_text(NO_HEADERS)
    assert loader.report_extra() == {"reports_folder": [str(project / "mimic-cxr-reports.zip")],
                                     "studies_without_report": 1}
    for given in (project / "mimic-cxr-reports.zip", project):
        assert MIMICCXR(jpg, reports_root=given).samples()[0].text == REPORT_SECTIONS
    (project / "broken").mkdir()
    (project / "broken" / "mimic-cxr-reports.zip").write_bytes(b"PK not a zip")
    with pytest.raises(DataError, match=r"mimic-cxr-reports.zip: cannot be read as a zip archive"):
        MIMICCXR(jpg, reports_root=project / "broken" / "mimic-cxr-reports.zip").samples()


@pytest.mark.parametrize("kind, rows, match", [
    ("split", [SPLIT[0].replace(",train", ",valid"), *SPLIT[1:]], r"split.csv, row 2, field 'split'.*'valid'"),
    ("split", SPLIT[1:], rf"dicom_id {D1} has no row in mimic-cxr-2.0.0-split.csv"),
    ("chex", [CHEX[0].replace(",1.0,", ",3.0,"), CHEX[1]], r"chexpert.csv, row 2, field 'No Finding'"),
    ("meta", [META[0].replace(",10000032,", ",p10000032,", 1), *META[1:]], r"metadata.csv, row 2, field 'subject_id'"),
])
def test_mimic_malformed_raise(tmp_path, kind, rows, match):
    d = write_mimic(tmp_path, **{kind: rows}, reports=None)
    with pytest.raises(DataError, match=match):
        MIMICCXR(d).samples()


# --------------------------------------------------------------------------- MS-CXR

MS_HEAD = "dicom_id,category_name,label_text,path,x,y,w,h,image_width,image_height"
MS_ROWS = [
    f"{D1},Pleural Effusion,bilateral pleural effusions,files/p10/p10000032/s50414267/{D1}.jpg,160,1600,480,320,2048,2560",
    f"{D1},Pleural Effusion,bilateral pleural effusions,files/p10/p10000032/s50414267/{D1}.jpg,1280,1680,560,400,2048,2560",
    f"{D1},cardiomegaly,Cardiomegaly,files/p10/p10000032/s50414267/{D1}.jpg,640,1200,800,640,2048,2560",
    f"{D4},Pneumothorax,small right apical pneumothorax,files/p11/p11000011/s51234567/{D4}.jpg,200,240,400,160,2048,2560",
]
SPLITS_V11 = {D1: "train", D4: "test"}


def write_mscxr(csv_dir: Path, mimic: Path, *, version="1.1.0", rows=MS_ROWS) -> Path:
    write_mimic(mimic, reports=None, image_size=(320, 256))  # 2048 x 2560 originals, 8x smaller files
    csv_dir.mkdir(parents=True, exist_ok=True)
    if version == "1.1.0":
        rows = [f"{r},{SPLITS_V11[r.split(',')[0]]}" for r in rows]
    (csv_dir / f"MS_CXR_Local_Alignment_v{version}.csv").write_text(
        "\n".join([MS_HEAD + (",split" if version == "1.1.0" else ""), *rows]) + "\n")
    return csv_dir


def test_mscxr_exact_samples_physionet_layout(tmp_path):
    base = tmp_path / "physionet.org/files"
    write_mscxr(base / "ms-cxr/1.1.0", base / "mimic-cxr-jpg/2.0.0")
    a, b = MSCXR(base / "ms-cxr").samples()
    assert a.id == D1 and a.image == jpg(base / "mimic-cxr-jpg/2.0.0", "10000032", "50414267", D1)
    assert (a.patient, a.group, a.split, a.boxes) == ("10000032", "50414267", "train", [])
    assert a.phrases == [
        Phrase("bilateral pleural effusions", (Box(20, 200, 80, 240, "Pleural Effusion"),
                                               Box(160, 210, 230, 260, "Pleural Effusion")), "Pleural Effusion"),
        Phrase("Cardiomegaly", (Box(80, 150, 180, 230, "Cardiomegaly"),), "Cardiomegaly"),
    ]
    assert (b.id, b.patient, b.split) == (D4, "11000011", "test")
    assert b.phrases == [Phrase("small right apical pneumothorax", (Box(25, 30, 75, 50, "Pneumothorax"),),
                                "Pneumothorax")]


def test_mscxr_v100_without_split_and_mimic_root_files(tmp_path):
    d = write_mscxr(tmp_path / "ms", tmp_path / "somewhere/mimic", version="1.0.0")
    samples = MSCXR(d, seed=5, mimic_root=tmp_path / "somewhere/mimic/files").samples()
    assert samples[0].image == jpg(tmp_path / "somewhere/mimic", "10000032", "50414267", D1)
    assert samples[0].phrases[1].boxes == (Box(80, 150, 180, 230, "Cardiomegaly"),)  # scaled: file was found
    expected = patient_split(["10000032", "11000011"], seed=5, val=0.1, test=0.3, salt="ms-cxr")
    assert [s.split for s in samples] == [expected["10000032"], expected["11000011"]]


def test_mscxr_images_in_the_root_itself(tmp_path):
    d = write_mscxr(tmp_path, tmp_path)
    assert MSCXR(d).samples()[1].image == jpg(tmp_path, "11000011", "51234567", D4)


@pytest.mark.parametrize("row, match", [
    (MS_ROWS[1].replace(",2048,2560", ",1024,2560"), r"row 3, field 'size'.*differs"),
    (MS_ROWS[0].replace(D1, D3).replace(",480,320,", ",0,320,"), r"row 6: box w, h"),
    (MS_ROWS[0].replace(D1, D3).replace("files/p10/p10000032/s50414267/", "images/"), r"row 6, field 'path'"),
    (MS_ROWS[0].replace(D1, D3).replace("files/p10", "../../p10"), r"row 6: image path .* escapes"),
])
def test_mscxr_malformed_raise(tmp_path, row, match):
    rows = [MS_ROWS[0], row, *MS_ROWS[2:]] if "differs" in match else [*MS_ROWS, row]
    d = write_mscxr(tmp_path / "ms", tmp_path / "mimic-cxr-jpg", version="1.0.0", rows=rows)
    with pytest.raises(DataError, match=match):
        MSCXR(d).samples()


# --------------------------------------------------------------------------- the phantom demos


def test_mimic_demo_layout_and_loading(tmp_path):
    MIMICCXR.write_demo(tmp_path, n=30, seed=0)
    for name in ("mimic-cxr-2.0.0-metadata.csv.gz", "mimic-cxr-2.0.0-chexpert.csv.gz", "mimic-cxr-2.0.0-split.csv.gz"):
        assert (tmp_path / name).is_file()
    with gzip.open(tmp_path / "mimic-cxr-2.0.0-metadata.csv.gz", "rt") as f:
        assert f.readline().strip() == META_HEAD
    every = MIMICCXR(tmp_path, views="all").samples()
    assert len(every) == 30 and all(s.image.is_file() for s in every)
    laterals = [s for s in every if s.meta["view"] == "LATERAL"]
    frontal = MIMICCXR(tmp_path).samples()
    assert laterals and len(frontal) == 30 - len(laterals)
    assert all(s.meta["view"] in ("PA", "AP") for s in frontal)
    assert {s.split for s in every} == {"train", "val", "test"}
    for s in laterals:  # a lateral shares its study's labels and report
        twin = next(f for f in frontal if f.group == s.group)
        assert same_labels(s.labels, twin.labels) and s.text == twin.text
    assert all({"findings", "impression", "examination", "indication"} <= set(s.text) for s in frontal)
    reports = list((tmp_path / "mimic-cxr-reports/files").rglob("s*.txt"))
    assert len(reports) == len(frontal)
    for r in reports:
        text = r.read_text()
        assert text.startswith(" " * 33 + "FINAL REPORT\n") and "\n FINDINGS: \n" in text and "\n IMPRESSION: \n" in text
        assert max(len(line) for line in text.splitlines()) <= 79


def test_mimic_demo_is_deterministic(tmp_path):
    MIMICCXR.write_demo(tmp_path / "a", n=24, seed=1)
    MIMICCXR.write_demo(tmp_path / "b", n=24, seed=1)
    for name in ("mimic-cxr-2.0.0-metadata.csv.gz", "mimic-cxr-2.0.0-chexpert.csv.gz"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_mscxr_demo_layout_and_loading(tmp_path):
    MSCXR.write_demo(tmp_path, n=24, seed=0)
    assert (tmp_path / "MS_CXR_Local_Alignment_v1.1.0.csv").read_text().splitlines()[0] == MS_HEAD + ",split"
    samples = MSCXR(tmp_path).samples()
    assert 0 < len(samples) <= 24 and all(s.image.is_file() and s.phrases for s in samples)
    mimic = {s.id: s for s in MIMICCXR(tmp_path).samples()}  # the MIMIC tree it sits on
    for s in samples:
        assert s.split == mimic[s.id].split and s.patient == mimic[s.id].patient
        for p in s.phrases:
            assert p.category in ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Lung Opacity",
                                  "Pleural Effusion", "Pneumonia", "Pneumothorax")
            # stated in 2048-px originals, scaled back to the 256-px files
            assert all(0 <= b.x0 < b.x1 <= 256 and 0 <= b.y0 < b.y1 <= 256 for b in p.boxes)


def test_mscxr_demo_phrases_are_worded_from_the_boxes():
    from types import SimpleNamespace

    from xrbench.data.datasets.ms_cxr import demo_phrases

    case = SimpleNamespace(image=np.zeros((256, 256)), findings={"Pleural Effusion": 0.5, "Pneumothorax": 0.1,
                                                                 "Nodule": 0.5, "Cardiomegaly": 0.9},
                           boxes=[("Pleural Effusion", 20, 180, 80, 230), ("Pleural Effusion", 170, 190, 230, 235),
                                  ("Pneumothorax", 180, 20, 230, 90), ("Nodule", 60, 60, 70, 70),
                                  ("Cardiomegaly", 90, 120, 190, 200)])
    assert demo_phrases(case) == [
        ("moderate bilateral pleural effusions", "Pleural Effusion", [(20, 180, 80, 230), (170, 190, 230, 235)]),
        ("small left apical pneumothorax", "Pneumothorax", [(180, 20, 230, 90)]),  # image right = patient left
        ("severe cardiomegaly", "Cardiomegaly", [(90, 120, 190, 200)]),
    ]


def test_mscxr_finds_a_mimic_cxr_jpg_sibling(tmp_path):
    write_mscxr(tmp_path / "ms-cxr", tmp_path / "mimic-cxr-jpg-2.0.0")
    assert MSCXR(tmp_path / "ms-cxr").samples()[0].image == jpg(tmp_path / "mimic-cxr-jpg-2.0.0", "10000032",
                                                               "50414267", D1)


def test_images_without_reports_are_reported_and_a_report_task_says_why_it_has_nothing(tmp_path):
    from xrbench.families import create_family
    from xrbench.families.base import kept_rows
    from xrbench.tasks.catalog import TaskCatalog

    with_reports = MIMICCXR(write_mimic(tmp_path / "with", reports="mimic-cxr-reports/files"))
    assert with_reports.report_extra() == {"reports_folder": [str(tmp_path / "with" / "mimic-cxr-reports" / "files")],
                                           "studies_without_report": 1}  # the fixture's study c has none
    bare = MIMICCXR(write_mimic(tmp_path / "bare", reports=None))
    assert bare.report_extra() == {"reports_folder": ["not found (see docs/datasets.md)"],
                                   "studies_without_report": len({s.group for s in bare.samples()})}
    for task in ("mimic-report-generation", "mimic-report-retrieval"):
        family = create_family(TaskCatalog().resolve(task)[0])
        with pytest.raises(DataError, match=r"has no samples with a report \(a FINDINGS or IMPRESSION section; "
                                            r"were the reports found\? see docs/datasets.md\)"):
            kept_rows(family, bare.samples(), "train", bare.root)
        assert kept_rows(family, with_reports.samples(), "train", with_reports.root)
