"""Bytes to models and back, with errors a person can act on."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from contracts.errors import DecodeError, ValidationFailed

M = TypeVar("M", bound=BaseModel)

_JSON_ERRORS = {"json_invalid", "json_type"}


def describe(error: ValidationError, limit: int = 5) -> str:
    """One sentence per problem, field path first, at most ``limit`` of them."""
    parts = []
    for item in error.errors(include_url=False)[:limit]:
        where = ".".join(str(p) for p in item["loc"]) or "record"
        message = str(item["msg"]).removeprefix("Value error, ")
        got = item.get("input")
        if item["type"] != "missing" and isinstance(got, str | int | float):
            shown = repr(got) if len(repr(got)) <= 40 else repr(got)[:37] + "..."
            message = f"{message} (got {shown})"
        parts.append(f"{where}: {message}")
    more = error.error_count() - limit
    if more > 0:
        parts.append(f"and {more} more")

    return "; ".join(parts)


def decode(model: type[M], raw: bytes | None) -> M:
    """Parse one record's value, raising a :class:`ContractError` subclass."""
    if raw is None:
        raise DecodeError(
            f"record has no value (a tombstone); {model.__name__} needs a JSON object"
        )
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        if any(e["type"] in _JSON_ERRORS for e in error.errors()):
            raise DecodeError(
                f"record could not be parsed as UTF-8 JSON: {describe(error, 1)}"
            ) from None
        raise ValidationFailed(
            f"record breaks the {model.__name__} contract: {describe(error)}"
        ) from None


def encode(value: BaseModel) -> bytes:
    """UTF-8 JSON, non-ASCII text written as itself."""
    return value.model_dump_json().encode("utf-8")
