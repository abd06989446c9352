"""A small, fixed sample of labelled PLAsTiCC light curves (the ``snmachine`` wheel's data).

PLAsTiCC (Kessler et al. 2019; data CC-BY-4.0) simulates LSST light curves of 14 classes;
``snmachine`` 2.0.0.post3 ships its training set (7,848 objects). The sample keeps the
first :data:`PER_CLASS` objects of each class by ``object_id`` and their detections
(``detected_bool == 1``), so the tests, the reference-fixture script and the benchmark all
read the same light curves. Fluxes are SNANA ``FLUXCAL`` (zero point 27.5).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

#: objects kept per class
PER_CLASS = 40
#: PLAsTiCC class codes
SN_IA = 90
#: supernovae other than SN Ia (II, Iax, Ibc, Ia-91bg)
SN_OTHER = (42, 52, 62, 67)
SUPERNOVAE = (SN_IA, *SN_OTHER)
#: classes that are not supernovae (SLSN excluded: it is neither in Fink's models)
NOT_SN = (6, 15, 16, 53, 64, 65, 88, 92)
#: superluminous supernovae
SLSN = 95
#: PLAsTiCC passband -> band letter (LSST; Rubin alerts spell y in lower case)
PASSBANDS = ("u", "g", "r", "i", "z", "y")


@dataclass(frozen=True)
class LightCurve:
    """One labelled light curve: detections only, time-sorted."""

    object_id: int
    target: int
    mjd: np.ndarray
    band: np.ndarray
    flux: np.ndarray
    fluxerr: np.ndarray
    #: position (degrees), from the metadata
    ra: float = 0.0
    dec: float = 0.0

    def bands(self, keep: tuple[str, ...]) -> LightCurve:
        """The same light curve restricted to ``keep`` (ZTF: g and r)."""
        ok = np.isin(self.band, keep)
        return LightCurve(
            self.object_id,
            self.target,
            self.mjd[ok],
            self.band[ok],
            self.flux[ok],
            self.fluxerr[ok],
            self.ra,
            self.dec,
        )


def data_dir() -> Path | None:
    """``snmachine/example_data``, or None when snmachine is not installed."""
    spec = importlib.util.find_spec("snmachine")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "example_data"
    return path if (path / "plasticc_train_lightcurves.csv").exists() else None


def load(
    per_class: int = PER_CLASS, classes: tuple[int, ...] = SUPERNOVAE + NOT_SN
) -> list[LightCurve]:
    """The sample's light curves, by class then ``object_id``."""
    root = data_dir()
    if root is None:
        raise FileNotFoundError("snmachine is not installed (pip install --no-deps snmachine)")
    meta = pd.read_csv(
        root / "plasticc_train_metadata.csv", usecols=["object_id", "target", "ra", "decl"]
    )
    meta = meta[meta["target"].isin(classes)].sort_values(["target", "object_id"])
    chosen = meta.groupby("target").head(per_class)
    wanted = set(chosen["object_id"])
    points = pd.read_csv(
        root / "plasticc_train_lightcurves.csv",
        usecols=["object_id", "mjd", "passband", "flux", "flux_err", "detected_bool"],
    )
    points = points[points["object_id"].isin(wanted) & (points["detected_bool"] == 1)]
    points = points.sort_values(["object_id", "mjd"], kind="stable")
    by_object = {k: g for k, g in points.groupby("object_id")}
    out = []
    for object_id, ra, dec, target in chosen[["object_id", "ra", "decl", "target"]].itertuples(
        index=False
    ):
        g = by_object.get(object_id)
        if g is None:
            continue
        out.append(
            LightCurve(
                int(object_id),
                int(target),
                g["mjd"].to_numpy(float),
                np.array([PASSBANDS[p] for p in g["passband"]], dtype=object),
                g["flux"].to_numpy(float),
                g["flux_err"].to_numpy(float),
                float(ra),
                float(dec),
            )
        )
    return out


#: the SLSN sample: a Rainbow fit takes ~1 s per light curve on a loaded 2-core machine,
#: so it is small: SLSN against a few objects of every other class
SLSN_SAMPLE = {"slsn": 15, "other": 4}


def slsn_sample() -> list[LightCurve]:
    """The light curves the SLSN score is checked and measured on."""
    return load(per_class=SLSN_SAMPLE["slsn"], classes=(SLSN,)) + load(
        per_class=SLSN_SAMPLE["other"]
    )
