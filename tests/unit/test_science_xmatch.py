"""xmatch against independent astropy separations, on real alerts and planted positions."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

from fink_broker.plugins import run_module
from fink_broker.science import catalogues as cats
from fink_broker.science.catalogues import Catalogue, j_name, load
from fink_broker.science.xmatch import make_xmatch_module, xmatch
from fink_broker.surveys.base import iter_alert_files, read_alert_file
from fink_broker.surveys.fields import canonical_frame


@pytest.fixture(scope="module")
def fink_catalogues() -> Path:
    """The fink-science data directory; CI installs it (pip install --no-deps fink-science)."""
    root = cats.package_dir("fink_science")
    if root is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install fink-science==7.4.0 (--no-deps) for the catalogues")
        pytest.skip("fink-science is not installed")
    return root / "data" / "catalogs"


@pytest.fixture(scope="module")
def positions(datasim: Path) -> pd.DataFrame:
    frames = [
        canonical_frame([read_alert_file(f)[0] for f in iter_alert_files(datasim / s)], s)
        for s in ("ztf", "rubin")
    ]
    return pd.concat(frames, ignore_index=True)[["ra", "dec"]]


def brute_force(ra: float, dec: float, cat_ra: np.ndarray, cat_dec: np.ndarray, radius: float):
    """(row, separation) of the nearest catalogue entry within ``radius`` arcsec, by direct
    astropy separations to every entry in a declination strip (no KD-tree)."""
    strip = np.flatnonzero(np.abs(cat_dec - dec) <= radius / 3600.0)
    if len(strip) == 0:
        return -1, np.nan
    seps = (
        SkyCoord(ra * u.deg, dec * u.deg)
        .separation(SkyCoord(cat_ra[strip] * u.deg, cat_dec[strip] * u.deg))
        .arcsec
    )
    best = int(np.argmin(seps))
    return (int(strip[best]), float(seps[best])) if seps[best] <= radius else (-1, np.nan)


def offset(ra: float, dec: float, arcsec: float, angle_deg: float) -> tuple[float, float]:
    moved = SkyCoord(ra * u.deg, dec * u.deg).directional_offset_by(
        angle_deg * u.deg, arcsec * u.arcsec
    )
    return float(moved.ra.deg), float(moved.dec.deg)


@pytest.fixture(scope="module")
def vsx_raw(fink_catalogues: Path) -> pd.DataFrame:
    return pd.read_parquet(fink_catalogues / "vsx.parquet")


@pytest.fixture(scope="module")
def planted(vsx_raw: pd.DataFrame, positions: pd.DataFrame) -> pd.DataFrame:
    """Real alert positions plus positions planted 0.4″ and 1.2″ from VSX entries (inside
    the 1.5″ radius) and 2.5″ from one (outside), so that matches exist."""
    rows = [12345, 700000, 1500000]
    extra = [offset(vsx_raw.RAJ2000[r], vsx_raw.DEJ2000[r], s, a) for r, s, a in
             zip(rows, (0.4, 1.2, 2.5), (30.0, 200.0, 90.0), strict=True)]  # fmt: skip
    return pd.concat([positions, pd.DataFrame(extra, columns=["ra", "dec"])], ignore_index=True)


def test_vsx_equals_brute_force_on_real_and_planted_positions(planted, vsx_raw):
    out = run_module(xmatch, planted)
    cat_ra, cat_dec = vsx_raw.RAJ2000.to_numpy(), vsx_raw.DEJ2000.to_numpy()
    matched = 0
    for i, (ra, dec) in enumerate(planted.itertuples(index=False)):
        row, sep = brute_force(ra, dec, cat_ra, cat_dec, 1.5)
        if row < 0:
            assert out.xm_vsx_id[i] is None and np.isnan(out.xm_vsx_sep_arcsec[i])
            continue
        matched += 1
        assert out.xm_vsx_sep_arcsec[i] == pytest.approx(sep, abs=1e-6)
        assert out.xm_vsx_class[i] == vsx_raw.VType[row].strip()
        assert out.xm_vsx_id[i] == j_name(cat_ra[[row]], cat_dec[[row]])[0]
    assert matched >= 3  # the real Rubin RRAB star and the two planted matches
    n = len(planted)
    assert out.xm_vsx_sep_arcsec[n - 3] == pytest.approx(0.4, abs=1e-6)
    assert out.xm_vsx_sep_arcsec[n - 2] == pytest.approx(1.2, abs=1e-6)
    assert out.xm_vsx_id[n - 1] is None  # 2.5″ is outside the 1.5″ radius


@pytest.mark.parametrize("name", ["gcvs", "mangrove", "3hsp", "4lac", "hip"])
def test_fixed_radius_catalogues_equal_brute_force(name, positions, fink_catalogues):
    catalogue = cats.get_catalogue(name)
    frame = load(catalogue).frame
    cat_ra, cat_dec = frame.ra.to_numpy(float), frame.dec.to_numpy(float)
    # plant one position at 60 % of the radius from three entries of the catalogue
    picks = np.linspace(0, len(frame) - 1, 3).astype(int)
    planted = [offset(cat_ra[k], cat_dec[k], 0.6 * catalogue.radius_arcsec, 45.0) for k in picks]
    alerts = pd.concat([positions, pd.DataFrame(planted, columns=["ra", "dec"])], ignore_index=True)
    module = make_xmatch_module([catalogue], name="one")
    out = run_module(module, alerts)
    for i, (ra, dec) in enumerate(alerts.itertuples(index=False)):
        row, sep = brute_force(ra, dec, cat_ra, cat_dec, catalogue.radius_arcsec)
        got = out[f"xm_{name}_sep_arcsec"][i]
        if row < 0:
            assert np.isnan(got)
        else:
            assert got == pytest.approx(sep, abs=1e-6)
            assert out[f"xm_{name}_class"][i] == str(frame["class"][row]).strip()
    assert out[f"xm_{name}_id"].iloc[-3:].notna().all()


def test_catalogue_readers_match_the_shipped_files(fink_catalogues):
    assert len(load(cats.get_catalogue("vsx")).frame) == 1_933_544
    assert len(load(cats.get_catalogue("4lac")).frame) == 3407 + 407
    hsp = load(cats.get_catalogue("3hsp")).frame
    assert hsp.id[0] == "3HSPJ000116.4+293534"
    assert (
        SkyCoord("00h01m16.4s +29d35m34s")
        .separation(SkyCoord(hsp.ra[0] * u.deg, hsp.dec[0] * u.deg))
        .arcsec
        < 1.0
    )
    ongc = load(cats.get_catalogue("ongc")).frame
    m31 = ongc.loc[ongc.id == "NGC0224"].iloc[0]
    assert m31["class"] == "G" and m31.ra == pytest.approx(10.6847, abs=1e-3)
    assert m31.radius_arcsec == cats.ONGC_MAX_RADIUS_ARCSEC  # capped
    hip = load(cats.get_catalogue("hip")).frame
    assert len(hip) == 117_955 and hip.id[0] == "HIP 1"


def test_ongc_matches_within_each_objects_own_radius():
    frame = load(cats.get_catalogue("ongc")).frame
    galaxy = frame.loc[(frame["class"] == "G") & (frame.radius_arcsec.between(60, 120))].iloc[0]
    inside = offset(galaxy.ra, galaxy.dec, 0.5 * galaxy.radius_arcsec, 10.0)
    outside = offset(galaxy.ra, galaxy.dec, 1.5 * galaxy.radius_arcsec, 10.0)
    out = run_module(
        make_xmatch_module([cats.get_catalogue("ongc")], name="one"),
        pd.DataFrame([inside, outside, (np.nan, 1.0)], columns=["ra", "dec"]),
    )
    assert out.xm_ongc_id[0] == galaxy.id and out.xm_ongc_class[0] == "G"
    assert out.xm_ongc_sep_arcsec[0] == pytest.approx(0.5 * galaxy.radius_arcsec, abs=1e-6)
    # outside this galaxy: either nothing or another object whose own radius covers it
    if out.xm_ongc_id[1] is not None:
        other = frame.loc[frame.id == out.xm_ongc_id[1]].iloc[0]
        assert out.xm_ongc_sep_arcsec[1] <= other.radius_arcsec
    assert out.xm_ongc_id[2] is None  # invalid position: null, not an error


def test_custom_file_catalogue_is_cached_per_file_version(tmp_path):
    path = tmp_path / "mine.csv"
    rows = {"ra": [10.0, 200.0], "dec": [-5.0, 30.0], "id": ["A", "B"], "class": ["QSO", "SN"]}
    pd.DataFrame(rows).to_csv(path, index=False)
    catalogue = Catalogue("mine", 2.0, "a test list", path=str(path))
    module = make_xmatch_module([catalogue], name="xmatch_mine")
    assert module.output_names == ("xm_mine_id", "xm_mine_class", "xm_mine_sep_arcsec")
    alerts = pd.DataFrame(
        [offset(200.0, 30.0, 1.0, 0.0), (10.0, -5.0), (50.0, 50.0)], columns=["ra", "dec"]
    )
    out = run_module(module, alerts)
    assert out.xm_mine_id.tolist() == ["B", "A", None]
    assert out.xm_mine_class.tolist() == ["SN", "QSO", None]
    assert out.xm_mine_sep_arcsec[0] == pytest.approx(1.0, abs=1e-6)
    assert load(catalogue) is load(catalogue)  # indexed once
    first = load(catalogue)
    pd.DataFrame({"ra": [10.0], "dec": [-5.0], "id": ["A2"], "class": ["AGN"]}).to_csv(
        path, index=False
    )
    os.utime(path, (time.time() + 10, time.time() + 10))
    assert load(catalogue) is not first
    assert run_module(module, alerts).xm_mine_id.tolist() == [None, "A2", None]


def test_missing_catalogue_file_raises_a_clear_error(tmp_path):
    module = make_xmatch_module(
        [Catalogue("gone", 1.0, path=str(tmp_path / "gone.parquet"))], name="x"
    )
    with pytest.raises(cats.CatalogueUnavailable, match="'gone'"):
        run_module(module, pd.DataFrame({"ra": [1.0], "dec": [2.0]}))


def test_j_name_format():
    assert j_name(np.array([0.0, 359.99999]), np.array([-0.5, 89.99])) == [
        "J000000.00-003000.0",
        "J235959.99+895924.0",
    ]


def test_mangrove_none_names_fall_back_to_2mass():
    """The Mangrove file writes a missing name as the string "None": never an id."""
    root = cats.package_dir("fink_science")
    if root is None:
        pytest.skip("fink-science is not installed")
    path = root / "data" / "catalogs" / "mangrove_filtered.parquet"
    raw = pd.read_parquet(path, columns=["HyperLEDA_name", "2MASS_name"])
    frame = cats.get_catalogue("mangrove").read()
    assert not frame["id"].isin(["None", ""]).any()
    no_leda = (raw["HyperLEDA_name"] == "None") & (raw["2MASS_name"] != "None")
    assert no_leda.sum() > 50_000
    assert (frame["id"][no_leda.to_numpy()] == raw["2MASS_name"][no_leda]).all()
    neither = (raw["HyperLEDA_name"] == "None") & (raw["2MASS_name"] == "None")
    assert frame["id"][neither.to_numpy()].isna().all()
