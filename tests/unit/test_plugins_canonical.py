"""Canonical columns and quality cuts of ZTF and Rubin, checked against the real alerts.

Every expectation is recomputed here from the raw fastavro records with plain arithmetic,
independently of the transform objects under test.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fink_broker.plugins.columns import incompatibility
from fink_broker.surveys import rubin_fields, ztf_fields
from fink_broker.surveys.base import iter_alert_files, read_alert_file
from fink_broker.surveys.fields import (
    CANONICAL_COLUMNS,
    CANONICAL_NAMES,
    Cut,
    canonical_frame,
    check_table,
    evaluate_cuts,
)


@pytest.fixture(scope="module")
def ztf_records(datasim: Path) -> list[dict]:
    return [read_alert_file(f)[0] for f in iter_alert_files(datasim / "ztf")]


@pytest.fixture(scope="module")
def rubin_records(datasim: Path) -> list[dict]:
    return [read_alert_file(f)[0] for f in iter_alert_files(datasim / "rubin")]


def test_tables_cover_exactly_the_canonical_columns():
    check_table(ztf_fields.CANONICAL)
    check_table(rubin_fields.CANONICAL)
    assert len(set(CANONICAL_NAMES)) == len(CANONICAL_COLUMNS)
    with pytest.raises(ValueError, match="missing"):
        check_table({"mjd": ztf_fields.CANONICAL["mjd"]})


def test_unknown_survey_is_rejected():
    with pytest.raises(ValueError, match="unknown survey 'ps1'"):
        canonical_frame([], "ps1")


@pytest.mark.parametrize("survey", ["ztf", "rubin"])
def test_frame_has_declared_columns_and_types(survey, ztf_records, rubin_records):
    records = ztf_records if survey == "ztf" else rubin_records
    frame = canonical_frame(records, survey)
    assert list(frame.columns) == list(CANONICAL_NAMES)
    assert len(frame) == len(records)
    for spec in CANONICAL_COLUMNS:
        assert incompatibility(frame[spec.name], spec) is None, spec.name


def test_ztf_scalars_match_raw_fields(ztf_records):
    frame = canonical_frame(ztf_records, "ztf")
    for row, record in zip(frame.itertuples(), ztf_records, strict=True):
        c = record["candidate"]
        assert row.objectId == record["objectId"] and row.alertId == record["candid"]
        assert row.mjd == pytest.approx(c["jd"] - 2400000.5, abs=1e-9)
        assert row.band == {1: "g", 2: "r", 3: "i"}[c["fid"]]
        assert (row.ra, row.dec, row.mag, row.magerr) == (
            c["ra"],
            c["dec"],
            c["magpsf"],
            c["sigmapsf"],
        )
        sign = -1.0 if c["isdiffpos"] in ("f", "0") else 1.0
        flux = sign * 10 ** ((31.4 - c["magpsf"]) / 2.5)
        assert row.flux == pytest.approx(flux, rel=1e-12)
        assert row.fluxerr == pytest.approx(
            abs(flux) * c["sigmapsf"] * math.log(10) / 2.5, rel=1e-12
        )
        assert row.ndethist == c["ndethist"]
        # ZTF writes "null" and -999 for "no value"
        assert row.sso_ref_name is None and c["ssnamenr"] == "null"
        assert np.isnan(row.sso_ref_distance_arcsec) and c["ssdistnr"] == -999.0
        assert row.ps1_sgscore == c["sgscore1"]


def test_ztf_history_is_detections_plus_current_and_limits(ztf_records):
    frame = canonical_frame(ztf_records, "ztf")
    for row, record in zip(frame.itertuples(), ztf_records, strict=True):
        prv = record["prv_candidates"] or []
        detections = sorted(
            [p for p in prv if p["magpsf"] is not None] + [record["candidate"]],
            key=lambda p: p["jd"],
        )
        limits = sorted([p for p in prv if p["magpsf"] is None], key=lambda p: p["jd"])
        assert list(row.hist_mjd) == pytest.approx([p["jd"] - 2400000.5 for p in detections])
        assert list(row.hist_mag) == [p["magpsf"] for p in detections]
        assert list(row.hist_band) == [{1: "g", 2: "r", 3: "i"}[p["fid"]] for p in detections]
        assert list(row.uplim_mjd) == pytest.approx([p["jd"] - 2400000.5 for p in limits])
        assert list(row.uplim_maglim) == [p["diffmaglim"] for p in limits]
        assert len(row.uplim_band) == len(limits)


def test_rubin_photometry_and_history(rubin_records):
    frame = canonical_frame(rubin_records, "rubin")
    n_negative = 0
    for row, record in zip(frame.itertuples(), rubin_records, strict=True):
        src = record["diaSource"]
        assert row.alertId == record["diaSourceId"] and row.mjd == src["midpointMjdTai"]
        assert row.flux == pytest.approx(src["psfFlux"]) and row.band == src["band"]
        if src["psfFlux"] > 0:
            assert row.mag == pytest.approx(31.4 - 2.5 * math.log10(src["psfFlux"]), rel=1e-12)
            assert row.magerr == pytest.approx(
                1.0857362 * src["psfFluxErr"] / src["psfFlux"], rel=1e-6
            )
        else:
            n_negative += 1
            assert np.isnan(row.mag) and np.isnan(row.magerr)
        prv = record["prvDiaSources"] or []
        assert len(row.hist_mjd) == len(prv) + 1
        assert list(row.hist_flux) == pytest.approx(
            [p["psfFlux"] for p in sorted([*prv, src], key=lambda p: p["midpointMjdTai"])]
        )
        assert row.uplim_mjd is None and np.isnan(row.ps1_sgscore)
        if src["diaObjectId"]:
            assert row.objectId == str(src["diaObjectId"])
        else:
            assert row.objectId is None
    assert n_negative > 0  # the sample has negative difference fluxes: the null branch ran


def test_rubin_solar_system_fields(rubin_records):
    frame = canonical_frame(rubin_records, "rubin")
    sso = [i for i, r in enumerate(rubin_records) if r["ssSource"] is not None]
    assert len(sso) == 4
    for i, record in enumerate(rubin_records):
        if i in sso:
            assert frame.sso_ref_name[i] == record["MPCORB"]["mpcDesignation"]
            ss, dec = record["ssSource"], record["diaSource"]["dec"]
            flat = math.hypot(ss["residualRa"] * math.cos(math.radians(dec)), ss["residualDec"])
            assert frame.sso_ref_distance_arcsec[i] == pytest.approx(flat * 3600)
        else:
            assert frame.sso_ref_name[i] is None


def test_rubin_table_reads_v10_solar_system_fields(rubin_records):
    # v10+ renamed MPCORB to mpc_orbits and the ssSource residuals to ephOffset/ephVmag
    record = dict(next(r for r in rubin_records if r["ssSource"] is not None))
    record.pop("MPCORB")
    record["mpc_orbits"] = {"packed_primary_provisional_designation": "K08A00B"}
    record["ssSource"] = {"designation": "2008 AB", "ephOffset": 0.21, "ephVmag": 20.5}
    row = canonical_frame([record], "rubin").iloc[0]
    assert (row.sso_ref_name, row.sso_ref_distance_arcsec, row.sso_ref_mag) == (
        "K08A00B",
        0.21,
        20.5,
    )


def test_ztf_cuts_match_fink_raw2science(ztf_records):
    got = evaluate_cuts(ztf_fields.CUTS, ztf_records)
    c = pd.DataFrame([r["candidate"] for r in ztf_records])
    assert got["nbad"].tolist() == (c["nbad"] == 0).tolist()
    assert got["rb"].tolist() == (c["rb"] >= 0.55).tolist()
    assert got["not_i_band"].tolist() == (c["fid"] != 3).tolist()
    expected = (c["nbad"] == 0) & (c["rb"] >= 0.55) & (c["fid"] != 3)
    assert got["passed_all"].tolist() == expected.tolist()
    assert 0 < expected.sum() < len(c)  # the sample exercises both outcomes
    looser = evaluate_cuts(ztf_fields.quality_cuts(rb_min=0.0), ztf_records)
    assert looser["passed_all"].sum() > got["passed_all"].sum()


def test_rubin_cuts_reliability_and_flags(rubin_records):
    cuts = rubin_fields.CUTS
    assert len({c.name for c in cuts}) == len(cuts)
    got = evaluate_cuts(cuts, rubin_records)
    s = pd.DataFrame([r["diaSource"] for r in rubin_records])
    assert got["reliability"].tolist() == (s["reliability"] >= 0.5).tolist()
    flags = list(rubin_fields.DEFAULT_REJECT_FLAGS)
    clean = ~s[flags].fillna(False).astype(bool).any(axis=1)
    assert got["passed_all"].tolist() == ((s["reliability"] >= 0.5) & clean).tolist()
    assert (~got["psfFlux_flag"]).sum() == s["psfFlux_flag"].fillna(False).sum()
    custom = rubin_fields.quality_cuts(reliability_min=0.9, reject_flags=["pixelFlags_cr"])
    assert [c.name for c in custom] == ["reliability", "pixelFlags_cr"]


def test_cut_null_semantics():
    assert not Cut("rb", "rb", ">=", 0.5).passes({"rb": None})
    assert Cut("flag", "flag", "not_true").passes({})
    assert not Cut("flag", "flag", "not_true").passes({"flag": True})
    with pytest.raises(ValueError, match="unknown operator"):
        Cut("x", "x", "~=", 1)  # type: ignore[arg-type]
