"""The API's sky searches and counts against independent computations on the science
archive: IVOA Simple Cone Search read by a real VO client (pyvo over HTTP), a
gravitational-wave sky map's credible region (a HEALPix map built here), and the nightly
statistics the archive service wrote as it archived.
"""

from __future__ import annotations

import base64
import gzip
import io

import astropy.units as u
import numpy as np
import pandas as pd
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy_healpix import HEALPix

from fink_broker.engine.canonical import canonical_columns

pytestmark = pytest.mark.integration

SURVEYS = ("ztf", "rubin")


def alerts_of(science, survey: str) -> pd.DataFrame:
    """One row per archived alert: object, alert id, time, position, band, label, SSO
    name, night and first detection (MJD), computed from the science archive."""
    names = ["objectId", "alertId", "mjd", "ra", "dec", "band"]
    canon = canonical_columns(science, survey, names)
    first = "candidate.jdstarthist" if survey == "ztf" else "diaObject.firstDiaSourceMjdTai"
    frame = science.select(
        *[canon[n].alias(n) for n in names],
        science["finkclass"].alias("label"),
        science["sso_name"].alias("sso"),
        science["night"].cast("string").alias("night"),
        science[first].alias("first"),
    ).toPandas()
    if survey == "ztf":
        frame["first"] = frame["first"] - 2400000.5
    frame["alertId"] = frame["alertId"].astype(str)
    return frame


@pytest.mark.parametrize("survey", SURVEYS)
def test_statistics_of_a_night_are_the_counts_of_the_science_archive(archived, api, survey):
    """Written by the archive service as it archived (one cell per science file, replaced
    when a night is archived again), summed per night: equal to counting the Parquet."""
    _, sciences = archived
    alerts = alerts_of(sciences[survey], survey)
    names = (
        {"night": "key:key", "alerts": "basic:sci", "band": "basic:n_{}", "label": "class:{}"}
        if survey == "ztf"
        else {"night": "f:night", "alerts": "f:alerts", "band": "f:{}", "label": "f:class_{}"}
    )
    sso = "basic:sso" if survey == "ztf" else "f:is_sso"
    prefix = "ztf_" if survey == "ztf" else ""
    for night, tonight in alerts.groupby("night"):
        answer = api.get(f"/{survey}/api/v1/statistics", params={"date": night})
        assert answer.status_code == 200, answer.text
        (row,) = answer.json()
        assert row[names["night"]] == f"{prefix}{night}"
        assert row[names["alerts"]] == len(tonight) > 0
        for band, n in tonight["band"].value_counts().items():
            assert row[names["band"].format(band)] == n, band
        for label, n in tonight["label"].value_counts().items():
            assert row[names["label"].format(label)] == n, label
        assert row[sso] == int(tonight["sso"].notna().sum())
    every = api.get(f"/{survey}/api/v1/statistics", params={"date": ""}).json()
    assert sum(r[names["alerts"]] for r in every) == len(alerts)
    year = str(alerts["night"].iloc[0])[:4]
    assert len(api.get(f"/{survey}/api/v1/statistics", params={"date": year}).json()) >= 1
    assert api.get(f"/{survey}/api/v1/statistics", params={"date": "19000101"}).json() == []


@pytest.mark.parametrize("survey", SURVEYS)
def test_a_vo_client_cone_searches_the_archive(archived, api_url, survey):
    """pyvo (a real VO client: HTTP, VOTable parsing, SCS 1.03 UCDs) against /scs: one
    record per object inside the cone, at its newest alert there, with its id and
    position found by UCD; an SR beyond the limit is an SCS error, which pyvo raises."""
    import pyvo

    _, sciences = archived
    alerts = alerts_of(sciences[survey], survey)
    alerts = alerts[alerts["objectId"].notna()]
    coords = SkyCoord(alerts["ra"].to_numpy() * u.deg, alerts["dec"].to_numpy() * u.deg)
    crowd = [int((coords.separation(c).deg <= 2.0).sum()) for c in coords]
    centre = coords[int(np.argmax(crowd))]
    radius = 2.0
    service = pyvo.dal.SCSService(f"{api_url}/{survey}/scs")
    results = service.search(pos=centre, radius=radius * u.deg)
    separation = coords.separation(centre).deg
    inside = alerts[separation <= radius]
    newest = inside.sort_values("mjd").groupby("objectId").tail(1)
    assert len(results) == len(newest) >= 1
    got = {str(r.id): r for r in results}
    assert set(got) == set(newest["objectId"])
    for _, alert in newest.iterrows():
        record = got[alert["objectId"]]
        assert record.pos.separation(SkyCoord(alert["ra"], alert["dec"], unit="deg")).arcsec < 1e-6
        assert str(record["alertId"]) == alert["alertId"]
    table = results.to_table()
    ucds = {f.ucd for f in results.fielddescs}
    assert {"ID_MAIN", "POS_EQ_RA_MAIN", "POS_EQ_DEC_MAIN"} <= ucds
    assert table["ra"].unit == u.deg
    with pytest.raises(pyvo.dal.DALQueryError, match="SR"):
        service.search(pos=centre, radius=90 * u.deg)
    assert len(service.search(pos=SkyCoord(0, -89.9, unit="deg"), radius=1e-4 * u.deg)) == 0


def credible_map(centre: SkyCoord, radius_deg: float, nside: int) -> tuple[bytes, HEALPix]:
    """A flat NESTED map whose 90 % credible region is exactly the pixels whose centres
    lie within ``radius_deg`` of ``centre``: they share 0.9 evenly, and every other pixel
    holds less than any of them (their share of the remaining 0.1)."""
    grid = HEALPix(nside=nside, order="nested")
    lon, lat = grid.healpix_to_lonlat(np.arange(grid.npix))
    distance = SkyCoord(lon, lat).separation(centre).deg
    region = distance <= radius_deg
    prob = np.where(region, 0.9 / region.sum(), 0.1 / (~region).sum())
    assert prob[region].min() > prob[~region].max()
    column = fits.Column(name="PROB", format="D", array=prob)
    table = fits.BinTableHDU.from_columns([column])
    table.header["ORDERING"] = "NESTED"
    table.header["NSIDE"] = nside
    return table, grid


def test_skymap_returns_exactly_the_archived_alerts_inside_the_credible_region(archived, api):
    """A HEALPix map built here, whose 90 % region is known pixel by pixel: /skymap answers
    with one row per object, its newest alert in [event - 1 d, event + 6 d] that lies in
    the region, for objects first detected in that window (Fink's rule); a tighter level
    keeps fewer pixels. The map travels as Fink's example sends it (``str(bytes)`` of the
    gzipped file) and as base64."""
    _, sciences = archived
    alerts = alerts_of(sciences["ztf"], "ztf")
    alerts = alerts[alerts["objectId"].notna()]
    # the event: half a day after the first detection of the object seen for the shortest
    # time, so that its alerts fall in the window; the region: 15 degrees around it
    span = alerts.groupby("objectId").agg(first=("first", "min"), last=("mjd", "max"))
    young = (span["last"] - span["first"]).idxmin()
    event = float(span.loc[young, "first"]) + 0.5
    assert span.loc[young, "last"] <= event + 6.0, "no object short enough for the window"
    mine = alerts[alerts["objectId"] == young].iloc[0]
    centre = SkyCoord(mine["ra"], mine["dec"], unit="deg")
    # a region that holds the young object and not every alert: half the median distance
    others = SkyCoord(alerts["ra"].to_numpy(), alerts["dec"].to_numpy(), unit="deg")
    radius = max(0.5, float(np.median(others.separation(centre).deg)) / 2)
    table, grid = credible_map(centre, radius, 256)
    table.header["MJD-OBS"] = event
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(buffer)
    gzipped = gzip.compress(buffer.getvalue())

    centres = SkyCoord(*grid.healpix_to_lonlat(np.arange(grid.npix)))
    inside_pixels = np.flatnonzero(centres.separation(centre).deg <= radius)
    pixel = grid.lonlat_to_healpix(
        alerts["ra"].to_numpy() * u.deg, alerts["dec"].to_numpy() * u.deg
    )
    start, stop = event - 1.0, event + 6.0
    kept = alerts[
        np.isin(pixel, inside_pixels)
        & (alerts["mjd"] >= start)
        & (alerts["mjd"] <= stop)
        & (alerts["first"] >= start)
    ]
    expected = kept.sort_values("mjd").groupby("objectId").tail(1)
    outside = alerts[~np.isin(pixel, inside_pixels)]
    assert len(expected) >= 1 and len(outside) >= 1, "the map must split the sample"

    for payload in (str(gzipped), base64.b64encode(gzipped).decode()):
        answer = api.post(
            "/ztf/api/v1/skymap",
            json={"bayestar": payload, "credible_level": 0.9, "n_day_before": 1, "n_day_after": 6},
        )
        assert answer.status_code == 200, answer.text[:300]
        rows = answer.json()
        assert sorted(r["i:candid"] for r in rows) == sorted(expected["alertId"])
        assert all(abs(r["v:jdstartgw"] - (event + 2400000.5)) < 1e-6 for r in rows)
    tight = api.post(
        "/ztf/api/v1/skymap", json={"bayestar": str(gzipped), "credible_level": 0.05}
    ).json()
    assert len(tight) <= len(expected)
    bad = api.post("/ztf/api/v1/skymap", json={"bayestar": "not a map", "credible_level": 0.9})
    assert bad.status_code == 400 and "bayestar" in bad.json()["detail"]
