"""Courier's wire contract: models, statuses and topic names, with no I/O."""

from contracts.client import CourierClient, Producer
from contracts.codec import decode, encode
from contracts.errors import (
    ContractError,
    CourierError,
    DecodeError,
    MissingReference,
    ValidationFailed,
)
from contracts.events import (
    MAX_CONTENT_BYTES,
    ConversationKind,
    ConversationSummary,
    ConversationUpserted,
    DirectoryChanged,
    Event,
    MessageChanged,
    MessageDTO,
    MessageSubmitted,
    MessageType,
    ReceiptReported,
    ReceiptStatus,
    UserSummary,
    UserUpserted,
)
from contracts.status import Progress, Status, join, roll_up
from contracts.timestamps import UtcTimestamp, format_timestamp, parse_timestamp
from contracts.topics import Topics

__all__ = [
    "MAX_CONTENT_BYTES",
    "ContractError",
    "ConversationKind",
    "ConversationSummary",
    "ConversationUpserted",
    "CourierClient",
    "CourierError",
    "DecodeError",
    "DirectoryChanged",
    "Event",
    "MessageChanged",
    "MessageDTO",
    "MessageSubmitted",
    "MessageType",
    "MissingReference",
    "Producer",
    "Progress",
    "ReceiptReported",
    "ReceiptStatus",
    "Status",
    "Topics",
    "UserSummary",
    "UserUpserted",
    "UtcTimestamp",
    "ValidationFailed",
    "decode",
    "encode",
    "format_timestamp",
    "join",
    "parse_timestamp",
    "roll_up",
]
