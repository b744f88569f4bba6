"""A message's stored state and the pure rules that change it.

No I/O here: the repository loads a :class:`MessageState`, the worker applies
events to it with :func:`apply_submitted` and :func:`apply_receipt`, and the
repository writes it back under an optimistic-concurrency check. Because every
field only accumulates facts (the first submission, each recipient's progress,
the statuses reached), applying the same events in any order, any number of
times, gives the same state.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from contracts import (
    MessageSubmitted,
    MessageType,
    Progress,
    ReceiptReported,
    ReceiptStatus,
    Status,
    join,
    roll_up,
)


@dataclass(frozen=True, slots=True)
class Submission:
    """The message as its sender submitted it; the first submission wins."""

    sender_id: str
    content: str
    type: MessageType
    timestamp: datetime
    reply_to_id: str | None = None


@dataclass(frozen=True, slots=True)
class MessageState:
    """Everything Courier keeps about one message.

    ``rev`` counts writes and guards them (0: not stored yet).
    ``reached`` lists every version (status height above zero) the message
    has reached, oldest first: each one owes a DTO. ``published_version`` is
    the highest version whose DTO is confirmed on the client topic; it is
    kept apart from the message (see ``storage.messages``) and merged in
    when the state is loaded. ``held`` names the parked receipts that came
    before the message itself (see :mod:`storage.parking`): they count only
    once the submission says which conversation the message is in.
    """

    id: str
    conversation_id: str
    submission: Submission | None = None
    recipients: tuple[str, ...] | None = None
    progress: dict[str, Progress] = field(default_factory=dict)
    status: Status = Status.PENDING
    reached: tuple[int, ...] = ()
    held: tuple[str, ...] = ()
    published_version: int = 0
    rev: int = 0

    @property
    def version(self) -> int:
        return self.status.height

    @property
    def unpublished(self) -> tuple[int, ...]:
        """Versions still owed a DTO, oldest first."""
        return tuple(v for v in self.reached if v > self.published_version)


def new_state(message_id: str, conversation_id: str) -> MessageState:
    return MessageState(id=message_id, conversation_id=conversation_id)


def _settle(state: MessageState) -> MessageState:
    rolled = roll_up(
        has_message=state.submission is not None,
        recipients=state.recipients,
        progress=state.progress,
    )
    status = join(state.status, rolled)
    if status == state.status:
        return state
    reached = state.reached
    if status.height > 0:
        reached = (*reached, status.height)

    return replace(state, status=status, reached=reached)


def apply_submitted(
    state: MessageState,
    event: MessageSubmitted,
    participants: tuple[str, ...] | None,
) -> MessageState:
    """Record the submission and, once known, who should receive it."""
    submission = state.submission or Submission(
        sender_id=event.sender_id,
        content=event.content,
        type=event.type,
        timestamp=event.timestamp,
        reply_to_id=event.reply_to_id,
    )
    recipients = state.recipients
    if recipients is None and participants is not None:
        sender = submission.sender_id
        recipients = tuple(sorted({p for p in participants if p != sender}))

    changed = replace(state, submission=submission, recipients=recipients)

    return _settle(changed)


_PROGRESS = {
    ReceiptStatus.DELIVERED: Progress(delivered=True),
    ReceiptStatus.READ: Progress(delivered=True, read=True),
    ReceiptStatus.FAILED: Progress(failed=True),
}


def apply_receipt(state: MessageState, event: ReceiptReported) -> MessageState:
    """Merge one recipient's report; receipts are idempotent."""
    before = state.progress.get(event.recipient_id, Progress())
    after = before.merge(_PROGRESS[event.status])
    if after == before:
        return state
    progress = {**state.progress, event.recipient_id: after}

    return _settle(replace(state, progress=progress))
