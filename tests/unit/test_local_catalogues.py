"""Local catalogues: ``fink catalogs add/list/remove`` and the ``xmatch_local`` module, checked
against astropy separations on the real alerts' positions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

from fink_broker.api.columns import column_docs
from fink_broker.cli.main import main
from fink_broker.config import load_settings
from fink_broker.plugins import run_module
from fink_broker.science import local_catalogues as local
from fink_broker.services import raw2science
from fink_broker.surveys import get_adapter
from fink_broker.surveys.base import iter_alert_files, read_alert_file
from fink_broker.surveys.fields import canonical_frame


@pytest.fixture
def config(tmp_path) -> Path:
    """A config whose state dir (and so catalogue folder) is in ``tmp_path``."""
    path = tmp_path / "fink.toml"
    path.write_text(f'[paths]\nstate_dir = "{tmp_path / "state"}"\nroot = "{tmp_path / "lake"}"\n')
    return path


@pytest.fixture(scope="module")
def alerts(datasim: Path) -> pd.DataFrame:
    """ra, dec of the 50 ZTF alerts."""
    records = [read_alert_file(f)[0] for f in iter_alert_files(datasim / "ztf")]
    return canonical_frame(records, "ztf", ["ra", "dec"]).reset_index(drop=True)


def targets(alerts: pd.DataFrame) -> pd.DataFrame:
    """A target list in a survey's own column names: 1.2 arcsec north of the first ten
    alerts, then ten far from any alert."""
    near = SkyCoord(alerts["ra"][:10].to_numpy() * u.deg, alerts["dec"][:10].to_numpy() * u.deg)
    moved = near.directional_offset_by(0 * u.deg, 1.2 * u.arcsec)
    far_dec = np.linspace(-89.0, -80.0, 10)
    return pd.DataFrame(
        {
            "RAJ2000": [*moved.ra.deg, *np.full(10, 1.0)],
            "DEJ2000": [*moved.dec.deg, *far_dec],
            "NAME": [f"T{i}" for i in range(20)],
        }
    )


def test_added_catalogue_matches_like_astropy_and_is_listed(config, tmp_path, alerts, capsys):
    source = tmp_path / "targets.csv"
    targets(alerts).to_csv(source, index=False)
    argv = ["catalogs", "add", "targets", str(source), "--radius", "2", "-c", str(config)]
    argv += ["--ra-col", "RAJ2000", "--dec-col", "DEJ2000", "--id-col", "NAME", "--class", "tgt"]
    assert main(argv) == 0
    assert "added targets: 20 rows" in capsys.readouterr().out

    assert main(["catalogs", "list", "-c", str(config)]) == 0
    assert "targets" in capsys.readouterr().out
    assert main(["modules", "list", "-c", str(config)]) == 0
    assert "xm_targets_sep_arcsec" in capsys.readouterr().out

    settings = load_settings(config, env={})
    module = next(
        m for m in raw2science.selected_modules(settings, "ztf") if m.name == "xmatch_local"
    )
    assert module.output_names == ("xm_targets_id", "xm_targets_class", "xm_targets_sep_arcsec")
    got = run_module(module, alerts[["ra", "dec"]])

    # independent: astropy separations from every alert to every target
    table = targets(alerts)
    seps = (
        SkyCoord(
            alerts["ra"].to_numpy()[:, None] * u.deg, alerts["dec"].to_numpy()[:, None] * u.deg
        )
        .separation(
            SkyCoord(table["RAJ2000"].to_numpy() * u.deg, table["DEJ2000"].to_numpy() * u.deg)
        )
        .arcsec
    )
    nearest = seps.argmin(axis=1)
    within = seps.min(axis=1) <= 2.0
    assert within.sum() == 10
    for i in range(len(alerts)):
        if within[i]:
            assert got["xm_targets_id"][i] == table["NAME"][nearest[i]]
            assert got["xm_targets_class"][i] == "tgt"
            assert got["xm_targets_sep_arcsec"][i] == pytest.approx(seps[i].min(), abs=1e-6)
        else:
            assert got["xm_targets_id"][i] is None
            assert np.isnan(got["xm_targets_sep_arcsec"][i])


def test_version_follows_the_catalogues_and_remove_drops_the_module(config, tmp_path, alerts):
    settings = load_settings(config, env={})
    folder = local.catalogue_dir(settings)
    source = tmp_path / "targets.parquet"
    targets(alerts).rename(columns={"RAJ2000": "ra", "DEJ2000": "dec", "NAME": "id"}).to_parquet(
        source
    )
    local.add(folder, "targets", source, 2.0, class_col=None)
    first = local.local_module(settings)
    assert first is not None
    local.add(folder, "targets", source, 3.0, class_col=None, replace=True)
    second = local.local_module(settings)
    assert second is not None and second.version != first.version
    assert second.version.startswith("1.0+")
    file = Path(local.registered(folder)[0].file)
    assert local.remove(folder, "targets").name == "targets"
    assert local.local_module(settings) is None
    assert not file.exists()
    assert "xmatch_local" not in {m.name for m in raw2science.selected_modules(settings, "ztf")}


def test_api_column_docs_describe_local_catalogue_columns(config, tmp_path, alerts):
    settings = load_settings(config, env={})
    source = tmp_path / "targets.csv"
    targets(alerts).to_csv(source, index=False)
    local.add(
        local.catalogue_dir(settings),
        "targets",
        source,
        2.0,
        ra_col="RAJ2000",
        dec_col="DEJ2000",
        id_col="NAME",
        class_col=None,
    )
    types = {"d:xm_targets_id": "string", "d:xm_targets_sep_arcsec": "double"}
    ztf = get_adapter("ztf")
    bare = {c["name"]: c for c in column_docs(ztf, types)}
    assert bare["d:xm_targets_id"]["doc"] == ""  # entry points do not know the catalogue
    module = local.local_module(settings)
    assert module is not None
    docs = {c["name"]: c for c in column_docs(ztf, types, [module])}
    assert "targets" in docs["d:xm_targets_id"]["doc"]
    assert docs["d:xm_targets_sep_arcsec"]["unit"] == "arcsec"
    assert docs["d:xm_targets_sep_arcsec"]["doc"]


@pytest.mark.parametrize(
    ("frame", "options", "error"),
    [
        (pd.DataFrame({"ra": [1.0, 2.0], "dec": [0.0, 95.0], "id": ["a", "b"]}), {}, "row 1"),
        (pd.DataFrame({"ra": [1.0, np.nan], "dec": [0.0, 1.0], "id": ["a", "b"]}), {}, "row 1"),
        (pd.DataFrame({"RA": [1.0], "dec": [0.0], "id": ["a"]}), {}, r"no column \['ra'\]"),
        (pd.DataFrame({"ra": [1.0], "dec": [0.0], "id": [None]}), {}, "without an id"),
        (pd.DataFrame({"ra": [1.0], "dec": [0.0], "id": ["a"]}), {"name": "vsx"}, "built-in"),
        (pd.DataFrame({"ra": [1.0], "dec": [0.0], "id": ["a"]}), {"name": "X"}, "lower-case"),
        (pd.DataFrame({"ra": [1.0], "dec": [0.0], "id": ["a"]}), {"radius": 0.0}, "radius"),
    ],
)
def test_bad_catalogues_are_refused_with_the_reason(tmp_path, frame, options, error):
    source = tmp_path / "cat.csv"
    frame.to_csv(source, index=False)
    folder = tmp_path / "catalogues"
    with pytest.raises(local.CatalogueError, match=error):
        local.add(
            folder,
            options.get("name", "cat"),
            source,
            options.get("radius", 2.0),
            class_col=None,
        )
    assert local.registered(folder) == []


def test_a_name_is_added_once_unless_replaced(config, tmp_path, capsys):
    source = tmp_path / "cat.csv"
    pd.DataFrame({"ra": [1.0], "dec": [0.0], "id": ["a"], "class": ["x"]}).to_csv(source)
    argv = ["catalogs", "add", "cat", str(source), "--radius", "2", "-c", str(config)]
    assert main(argv) == 0
    assert main(argv) == 1
    assert "exists" in capsys.readouterr().err
    assert main([*argv, "--replace"]) == 0
    assert main(["catalogs", "remove", "cat", "-c", str(config)]) == 0
    assert main(["catalogs", "remove", "cat", "-c", str(config)]) == 1
