"""The uncertainty / blank-label policies applied by tasks to raw CheXpert-style labels."""
import math
from pathlib import Path

import pytest

from xrbench.data.labels import apply_uncertainty, parse_chexpert_value
from xrbench.errors import ConfigError, DataError

NAN = math.nan
RAW = {"a": 1.0, "b": 0.0, "c": -1.0, "d": NAN}


def same(x: dict, y: dict) -> bool:
    return x.keys() == y.keys() and all((x[k] == y[k]) or (x[k] != x[k] and y[k] != y[k]) for k in x)


@pytest.mark.parametrize("policy, blank, expected", [
    ("ignore", "negative", {"a": 1.0, "b": 0.0, "c": NAN, "d": 0.0}),
    ("ones", "negative", {"a": 1.0, "b": 0.0, "c": 1.0, "d": 0.0}),
    ("zeros", "negative", {"a": 1.0, "b": 0.0, "c": 0.0, "d": 0.0}),
    ("ignore", "ignore", {"a": 1.0, "b": 0.0, "c": NAN, "d": NAN}),
    ("ones", "ignore", {"a": 1.0, "b": 0.0, "c": 1.0, "d": NAN}),
    ("zeros", "ignore", {"a": 1.0, "b": 0.0, "c": 0.0, "d": NAN}),
])
def test_policies(policy, blank, expected):
    before = dict(RAW)
    assert same(apply_uncertainty(RAW, policy, blank), expected)
    assert same(RAW, before)  # pure: the input is not modified


def test_default_blank_is_negative():
    assert same(apply_uncertainty(RAW, "ignore"), {"a": 1.0, "b": 0.0, "c": NAN, "d": 0.0})


@pytest.mark.parametrize("policy, blank", [("U-ones", "negative"), ("ones", "zero"), ("", "ignore")])
def test_unknown_policy_is_a_config_error(policy, blank):
    with pytest.raises(ConfigError, match="policy"):
        apply_uncertainty(RAW, policy, blank)


@pytest.mark.parametrize("cell, value", [("1.0", 1.0), ("1", 1.0), ("0.0", 0.0), ("-1.0", -1.0), (" -1 ", -1.0)])
def test_parse_states(cell, value):
    assert parse_chexpert_value(cell, path=Path("x.csv"), row=2, field="Edema") == value


@pytest.mark.parametrize("cell", [None, "", "  ", NAN])
def test_parse_blank(cell):
    assert math.isnan(parse_chexpert_value(cell, path=Path("x.csv"), row=2, field="Edema"))


@pytest.mark.parametrize("cell", ["2.0", "0.5", "yes"])
def test_parse_rejects_other_values(cell):
    with pytest.raises(DataError, match=r"x.csv, row 7, field 'Edema'"):
        parse_chexpert_value(cell, path=Path("x.csv"), row=7, field="Edema")
