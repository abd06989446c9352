"""Scores of fink-science 7.4.0's own functions, with the original models, on the test data.

The broker runs Fink's models through onnxruntime and its own input formatting; the
originals need what the broker's environment cannot have (PyPI's torch is a CUDA build
with ~3 GB of NVIDIA libraries, CATS is a Keras 2 file, 7.4.0's anomaly score uses pandas
1 only). This script runs the originals in the side environment of
``scripts/reference/requirements*.txt`` and writes ``tests/fixtures/fink_science_reference.json``,
which the tests compare the broker's modules against. Re-run it when a model, fink-science
or the test data change::

    bash scripts/reference/make_fixture.sh      # builds .venv-reference, then runs this

Inputs are built here from the alert records with Fink's own conventions (``concat_col``:
the history list's field followed by the current value), not with the broker's code, so
the comparison is between two independent paths. SIMBAD is not reachable: every alert is
given ``cdsxmatch = "Unknown"`` (no SIMBAD counterpart), and the tests compare on the
alerts whose local-catalogue stand-in says the same.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ["TF_USE_LEGACY_KERAS"] = "1"
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import fastavro  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from tests import plasticc_sample  # noqa: E402

DATASIM = REPO.parent / "shared" / "datasim"
OUT = REPO / "tests" / "fixtures" / "fink_science_reference.json"
#: light curves whose SuperNNova tensors are stored, per model (the ONNX-vs-torch check)
TENSORS_PER_MODEL = 25
#: the three feature names 7.4.0's frame gives where its forest was fitted with others
SLSN_FIT_NAMES = {"dec": "decl", "std_y": "std_Y", "mean_snr_y": "mean_snr_Y"}


def records(survey: str) -> list[dict]:
    out = []
    for path in sorted((DATASIM / survey).glob("*.avro")):
        with path.open("rb") as f:
            out.extend(fastavro.reader(f))
    return out


def concat(recs: list[dict], history: str, current: str, field: str) -> pd.Series:
    """Fink's ``concat_col``: ``history[].field`` then ``current.field``."""
    values = []
    for r in recs:
        past = [item.get(field) for item in (r.get(history) or [])]
        values.append(np.array([*past, r[current][field]], dtype=object))
    return pd.Series(values)


def floats(series: pd.Series) -> pd.Series:
    return series.apply(lambda v: np.array([np.nan if x is None else x for x in v], dtype=float))


def ztf_datasim() -> dict:
    from fink_science.ztf.asteroids.processor import roid_catcher
    from fink_science.ztf.snn.processor import snn_ia

    recs = records("ztf")
    jd = floats(concat(recs, "prv_candidates", "candidate", "jd"))
    fid = concat(recs, "prv_candidates", "candidate", "fid")
    mag = floats(concat(recs, "prv_candidates", "candidate", "magpsf"))
    err = floats(concat(recs, "prv_candidates", "candidate", "sigmapsf"))
    cand = pd.Series([r["candidate"] for r in recs])
    roid = roid_catcher.func(
        jd,
        mag,
        cand.apply(lambda c: c["ndethist"]),
        cand.apply(lambda c: c["sgscore1"]),
        cand.apply(lambda c: c["ssdistnr"]),
        cand.apply(lambda c: c["distpsnr1"]),
    )
    candid = pd.Series([r["candid"] for r in recs])
    scores = {}
    for model in ("snn_snia_vs_nonia", "snn_sn_vs_all"):
        scores[model] = snn_ia.func(
            candid, jd, fid, mag, err, roid, pd.Series(["Unknown"] * len(recs)),
            cand.apply(lambda c: c["jdstarthist"]), pd.Series([model] * len(recs)),
        ).tolist()  # fmt: skip
    return {"candid": [str(c) for c in candid], "roid": roid.tolist(), **scores}


def ztf_plasticc() -> dict:
    """PLAsTiCC g and r light curves dressed as ZTF alerts, through Fink's ZTF function."""
    from fink_science.ztf.snn.processor import snn_ia

    curves = []
    for lc in plasticc_sample.load():
        lc = lc.bands(("g", "r"))
        ok = lc.flux > 0
        if ok.sum() >= 2:
            curves.append((lc, ok))
    mags = [27.5 - 2.5 * np.log10(lc.flux[ok]) for lc, ok in curves]
    errs = [1.0857 * lc.fluxerr[ok] / lc.flux[ok] for lc, ok in curves]
    jd = pd.Series([lc.mjd[ok] + 2400000.5 for lc, ok in curves])
    fid = pd.Series([np.where(lc.band[ok] == "g", 1, 2) for lc, ok in curves])
    n = len(curves)
    out = {"object_id": [lc.object_id for lc, _ in curves]}
    for model in ("snn_snia_vs_nonia", "snn_sn_vs_all"):
        out[model] = snn_ia.func(
            pd.Series(out["object_id"]), jd, fid, pd.Series(mags), pd.Series(errs),
            pd.Series([0] * n), pd.Series(["Unknown"] * n),
            jd.apply(lambda x: float(x[-1])), pd.Series([model] * n),
        ).tolist()  # fmt: skip
    return out


def ztf_anomaly() -> dict:
    """fink-science's ad features and anomaly scores (every model) on the real ZTF alerts.

    7.4.0's ``anomaly_score`` reads its CSVs with ``read_csv(squeeze=True)``: it runs on
    the pandas 1.5 of this environment only.
    """
    from fink_science.ztf.ad_features.processor import FEATURES_COLS, extract_features_ad_raw
    from fink_science.ztf.anomaly_detection.processor import ANOMALY_MODELS, anomaly_score

    recs = records("ztf")
    fields = ["magpsf", "jd", "sigmapsf", "fid", "distnr", "magnr", "sigmagnr", "isdiffpos"]
    c = {f: concat(recs, "prv_candidates", "candidate", f) for f in fields}
    features = [
        extract_features_ad_raw(*(c[f][i] for f in fields[:4]), r["objectId"],
                                *(c[f][i] for f in fields[4:]))
        for i, r in enumerate(recs)
    ]  # fmt: skip
    out = {
        "candid": [str(r["candid"]) for r in recs],
        "feature_names": list(FEATURES_COLS),
        "lc_features": [
            {str(band): [values[n] for n in FEATURES_COLS] for band, values in f.items()}
            for f in features
        ],
    }
    for model in ["", *ANOMALY_MODELS]:
        scores = anomaly_score.func(pd.Series(features), pd.Series([model] * len(recs)))
        out[f"anomaly_score{model}"] = [float(v) for v in scores]
    return out


def slsn_reference(ids, t, band, flux, err, ra, dec) -> dict:
    """7.4.0's ``slsn_rubin`` (its forest, its features), the frame's names aside.

    Unchanged, the function raises on every light curve it scores (scikit-learn 1.5.2,
    the forest's own version: "The feature names should match those that were passed
    during fit"); here its ``parametrise`` is wrapped to give the frame the names the
    forest was fitted with (:data:`SLSN_FIT_NAMES`, same positions), nothing else. The
    feature rows and the forest's probabilities on them are kept for the ONNX check.
    """
    import fink_science.rubin.slsn.classifier as classifier
    from fink_science.rubin.slsn.processor import slsn_rubin

    kept = []
    parametrise = classifier.fe.parametrise

    def named(*args, **kwargs):
        frame = parametrise(*args, **kwargs).rename(columns=SLSN_FIT_NAMES)
        kept.append(frame)
        return frame

    classifier.fe.parametrise = named
    try:
        scores = slsn_rubin.func(ids, t, flux, err, band, ra, dec)
    finally:
        classifier.fe.parametrise = parametrise
    out = {"slsn_score": [float(v) for v in scores], "features": [], "probabilities": []}
    if kept:
        x = kept[0].replace(np.inf, 0.0).replace(np.nan, 0.0).iloc[:, 1:]
        model = classifier.load_classifier(False)
        out["features"] = x.to_numpy(float).tolist()
        out["probabilities"] = model.predict_proba(x)[:, 1].tolist()
    return out


def slsn_datasim() -> dict:
    recs = records("rubin")
    ids = pd.Series([r["diaSource"]["diaObjectId"] for r in recs])
    ra = pd.Series([r["diaSource"]["ra"] for r in recs])
    dec = pd.Series([r["diaSource"]["dec"] for r in recs])
    out = slsn_reference(ids, *rubin_inputs(recs), ra, dec)
    return {"diaSourceId": [str(r["diaSourceId"]) for r in recs], **out}


def slsn_plasticc() -> dict:
    fac = 10 ** (-(31.4 - 27.5) / 2.5)
    curves = plasticc_sample.slsn_sample()
    ids = pd.Series([lc.object_id for lc in curves])
    out = slsn_reference(
        ids, pd.Series([lc.mjd for lc in curves]), pd.Series([lc.band for lc in curves]),
        pd.Series([lc.flux / fac for lc in curves]), pd.Series([lc.fluxerr / fac for lc in curves]),
        pd.Series([lc.ra for lc in curves]), pd.Series([lc.dec for lc in curves]),
    )  # fmt: skip
    return {"object_id": ids.tolist(), **out}


def rubin_inputs(recs: list[dict]) -> tuple[pd.Series, ...]:
    t = floats(concat(recs, "prvDiaSources", "diaSource", "midpointMjdTai"))
    band = concat(recs, "prvDiaSources", "diaSource", "band")
    flux = floats(concat(recs, "prvDiaSources", "diaSource", "psfFlux"))
    err = floats(concat(recs, "prvDiaSources", "diaSource", "psfFluxErr"))
    return t, band, flux, err


def rubin_scores(ids: pd.Series, t, band, flux, err) -> dict:
    from fink_science.rubin.cats.processor import predict_nn
    from fink_science.rubin.snn.processor import snn_ia_elasticc

    snn = snn_ia_elasticc.func(
        ids, t, band, flux, err, pd.Series(["elasticc_binary_broad/SN_vs_other"] * len(ids))
    )
    cats = predict_nn.func(t, flux, err, band)
    return {
        "snnSnVsOthers_score": [float(v) for v in snn],
        "cats_probabilities": [[float(p) for p in v] for v in cats],
    }


def rubin_datasim() -> dict:
    recs = records("rubin")
    ids = pd.Series([r["diaSourceId"] for r in recs])
    return {"diaSourceId": [str(i) for i in ids], **rubin_scores(ids, *rubin_inputs(recs))}


def rubin_plasticc() -> dict:
    fac = 10 ** (-(31.4 - 27.5) / 2.5)
    curves = plasticc_sample.load()
    ids = pd.Series([lc.object_id for lc in curves])
    t = pd.Series([lc.mjd for lc in curves])
    band = pd.Series([lc.band for lc in curves])
    flux = pd.Series([lc.flux / fac for lc in curves])  # FLUXCAL -> nJy
    err = pd.Series([lc.fluxerr / fac for lc in curves])
    return {"object_id": ids.tolist(), **rubin_scores(ids, t, band, flux, err)}


def snn_tensors() -> dict:
    """SuperNNova's own input tensors and the torch network's probabilities on them."""
    import torch
    from fink_science import __file__ as fs
    from supernnova.utils import training_utils as tu
    from supernnova.validation import validate_onthefly as v

    models = Path(fs).parent / "data" / "models" / "snn_models"
    out = {}
    curves = plasticc_sample.load(per_class=3)
    for model, bands in (
        ("snn_snia_vs_nonia", ("g", "r")),
        ("elasticc_binary_broad/SN_vs_other", plasticc_sample.PASSBANDS),
    ):
        settings = v.get_settings(str(models / model / "model.pt"))
        settings.idx_features_to_normalize = [
            i for i, f in enumerate(settings.training_features)
            if f in settings.training_features_to_normalize
        ]  # fmt: skip
        state = torch.load(models / model / "model.pt", map_location="cpu", weights_only=False)
        rnn = tu.get_model(settings, len(settings.training_features))
        rnn.load_state_dict(state)
        rnn.eval()
        rows = []
        for lc in curves[:TENSORS_PER_MODEL]:
            lc = lc.bands(bands)
            if len(lc.mjd) == 0:
                continue
            pdf = pd.DataFrame({
                "SNID": str(lc.object_id), "MJD": lc.mjd, "FLUXCAL": lc.flux,
                "FLUXCALERR": lc.fluxerr,
                "FLT": [b.upper() if b == "y" else b for b in lc.band],
            })  # fmt: skip
            df = v.format_data(pdf, settings)
            x = df.values.astype(np.float64)
            x[:, settings.idx_features_to_normalize] = np.clip(
                x[:, settings.idx_features_to_normalize], settings.arr_norm[:, 0], np.inf
            )
            x = tu.normalize_arr(x, settings)
            idx = [
                i for i, f in enumerate(settings.all_features) if f in settings.training_features
            ]
            x = x[:, idx].astype(np.float32)
            with torch.no_grad():
                logits = rnn(torch.from_numpy(x[:, None, :]))
                probs = torch.softmax(logits, dim=-1).numpy()[0]
            rows.append({"x": x.tolist(), "probabilities": probs.tolist()})
        out[model] = rows
    return out


def cats_tensors() -> dict:
    """CATS's own input tensors (unpadded rows) and the Keras network's output on them."""
    import tf_keras
    from fink_science import __file__ as fs

    model = tf_keras.models.load_model(
        Path(fs).parent / "data/models/cats_models/cats_small_nometa_serial.keras"
    )
    recs = records("rubin")[:TENSORS_PER_MODEL]
    t, band, flux, err = rubin_inputs(recs)
    codes = {"u": 1, "g": 2, "r": 3, "i": 4, "z": 5, "y": 6}
    rows = []
    for i in range(len(recs)):

        def norm(v):
            return np.ones(1) if len(v) == 1 else (v - v.min()) / np.ptp(v)

        x = np.stack(
            [t[i] - t[i][0], norm(flux[i]), norm(err[i]), [codes[b] for b in band[i]]], axis=1
        ).astype(np.float32)
        padded = np.full((1, 395, 4), -999.0, dtype=np.float32)
        padded[0, :, 3] = 0
        padded[0, : min(len(x), 395)] = x[-395:]
        rows.append(
            {"x": x.tolist(), "probabilities": model.predict(padded, verbose=0)[0].tolist()}
        )
    return {"cats": rows}


def main() -> None:
    import fink_science

    if "--only" in sys.argv:  # refresh some parts, keep the others (while iterating)
        fixture = json.loads(OUT.read_text())
        for part in sys.argv[sys.argv.index("--only") + 1 :]:
            fixture[part] = PARTS[part]()
        OUT.write_text(json.dumps(fixture, separators=(",", ":")))
        print(f"updated {OUT} ({OUT.stat().st_size} bytes)")
        return
    fixture = {
        "fink_science": fink_science.__version__,
        "produced_by": "scripts/reference/make_fixture.py",
        "ztf_datasim": ztf_datasim(),
        "ztf_plasticc": ztf_plasticc(),
        "rubin_datasim": rubin_datasim(),
        "rubin_plasticc": rubin_plasticc(),
        "snn_tensors": snn_tensors(),
        **cats_tensors(),
        **{part: make() for part, make in PARTS.items()},
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(fixture, separators=(",", ":")))
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


#: the parts ``--only`` can refresh one by one
PARTS = {
    "ztf_anomaly": ztf_anomaly,
    "slsn_datasim": slsn_datasim,
    "slsn_plasticc": slsn_plasticc,
}


if __name__ == "__main__":
    main()
