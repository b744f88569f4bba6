"""The benchmark's data: a directory and a stream of chat events.

Contents, nicks and channel names come from the real chat logs in
``../shared/data`` (through the replay importers); the shape around them is
made up but chat-like: most conversations are direct, some are groups of 3
to 12, a few conversations are much busier than the rest, and every
message is followed shortly by receipts from some of its recipients.

Everything is seeded, so one scale gives the same events every run. The
expected final state of every message is the fold of its events through
the same pure rules the workers use (:mod:`storage.state`), which does not
depend on arrival order.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from contracts import (
    ConversationKind,
    ConversationUpserted,
    MessageSubmitted,
    MessageType,
    ReceiptReported,
    ReceiptStatus,
    Topics,
    UserUpserted,
    encode,
)
from storage import MessageState, apply_receipt, apply_submitted, new_state
from workers.replay import plan_for

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
START = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Corpus:
    """Real texts and names to dress the synthetic directory and traffic in."""

    texts: tuple[tuple[str, MessageType], ...]
    nicks: tuple[str, ...]
    channels: tuple[str, ...]


def load_corpus(data: Path = DATA) -> Corpus:
    """Every message text, nick and channel name of the IRC and Slack logs."""
    sources = [data / "irc" / "new-domains", data / "slack" / "testarchive"]
    texts: list[tuple[str, MessageType]] = []
    nicks: set[str] = set()
    channels: set[str] = set()
    for source in sources:
        plan = plan_for([source], Topics())
        for planned in plan.records:
            event = planned.event
            if isinstance(event, MessageSubmitted):
                texts.append((event.content, event.type))
            elif isinstance(event, UserUpserted):
                nicks.add(event.display_name)
            elif isinstance(event, ConversationUpserted):
                channels.add(event.title)
    if not texts:
        raise RuntimeError(f"No chat logs found under {data}; the bench needs them.")

    return Corpus(tuple(texts), tuple(sorted(nicks)), tuple(sorted(channels)))


Inbound = MessageSubmitted | ReceiptReported


@dataclass(frozen=True, slots=True)
class Event:
    """One inbound record: topic kind, key and encoded value."""

    kind: str
    """``messages`` or ``receipts``."""
    key: bytes
    value: bytes
    event: Inbound

    @property
    def message_id(self) -> str:
        e = self.event
        return e.id if isinstance(e, MessageSubmitted) else e.message_id


@dataclass
class Directory:
    users: list[UserUpserted]
    conversations: list[ConversationUpserted]
    participants: dict[str, tuple[str, ...]] = field(init=False)
    weights: list[float] = field(init=False)

    def __post_init__(self) -> None:
        self.participants = {c.id: tuple(c.participant_ids) for c in self.conversations}
        rng = random.Random(7)
        # A few conversations are far busier than most, as in real chat.
        self.weights = [rng.paretovariate(1.2) for _ in self.conversations]


def make_directory(corpus: Corpus, users: int, conversations: int) -> Directory:
    """``users`` users and ``conversations`` conversations, 80% of them direct."""
    rng = random.Random(1)
    people = [
        UserUpserted(
            event_id=f"bench-user-{i}",
            id=f"u{i}",
            display_name=f"{corpus.nicks[i % len(corpus.nicks)]}{i}",
            avatar_url=f"https://avatars.example/u{i}.png" if i % 3 else None,
            is_bot=i % 97 == 0,
            updated_at=START,
        )
        for i in range(users)
    ]
    rooms = []
    for i in range(conversations):
        group = rng.random() < 0.2
        size = rng.randint(3, 12) if group else 2
        members = rng.sample(range(users), min(size, users))
        rooms.append(
            ConversationUpserted(
                event_id=f"bench-conversation-{i}",
                id=f"c{i}",
                title=corpus.channels[i % len(corpus.channels)] if group else "",
                kind=ConversationKind.GROUP if group else ConversationKind.DIRECT,
                participant_ids=[f"u{m}" for m in members],
                updated_at=START,
            )
        )

    return Directory(people, rooms)


def make_traffic(
    corpus: Corpus, directory: Directory, events: int, *, seed: int, tag: str
) -> list[Event]:
    """About ``events`` messages and receipts, in publish order.

    Each recipient of a message reports it delivered with probability 0.7,
    read with 0.5 and failed with 0.03; the receipts follow the message
    within the next few dozen events, as devices answer.
    """
    rng = random.Random(seed)
    ids = [c.id for c in directory.conversations]
    out: list[Event] = []
    later: list[tuple[int, Event]] = []
    at = START + timedelta(days=seed)
    n = 0
    while len(out) + len(later) < events:
        cid = rng.choices(ids, directory.weights)[0]
        members = directory.participants[cid]
        sender = rng.choice(members)
        text, kind = corpus.texts[n % len(corpus.texts)]
        at += timedelta(milliseconds=rng.randint(1, 900))
        mid = f"{tag}m{n}"
        submitted = MessageSubmitted(
            event_id=f"msg:{mid}",
            id=mid,
            sender_id=sender,
            conversation_id=cid,
            content=text,
            type=kind,
            timestamp=at,
            reply_to_id=f"{tag}m{n - 1}" if n and rng.random() < 0.1 else None,
        )
        out.append(Event("messages", cid.encode(), encode(submitted), submitted))
        for who in members:
            if who == sender:
                continue
            for status, p in (
                (ReceiptStatus.DELIVERED, 0.7),
                (ReceiptStatus.READ, 0.5),
                (ReceiptStatus.FAILED, 0.03),
            ):
                if rng.random() >= p:
                    continue
                receipt = ReceiptReported(
                    event_id=f"{status.value.lower()}:{mid}:{who}",
                    message_id=mid,
                    conversation_id=cid,
                    recipient_id=who,
                    status=status,
                    timestamp=at + timedelta(seconds=1),
                )
                due = len(out) + rng.randint(1, 40)
                later.append(
                    (due, Event("receipts", cid.encode(), encode(receipt), receipt))
                )
        later.sort(key=lambda x: x[0])
        while later and later[0][0] <= len(out):
            out.append(later.pop(0)[1])
        n += 1
    out.extend(e for _, e in later)

    return out


def _fold(
    events: Iterable[Event], participants: dict[str, tuple[str, ...]]
) -> Iterator[tuple[MessageState, MessageState]]:
    """Each event's message state before and after it, in publish order."""
    states: dict[str, MessageState] = {}
    for item in events:
        e = item.event
        mid = item.message_id
        before = states.get(mid) or new_state(mid, e.conversation_id)
        if isinstance(e, MessageSubmitted):
            after = apply_submitted(before, e, participants.get(e.conversation_id))
        else:
            after = apply_receipt(before, e)
        states[mid] = after
        yield before, after


def expected_states(
    events: Iterable[Event], participants: dict[str, tuple[str, ...]]
) -> dict[str, MessageState]:
    """Each message's final state: its events folded by the workers' rules."""
    final = {after.id: after for _, after in _fold(events, participants)}

    return {i: s for i, s in final.items() if s.submission is not None}


def causes(
    events: Sequence[Event], participants: dict[str, tuple[str, ...]]
) -> dict[str, list[tuple[int, int]]]:
    """Per message, ``(version, index)`` each time publish order raises it.

    A DTO of version ``v`` is caused by the first event after which the
    message stood at ``v`` or higher: whatever order the workers saw the
    events in, that one had been sent before the DTO could exist.
    """
    steps: dict[str, list[tuple[int, int]]] = {}
    for index, (before, after) in enumerate(_fold(events, participants)):
        if after.version > before.version and after.submission is not None:
            steps.setdefault(after.id, []).append((after.version, index))

    return steps
