"""Distinct cutout bytes for every replay copy of an alert.

A load test repeats a small folder of real alerts (``--repeat``). With fresh ids only, the
cutouts of copy ``k`` are byte for byte those of copy 0, and the raw archive's zstd meets
each stamp again a few rows later in the same Parquet page: it then stores a reference
instead of the pixels, at a third of the CPU. Real alerts never repeat a stamp, so such a
load test overstates what the archive can take. ``benchmarks/stream2raw.py --nalerts
20000``, warm drains on local[2], repeated stamps against distinct ones:

- Rubin: 1,580-1,605 alerts/s and 1.03 ms of JVM CPU per alert, raw archive 646-720 MB;
  distinct: 1,321 alerts/s, 1.29 ms, 1,016 MB.
- ZTF: ~3,000 alerts/s; distinct: 2,351 alerts/s, 0.67 ms, 827 MB.

Each copy therefore gets its pixels changed in their least significant byte: a float32
value by less than 2**-15 of itself (a float64 by less than 2**-44), an integer pixel in
its lowest bit or not at all. The FITS stays valid, headers and non-finite pixels are
untouched, and the image is the same for anyone who looks at it, but no long run of bytes
repeats. Table extensions, and stamps that are not FITS (nor gzipped FITS), are left as
they are.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fink_broker.tables.layout import CUTOUT_KINDS

#: FITS blocks and header cards (bytes)
BLOCK = 2880
CARD = 80
GZIP_MAGIC = b"\x1f\x8b"

#: gzip level of re-compressed stamps (ZTF sends gzipped FITS): the fastest; the archive
#: stores them as they come either way
GZIP_LEVEL = 1

#: variants kept per gzipped stamp, copy ``k`` taking variant ``(k - 1) % GZIP_VARIANTS``.
#: Re-gzipping costs ~0.33 ms per ZTF stamp, 1 ms per alert, which held a live replay at
#: 211 alerts/s instead of 250 on the 2 cores it shares with Spark. A stamp then recurs
#: only every 32 copies of the folder (1,600 messages for 50 files), never within one
#: Parquet page (~100 rows), which is all the archive's compression sees.
GZIP_VARIANTS = 32

#: NumPy dtypes of FITS pixels by BITPIX (big-endian, as FITS stores them)
PIXEL_TYPES = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


@dataclass(frozen=True)
class StampLayout:
    """Where a stamp's pixels are: what :func:`vary` changes, computed once per stamp."""

    #: the FITS bytes (uncompressed)
    fits: bytes
    #: whether the stamp came gzipped (and goes out gzipped again)
    gzipped: bool
    #: byte offsets of the least significant byte of each pixel that may change
    offsets: np.ndarray
    #: the bits each of those bytes may flip (0xFF for floats, 0x01 for integers)
    masks: np.ndarray


def whole_blocks(size: int) -> int:
    """``size`` bytes rounded up to whole FITS blocks: a header and its data each pad to
    the next block, so the next HDU starts there."""
    return -(-size // BLOCK) * BLOCK


def _cards(fits: bytes, start: int) -> tuple[dict[str, str], int]:
    """The ``KEY = value`` cards of the header at ``start`` and where its data begins."""
    cards: dict[str, str] = {}
    pos = start
    while pos + CARD <= len(fits):
        card = fits[pos : pos + CARD].decode("ascii", "replace")
        pos += CARD
        key = card[:8].strip()
        if key == "END":
            return cards, start + whole_blocks(pos - start)
        if card[8:10] == "= ":
            cards[key] = card[10:].split("/")[0].strip()
    raise ValueError("FITS header without END")


def stamp_layout(stamp: bytes) -> StampLayout | None:
    """The pixels of a FITS or gzipped FITS stamp, every HDU; ``None`` for other bytes."""
    gzipped = stamp[:2] == GZIP_MAGIC
    try:
        fits = gzip.decompress(stamp) if gzipped else stamp
    except (OSError, EOFError, zlib.error):
        return None
    if not fits.startswith(b"SIMPLE  ="):
        return None
    offsets: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    pos = 0
    try:
        while pos < len(fits):
            cards, data = _cards(fits, pos)
            bitpix, naxis = int(cards.get("BITPIX", "8")), int(cards.get("NAXIS", "0"))
            count = int(np.prod([int(cards.get(f"NAXIS{i}", "0")) for i in range(1, naxis + 1)]))
            count = count if naxis else 0
            dtype = np.dtype(PIXEL_TYPES[bitpix])
            pcount, gcount = int(cards.get("PCOUNT", "0")), int(cards.get("GCOUNT", "1"))
            size = dtype.itemsize * gcount * (pcount + count)
            if data + size > len(fits):
                return None
            # images only (the primary HDU or an IMAGE extension): a table's bytes are
            # columns of any type, strings included, and stay as they are
            image = pos == 0 or cards.get("XTENSION", "").strip("' ") == "IMAGE"
            if image and pcount == 0 and gcount == 1:
                pixels = np.frombuffer(fits, dtype, count, data)
                keep = np.isfinite(pixels) if dtype.kind == "f" else np.ones(count, bool)
                last = data + dtype.itemsize - 1 + dtype.itemsize * np.flatnonzero(keep)
                offsets.append(last)
                masks.append(np.full(len(last), 0xFF if dtype.kind == "f" else 0x01, np.uint8))
            pos = data + whole_blocks(size)
    except (ValueError, KeyError):
        return None
    return StampLayout(
        fits=fits,
        gzipped=gzipped,
        offsets=np.concatenate(offsets) if offsets else np.empty(0, np.int64),
        masks=np.concatenate(masks) if masks else np.empty(0, np.uint8),
    )


#: random non-zero bytes, drawn once: copy ``k`` of a stamp takes a window of them at an
#: offset of its own (a generator per copy would cost more than the rest of the work)
NOISE = np.random.default_rng(20261203).integers(1, 256, 2**20, dtype=np.uint8)


def vary(layout: StampLayout, copy: int, salt: int) -> bytes:
    """The stamp of replay copy ``copy`` (> 0) of alert ``salt``: the same for the same
    arguments, so a replay is reproducible; copies take their noise at offsets ~1 M
    bytes apart modulo the pool, so two copies of a stamp share it only by chance."""
    n = len(layout.offsets)
    start = (copy * 2654435761 + salt * 40503) % len(NOISE)
    if start + n <= len(NOISE):
        noise = NOISE[start : start + n]
    else:  # the window wraps around the pool (or the stamp has more pixels than it)
        noise = NOISE[np.arange(start, start + n) % len(NOISE)]
    pixels = np.frombuffer(layout.fits, np.uint8).copy()
    # floats: a random non-zero low byte; integers: a random lowest bit
    pixels[layout.offsets] ^= noise & layout.masks
    out = pixels.tobytes()
    return gzip.compress(out, compresslevel=GZIP_LEVEL, mtime=0) if layout.gzipped else out


class DistinctStamps:
    """Varies the cutouts of replay copies (``cutout<Kind>`` bytes, or a ZTF-style
    ``{"stampData": bytes}`` record), keeping each original stamp's layout."""

    def __init__(self) -> None:
        self._layouts: dict[tuple[int, str], StampLayout | None] = {}
        self._gzipped: dict[tuple[int, str], dict[int, bytes]] = {}

    def apply(self, record: Mapping[str, Any], index: int, copy: int) -> dict[str, Any]:
        """``record`` (copy ``copy`` of the source's alert ``index``) with its stamps varied."""
        out = dict(record)
        if copy == 0:
            return out
        for kind in CUTOUT_KINDS:
            name = f"cutout{kind}"
            value = out.get(name)
            if isinstance(value, bytes | bytearray):
                out[name] = self._vary(bytes(value), index, name, copy)
            elif isinstance(value, Mapping) and isinstance(value.get("stampData"), bytes):
                stamp = self._vary(value["stampData"], index, name, copy)
                out[name] = {**value, "stampData": stamp}
        return out

    def _vary(self, stamp: bytes, index: int, name: str, copy: int) -> bytes:
        key = (index, name)
        if key not in self._layouts:
            self._layouts[key] = stamp_layout(stamp)
        layout = self._layouts[key]
        if layout is None:
            return stamp
        if not layout.gzipped:
            return vary(layout, copy, index)
        variant = (copy - 1) % GZIP_VARIANTS + 1
        variants = self._gzipped.setdefault(key, {})
        if variant not in variants:
            variants[variant] = vary(layout, variant, index)
        return variants[variant]
