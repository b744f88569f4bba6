"""Replay real chat exports as upstream services would publish them.

IRC logs: a channel becomes a group conversation, a nick a user, each line a
message (``<nick>`` TEXT, ``* nick`` ACTION, ``-bot-`` NOTICE) and
``=== a is now known as b`` an update of the existing user's display name, not
a message. Reply links from the ``*.annotation.txt`` file beside a log become
``reply_to_id``. Two layouts are read:

* ``CHANNEL.N.ascii.txt``: every line starts with its channel and date
  (``rust 2018-05-29 [21:20:37] <talchas> ...``);
* ``YYYY-MM-DD_HH.raw.txt``: lines carry only ``[HH:MM]``, as logged. The
  channel is the name of the folder the file is in, and the date comes from
  the file name, which names the day and hour of the first line at that hour
  (the corpus's annotated part); the clock going backwards starts a new day.

The logs have no receipts, so receipts are **derived** and marked
``derived: true``: a nick that posts has read the messages posted since its
own previous post (at most :data:`READ_WINDOW` of them). The times are
treated as UTC, as the data's notes say.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel

from contracts import (
    ConversationKind,
    ConversationUpserted,
    MessageSubmitted,
    MessageType,
    ReceiptReported,
    ReceiptStatus,
    Topics,
    UserUpserted,
    parse_timestamp,
)

_CLOCK = r"(?:\[(\d\d:\d\d(?::\d\d)?)\] ?)?"
_BODY = r"(?:<([^>]+)> ?(.*)|\s*\* (\S+) ?(.*)|-([^-]+)- (.*)|(===.*))\s*$"
LINE = re.compile(r"^(\S+) (\d{4}-\d\d-\d\d) " + _CLOCK + _BODY)
RAW_LINE = re.compile("^" + _CLOCK + _BODY)
RAW_NAME = re.compile(r"^(\d{4}-\d\d-\d\d)(?:_(\d\d))?\.raw\.txt$")
RENAME = re.compile(r"^=== (\S+) is now known as (\S+)$")
READ_WINDOW = 10


@dataclass(frozen=True, slots=True)
class Planned:
    """One record to publish: which topic, its key and its event."""

    topic: str
    key: str
    event: BaseModel


@dataclass
class Plan:
    """Everything a replay publishes, in publish order, with counts."""

    directory: list[Planned] = field(default_factory=list)
    """Users and conversations as they first appear: publish these first."""
    traffic: list[Planned] = field(default_factory=list)
    """Messages, receipts and renames, in the logs' order."""
    messages: int = 0
    receipts: int = 0
    users: int = 0
    user_updates: int = 0
    conversations: int = 0
    skipped_lines: int = 0
    message_ids: list[str] = field(default_factory=list)

    def add_message(self, topics: Topics, event: MessageSubmitted) -> None:
        """Plan one message, keyed by its conversation."""
        self.traffic.append(Planned(topics.messages, event.conversation_id, event))
        self.messages += 1
        self.message_ids.append(event.id)

    @property
    def records(self) -> list[Planned]:
        return self.directory + self.traffic

    def counts(self) -> dict[str, int]:
        return {
            "users": self.users,
            "user_updates": self.user_updates,
            "conversations": self.conversations,
            "messages": self.messages,
            "receipts_derived": self.receipts,
        }


@dataclass(frozen=True, slots=True)
class Line:
    number: int
    channel: str
    at: datetime
    nick: str | None
    text: str
    kind: MessageType | None
    rename: tuple[str, str] | None = None


def _time(date: str, clock: str | None, last: datetime | None) -> datetime:
    if clock is None:
        # A system line has a date but no time: it happened after the line
        # before it, or at the start of its day if that line was earlier.
        day = datetime.fromisoformat(date).replace(tzinfo=UTC)
        return last if last is not None and last >= day else day
    fmt = "%Y-%m-%d %H:%M:%S" if clock.count(":") == 2 else "%Y-%m-%d %H:%M"

    return datetime.strptime(f"{date} {clock}", fmt).replace(tzinfo=UTC)


def _raw_dates(path: Path, clocks: list[str | None]) -> list[str]:
    """The date of each line of a ``YYYY-MM-DD_HH.raw.txt`` log.

    A clock earlier than the one before starts the next day; the file name
    pins the day of the first line at its hour, and so of every other line.
    """
    name = RAW_NAME.match(path.name)
    assert name is not None
    days, day, previous = [], 0, ""
    for clock in clocks:
        if clock is not None:
            if clock < previous:
                day += 1
            previous = clock
        days.append(day)
    anchor = 0
    if name.group(2) is not None:
        hour = name.group(2)
        at_hour = [d for d, c in zip(days, clocks, strict=True) if c and c[:2] == hour]
        if not at_hour:
            raise ValueError(
                f"{path.name} names hour {hour}, but no line of it is at {hour}:xx; "
                "name the file YYYY-MM-DD_HH.raw.txt after a day and hour it holds"
            )
        anchor = at_hour[0]
    start = date.fromisoformat(name.group(1)) - timedelta(days=anchor)

    return [(start + timedelta(days=d)).isoformat() for d in days]


def _matches(path: Path) -> Iterator[tuple[int, str, str, re.Match[str]]]:
    """(line number, channel, date, match) of every line; a bad line raises."""
    raw = RAW_NAME.match(path.name) is not None
    pattern = RAW_LINE if raw else LINE
    matches = []
    with path.open(encoding="utf-8") as lines:
        for number, text in enumerate(lines):
            # Most lines end in one space that is not part of the text.
            m = pattern.match(text.rstrip("\n").rstrip(" "))
            if m is None:
                raise ValueError(f"{path.name}:{number + 1} is not an IRC log line")
            matches.append(m)
    if not raw:
        for number, m in enumerate(matches):
            yield number, m.group(1), m.group(2), m
        return
    dates = _raw_dates(path, [m.group(1) for m in matches])
    channel = path.resolve().parent.name
    for number, (m, day) in enumerate(zip(matches, dates, strict=True)):
        yield number, channel, day, m


def parse_irc(path: Path) -> Iterator[Line]:
    """Yield every line of one IRC log; a line that does not parse raises."""
    last: datetime | None = None
    for number, channel, day, m in _matches(path):
        # The groups after channel and date are the same in both layouts.
        g = m.groups()[-8:]
        at = _time(day, g[0], last)
        last = at
        if g[1] is not None:
            yield Line(number, channel, at, g[1], g[2], MessageType.TEXT)
        elif g[3] is not None:
            yield Line(number, channel, at, g[3], g[4], MessageType.ACTION)
        elif g[5] is not None:
            yield Line(number, channel, at, g[5], g[6], MessageType.NOTICE)
        else:
            system = (g[7] or "").strip()
            r = RENAME.match(system)
            yield Line(
                number,
                channel,
                at,
                None,
                system,
                None,
                rename=(r.group(1), r.group(2)) if r else None,
            )


def _replies(path: Path) -> dict[int, int]:
    """Line -> the line it replies to (the latest parent where there are two)."""
    stem = path.name.removesuffix(".ascii.txt").removesuffix(".raw.txt")
    notes = path.with_name(f"{stem}.annotation.txt")
    parents: dict[int, int] = {}
    if not notes.exists():
        return parents
    for raw in notes.read_text(encoding="utf-8").splitlines():
        parts = raw.split()
        if len(parts) < 2:
            continue
        a, b = sorted((int(parts[0]), int(parts[1])))
        if a != b:
            parents[b] = max(parents.get(b, a), a)

    return parents


class _DerivedReads:
    """Receipts inferred from activity: a poster has read what came before.

    When a user posts, they are taken to have read the messages posted since
    their own previous post, at most :data:`READ_WINDOW` of them.
    """

    def __init__(self, topics: Topics, conversation_id: str) -> None:
        self.topics = topics
        self.conversation_id = conversation_id
        self.log: list[tuple[str, str]] = []  # (message id, sender id)
        self.last_post: dict[str, int] = {}

    def posted(self, plan: Plan, message_id: str, sender: str, at: datetime) -> None:
        start = max(self.last_post.get(sender, 0), len(self.log) - READ_WINDOW, 0)
        for read_id, author in self.log[start:]:
            if author == sender:
                continue
            plan.receipts += 1
            plan.traffic.append(
                Planned(
                    self.topics.receipts,
                    self.conversation_id,
                    ReceiptReported(
                        event_id=f"read:{read_id}:{sender}",
                        message_id=read_id,
                        conversation_id=self.conversation_id,
                        recipient_id=sender,
                        status=ReceiptStatus.READ,
                        timestamp=at,
                        derived=True,
                    ),
                )
            )
        self.log.append((message_id, sender))
        self.last_post[sender] = len(self.log)


class _Nicks:
    """Nick to user id; a rename keeps the id of the user who had the nick."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}
        self.created: dict[str, tuple[str, datetime]] = {}

    def user(self, nick: str, at: datetime) -> str:
        if nick not in self.ids:
            uid = f"irc:{nick}"
            self.ids[nick] = uid
            self.created.setdefault(uid, (nick, at))
        return self.ids[nick]

    def rename(self, old: str, new: str, at: datetime) -> str:
        uid = self.user(old, at)
        self.ids[new] = uid
        return uid


def irc_plan(paths: list[Path], topics: Topics) -> Plan:
    """The events a set of IRC logs stands for, in the order to publish them."""
    plan = Plan()
    directory, traffic = plan.directory, plan.traffic
    for path in sorted(paths):
        lines = list(parse_irc(path))
        replies = _replies(path)
        channel = lines[0].channel if lines else path.stem
        conversation_id = f"irc:#{channel}"
        nicks = _Nicks()
        bots = {ln.nick for ln in lines if ln.kind is MessageType.NOTICE and ln.nick}

        reads = _DerivedReads(topics, conversation_id)
        for line in lines:
            if line.rename is not None:
                old, new = line.rename
                uid = nicks.rename(old, new, line.at)
                plan.user_updates += 1
                traffic.append(
                    Planned(
                        topics.users,
                        uid,
                        UserUpserted(
                            event_id=f"{uid}@{line.number}",
                            id=uid,
                            display_name=new,
                            updated_at=line.at,
                        ),
                    )
                )
                continue
            if line.nick is None or line.kind is None:
                plan.skipped_lines += 1
                continue
            sender = nicks.user(line.nick, line.at)
            message_id = f"{conversation_id}:{line.number}"
            parent = replies.get(line.number)
            plan.add_message(
                topics,
                MessageSubmitted(
                    event_id=f"msg:{message_id}",
                    id=message_id,
                    sender_id=sender,
                    conversation_id=conversation_id,
                    content=line.text,
                    type=line.kind,
                    timestamp=line.at,
                    reply_to_id=(
                        None if parent is None else f"{conversation_id}:{parent}"
                    ),
                ),
            )
            reads.posted(plan, message_id, sender, line.at)

        for uid, (nick, first_seen) in nicks.created.items():
            directory.append(
                Planned(
                    topics.users,
                    uid,
                    UserUpserted(
                        event_id=f"{uid}@created",
                        id=uid,
                        display_name=nick,
                        is_bot=nick in bots,
                        updated_at=first_seen,
                    ),
                )
            )
            plan.users += 1
        directory.append(
            Planned(
                topics.conversations,
                conversation_id,
                ConversationUpserted(
                    event_id=f"{conversation_id}@created",
                    id=conversation_id,
                    title=f"#{channel}",
                    kind=ConversationKind.GROUP,
                    participant_ids=sorted(nicks.created),
                    updated_at=lines[0].at,
                ),
            )
        )
        plan.conversations += 1

    return plan


_SLACK_KINDS = {
    None: MessageType.TEXT,
    "bot_message": MessageType.NOTICE,
    "file_share": MessageType.FILE,
    "file_comment": MessageType.TEXT,
    "me_message": MessageType.ACTION,
}
"""Slack subtypes that are messages; joins and bot installs are not."""


def slack_plan(folder: Path, topics: Topics) -> Plan:
    """The events a Slack workspace export stands for, in publish order.

    ``channels.json`` gives the conversations and their members; each
    channel's day files give the messages (an edited message carries its
    edited text). Users are named by their Slack id, since an export's
    ``users.json`` holds personal data and is not expected; bots are named
    by their ``username``.
    """
    plan = Plan()
    channels = json.loads((folder / "channels.json").read_text(encoding="utf-8"))
    users: dict[str, tuple[str, bool, datetime]] = {}
    for channel in channels:
        conversation_id = f"slack:{channel['id']}"
        reads = _DerivedReads(topics, conversation_id)
        created = parse_timestamp(channel["created"])
        for member in channel.get("members", []):
            users.setdefault(f"slack:{member}", (member, False, created))
        events = []
        for day in sorted((folder / channel["name"]).glob("*.json")):
            events.extend(json.loads(day.read_text(encoding="utf-8")))
        events.sort(key=lambda e: Decimal(e["ts"]))
        for event in events:
            subtype = event.get("subtype")
            text = event.get("text") or "\n".join(
                a.get("fallback", "") for a in event.get("attachments", [])
            )
            if subtype not in _SLACK_KINDS or not text:
                plan.skipped_lines += 1
                continue
            at = parse_timestamp(event["ts"])
            if subtype == "bot_message":
                raw = event.get("bot_id") or event.get("username") or "bot"
                sender = f"slack:{raw}"
                users.setdefault(sender, (event.get("username") or raw, True, at))
            else:
                # A file comment names its author inside the comment object.
                author = event.get("user") or event.get("comment", {}).get("user")
                if author is None:
                    plan.skipped_lines += 1
                    continue
                sender = f"slack:{author}"
                users.setdefault(sender, (author, False, at))
            message_id = f"{conversation_id}:{event['ts']}"
            plan.add_message(
                topics,
                MessageSubmitted(
                    event_id=f"msg:{message_id}",
                    id=message_id,
                    sender_id=sender,
                    conversation_id=conversation_id,
                    content=text,
                    type=_SLACK_KINDS[subtype],
                    timestamp=at,
                ),
            )
            reads.posted(plan, message_id, sender, at)
        plan.directory.append(
            Planned(
                topics.conversations,
                conversation_id,
                ConversationUpserted(
                    event_id=f"{conversation_id}@created",
                    id=conversation_id,
                    title=f"#{channel['name']}",
                    kind=ConversationKind.GROUP,
                    participant_ids=[f"slack:{m}" for m in channel.get("members", [])],
                    updated_at=created,
                ),
            )
        )
        plan.conversations += 1
    for uid, (name, bot, first) in users.items():
        plan.directory.insert(
            0,
            Planned(
                topics.users,
                uid,
                UserUpserted(
                    event_id=f"{uid}@created",
                    id=uid,
                    display_name=name,
                    is_bot=bot,
                    updated_at=first,
                ),
            ),
        )
        plan.users += 1

    return plan


def plan_for(paths: list[Path], topics: Topics) -> Plan:
    """Pick the importer by what ``paths`` hold: IRC logs or a Slack export."""
    if len(paths) == 1 and (paths[0] / "channels.json").exists():
        return slack_plan(paths[0], topics)
    logs: list[Path] = []
    for path in paths:
        if path.is_dir():
            logs.extend(sorted([*path.glob("*.ascii.txt"), *path.glob("*.raw.txt")]))
        else:
            logs.append(path)
    if not logs:
        raise ValueError(
            "No chat export found: give IRC logs (*.ascii.txt or *.raw.txt, or a "
            "folder of them) or a Slack export folder (with channels.json)."
        )

    return irc_plan(logs, topics)
