"""Request values as Fink's API reads them, and the cursors of paged answers (no HBase)."""

from __future__ import annotations

import pytest

from fink_broker.api import parsing as P
from fink_broker.api.limits import Cursor, page_of
from fink_broker.surveys.base import TAI_MINUS_UTC_SECONDS


def test_a_number_above_2_400_000_is_a_jd_else_an_mjd():
    assert P.parse_time("2458849.5", "startdate") == 58849.0
    assert P.parse_time(2458849.5, "startdate") == 58849.0
    assert P.parse_time("58849.5", "startdate") == 58849.5
    assert P.parse_time("2020-01-01", "startdate") == 58849.0
    assert P.parse_time("2020-01-01T12:00:00", "startdate") == 58849.5
    assert P.parse_time(" ", "startdate") is None


def test_iso_dates_move_to_tai_for_rubin_numbers_do_not():
    utc = P.parse_time("2025-09-06", "startdate", tai=True)
    assert utc == pytest.approx(60924.0 + TAI_MINUS_UTC_SECONDS / 86400.0)
    assert P.parse_time("60924.0", "startdate", tai=True) == 60924.0


@pytest.mark.parametrize("value", ["soon", "nan", "inf", "1e300", "-2e6", "2020-13-45"])
def test_unreadable_dates_name_the_parameter(value):
    with pytest.raises(P.BadParameter, match=r"^stopdate:"):
        P.parse_time(value, "stopdate")


def test_window_replaces_stopdate_and_needs_a_start():
    assert P.time_window("58849", None, 2.0) == (58849.0, 58851.0)
    for start, stop, window, name in (
        (None, None, 1.0, "window"),
        ("58849", "58850", 1.0, "window"),
        ("58849", None, -1.0, "window"),
        ("58850", "58849", None, "stopdate"),
    ):
        with pytest.raises(P.BadParameter, match=f"^{name}:"):
            P.time_window(start, stop, window)


def test_positions_in_degrees_or_sexagesimal():
    assert P.parse_position("187.5", "10") == (187.5, 10.0)
    ra, dec = P.parse_position("12:30:00", "-10:30:00")
    assert (round(ra, 9), round(dec, 9)) == (187.5, -10.5)
    ra, dec = P.parse_position("12h30m00s", "+10d30m00s")
    assert (round(ra, 9), round(dec, 9)) == (187.5, 10.5)
    for ra, dec, name in (
        ("360", "0", "ra"),
        ("1", "91", "dec"),
        ("nan", "0", "ra"),
        ("x", "y", "ra"),
    ):
        with pytest.raises(P.BadParameter, match=f"^{name}:"):
            P.parse_position(ra, dec)


@pytest.mark.parametrize(
    "value",
    ["²", "١٢٣", "１２３", "-5", "12a", str(2**63), "1 2", "12\x0034", ""],
)
def test_alert_ids_are_ascii_64_bit_integers(value):
    with pytest.raises(P.BadParameter, match=r"^candid:"):
        P.alert_ids(value, "candid")


def test_alert_ids_parse_lists():
    assert P.alert_ids(" 1, 2 ,3", "candid") == [1, 2, 3]
    assert P.alert_ids(str(2**63 - 1), "candid") == [2**63 - 1]


@pytest.mark.parametrize(
    "value", ["*", "ZTF'1", 'ZTF"1', "ZTF\x001", "ZTF２０", "ZTF 20", "a" * 81, "_x", "é"]
)
def test_object_ids_refuse_what_no_survey_id_holds(value):
    with pytest.raises(P.BadParameter, match=r"^objectId:"):
        P.object_ids(value, "objectId", 10)


def test_object_ids_keep_replay_copies_and_order_and_cap_the_count():
    assert P.object_ids("ZTF20aaelulu_1,ZTF20aaelulu,ZTF20aaelulu_1", "objectId", 10) == [
        "ZTF20aaelulu_1",
        "ZTF20aaelulu",
    ]
    with pytest.raises(P.BadParameter, match="at most 2"):
        P.object_ids("a,b,c", "objectId", 2)


def test_names_refuse_control_characters():
    assert P.names("2010 UB100, Ceres", "n_or_d", 10) == ["2010 UB100", "Ceres"]
    with pytest.raises(P.BadParameter, match=r"^n_or_d:"):
        P.names("ceres\x00", "n_or_d", 10)


def test_cursors_round_trip_and_refuse_what_this_api_did_not_give():
    for cursor in (Cursor(0, None), Cursor(3, b"ZTF1\x0058849.50000000")):
        assert Cursor.decode(cursor.encode()) == cursor
    assert Cursor.decode(None) is None and Cursor.decode(" ") is None
    for text in ("not-a-cursor", "eyJwIjogLTF9", "e30", "!!"):
        with pytest.raises(ValueError, match="not a cursor"):
            Cursor.decode(text)


def test_pages_of_a_list_cover_it_once():
    items = list(range(7))
    seen, cursor = [], None
    for _ in range(10):
        page, cursor = page_of(items, cursor, 3)
        seen += page
        if cursor is None:
            break
    assert seen == items
