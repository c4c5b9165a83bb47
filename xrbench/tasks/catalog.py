"""Finding task and suite files: the packaged ones, plus any ``--include`` folders.

Task YAMLs live in the top-level ``tasks/`` folder (and ``tasks/suites/``); a wheel carries them
as ``xrbench/task_definitions`` (setup.py), so a plain install finds them as a checkout does. A user's ``--include DIR`` adds (or overrides) tasks and suites
without touching the package, as lm-evaluation-harness does.
"""
from __future__ import annotations

from pathlib import Path

from xrbench.errors import ConfigError
from xrbench.registry import Registry, UnknownNameError, closest
from xrbench.tasks.schema import TaskSpec, check_metrics, load_task_file, read_yaml

def packaged_tasks() -> Path:
    """The task YAMLs: ``tasks/`` of a checkout (editable installs too), else the copy a wheel
    installs as ``xrbench/task_definitions``."""
    pkg = Path(__file__).resolve().parents[1]
    checkout = pkg.parent / "tasks"
    if (checkout / "suites").is_dir() and (pkg.parent / "pyproject.toml").is_file():
        return checkout
    return pkg / "task_definitions"


PACKAGED = packaged_tasks()


class TaskCatalog:
    def __init__(self, include: list[str | Path] | None = None):
        self.tasks: Registry = Registry("task")
        self.suites: dict[str, list[str]] = {}
        self._suite_files: dict[str, Path] = {}
        for folder in [PACKAGED, *[Path(p) for p in include or []]]:
            self._scan(folder, user=folder != PACKAGED)
        for suite, names in self.suites.items():  # after every folder: a suite may name an included task
            for n in names:
                if n not in self.tasks:
                    known = self.tasks.names()
                    raise ConfigError(f"{self._suite_files[suite]}: key 'tasks': "
                                      f"{UnknownNameError('task', n, closest(n, known), known)}")

    def _scan(self, folder: Path, user: bool) -> None:
        if not folder.is_dir():
            raise ConfigError(f"{folder}: --include folder does not exist")
        for path in sorted(folder.glob("*.yaml")):
            spec = load_task_file(path)
            if spec.name != path.stem:
                raise ConfigError(f"{path}: key 'name' is {spec.name!r}; it must equal the file name "
                                  f"'{path.stem}'")
            self.tasks.add(spec.name, spec, overwrite=user)
        suites = folder / "suites"
        for path in sorted(suites.glob("*.yaml")) if suites.is_dir() else []:
            data = read_yaml(path)
            if not isinstance(data, dict) or set(data) - {"name", "description", "tasks"} or \
                    not isinstance(data.get("tasks"), list):
                raise ConfigError(f"{path}: a suite file has keys name, description, tasks (a list)")
            name = str(data.get("name", path.stem))
            self.suites[name] = [str(t) for t in data["tasks"]]
            self._suite_files[name] = path

    def resolve(self, selector: str) -> list[TaskSpec]:
        """``all``, a suite name, a task name, or a comma-separated list of those.

        Every selected task's metrics are checked here, so a typo in the third task of a list
        fails before the first one runs.
        """
        out: list[TaskSpec] = []
        for part in [p.strip() for p in selector.split(",") if p.strip()]:
            if part in self.suites:
                names = self.suites[part]
            elif part in self.tasks:
                names = [part]
            else:
                known = self.tasks.names() + sorted(self.suites)
                raise UnknownNameError("task", part, closest(part, known), known)
            for n in names:
                spec = self.tasks.get(n)
                if spec not in out:
                    check_metrics(spec)
                    out.append(spec)
        return out
