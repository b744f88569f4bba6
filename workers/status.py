"""The status worker: messages and receipts into ``messages``, status advanced.

A submitted message is stored and becomes ``SENT``; receipts raise it as the
roll-up of its recipients' progress (see :mod:`contracts.status`). Each batch
is one read and one conditional write per message touched. After the write,
every message owed a DTO is announced on the internal changes topic, and only
then are the input offsets committed: a crash in between repeats the
announcement, never loses it, because the versions the document reached,
against those recorded as published, say what is still owed.

A message whose sender or conversation is not stored yet is parked (see
:mod:`storage.parking`), and so is a receipt that comes before its message:
it is named on a ``PENDING`` placeholder document (``held``), and when the
message itself is stored there, the receipt is re-driven and only then checked
against the message's conversation. So a stray receipt is refused whichever
comes first, and one whose message never comes is dead-lettered after the
parking bound. Finding the held receipts costs nothing extra on the common
path: the submission's insert fails on the placeholder's key and is read
back like any conflict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import structlog

from contracts import (
    ContractError,
    MessageChanged,
    MessageSubmitted,
    ReceiptReported,
    Status,
    decode,
    encode,
)
from storage import (
    MessageState,
    ParkedRecord,
    WriteConflict,
    apply_receipt,
    apply_submitted,
    new_state,
)
from workers.context import Context
from workers.kafka import Outgoing, Record
from workers.observe import PARKED, STATUS_CHANGES
from workers.runtime import Rejected

log = structlog.get_logger("courier.status")

_BY_HEIGHT = list(Status)

Event = MessageSubmitted | ReceiptReported
MAX_RACES = 20


@dataclass
class Applied:
    """What one application of a batch's events did."""

    states: list[MessageState]
    """Every message touched, as stored, in the batch's order."""
    announce: list[MessageState]
    """The messages that owe a DTO, in the same order."""
    mismatched: dict[str, str]
    """Events refused for naming another conversation, by event id."""
    held: dict[str, list[Event]] = field(default_factory=dict)
    """Receipts of messages not submitted yet, by message."""

    def extend(self, other: Applied) -> None:
        self.states += other.states
        self.announce += other.announce
        self.mismatched |= other.mismatched


def _message_of(event: Event) -> str:
    return event.id if isinstance(event, MessageSubmitted) else event.message_id


def _parked_id(record: Record) -> str:
    return f"{record.topic}:{record.partition}:{record.offset}"


class StatusWorker:
    name = "status"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def _decode(
        self, records: Sequence[Record]
    ) -> tuple[list[tuple[Record, Event]], list[Rejected]]:
        events: list[tuple[Record, Event]] = []
        rejected: list[Rejected] = []
        for record in records:
            try:
                event: Event
                if record.topic == self.ctx.topics.messages:
                    event = decode(MessageSubmitted, record.value)
                else:
                    event = decode(ReceiptReported, record.value)
            except ContractError as error:
                rejected.append(Rejected(record, str(error), type(error).__name__))
                continue
            events.append((record, event))

        return events, rejected

    async def _missing_refs(
        self, submissions: Sequence[MessageSubmitted]
    ) -> tuple[dict[str, tuple[str, ...]], dict[str, list[str]]]:
        """Participants per known conversation, and what each message lacks."""
        users, conversations = await self.ctx.directory(
            [s.sender_id for s in submissions],
            [s.conversation_id for s in submissions],
        )
        participants = {
            cid: tuple(doc["participant_ids"]) for cid, doc in conversations.items()
        }
        missing: dict[str, list[str]] = {}
        for s in submissions:
            lacks = []
            if s.sender_id not in users:
                lacks.append(f"user:{s.sender_id}")
            if s.conversation_id not in participants:
                lacks.append(f"conversation:{s.conversation_id}")
            if lacks:
                missing[s.event_id] = lacks

        return participants, missing

    async def _park(
        self, events: list[tuple[Record, Event]], missing: dict[str, list[str]]
    ) -> None:
        now = datetime.now(UTC)
        await self.ctx.parking.park(
            [
                ParkedRecord(
                    topic=r.topic,
                    partition=r.partition,
                    offset=r.offset,
                    key=r.key,
                    value=r.value,
                    headers=r.headers,
                    missing=tuple(missing[e.event_id]),
                    parked_at=now,
                    timestamp_ms=r.timestamp_ms,
                )
                for r, e in events
            ]
        )
        PARKED.inc(len(events))
        log.info("records.parked", records=len(events))

    async def handle(self, records: Sequence[Record]) -> list[Rejected]:
        events, rejected = self._decode(records)
        submissions = [e for _, e in events if isinstance(e, MessageSubmitted)]
        participants, missing = await self._missing_refs(submissions)
        if missing:
            waiting = [(r, e) for r, e in events if e.event_id in missing]
            await self._park(waiting, missing)
            # The directory may have stored the entity between our read and
            # the park; look again so that such a record is not left waiting.
            participants, missing = await self._missing_refs(submissions)
            back = [(r, e) for r, e in waiting if e.event_id not in missing]
            if back:
                await self.ctx.parking.remove(
                    f"{r.topic}:{r.partition}:{r.offset}" for r, _ in back
                )
            events = [(r, e) for r, e in events if e.event_id not in missing]

        # Messages in the order they were submitted, then those that only have
        # receipts here: receipts travel on their own topic, so where they
        # sit in a batch says nothing about the order of the messages.
        by_message: dict[str, list[Event]] = {
            e.id: [] for _, e in events if isinstance(e, MessageSubmitted)
        }
        # Within a message, its submission first: it says which conversation
        # the message is in, and receipts are checked against that.
        ordered = sorted(events, key=lambda re: not isinstance(re[1], MessageSubmitted))
        for _, event in ordered:
            by_message.setdefault(_message_of(event), []).append(event)

        applied = await self._apply(by_message, participants)
        if applied.held:
            applied.extend(
                await self._hold(
                    applied.held, {id(e): r for r, e in events}, participants
                )
            )
        rejected.extend(
            Rejected(r, applied.mismatched[e.event_id], "ValidationFailed")
            for r, e in events
            if e.event_id in applied.mismatched
        )
        await self._announce(applied.announce)
        # Receipts that waited for a message now stored go back to their
        # topic; those already re-driven are no longer parked and are skipped.
        await self.ctx.redrive_ids(
            [h for s in applied.states if s.submission is not None for h in s.held]
        )

        return rejected

    async def _hold(
        self,
        held: dict[str, list[Event]],
        record_of: dict[int, Record],
        participants: dict[str, tuple[str, ...]],
    ) -> Applied:
        """Park receipts that came before their message and name them on it.

        The receipts are parked first and then named on the message's
        placeholder, so that whoever stores the message after that finds
        them. If the message was stored in between (the placeholder shows a
        submission), they are unparked and applied here instead.
        """
        events = [(record_of[id(e)], e) for evs in held.values() for e in evs]
        await self._park(
            events, {e.event_id: [f"message:{_message_of(e)}"] for _, e in events}
        )
        ids = {
            mid: tuple(dict.fromkeys(_parked_id(record_of[id(e)]) for e in evs))
            for mid, evs in held.items()
        }
        stored = await self.ctx.messages.hold(
            {mid: (evs[0].conversation_id, ids[mid]) for mid, evs in held.items()}
        )
        if set(held) - set(stored):
            raise WriteConflict("a placeholder was not found after its write; retrying")
        arrived = [mid for mid in held if stored[mid].submission is not None]
        if not arrived:
            return Applied(states=[], announce=[], mismatched={})
        applied = await self._apply({mid: held[mid] for mid in arrived}, participants)
        if applied.held:
            raise WriteConflict("a stored message lost its submission; retrying")
        await self.ctx.parking.remove(i for mid in arrived for i in ids[mid])

        return applied

    async def _apply(
        self,
        by_message: dict[str, list[Event]],
        participants: dict[str, tuple[str, ...]],
    ) -> Applied:
        """Apply each message's events and write it, winning every race."""
        final: dict[str, MessageState] = {}
        grew: set[str] = set()
        mismatched: dict[str, str] = {}
        held: dict[str, list[Event]] = {}
        pending = dict(by_message)
        # A submission is nearly always of a message not stored yet: try its
        # insert without reading first. If it exists after all (its receipts
        # came first, or the batch is a repeat), the insert loses on the key
        # and the next round reads it like any other conflict.
        unread = {
            i
            for i, evs in by_message.items()
            if any(isinstance(e, MessageSubmitted) for e in evs)
        }
        for _ in range(MAX_RACES + 1):
            if not pending:
                break
            # What is published matters only for messages this batch leaves
            # as they were; it is read for those alone, below.
            stored = await self.ctx.messages.load_many(
                (i for i in pending if i not in unread), with_published=False
            )
            unread = set()
            changed: list[MessageState] = []
            reached: dict[str, tuple[int, ...]] = {}
            for message_id, evs in pending.items():
                before = stored.get(message_id)
                if not isinstance(evs[0], MessageSubmitted) and (
                    before is None or before.submission is None
                ):
                    # Only receipts, of a message not submitted yet: they wait.
                    held[message_id] = evs
                    continue
                state = before or new_state(message_id, evs[0].conversation_id)
                for event in evs:
                    if (
                        isinstance(event, MessageSubmitted)
                        and state.submission is None
                        and event.conversation_id != state.conversation_id
                    ):
                        # Only receipts have named a conversation so far; the
                        # message itself says where it belongs.
                        state = replace(state, conversation_id=event.conversation_id)
                    if event.conversation_id != state.conversation_id:
                        mismatched[event.event_id] = (
                            f"message {message_id} belongs to conversation "
                            f"{state.conversation_id}, not {event.conversation_id}"
                        )
                    elif isinstance(event, MessageSubmitted):
                        state = apply_submitted(
                            state, event, participants.get(event.conversation_id)
                        )
                    else:
                        state = apply_receipt(state, event)
                if state != before:
                    changed.append(state)
                    had = before.reached if before is not None else ()
                    reached[message_id] = tuple(
                        v for v in state.reached if v not in had
                    )
                else:
                    final[message_id] = state
            result = await self.ctx.messages.save_many(changed, reached)
            final.update((s.id, s) for s in result.saved)
            for saved in result.saved:
                if reached.get(saved.id):
                    grew.add(saved.id)
                for version in reached.get(saved.id, ()):
                    STATUS_CHANGES.labels(_BY_HEIGHT[version].value).inc()
            pending = {i: pending[i] for i in result.conflicts}
        if pending:
            raise WriteConflict(
                f"{len(pending)} messages kept changing under this worker; "
                "the batch will be retried"
            )

        # A message this batch raised owes its new versions. Any other may
        # still owe an older one: a crash came between its write and its
        # announcement, and this batch is that one again (perhaps with more
        # events); so for those, ask what is published.
        others = [i for i, s in final.items() if i not in grew and s.reached]
        out = await self.ctx.messages.published_of(others)
        owed = {i for i in others if max(final[i].reached) > out.get(i, 0)}
        # In the batch's order, whatever round each write landed in, so that
        # one conversation's DTOs come in the order its messages did.
        states = [final[i] for i in by_message if i in final]

        return Applied(
            states=states,
            announce=[s for s in states if s.id in grew | owed],
            mismatched=mismatched,
            held=held,
        )

    async def _announce(self, states: Sequence[MessageState]) -> None:
        changes = [
            Outgoing(
                topic=self.ctx.topics.message_changes,
                key=s.conversation_id.encode(),
                value=encode(
                    MessageChanged(
                        message_id=s.id,
                        conversation_id=s.conversation_id,
                        version=s.version,
                    )
                ),
            )
            for s in states
            if s.submission is not None
        ]
        await self.ctx.publish(changes)
