"""The wire contract: every record Courier reads or writes on Kafka.

Records are UTF-8 JSON objects. Every inbound event carries ``event_id`` (the
publisher's unique id for this event) and ``schema_version`` (``1``). Fields
not named here are ignored, so publishers may add optional fields without
breaking consumers. Enumerations travel as upper-case names
(``"TEXT"``, ``"READ"``); a conversation's ``kind`` is ``"direct"`` or
``"group"``.

Keys: the conversation id on every topic except ``chat.users.v1``, which is
keyed by the user id, so that one conversation's events stay in order on one
partition. See :mod:`contracts.timestamps` for the accepted time forms.
"""

from __future__ import annotations

import unicodedata
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)

from contracts.status import Status
from contracts.timestamps import UtcTimestamp

SCHEMA_VERSION: Literal[1] = 1
MAX_CONTENT_BYTES = 64 * 1024
"""The largest message content accepted, in UTF-8 bytes (64 KiB)."""

MAX_ID_LENGTH = 128


def _check_text(value: str) -> str:
    # Lone surrogates cannot be written as UTF-8 and NUL is refused by
    # MongoDB-wire stores that implement the spec strictly: reject both here
    # instead of failing deep inside a write.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            "text holds a lone UTF-16 surrogate, which is not valid Unicode"
        ) from None
    if "\x00" in value:
        raise ValueError("text must not contain NUL (U+0000)")

    return value


def _check_content(value: str) -> str:
    _check_text(value)
    size = len(value.encode("utf-8"))
    if size > MAX_CONTENT_BYTES:
        raise ValueError(
            f"content is {size:,} bytes of UTF-8, over the limit of "
            f"{MAX_CONTENT_BYTES:,} bytes; split it or send it as a FILE"
        )

    return value


def _check_id(value: str) -> str:
    if any(unicodedata.category(c)[0] in "CZ" for c in value):
        raise ValueError(
            f"id {value!r} holds whitespace or control characters, which ids must not"
        )

    return value


EntityId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ID_LENGTH),
    AfterValidator(_check_id),
]
Text = Annotated[str, AfterValidator(_check_text)]
Content = Annotated[str, AfterValidator(_check_content)]


class MessageType(StrEnum):
    """What kind of message a user sent."""

    TEXT = "TEXT"
    ACTION = "ACTION"
    """An IRC ``/me`` action: the text describes what the sender does."""
    NOTICE = "NOTICE"
    """A notice, typically from a bot."""
    SYSTEM = "SYSTEM"
    IMAGE = "IMAGE"
    FILE = "FILE"
    AUDIO = "AUDIO"
    VIDEO = "VIDEO"


class ConversationKind(StrEnum):
    """Whether a conversation is one-to-one or a group."""

    DIRECT = "direct"
    GROUP = "group"


class ReceiptStatus(StrEnum):
    """What a recipient's device reports about one message."""

    DELIVERED = "DELIVERED"
    READ = "READ"
    FAILED = "FAILED"
    """Delivery to this recipient failed; see :mod:`contracts.status`."""


class Model(BaseModel):
    """Base of every wire model: immutable, unknown fields ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=False)


class Event(Model):
    """Fields every inbound event carries."""

    event_id: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    schema_version: Literal[1] = SCHEMA_VERSION


class UserUpserted(Event):
    """``chat.users.v1``: a user was created or changed (full profile)."""

    id: EntityId
    display_name: Annotated[Text, StringConstraints(min_length=1, max_length=256)]
    avatar_url: Annotated[Text, StringConstraints(max_length=2048)] | None = None
    is_bot: bool = False
    updated_at: UtcTimestamp | None = None
    """When the profile changed; a stored profile never goes back to an older one."""


class ConversationUpserted(Event):
    """``chat.conversations.v1``: a conversation was created or changed."""

    id: EntityId
    title: Annotated[Text, StringConstraints(max_length=256)]
    kind: ConversationKind
    participant_ids: Annotated[list[EntityId], Field(max_length=100_000)]
    updated_at: UtcTimestamp | None = None


class MessageSubmitted(Event):
    """``chat.messages.v1``: a user submitted a message (ids only)."""

    id: EntityId
    sender_id: EntityId
    conversation_id: EntityId
    content: Content
    type: MessageType
    timestamp: UtcTimestamp
    reply_to_id: EntityId | None = None


class ReceiptReported(Event):
    """``chat.receipts.v1``: a recipient's device got, read or lost a message."""

    message_id: EntityId
    conversation_id: EntityId
    recipient_id: EntityId
    status: ReceiptStatus
    timestamp: UtcTimestamp
    derived: bool = False
    """True when the receipt was inferred (by the replay tool, say), not reported."""


class UserSummary(Model):
    """The sender as a client shows it."""

    id: str
    display_name: str
    avatar_url: str | None = None


class ConversationSummary(Model):
    """The conversation as a client shows it."""

    id: str
    title: str
    kind: ConversationKind


class MessageDTO(Model):
    """``chat.client.messages.v1``: a message with sender and conversation.

    One record is published per change of the message's status. ``version``
    is the status's height in the lattice (see :mod:`contracts.status`), so a
    consumer that keeps the highest version per ``id`` and drops the rest sees
    each change once, even when Courier repeats a record after a crash.
    """

    id: str
    version: int
    sender: UserSummary
    conversation: ConversationSummary
    content: str
    type: MessageType
    status: Status
    timestamp: UtcTimestamp
    reply_to_id: str | None = None
    schema_version: Literal[1] = SCHEMA_VERSION


class MessageChanged(Model):
    """``chat.internal.message-changes.v1``: a message reached a new version.

    Internal to Courier: the status worker publishes it after the store write,
    and the enrichment worker turns it into DTOs.
    """

    message_id: str
    conversation_id: str
    version: int


class DirectoryChanged(Model):
    """``chat.internal.directory-changes.v1``: a user or conversation was stored.

    Internal to Courier: the directory worker publishes it after the store
    write, and every worker process that caches directory entries drops the
    entry it names.
    """

    kind: Literal["user", "conversation"]
    id: str
