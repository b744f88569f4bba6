"""Courier's exception tree.

Every error Courier raises on purpose descends from :class:`CourierError`::

    CourierError
    ├── ContractError            the record breaks the wire contract; retrying
    │   │                        cannot help, so it is dead-lettered at once
    │   ├── DecodeError          not UTF-8 JSON at all
    │   └── ValidationFailed     JSON, but a field is missing or invalid
    ├── MissingReference         a referenced user, conversation or message is not
    │                            stored yet; worth waiting for, within a bound
    └── StorageError             raised by ``storage`` (see ``storage.errors``)

Messages are sentences that name the bad value and say what to do about it.
Control-flow signals (retry later, skip) are the ``MissingReference`` and the
transient storage errors; every other subclass is a real fault of the input.
"""

from __future__ import annotations


class CourierError(Exception):
    """Base class of every error Courier raises on purpose."""


class ContractError(CourierError, ValueError):
    """A record or an argument breaks the wire contract and can never succeed."""


class DecodeError(ContractError):
    """The record is not UTF-8 JSON."""


class ValidationFailed(ContractError):
    """The record is JSON but does not match the contract of its topic."""


class MissingReference(CourierError):
    """An event names an entity that is not stored yet.

    ``missing`` lists what was looked for, as ``"kind:id"`` strings, so that the
    dead-letter record (once the wait is over) says exactly what never arrived.
    """

    def __init__(self, missing: list[str]) -> None:
        self.missing = sorted(missing)
        super().__init__(
            "Referenced entities are not stored yet: "
            + ", ".join(self.missing)
            + ". Publish them to their directory topic; the event waits for them."
        )
