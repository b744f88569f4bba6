"""How `courier tail` shows a record, whatever its value holds."""

from __future__ import annotations

import pytest

from workers.cli import _show


def test_a_value_nested_deeper_than_json_can_parse_is_shown_as_bytes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Such a record is dead-lettered by the workers; tail must still show it
    (and the records after it) instead of dying with a RecursionError."""
    deep = b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"

    _show(0, 7, b"c-1", deep, [("trace", b"t-1")])

    out = capsys.readouterr().out
    assert "[0:7] key=c-1" in out
    assert '"trace": "t-1"' in out
    assert out.rstrip().endswith("]}'")


def test_json_values_are_shown_indented(capsys: pytest.CaptureFixture[str]) -> None:
    _show(1, 2, None, b'{"id": "m-1"}', [])

    assert '{\n  "id": "m-1"\n}' in capsys.readouterr().out
