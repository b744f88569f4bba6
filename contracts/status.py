"""Delivery status: the lattice every status write climbs.

A message's status only ever rises along one chain::

    PENDING < SENT < FAILED < DELIVERED < READ

* ``PENDING``: Courier has heard of the message (a receipt came first) but not
  the message itself. No DTO is published for it.
* ``SENT``: the message is stored and was handed on for delivery.
* ``FAILED``: delivery to at least one recipient failed and not every recipient
  has it yet. A late or repeated ``SENT``-stage event does not revive it.
* ``DELIVERED``: every recipient's device has it. It outranks ``FAILED``: a
  device that got the message proves an earlier failure report stale, and
  ``FAILED`` can never replace ``DELIVERED`` or ``READ``.
* ``READ``: every recipient has read it.

The message's status is the roll-up of its recipients' own progress. Each
recipient's progress only grows (delivered, read and "ever failed" are facts
that stay true), and the roll-up is monotone in them, so applying the same
receipts in any order, any number of times, ends in the same status. The
``version`` of a message's DTO is the height of its status in this chain: it
rises with every change, repeats on a duplicate, and does not depend on the
order in which events arrived.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    """A message's delivery status; travels as its upper-case name."""

    PENDING = "PENDING"
    SENT = "SENT"
    FAILED = "FAILED"
    DELIVERED = "DELIVERED"
    READ = "READ"

    @property
    def height(self) -> int:
        """Position in the lattice; also the DTO version of this status."""
        return _HEIGHT[self]


_HEIGHT = {status: rank for rank, status in enumerate(Status)}


def join(a: Status, b: Status) -> Status:
    """The higher of two statuses: the only way a stored status changes."""
    return a if a.height >= b.height else b


@dataclass(frozen=True, slots=True)
class Progress:
    """What one recipient's devices have reported about one message."""

    delivered: bool = False
    read: bool = False
    failed: bool = False

    def merge(self, other: Progress) -> Progress:
        """Combine two reports; the result never forgets a fact."""
        return Progress(
            delivered=self.delivered or other.delivered or other.read or self.read,
            read=self.read or other.read,
            failed=self.failed or other.failed,
        )


def roll_up(
    *,
    has_message: bool,
    recipients: Iterable[str] | None,
    progress: Mapping[str, Progress],
) -> Status:
    """The message's status from its recipients' progress.

    ``recipients`` is ``None`` while the conversation is not known yet; the
    message then stays ``SENT`` until it is. A conversation with no recipient
    besides the sender also stays ``SENT``: nobody can receive it.
    """
    if not has_message:
        return Status.PENDING
    if recipients is None:
        return Status.SENT
    states = [progress.get(r, _NOTHING) for r in recipients]
    if not states:
        return Status.SENT
    if all(s.read for s in states):
        return Status.READ
    if all(s.delivered for s in states):
        return Status.DELIVERED
    if any(s.failed for s in states):
        return Status.FAILED

    return Status.SENT


_NOTHING = Progress()
