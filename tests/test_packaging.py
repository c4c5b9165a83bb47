"""A plain (non-editable) wheel carries the task and suite YAMLs of the top-level tasks/ folder,
and an install of it resolves the suite from outside the checkout."""
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_installed_wheel_carries_every_task_and_resolves_all_outside_the_checkout(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next(tmp_path.glob("xrbench-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    tasks = {f"xrbench/task_definitions/{p.relative_to(ROOT / 'tasks').as_posix()}"
             for p in (ROOT / "tasks").rglob("*.yaml")}
    assert tasks and tasks <= names, sorted(tasks - names)
    assert not any(n.startswith("tasks/") for n in names)  # no top-level 'tasks' package in site-packages

    target = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                           str(wheel)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("import xrbench; from xrbench.tasks.catalog import TaskCatalog, PACKAGED; "
            "print(xrbench.__file__); print(PACKAGED); print(len(TaskCatalog().resolve('all')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, capture_output=True, text=True,
                         env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    module, packaged, n = out.stdout.split()
    assert module.startswith(str(target)) and packaged.startswith(str(target))
    assert int(n) == len(list((ROOT / "tasks").glob("*.yaml")))
