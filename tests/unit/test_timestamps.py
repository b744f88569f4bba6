"""Unit tests of contracts.timestamps: every accepted form, every refusal."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.timestamps import EARLIEST, LATEST, format_timestamp, parse_timestamp

NOON = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
NOON_123 = datetime(2024, 5, 1, 12, 0, 0, 123_000, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        "2024-05-01T12:00:00.123Z",
        "2024-05-01T14:00:00.123+02:00",
        "2024-05-01T07:30:00.123-04:30",
        1714564800123,
        1714564800.123,
        "1714564800123",
        "1714564800.123",
        " 1714564800.123 ",
        datetime(2024, 5, 1, 12, 0, 0, 123_000, tzinfo=UTC),
        datetime(2024, 5, 1, 21, 0, 0, 123_456, tzinfo=timezone(timedelta(hours=9))),
    ],
)
def test_every_accepted_form_lands_on_the_same_instant(value: Any) -> None:
    """ISO with Z or offset, epoch ms, float seconds and datetimes agree."""
    assert NOON_123 == parse_timestamp(value)


@pytest.mark.parametrize(
    "value",
    [
        "2024-05-01T12:00:00Z",
        "2024-05-01T12:00:00+00:00",
        1714564800,
        1714564800000,
        "1714564800",
        "1714564800000",
        1714564800.0,
    ],
)
def test_whole_second_forms_land_on_the_same_instant(value: Any) -> None:
    """Epoch seconds and milliseconds, as numbers or strings, mean one instant."""
    assert NOON == parse_timestamp(value)


@pytest.mark.parametrize(
    "value",
    [
        "2024-05-01T12:00:00z",
        "2024-05-01t12:00:00Z",
        "2024-05-01t12:00:00z",
        "2024-05-01t12:00:00.000z",
        " 2024-05-01T12:00:00z ",
    ],
)
def test_lowercase_t_and_z_are_accepted_as_rfc_3339_allows(value: str) -> None:
    """RFC 3339 lets the separator and the UTC suffix be lowercase."""
    assert NOON == parse_timestamp(value)


@pytest.mark.parametrize("value", ["2024-05-01T12:00z00", "z"])
def test_a_lowercase_z_anywhere_but_the_end_is_refused(value: str) -> None:
    """Only a final z stands for UTC; the rest of the rules still hold."""
    with pytest.raises(ValueError, match="not ISO 8601"):
        parse_timestamp(value)


def test_offset_is_converted_to_utc() -> None:
    """A parsed timestamp always carries the UTC zone, whatever offset it had."""
    parsed = parse_timestamp("2024-05-01T14:00:00+02:00")

    assert UTC == parsed.tzinfo
    assert (12, 0) == (parsed.hour, parsed.minute)


def test_float_seconds_keep_their_exact_milliseconds() -> None:
    """1714564800.123 is .123 exactly, not .122 from binary rounding."""
    assert 123_000 == parse_timestamp(1714564800.123).microsecond


@pytest.mark.parametrize(
    "value",
    [
        "2024-05-01T12:00:00.123999Z",
        "2024-05-01T12:00:00.1239+00:00",
        1714564800.1239,
        "1714564800123.9",
        datetime(2024, 5, 1, 12, 0, 0, 123_999, tzinfo=UTC),
    ],
)
def test_precision_is_truncated_to_milliseconds(value: Any) -> None:
    """Anything finer than a millisecond is cut off, never rounded up."""
    assert NOON_123 == parse_timestamp(value)


@given(st.integers(min_value=631152000, max_value=4102444799))
def test_epoch_seconds_and_their_milliseconds_agree(seconds: int) -> None:
    """N seconds and N * 1000 milliseconds are the same instant."""
    assert parse_timestamp(seconds) == parse_timestamp(seconds * 1000)
    assert EPOCH + timedelta(seconds=seconds) == parse_timestamp(str(seconds))


@given(
    st.datetimes(
        min_value=datetime(1990, 1, 1),
        max_value=datetime(2099, 12, 31, 23, 59, 59),
        timezones=st.just(UTC),
    )
)
def test_format_then_parse_gives_back_the_instant(value: datetime) -> None:
    """The written form parses back to the same millisecond."""
    parsed = parse_timestamp(value)

    assert parsed == parse_timestamp(format_timestamp(parsed))


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("2024-05-01T12:00:00", "'2024-05-01T12:00:00'"),
        ("2024-05-01 12:00:00.123", "'2024-05-01 12:00:00.123'"),
        (datetime(2024, 5, 1, 12, 0), "2024-05-01T12:00:00"),
    ],
)
def test_values_without_a_timezone_are_rejected(value: Any, named: str) -> None:
    """A naive string or datetime is ambiguous and refused, naming the value."""
    with pytest.raises(ValueError, match="no timezone") as info:
        parse_timestamp(value)

    assert named in str(info.value)


@pytest.mark.parametrize("value", [True, False])
def test_booleans_are_rejected(value: bool) -> None:
    """A boolean is not a time, even though Python counts it as an int."""
    with pytest.raises(ValueError, match="boolean") as info:
        parse_timestamp(value)

    assert repr(value) in str(info.value)


@pytest.mark.parametrize(
    ("value", "named"),
    [
        (math.nan, "nan"),
        (math.inf, "inf"),
        (-math.inf, "-inf"),
        ("NaN", "'NaN'"),
        ("Infinity", "'Infinity'"),
        ("-inf", "'-inf'"),
    ],
)
def test_non_finite_numbers_are_rejected(value: Any, named: str) -> None:
    """NaN and infinities, as floats or strings, are refused by name."""
    with pytest.raises(ValueError, match="not a finite number") as info:
        parse_timestamp(value)

    assert named in str(info.value)


@pytest.mark.parametrize(
    "value",
    [
        1714564,
        "1714564",
        1714564800 * 1_000_000,
        1714564800 * 1_000_000_000,
        0,
        -1714564800,
        631151999,
    ],
)
def test_numbers_a_naive_parser_reads_as_1970_or_far_future_are_rejected(
    value: Any,
) -> None:
    """Epoch values that fit neither seconds nor ms in the window are refused."""
    with pytest.raises(ValueError, match="neither epoch seconds") as info:
        parse_timestamp(value)

    assert repr(value) in str(info.value)


@pytest.mark.parametrize(
    "value",
    [
        "1989-12-31T23:59:59.999Z",
        "2100-01-01T00:00:00Z",
        "2500-06-01T00:00:00+01:00",
        datetime(1969, 7, 20, 20, 17, tzinfo=UTC),
        datetime(2100, 1, 1, tzinfo=UTC),
    ],
)
def test_instants_outside_the_window_are_rejected(value: Any) -> None:
    """Only 1990-01-01 (inclusive) to 2100-01-01 (exclusive) is accepted."""
    with pytest.raises(ValueError, match="outside the accepted window") as info:
        parse_timestamp(value)

    assert repr(value) in str(info.value)


def test_window_bounds_are_inclusive_then_exclusive() -> None:
    """The first instant of 1990 is accepted, the last ms before 2100 too."""
    assert EARLIEST == parse_timestamp("1990-01-01T00:00:00Z")
    assert LATEST - timedelta(milliseconds=1) == parse_timestamp(
        "2099-12-31T23:59:59.999Z"
    )


@pytest.mark.parametrize("value", ["yesterday", "2024-13-01T00:00:00Z", ""])
def test_unreadable_strings_are_rejected_by_name(value: str) -> None:
    """A string that is neither ISO 8601 nor a number is refused by name."""
    with pytest.raises(ValueError, match="not ISO 8601") as info:
        parse_timestamp(value)

    assert repr(value) in str(info.value)


@pytest.mark.parametrize("value", [None, [1714564800], {"t": 1}, b"1714564800"])
def test_other_types_are_rejected(value: Any) -> None:
    """Only strings, numbers and datetimes are timestamps."""
    with pytest.raises(ValueError, match="must be a string or a number") as info:
        parse_timestamp(value)

    assert type(value).__name__ in str(info.value)


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (NOON_123, "2024-05-01T12:00:00.123Z"),
        (NOON, "2024-05-01T12:00:00.000Z"),
        (
            datetime(
                2024, 5, 1, 14, 0, 0, 123_000, tzinfo=timezone(timedelta(hours=2))
            ),
            "2024-05-01T12:00:00.123Z",
        ),
        (
            datetime(2024, 5, 1, 12, 0, 0, 123_999, tzinfo=UTC),
            "2024-05-01T12:00:00.123Z",
        ),
    ],
)
def test_format_writes_utc_milliseconds_and_z(value: datetime, written: str) -> None:
    """Courier writes ISO 8601 in UTC with milliseconds and a Z suffix."""
    assert written == format_timestamp(value)
