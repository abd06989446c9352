"""SuperNNova's input tensor for one light curve, computed as SuperNNova computes it.

The network of a SuperNNova model sees one row per *epoch group*, not per detection. The
steps below are the ones SuperNNova 3.0 applies when Fink classifies alerts
(``validate_onthefly.classify_lcs``), re-implemented over numpy arrays of one light curve;
the test suite checks the result against SuperNNova itself (through fink-science's own
function, in the reference environment):

1. points sorted by time; detections less than 0.33 d (8 h) after the first point of the
   current group join that group (a point at the very same time as its predecessor, or
   the light curve's first point, starts a new group);
2. within a group, one point per band: the one with the smallest flux error;
3. one row per group, in time order, with ``FLUXCAL_<band>`` and ``FLUXCALERR_<band>`` of
   every band of the model (0 when the band is absent), ``delta_time`` (days since the
   previous group, 0 for the first) and a one-hot column naming the bands present (e.g.
   ``gr``); these values are stored as float32, as SuperNNova's table is;
4. normalisation of the flux, flux-error and ``delta_time`` columns with the model's
   ``data_norm.json``: clipped below at ``min``; ``global``: ``(log(x - min + 1e-5) -
   mean) / std``; ``cosmo_quantile``: fluxes and errors divided by the 0.99 quantile of
   all of them in the light curve, ``delta_time`` as ``global``;
5. host-galaxy features of a model trained without redshift are 0.

A band the model does not know (ZTF ``i`` for the ZTF models; Rubin ``y``, which the
ELAsTiCC models spell ``Y``, as Fink passes the band letters unchanged) adds nothing but,
alone in a group, still makes a row with every flux at 0.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: detections closer than this to the first of their group share a row [day]
GROUP_DAYS = 0.33
#: SuperNNova's offset inside the log of the global normalisation
LOG_OFFSET = 1e-5
#: fraction of a light curve's fluxes under its cosmo_quantile scale
COSMO_QUANTILE = 0.99


@dataclass(frozen=True)
class SnnSettings:
    """What the input formatting needs from a model's ``cli_args.json`` and ``data_norm.json``."""

    filters: tuple[str, ...]
    features: tuple[str, ...]
    normalized: tuple[str, ...]
    norm: str
    #: [feature to normalise] x (min, mean, std)
    norm_table: np.ndarray

    @classmethod
    def from_dir(cls, model_dir: str | Path) -> SnnSettings:
        """Settings of the SuperNNova model stored in ``model_dir``."""
        model_dir = Path(model_dir)
        cli = json.loads((model_dir / "cli_args.json").read_text())
        norm = json.loads((model_dir / "data_norm.json").read_text())
        normalized = tuple(cli["training_features_to_normalize"])
        if normalized[-1] != "delta_time":
            raise ValueError(f"{model_dir}: delta_time must be the last normalised feature")
        table = np.array([[norm[f]["min"], norm[f]["mean"], norm[f]["std"]] for f in normalized])
        training = tuple(cli["training_features"])
        # SuperNNova selects the training columns in the order of all_features, and
        # normalises columns by their position in training_features: the two orders and
        # the normalised columns' leading place must agree for that to be what it means
        in_order = tuple(f for f in cli["all_features"] if f in training)
        if in_order != training or training[: len(normalized)] != normalized:
            raise ValueError(f"{model_dir}: feature order not supported")
        return cls(
            filters=tuple(cli["list_filters"]),
            features=training,
            normalized=normalized,
            norm=str(cli["norm"]),
            norm_table=table,
        )

    def __post_init__(self) -> None:
        if self.norm not in ("global", "cosmo_quantile"):
            raise ValueError(f"SuperNNova normalisation {self.norm!r} is not supported")
        known = {f"FLUXCAL_{b}" for b in self.filters} | {f"FLUXCALERR_{b}" for b in self.filters}
        for feature in self.features:
            is_combination = set(feature) <= set("".join(self.filters)) and feature
            if not (
                feature in known
                or feature == "delta_time"
                or feature.startswith("HOSTGAL_")
                or is_combination
            ):
                raise ValueError(f"SuperNNova feature {feature!r} is not supported")


def _groups(t: np.ndarray) -> np.ndarray:
    """The group time of each point (``t`` sorted), SuperNNova's 8-hour grouping."""
    out = np.empty_like(t)
    last = 0.0
    for i in range(len(t)):
        if i == 0 or t[i] == t[i - 1] or t[i] - last > GROUP_DAYS:
            out[i] = last = t[i]
        else:
            out[i] = out[i - 1]
    return out


def light_curve_matrix(
    t: np.ndarray,
    flux: np.ndarray,
    fluxerr: np.ndarray,
    band: np.ndarray,
    settings: SnnSettings,
) -> np.ndarray:
    """The normalised ``[groups, features]`` float32 matrix of one light curve.

    ``flux``/``fluxerr`` are SNANA ``FLUXCAL`` (zero point 27.5); points with a non-finite
    value are the caller's to drop. ``t`` must hold at least one point.
    """
    order = np.argsort(t, kind="stable")
    t, flux, fluxerr, band = t[order], flux[order], fluxerr[order], band[order]
    group_time = _groups(t)
    groups, group_index = np.unique(group_time, return_inverse=True)
    n, filters = len(groups), settings.filters
    values: dict[str, np.ndarray] = {}
    present = np.zeros((n, len(filters)), dtype=bool)
    for j, name in enumerate(filters):
        fl, er = np.zeros(n), np.zeros(n)
        rows = np.flatnonzero(band == name)
        if len(rows):
            # per group, the point of smallest error: sort by error, keep the first per group
            rows = rows[np.argsort(fluxerr[rows], kind="stable")]
            g, first = np.unique(group_index[rows], return_index=True)
            fl[g], er[g] = flux[rows[first]], fluxerr[rows[first]]
            present[g, j] = True
        values[f"FLUXCAL_{name}"] = fl.astype(np.float32)
        values[f"FLUXCALERR_{name}"] = er.astype(np.float32)
    values["delta_time"] = np.diff(groups, prepend=groups[0]).astype(np.float32)
    combination = np.array(
        ["".join(f for f, p in zip(filters, row, strict=True) if p) for row in present]
    )
    matrix = np.zeros((n, len(settings.features)))
    for k, feature in enumerate(settings.features):
        if feature in values:
            matrix[:, k] = values[feature]
        elif not feature.startswith("HOSTGAL_"):
            matrix[:, k] = combination == feature
    return normalize(matrix, settings).astype(np.float32)


def normalize(matrix: np.ndarray, settings: SnnSettings) -> np.ndarray:
    """SuperNNova's normalisation of the flux, error and time columns (in place)."""
    index = [settings.features.index(f) for f in settings.normalized]
    low, mean, std = settings.norm_table.T
    block = np.clip(matrix[:, index], low, np.inf)
    if settings.norm == "global":
        block = (np.log(block - low + LOG_OFFSET) - mean) / std
    else:
        block[:, :-1] = block[:, :-1] / np.quantile(block[:, :-1], COSMO_QUANTILE)
        block[:, -1] = (np.log(block[:, -1] - low[-1] + LOG_OFFSET) - mean[-1]) / std[-1]
    matrix[:, index] = block
    return matrix


def pad(matrices: Sequence[np.ndarray], n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Light curves as the graph's ``x`` ``[epochs, batch, features]`` and ``lengths``."""
    lengths = np.array([len(m) for m in matrices], dtype=np.int32)
    x = np.zeros((int(lengths.max(initial=1)), len(matrices), n_features), dtype=np.float32)
    for i, m in enumerate(matrices):
        x[: len(m), i, :] = m
    return x, lengths
