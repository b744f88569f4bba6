"""The one timestamp type of the wire contract.

Accepted forms, all normalised to a timezone-aware UTC ``datetime`` truncated
to whole milliseconds (the precision BSON keeps, so the event, the stored
document and the DTO agree to the millisecond):

* an ISO 8601 string with an explicit offset or ``Z``
  (``2024-05-01T12:00:00.123Z``, ``2024-05-01T14:00:00+02:00``); as RFC 3339
  allows, the ``T`` separator and the ``Z`` suffix may be lowercase;
* epoch **seconds** as an integer, a float or a numeric string
  (``1714564800``, ``1714564800.123``, ``"1714564800"``);
* epoch **milliseconds** as an integer or a numeric string
  (``1714564800123``);
* an aware ``datetime`` (from Python callers).

Rejected, with a reason: strings or datetimes without a timezone (ambiguous),
booleans, and any instant outside 1990-01-01 to 2100-01-01. The window makes
seconds and milliseconds unambiguous (their ranges do not overlap) and
rejects the values a naive parser would silently read as a date in 1970,
such as epoch seconds sent where milliseconds were meant.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_S = Decimal(int((EARLIEST - _EPOCH).total_seconds()))
_MAX_S = Decimal(int((LATEST - _EPOCH).total_seconds()))
_MS = timedelta(milliseconds=1)


def _truncate_ms(value: datetime) -> datetime:
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _in_window(value: datetime, raw: object) -> datetime:
    if not EARLIEST <= value < LATEST:
        raise ValueError(
            f"timestamp {raw!r} is {value.isoformat()}, outside the accepted "
            f"window {EARLIEST.date()} to {LATEST.date()}"
        )

    return value


def _from_epoch(number: Decimal, raw: object) -> datetime:
    if _MIN_S <= number < _MAX_S:
        millis = int(number * 1000)
    elif _MIN_S * 1000 <= number < _MAX_S * 1000:
        millis = int(number)
    else:
        raise ValueError(
            f"timestamp {raw!r} is neither epoch seconds nor epoch milliseconds "
            f"between {EARLIEST.date()} and {LATEST.date()}; send an ISO 8601 "
            "string with a timezone to be unambiguous"
        )

    return _EPOCH + millis * _MS


def _from_string(text: str) -> datetime:
    stripped = text.strip()
    try:
        number = Decimal(stripped)
    except InvalidOperation:
        pass
    else:
        if number.is_finite():
            return _from_epoch(number, text)
        raise ValueError(f"timestamp {text!r} is not a finite number")

    # RFC 3339 lets the separator and the UTC suffix be lowercase; Python's
    # parser takes a lowercase "t" but not a lowercase "z".
    iso = stripped[:-1] + "Z" if stripped.endswith("z") else stripped
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        raise ValueError(
            f"timestamp {text!r} is not ISO 8601 (for example "
            "2024-05-01T12:00:00.123Z) nor an epoch number"
        ) from None
    if parsed.tzinfo is None:
        raise ValueError(
            f"timestamp {text!r} has no timezone and is ambiguous; "
            "append Z for UTC or give an offset such as +02:00"
        )

    return _in_window(parsed.astimezone(UTC), text)


def parse_timestamp(value: Any) -> datetime:
    """Normalise any accepted form to aware UTC at millisecond precision."""
    if isinstance(value, bool):
        raise ValueError(f"timestamp {value!r} is a boolean, not a time")
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(
                f"timestamp {value.isoformat()} has no timezone and is ambiguous"
            )
        result = _in_window(value.astimezone(UTC), value)
    elif isinstance(value, int):
        result = _from_epoch(Decimal(value), value)
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"timestamp {value!r} is not a finite number")
        # repr() gives the shortest decimal that round-trips, so 1714564800.123
        # stays .123 instead of becoming .122999.
        result = _from_epoch(Decimal(repr(value)), value)
    elif isinstance(value, str):
        result = _from_string(value)
    else:
        raise ValueError(
            f"timestamp must be a string or a number, not {type(value).__name__}"
        )

    return _truncate_ms(result)


def format_timestamp(value: datetime) -> str:
    """Render a timestamp the way Courier writes it: ISO 8601, ms, ``Z``."""
    return (
        value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


UtcTimestamp = Annotated[
    datetime,
    BeforeValidator(parse_timestamp),
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
]
"""A timestamp field: any accepted form in, aware UTC at ms precision out."""
