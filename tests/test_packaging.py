"""A plain (non-editable) wheel carries the task and suite YAMLs that the catalog finds."""
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_contains_every_task_and_suite(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next(tmp_path.glob("xrbench-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    packaged = {p.relative_to(ROOT).as_posix() for p in (ROOT / "xrbench" / "tasks").rglob("*.yaml")}
    assert packaged and packaged <= names, sorted(packaged - names)
    assert "xrbench/tasks/suites/all.yaml" in names
