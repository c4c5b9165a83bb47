import pytest

from xrbench.registry import Registry, UnknownNameError


def test_unknown_name_lists_close_matches():
    reg = Registry("model")
    for n in ("xr0", "cxr0", "mxr0", "efficientnet-lite0-imagenet"):
        reg.add(n, object())
    with pytest.raises(UnknownNameError) as e:
        reg.get("xr1")
    assert e.value.suggestions[:1] == ["xr0"]
    assert "Did you mean: xr0" in str(e.value)
    with pytest.raises(UnknownNameError) as e:
        reg.get("efficientnet")
    assert "efficientnet-lite0-imagenet" in e.value.suggestions


def test_duplicate_registration_is_an_error():
    reg = Registry("dataset")
    reg.add("a", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.add("a", 2)
    reg.add("a", 3, overwrite=True)
    assert reg.get("a") == 3


def test_every_family_of_the_schema_has_a_module_that_registers_it():
    import typing

    from xrbench.families import FAMILY_MODULES, family_class
    from xrbench.tasks.schema import TaskSpec

    names = typing.get_args(TaskSpec.model_fields["family"].annotation)
    assert set(names) == set(FAMILY_MODULES)
    for name in names:
        assert family_class(name).__module__ == f"xrbench.families.{FAMILY_MODULES[name]}"
