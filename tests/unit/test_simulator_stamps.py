"""Replay copies carry distinct cutout bytes that still hold the same images."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import fastavro
import numpy as np
import pyarrow as pa
import pytest
from astropy.io import fits

from fink_broker.simulator.replay import AlertSource
from fink_broker.simulator.stamps import GZIP_VARIANTS, DistinctStamps, stamp_layout, vary
from fink_broker.surveys import get_adapter
from fink_broker.surveys.base import iter_alert_files, read_alert_file


def hdus(stamp: bytes) -> list[tuple[fits.Header, np.ndarray | None]]:
    if stamp[:2] == b"\x1f\x8b":
        stamp = gzip.decompress(stamp)
    with fits.open(io.BytesIO(stamp)) as opened:
        return [(h.header.copy(), None if h.data is None else h.data.copy()) for h in opened]


def fits_bytes(*images: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    primary, *extensions = images
    fits.HDUList([fits.PrimaryHDU(primary), *[fits.ImageHDU(e) for e in extensions]]).writeto(
        buffer
    )
    return buffer.getvalue()


def test_rubin_stamps_change_in_their_last_bits_only(datasim):
    record, _ = read_alert_file(next(iter_alert_files(datasim / "rubin")))
    stamp = record["cutoutScience"]
    layout = stamp_layout(stamp)
    assert layout is not None and not layout.gzipped
    one, two = vary(layout, 1, 7), vary(layout, 2, 7)
    assert len({stamp, one, two}) == 3 and vary(layout, 1, 7) == one
    for (h0, d0), (h1, d1) in zip(hdus(stamp), hdus(one), strict=True):
        assert h0 == h1
        if d0 is None:
            continue
        assert d1.shape == d0.shape and d1.dtype == d0.dtype
        assert (np.isfinite(d0) == np.isfinite(d1)).all()
        finite = np.isfinite(d0) & (d0 != 0)
        bound = 2.0**-15 if d0.dtype.itemsize == 4 else 2.0**-44
        assert (np.abs(d1[finite] - d0[finite]) <= bound * np.abs(d0[finite])).all()
        assert (d1 != d0).mean() > 0.9


def test_non_finite_and_integer_pixels():
    floats = np.array([[1.5, np.nan], [np.inf, -np.inf]], dtype=np.float32)
    counts = np.arange(400, dtype=np.int16).reshape(20, 20)
    stamp = fits_bytes(floats, counts)
    varied = hdus(vary(stamp_layout(stamp), 3, 1))
    out_floats, out_counts = varied[0][1], varied[1][1]
    assert np.isnan(out_floats[0, 1]) and out_floats[1, 0] == np.inf and out_floats[1, 1] == -np.inf
    assert out_floats[0, 0] != 1.5 and abs(out_floats[0, 0] - 1.5) < 1.5 * 2.0**-15
    assert (np.abs(out_counts.astype(int) - counts) <= 1).all()
    assert (out_counts != counts).any()


def test_tables_are_left_alone_and_images_after_them_varied():
    image = np.linspace(1.0, 2.0, 64, dtype=np.float32).reshape(8, 8)
    table = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="name", format="10A", array=np.array(["alpha", "beta"])),
            fits.Column(name="flux", format="E", array=np.array([1.5, 2.5], np.float32)),
        ]
    )
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(image), table, fits.ImageHDU(image)]).writeto(buffer)
    stamp = buffer.getvalue()
    varied = vary(stamp_layout(stamp), 1, 0)
    assert len(varied) == len(stamp)
    with fits.open(io.BytesIO(stamp)) as before, fits.open(io.BytesIO(varied)) as after:
        assert list(after[1].data["name"]) == ["alpha", "beta"]
        assert list(after[1].data["flux"]) == [1.5, 2.5]
        for i in (0, 2):
            assert (after[i].data != before[i].data).all()
            assert np.allclose(after[i].data, before[i].data, rtol=2.0**-15, atol=0)


def test_large_stamps_and_copies_far_apart():
    big = np.ones((1100, 1000), dtype=np.float32)  # more pixels than the noise pool
    layout = stamp_layout(fits_bytes(big))
    assert len(layout.offsets) == big.size
    varied = [vary(layout, copy, 3) for copy in (1, 2, 500)]
    assert len(set(varied)) == 3 and all(v != layout.fits for v in varied)


def test_gzipped_stamps_stay_gzipped(datasim):
    record, _ = read_alert_file(next(iter_alert_files(datasim / "ztf")))
    stamp = record["cutoutTemplate"]["stampData"]
    layout = stamp_layout(stamp)
    assert layout is not None and layout.gzipped
    varied = vary(layout, 1, 0)
    assert varied[:2] == b"\x1f\x8b" and varied != stamp
    (_, before), (_, after) = hdus(stamp)[0], hdus(varied)[0]
    finite = np.isfinite(before)
    assert np.allclose(after[finite], before[finite], rtol=2.0**-15, atol=0)


@pytest.mark.parametrize("stamp", [b"", b"not a FITS file", b"\x1f\x8bnot gzip", b"SIMPLE  = T"])
def test_other_bytes_are_left_alone(stamp):
    assert stamp_layout(stamp) is None
    record = {"cutoutScience": stamp, "cutoutTemplate": {"fileName": "x", "stampData": stamp}}
    assert DistinctStamps().apply(record, 0, 5) == record


def test_copies_no_longer_compress_into_each_other(datasim):
    """What the variation is for: a Parquet page holding the same stamps several times
    compresses far better, and faster, than real (distinct) stamps do."""
    stamps = [read_alert_file(p)[0]["cutoutScience"] for p in iter_alert_files(datasim / "rubin")]
    stamps = stamps[:25]
    layouts = [stamp_layout(s) for s in stamps]
    repeated = b"".join(stamps * 4)
    distinct = b"".join(
        [*stamps, *[vary(lay, k, i) for k in (1, 2, 3) for i, lay in enumerate(layouts)]]
    )
    codec = pa.Codec("zstd", compression_level=3)

    def ratio(page: bytes) -> float:
        return len(page) / len(codec.compress(page, asbytes=True))

    single = ratio(b"".join(stamps))
    assert ratio(repeated) > 2.5 * single
    assert ratio(distinct) < 1.5 * single


def test_gzipped_stamps_cycle_through_variants(datasim):
    record, _ = read_alert_file(next(iter_alert_files(datasim / "ztf")))
    stamps = DistinctStamps()

    def science(copy: int) -> bytes:
        return stamps.apply(record, 0, copy)["cutoutScience"]["stampData"]

    first = [science(k) for k in range(1, GZIP_VARIANTS + 1)]
    assert len(set(first)) == GZIP_VARIANTS
    assert science(GZIP_VARIANTS + 1) == first[0] and science(2 * GZIP_VARIANTS) == first[-1]


def test_alert_source_copies(datasim):
    folder = Path(datasim) / "ztf"
    n = len(list(iter_alert_files(folder)))
    adapter = get_adapter("ztf")
    varied = AlertSource(adapter, folder)
    same = AlertSource(adapter, folder, same_cutouts=True)
    stamps = DistinctStamps()
    original, _schema = read_alert_file(next(iter_alert_files(folder)))
    copy = stamps.apply(adapter.with_fresh_ids(original, 1), 0, 1)
    assert copy["cutoutScience"]["fileName"] == original["cutoutScience"]["fileName"]
    assert copy["cutoutScience"]["stampData"] != original["cutoutScience"]["stampData"]

    def decoded(source: AlertSource, index: int) -> tuple[bytes, dict]:
        key, value = source.message(index)
        return key, next(fastavro.reader(io.BytesIO(value)))

    assert decoded(varied, 0) == decoded(same, 0)
    (key, alert), (same_key, same_alert) = decoded(varied, n), decoded(same, n)
    assert key == same_key and alert["candid"] == same_alert["candid"] != original["candid"]
    assert alert["cutoutScience"]["stampData"] != same_alert["cutoutScience"]["stampData"]
    assert same_alert["cutoutScience"] == original["cutoutScience"]
    assert {k: v for k, v in alert.items() if not k.startswith("cutout")} == {
        k: v for k, v in same_alert.items() if not k.startswith("cutout")
    }
