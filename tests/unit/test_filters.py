"""The filter SPI: declarations, the boolean-mask contract, failure policy, topics, registry."""

from __future__ import annotations

import dataclasses
import doctest
import logging
from importlib.metadata import EntryPoint, entry_points

import numpy as np
import pandas as pd
import pytest

from fink_broker.plugins import (
    FILTER_GROUP,
    AlertFilter,
    ContractError,
    FailurePolicy,
    PluginError,
    alert_filter,
    describe_filters,
    discover,
    discover_filters,
    filters_for,
    modules_for,
    published_columns,
    run_filter,
    run_filter_with_policy,
    topic_name,
)
from fink_broker.plugins import filters as filters_mod
from fink_broker.plugins import registry as registry_mod
from fink_broker.surveys import SURVEYS, get_adapter
from fink_broker.surveys.fields import CANONICAL_NAMES

BUILT_INS = {"sso_candidates", "new_transients", "bright_transients", "variable_star_brightening"}


def make(fn, *, name="f", inputs=("mag",), publish=None, surveys=None) -> AlertFilter:
    return alert_filter(
        name=name, version="1.0", inputs=list(inputs), publish=publish, surveys=surveys
    )(fn)


@pytest.fixture
def frame() -> pd.DataFrame:
    # a non-default index: a filter must return the caller's index, not a fresh RangeIndex
    return pd.DataFrame(
        {"mag": [15.0, 19.0, np.nan], "band": ["g", "r", "r"], "secret": [1, 2, 3]},
        index=[10, 20, 30],
    )


# ---------------------------------------------------------------------------------------
# Declarations


def test_decorator_builds_a_frozen_declaration_with_the_docstring_as_description():
    def bright(df: pd.DataFrame) -> pd.Series:
        """Brighter than 16 mag.

        Longer explanation that is not part of the description.
        """
        return df["mag"] < 16

    f = alert_filter(name="bright", version=2, inputs=["mag"], surveys=["ztf"])(bright)
    assert isinstance(f, AlertFilter)
    assert (f.name, f.version, f.description) == ("bright", "2", "Brighter than 16 mag.")
    assert f.inputs == ("mag",) and f.publish is None and f.surveys == ("ztf",)
    assert f.supports("ztf") and not f.supports("rubin")
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.name = "other"  # type: ignore[misc]
    explicit = alert_filter(name="b", version="1", inputs=["mag"], description="given")(bright)
    assert explicit.description == "given"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "has space"}, "plain identifier"),
        ({"name": "fink.dots"}, "plain identifier"),
        ({"version": ""}, "empty version"),
        ({"inputs": ["mag", "mag"]}, "duplicate input"),
        ({"publish": []}, "publish=()"),
        ({"publish": ["mag", "mag"]}, "duplicate publish"),
        ({"surveys": []}, "surveys=()"),
    ],
)
def test_invalid_declarations_fail_at_import_time(kwargs, message):
    arguments = {"name": "ok", "version": "1.0", "inputs": ["mag"]} | kwargs
    with pytest.raises(ValueError, match=message):
        alert_filter(**arguments)(lambda df: df["mag"] > 0)


def test_topic_names_follow_fink_convention():
    f = make(lambda df: df["mag"] > 0, name="sn_candidates")
    assert topic_name(f, "ztf") == "fink_sn_candidates_ztf"
    assert topic_name(f, get_adapter("rubin").topic_suffix) == "fink_sn_candidates_lsst"
    assert topic_name("x", "ztf", prefix="test_") == "test_x_ztf"
    for bad in ("", "z t f", "ztf/1"):
        with pytest.raises(ValueError, match="legal Kafka topic"):
            topic_name(f, bad)
    with pytest.raises(ValueError, match="legal Kafka topic"):
        topic_name("a" * 250, "ztf")


# ---------------------------------------------------------------------------------------
# The contract


def test_filter_sees_exactly_its_inputs_and_returns_a_named_bool_mask(frame):
    seen: list[list[str]] = []

    def bright(df: pd.DataFrame) -> pd.Series:
        seen.append(list(df.columns))
        return df["mag"] < 16

    f = make(bright, name="bright", inputs=["band", "mag"])
    mask = run_filter(f, frame)
    assert seen == [["band", "mag"]]
    assert mask.dtype == bool and mask.name == "bright"
    assert mask.index.equals(frame.index)
    assert mask.tolist() == [True, False, False]
    assert f(frame).equals(mask)  # calling the declaration runs the checked path


def test_nullable_boolean_nulls_count_as_not_selected(frame):
    def maybe(df: pd.DataFrame) -> pd.Series:
        return pd.Series([True, pd.NA, False], index=df.index, dtype="boolean")

    mask = run_filter(make(maybe), frame)
    assert mask.dtype == bool
    assert mask.tolist() == [True, False, False]


@pytest.mark.parametrize(
    ("function", "message"),
    [
        (lambda df: (df["mag"] < 16).to_numpy(), "returned ndarray, not a Series"),
        (lambda df: (df["mag"] < 16).to_frame(), "returned DataFrame, not a Series"),
        (lambda df: (df["mag"] < 16).astype(float), "dtype float64, not bool"),
        (lambda df: (df["mag"] < 16).astype(int), "dtype int64, not bool"),
        (lambda df: (df["mag"] < 16).astype(object), "dtype object, not bool"),
        (lambda df: df["mag"].map({15.0: "yes"}), "dtype object, not bool"),
        (lambda df: (df["mag"] < 16).iloc[:2], "2 output rows for 3 input rows"),
        (lambda df: (df["mag"] < 16).reset_index(drop=True), "index differs"),
        (lambda df: (df["mag"] < 16).iloc[::-1], "index differs"),
    ],
)
def test_contract_violations_raise(frame, function, message):
    with pytest.raises(ContractError, match=message):
        run_filter(make(function), frame)


def test_missing_and_undeclared_inputs_are_contract_errors(frame):
    with pytest.raises(ContractError, match=r"input columns \['flux'\] are missing"):
        run_filter(make(lambda df: df["flux"] > 0, inputs=["flux"]), frame)
    # 'secret' exists in the alert but is not declared: the filter must not depend on it
    sneaky = make(lambda df: df["secret"] > 1, inputs=["mag"])
    with pytest.raises(ContractError, match="reads column 'secret', which it does not declare"):
        run_filter(sneaky, frame)


def test_an_unrelated_key_error_is_the_filters_own_bug(frame):
    def buggy(df: pd.DataFrame) -> pd.Series:
        return df["mag"] > {"threshold": 1}["limit"]

    with pytest.raises(KeyError, match="limit"):
        run_filter(make(buggy), frame)


def test_failure_policy(frame, caplog):
    def broken(df: pd.DataFrame) -> pd.Series:
        raise RuntimeError("model file missing")

    f = make(broken, name="broken")
    with pytest.raises(RuntimeError, match="model file missing"):
        run_filter_with_policy(f, frame, FailurePolicy.FAIL)
    with caplog.at_level(logging.ERROR, logger="fink_broker.plugins.filters"):
        mask, failed = run_filter_with_policy(f, frame, "null_and_count")
    assert failed == 3
    assert mask.dtype == bool and not mask.any() and mask.index.equals(frame.index)
    assert "filter broken 1.0 failed on a batch of 3 rows" in caplog.text
    # a contract breach is a failure like any other under null_and_count...
    bad = make(lambda df: df["mag"].astype(float))
    assert run_filter_with_policy(bad, frame, "null_and_count")[1] == 3
    # ...but missing inputs are a deployment error and always raise
    with pytest.raises(ContractError, match="missing"):
        run_filter_with_policy(make(broken, inputs=["flux"]), frame, "null_and_count")
    ok, failed = run_filter_with_policy(make(lambda df: df["mag"] < 16), frame, "null_and_count")
    assert failed == 0 and ok.tolist() == [True, False, False]


def test_published_columns(frame):
    columns = list(frame.columns)
    assert published_columns(make(lambda df: df["mag"] > 0), columns) == columns
    subset = make(lambda df: df["mag"] > 0, publish=["mag", "band"])
    assert published_columns(subset, columns) == ["mag", "band"]
    typo = make(lambda df: df["mag"] > 0, publish=["mag", "bnad"])
    with pytest.raises(ContractError, match=r"publish columns \['bnad'\] are missing"):
        published_columns(typo, columns)


# ---------------------------------------------------------------------------------------
# Registry and listing


def test_builtin_filters_are_registered_as_entry_points():
    points = {e.name: e.value for e in entry_points(group=FILTER_GROUP)}
    assert set(points) >= BUILT_INS
    for name in BUILT_INS:
        assert points[name] == f"fink_broker.filters.{name}:{name}"
    found = discover_filters()
    assert set(found) >= BUILT_INS
    assert list(found) == sorted(found)
    for name, f in found.items():
        assert isinstance(f, AlertFilter) and f.name == name


@pytest.mark.parametrize("survey", SURVEYS)
def test_builtins_serve_every_survey_and_read_only_declared_columns(survey):
    """Each built-in reads canonical columns or outputs of the modules run for the survey."""
    available = set(CANONICAL_NAMES)
    for module in modules_for(survey, discover()):
        available |= set(module.output_names)
    names = {f.name for f in filters_for(survey)}
    assert names >= BUILT_INS
    for f in filters_for(survey):
        if f.name not in BUILT_INS:
            continue
        assert f.surveys is None, f"{f.name} should serve every survey"
        assert f.description, f"{f.name} has no description"
        unknown = [c for c in f.inputs if c not in available]
        assert not unknown, f"{f.name} reads {unknown}: neither canonical nor produced"


def _fake_points(monkeypatch, *entries: tuple[str, str]) -> None:
    points = [EntryPoint(name, value, "test.filters") for name, value in entries]
    # filters are discovered by the registry shared with science modules
    monkeypatch.setattr(registry_mod, "entry_points", lambda group: points)


def test_entry_point_errors_name_the_plugin(monkeypatch):
    _fake_points(
        monkeypatch, ("sso_candidates", "fink_broker.filters.bright_transients:bright_transients")
    )
    with pytest.raises(PluginError, match="names filter 'bright_transients'"):
        discover_filters("test.filters")
    _fake_points(monkeypatch, ("bad", "fink_broker.filters.bright_transients:BRIGHT_MAG"))
    with pytest.raises(PluginError, match="is a float, not an AlertFilter"):
        discover_filters("test.filters")
    _fake_points(monkeypatch, ("module", "fink_broker.science.solar_system:solar_system"))
    with pytest.raises(PluginError, match="is a ScienceModule, not an AlertFilter"):
        discover_filters("test.filters")
    _fake_points(monkeypatch, ("gone", "no_such_package.mod:thing"))
    with pytest.raises(PluginError, match="cannot load entry point 'gone'"):
        discover_filters("test.filters")
    assert discover_filters("test.filters", skip_broken=True) == {}
    _fake_points(
        monkeypatch,
        ("gone", "no_such_package.mod:thing"),
        ("sso_candidates", "fink_broker.filters.sso_candidates:sso_candidates"),
    )
    assert list(discover_filters("test.filters", skip_broken=True)) == ["sso_candidates"]


def test_filters_for_selects_by_survey_and_sorts():
    z = make(lambda df: df["mag"] > 0, name="z_only", surveys=["ztf"])
    a = make(lambda df: df["mag"] > 0, name="a_all")
    assert [f.name for f in filters_for("ztf", [z, a])] == ["a_all", "z_only"]
    assert [f.name for f in filters_for("rubin", {"z_only": z, "a_all": a})] == ["a_all"]


def test_describe_filters_lists_topics_inputs_and_publish():
    z = make(lambda df: df["mag"] > 0, name="z_only", surveys=["ztf"], publish=["mag"])
    z = dataclasses.replace(z, description="Only for ZTF.")
    a = make(lambda df: df["mag"] > 0, name="a_all", inputs=["mag", "band"])
    text = describe_filters([z, a], suffixes={"ztf": "ztf", "rubin": "lsst"})
    assert text.index("a_all 1.0") < text.index("z_only 1.0")
    assert "a_all 1.0  [surveys: all]" in text
    assert "  topics: fink_a_all_ztf, fink_a_all_lsst" in text
    assert "  inputs: mag, band" in text and "  publish: whole alert" in text
    assert "z_only 1.0  [surveys: ztf]\n  Only for ZTF.\n  topics: fink_z_only_ztf\n" in text
    assert "  publish: mag" in text
    # default suffixes come from the survey adapters; default filters from the entry points
    listing = describe_filters()
    for name in BUILT_INS:
        assert f"topics: fink_{name}_ztf, fink_{name}_lsst" in listing


def test_doctests_of_the_spi():
    """The examples in the SPI's docstrings are part of its documentation: keep them true."""
    result = doctest.testmod(filters_mod, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 3 and result.failed == 0
