"""The science-module SPI: declarations, contract checks, failure policy, registry."""

from __future__ import annotations

import logging
from decimal import Decimal
from importlib.metadata import EntryPoint

import numpy as np
import pandas as pd
import pytest

from fink_broker.plugins import (
    ColumnSpec,
    ContractError,
    FailurePolicy,
    PluginError,
    ScienceModule,
    describe_modules,
    discover,
    modules_for,
    null_series,
    resolve_order,
    run_module,
    run_with_policy,
    science_module,
)
from fink_broker.plugins import registry as registry_mod
from fink_broker.plugins.columns import SCALAR_DTYPES, _object_incompatibility, incompatibility

BUILT_INS = {"solar_system", "xmatch", "lc_features_ztf", "lc_features_rubin", "provenance"}


def make(fn, *, inputs=("mag",), outputs=(("out", "double"),), name="m", surveys=None):
    return science_module(
        name=name, version="1.0", inputs=list(inputs), outputs=list(outputs), surveys=surveys
    )(fn)


@pytest.fixture
def frame() -> pd.DataFrame:
    # a non-default index: modules must keep it, not renumber rows
    return pd.DataFrame({"mag": [18.0, 19.5, 20.0], "other": [1, 2, 3]}, index=[10, 11, 12])


# ----------------------------------------------------------------------------- declarations


def test_column_spec_validates_dtype_and_name():
    assert ColumnSpec("a", "Array< Double >").dtype == "array<double>"
    with pytest.raises(ValueError, match="dtype 'map<string,int>'"):
        ColumnSpec("a", "map<string,int>")
    with pytest.raises(ValueError, match="not a plain identifier"):
        ColumnSpec("a.b", "double")


def test_decorator_builds_a_frozen_module_with_docstring_description():
    @science_module(name="twice", version=2, inputs=["mag"], outputs=[("m2", "double", "mag")])
    def twice(df: pd.DataFrame) -> pd.DataFrame:
        """Twice the magnitude.

        Not part of the description."""
        return pd.DataFrame({"m2": df["mag"] * 2}, index=df.index)

    assert isinstance(twice, ScienceModule)
    assert twice.version == "2"
    assert twice.description == "Twice the magnitude."
    assert twice.outputs == (ColumnSpec("m2", "double", "mag"),)
    assert twice.supports("ztf") and twice.supports("rubin")
    with pytest.raises(AttributeError):
        twice.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"inputs": ["a", "a"]}, "duplicate input"),
        ({"outputs": [("o", "int"), ("o", "int")]}, "duplicate output"),
        ({"inputs": ["o"]}, "inputs and outputs"),
        ({"outputs": []}, "no output"),
        ({"surveys": []}, "never run"),
        ({"name": "has space"}, "identifier"),
    ],
)
def test_bad_declarations_fail_at_import_time(kwargs, message):
    args = {"name": "m", "version": "1", "inputs": ["a"], "outputs": [("o", "int")]}
    with pytest.raises(ValueError, match=message):
        science_module(**{**args, **kwargs})(len)


# ----------------------------------------------------------------------------- contract


def test_module_sees_only_its_inputs_and_output_is_reordered(frame):
    seen = []

    def fn(df):
        seen.append(list(df.columns))
        return pd.DataFrame({"b": df["mag"] + 1, "a": df["mag"].astype(str)}, index=df.index)

    module = make(fn, outputs=[("a", "string"), ("b", "double")])
    out = run_module(module, frame)
    assert seen == [["mag"]]
    assert list(out.columns) == ["a", "b"]
    assert out.index.equals(frame.index)


def test_missing_input_is_named(frame):
    module = make(lambda df: df, inputs=["mag", "flux"])
    with pytest.raises(ContractError, match=r"\['flux'\] are missing"):
        run_module(module, frame)


def test_undeclared_and_missing_outputs_are_named(frame):
    module = make(lambda df: pd.DataFrame({"surprise": df["mag"]}, index=df.index))
    with pytest.raises(
        ContractError, match=r"undeclared output columns \['surprise'\], missing \['out'\]"
    ):
        run_module(module, frame)


def test_wrong_length_and_index_are_rejected(frame):
    short = make(lambda df: pd.DataFrame({"out": [1.0]}))
    with pytest.raises(ContractError, match="1 output rows for 3 input rows"):
        run_module(short, frame)
    renumbered = make(lambda df: pd.DataFrame({"out": df["mag"].to_numpy()}))
    with pytest.raises(ContractError, match="index differs"):
        run_module(renumbered, frame)


def test_non_dataframe_result_is_rejected(frame):
    with pytest.raises(ContractError, match="returned Series"):
        run_module(make(lambda df: df["mag"]), frame)


@pytest.mark.parametrize(
    ("dtype", "values", "ok"),
    [
        ("double", [1.0, np.nan, 3.0], True),
        ("double", [1, 2, 3], True),
        ("double", ["1.0", None, None], False),
        ("int", [1, 2, 3], True),
        ("int", pd.array([1, None, 3], dtype="Int32"), True),
        ("int", [1.5, 2.0, 3.0], False),
        ("int", [2**40, 1, 1], False),
        ("long", [2**40, 1, 1], True),
        ("string", ["a", None, "c"], True),
        ("string", ["a", 1, "c"], False),
        ("boolean", [True, False, None], True),
        ("boolean", [1, 0, 1], False),
        ("array<double>", [np.array([1.0, np.nan]), None, [2.0]], True),
        ("array<double>", [[1.0], ["x"], None], False),
        ("array<string>", [["g", "r"], [], None], True),
        ("array<string>", [1.0, 2.0, 3.0], False),
        ("timestamp", pd.to_datetime([0, 1, 2], unit="s", utc=True), True),
        ("timestamp", [1.0, 2.0, 3.0], False),
    ],
)
def test_output_dtype_compatibility(frame, dtype, values, ok):
    module = make(
        lambda df: pd.DataFrame({"out": pd.Series(values, index=df.index)}, index=df.index),
        outputs=[("out", dtype)],
    )
    if ok:
        run_module(module, frame)
    else:
        with pytest.raises(ContractError, match=rf"column 'out' \({dtype}\)"):
            run_module(module, frame)


@pytest.mark.parametrize("dtype", sorted(SCALAR_DTYPES))
def test_inferred_object_check_agrees_with_the_value_by_value_check(dtype):
    """The fast path may only clear object columns that the exact check clears too."""
    samples = [
        ["a", None, np.nan, pd.NA],
        ["a", np.str_("b")],
        ["a", 1],
        [None, None],
        [1.0, 2, None],
        [np.float32(1.5), np.nan],
        [True, None],
        [1, True],
        [np.int64(3), 2**40],
        [1, 2**70],
        [pd.Timestamp("2020-01-01", tz="UTC"), None],
        [np.datetime64("2020-01-01")],
        ["a", pd.NaT],
        [Decimal("1.5")],
        [[1.0], None],
    ]
    spec = ColumnSpec("c", dtype)
    for values in samples:
        series = pd.Series(values, dtype=object)
        fast = incompatibility(series, spec) is None
        assert fast == (_object_incompatibility(series, spec) is None), (dtype, values)


def test_null_series_has_the_declared_type():
    index = pd.Index([4, 5])
    for dtype in (
        "boolean",
        "int",
        "long",
        "float",
        "double",
        "string",
        "timestamp",
        "array<double>",
    ):
        spec = ColumnSpec("c", dtype)
        series = null_series(spec, index)
        assert series.isna().all() and series.index.equals(index)
        assert incompatibility(series, spec) is None, dtype


# ----------------------------------------------------------------------------- failure policy


def boom(df):
    raise RuntimeError("model file is corrupt")


def test_fail_policy_reraises_the_module_error(frame):
    with pytest.raises(RuntimeError, match="corrupt"):
        run_with_policy(make(boom), frame, FailurePolicy.FAIL)


def test_null_and_count_fills_nulls_counts_rows_and_logs(frame, caplog):
    module = make(boom, name="fragile", outputs=[("flag", "int"), ("label", "string")])
    with caplog.at_level(logging.ERROR, logger="fink_broker.plugins.module"):
        out, failed = run_with_policy(module, frame, "null_and_count")
    assert failed == 3
    assert list(out.columns) == ["flag", "label"] and out.index.equals(frame.index)
    assert out.isna().all().all()
    assert str(out["flag"].dtype) == "Int32"
    message = caplog.records[-1].getMessage()
    assert "fragile" in message and "RuntimeError" in message and "corrupt" in message


def test_null_and_count_also_covers_output_contract_violations(frame):
    module = make(lambda df: pd.DataFrame({"zzz": df["mag"]}, index=df.index))
    out, failed = run_with_policy(module, frame, FailurePolicy.NULL_AND_COUNT)
    assert failed == 3 and out["out"].isna().all()


def test_missing_inputs_raise_under_every_policy(frame):
    with pytest.raises(ContractError):
        run_with_policy(make(boom, inputs=["nope"]), frame, FailurePolicy.NULL_AND_COUNT)


def test_success_counts_no_failure(frame):
    module = make(lambda df: pd.DataFrame({"out": df["mag"]}, index=df.index))
    out, failed = run_with_policy(module, frame, FailurePolicy.NULL_AND_COUNT)
    assert failed == 0 and out["out"].tolist() == [18.0, 19.5, 20.0]


def test_unknown_policy_is_rejected(frame):
    with pytest.raises(ValueError, match="skip"):
        run_with_policy(make(boom), frame, "skip")


# ----------------------------------------------------------------------------- registry


def _noop(df):
    return df


def test_resolve_order_runs_in_dependency_waves_sorted_by_name():
    a = make(_noop, name="a", inputs=["c_out"], outputs=[("a_out", "int")])
    b = make(_noop, name="b", inputs=["mag"], outputs=[("b_out", "int")])
    c = make(_noop, name="c", inputs=["b_out", "mag"], outputs=[("c_out", "int")])
    d = make(_noop, name="d", inputs=["mag"], outputs=[("d_out", "int")])
    assert [m.name for m in resolve_order([a, d, c, b])] == ["b", "d", "c", "a"]


def test_resolve_order_reports_a_cycle():
    a = make(_noop, name="a", inputs=["b_out"], outputs=[("a_out", "int")])
    b = make(_noop, name="b", inputs=["a_out"], outputs=[("b_out", "int")])
    ok = make(_noop, name="ok", inputs=["mag"], outputs=[("ok_out", "int")])
    with pytest.raises(ValueError, match=r"cycle: a -> b -> a"):
        resolve_order([ok, a, b])


def test_resolve_order_rejects_two_producers_of_a_column():
    a = make(_noop, name="a", outputs=[("same", "int")])
    b = make(_noop, name="b", outputs=[("same", "int")])
    with pytest.raises(ValueError, match="'same' is declared by both 'a' and 'b'"):
        resolve_order([a, b])


def test_modules_for_filters_by_survey():
    z = make(_noop, name="z", surveys=["ztf"], outputs=[("z_out", "int")])
    r = make(_noop, name="r", surveys=["rubin"], outputs=[("r_out", "int")])
    both = make(_noop, name="both", outputs=[("b_out", "int")])
    assert [m.name for m in modules_for("ztf", [z, r, both])] == ["both", "z"]
    assert [m.name for m in modules_for("rubin", {"z": z, "r": r})] == ["r"]


def test_builtins_are_discovered_through_entry_points():
    found = discover()
    assert set(found) >= BUILT_INS
    assert all(name == module.name for name, module in found.items())
    assert {m.name for m in modules_for("ztf")} >= {"solar_system", "xmatch", "lc_features_ztf"}
    assert "lc_features_ztf" not in {m.name for m in modules_for("rubin")}


def _fake_points(monkeypatch, *entries: tuple[str, str]) -> None:
    points = [EntryPoint(name, value, "test.group") for name, value in entries]
    monkeypatch.setattr(registry_mod, "entry_points", lambda group: points)


def test_entry_point_errors_name_the_plugin(monkeypatch):
    _fake_points(monkeypatch, ("solar_system", "fink_broker.science.xmatch:xmatch"))
    with pytest.raises(PluginError, match="names module 'xmatch'"):
        discover("test.group")
    _fake_points(monkeypatch, ("bad", "fink_broker.science.xmatch:VERSION"))
    with pytest.raises(PluginError, match="is a str, not a ScienceModule"):
        discover("test.group")
    _fake_points(monkeypatch, ("gone", "no_such_package.mod:thing"))
    with pytest.raises(PluginError, match="cannot load entry point 'gone'"):
        discover("test.group")
    assert discover("test.group", skip_broken=True) == {}


def test_describe_modules_lists_columns_with_type_and_unit():
    module = make(
        _noop,
        name="demo",
        inputs=["mag", "band"],
        outputs=[ColumnSpec("demo_rate", "double", "mag/d", "fading rate")],
        surveys=["ztf"],
    )
    text = describe_modules([module])
    assert "demo 1.0  [surveys: ztf]" in text
    assert "inputs: mag, band" in text
    row = next(line for line in text.splitlines() if "demo_rate" in line)
    assert row.split() == ["demo_rate", "double", "mag/d", "fading", "rate"]
    assert "provenance" in describe_modules(discover())
