import pytest

from xrbench.errors import ConfigError
from xrbench.registry import UnknownNameError
from xrbench.tasks.catalog import TaskCatalog

GOOD = """name: my-task
version: 1
description: a user task
dataset: chexpert
family: linear
target: {type: multilabel, labels: [Edema]}
protocol: {name: linear}
metrics: [auroc_macro]
primary: {metric: auroc_macro}
"""


def test_packaged_tasks_and_all_suite_load():
    cat = TaskCatalog()
    specs = cat.resolve("all")
    assert {"chexpert-linear", "chexpert-knn"} <= {s.name for s in specs}
    assert all(s.version >= 1 for s in specs)


def test_unknown_key_and_wrong_type_name_file_and_key(tmp_path):
    (tmp_path / "my-task.yaml").write_text(GOOD + "colour: blue\n")
    with pytest.raises(ConfigError, match=r"my-task\.yaml.*key 'colour': unknown key"):
        TaskCatalog([tmp_path])
    (tmp_path / "my-task.yaml").write_text(GOOD.replace("primary:", "primry:", 1))
    with pytest.raises(ConfigError, match=r"key 'primry': unknown key\. Did you mean: primary\?"):
        TaskCatalog([tmp_path])
    (tmp_path / "my-task.yaml").write_text(GOOD.replace("version: 1", "version: one"))
    with pytest.raises(ConfigError, match=r"my-task\.yaml.*key 'version'"):
        TaskCatalog([tmp_path])


def test_include_adds_user_tasks_and_suites(tmp_path):
    (tmp_path / "my-task.yaml").write_text(GOOD)
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "mine.yaml").write_text("name: mine\ntasks: [my-task, chexpert-knn]\n")
    cat = TaskCatalog([tmp_path])
    assert [s.name for s in cat.resolve("mine")] == ["my-task", "chexpert-knn"]


def test_unknown_task_suggests():
    with pytest.raises(UnknownNameError, match="chexpert-linear"):
        TaskCatalog().resolve("chexpert-linaer")
