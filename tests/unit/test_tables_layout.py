"""HBase layout: table names, row keys and their ordering, without HBase."""

from __future__ import annotations

import random

import pytest

from fink_broker.surveys.archive_shapes import archive_tables
from fink_broker.tables import layout as L


def test_table_names_and_families():
    tables = archive_tables("fink", "rubin")
    specs = {s.name: s.families for s in tables.specs()}
    assert specs["fink_rubin_alerts"] == ("r", "f"), "Fink's Rubin families"
    assert {s.name: s.families for s in archive_tables("fink", "ztf").specs()}[
        "fink_ztf_alerts"
    ] == ("i", "d")
    assert set(specs) == {f"fink_rubin_{k.value}" for k in L.TableKind}
    assert tables.families.survey_record == "r:alert"
    with pytest.raises(ValueError, match="namespace"):
        L.ArchiveTables("fink_prod", "ztf")


def test_time_keys_sort_as_times_and_inverted_keys_newest_first():
    rng = random.Random(3)
    times = [rng.uniform(10000.0, 99999.0) for _ in range(500)]
    by_key = sorted(times, key=L.mjd_key)
    assert by_key == sorted(times)
    by_inverted = sorted(times, key=L.inverted_mjd_key)
    assert by_inverted == sorted(times, reverse=True)
    assert {len(L.inverted_mjd_key(t)) for t in times} == {17}


def test_object_prefix_does_not_match_longer_ids():
    key = L.row_key("12345", L.mjd_key(60000.1))
    assert key.startswith(L.object_prefix("12345"))
    assert not key.startswith(L.object_prefix("1234"))


def test_no_object_key_is_the_prefix_of_another_objects_key():
    """``_`` is legal in ids (replay copies ``X_1``), so it cannot separate key parts:
    with NUL, object X's prefix matches none of X_1's rows, and scans stop before them."""
    ids = ["ZTF20aaelulu", "ZTF20aaelulu_1", "ZTF20aaelulu_12", "ZTF20aaelul", "1234", "12345"]
    keys = {i: L.row_key(i, L.mjd_key(58849.0 + n)) for n, i in enumerate(ids)}
    for mine in ids:
        prefix = L.object_prefix(mine)
        assert [i for i, k in keys.items() if k.startswith(prefix)] == [mine]
        stop = L.prefix_stop(prefix)
        inside = [i for i, k in keys.items() if prefix <= k < stop]
        assert inside == [mine]
    assert L.key_parts(keys["ZTF20aaelulu_1"]) == ["ZTF20aaelulu_1", L.mjd_key(58850.0)]


def test_pixel_keys_sort_as_pixel_numbers():
    pixels = [0, 7, 12 * 4**10 - 1, 123456]
    assert sorted(pixels, key=L.pixel_key) == sorted(pixels)
    assert {len(L.pixel_key(p)) for p in pixels} == {L.PIXEL_DIGITS}


def test_sso_key_ignores_spaces_and_case():
    assert L.sso_key("2010 UB100") == L.sso_key("2010ub100") == "2010ub100"
    assert L.sso_key(" 4472 ") == "4472"


def test_survey_qualifier():
    assert L.survey_qualifier(None, "objectId", "candidate") == "objectId"
    assert L.survey_qualifier("candidate", "jd", "candidate") == "jd"
    assert L.survey_qualifier("ssSource", "ssObjectId", "diaSource") == "ssSource.ssObjectId"
