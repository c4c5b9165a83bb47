"""Finding task and suite files: the packaged ones, plus any ``--include`` folders.

Task YAMLs live inside the package (``xrbench/tasks/*.yaml``) so a plain wheel install finds
them exactly as a checkout does. A user's ``--include DIR`` adds (or overrides) tasks and suites
without touching the package, as lm-evaluation-harness does.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from xrbench.errors import ConfigError
from xrbench.registry import Registry, UnknownNameError, closest
from xrbench.tasks.schema import TaskSpec, load_task_file

PACKAGED = Path(__file__).parent


class TaskCatalog:
    def __init__(self, include: list[str | Path] | None = None):
        self.tasks: Registry = Registry("task")
        self.suites: dict[str, list[str]] = {}
        for folder in [PACKAGED, *[Path(p) for p in include or []]]:
            self._scan(folder, user=folder != PACKAGED)

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
            data = yaml.safe_load(path.read_text())
            if not isinstance(data, dict) or set(data) - {"name", "description", "tasks"} or \
                    not isinstance(data.get("tasks"), list):
                raise ConfigError(f"{path}: a suite file has keys name, description, tasks (a list)")
            self.suites[data.get("name", path.stem)] = [str(t) for t in data["tasks"]]

    def resolve(self, selector: str) -> list[TaskSpec]:
        """``all``, a suite name, a task name, or a comma-separated list of those."""
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
                    out.append(spec)
        return out
