"""MongoDB repositories for Courier: keyed by id, idempotent, no Kafka here."""

from storage.directory import ConversationRepository, UserRepository
from storage.errors import StorageError, StoreUnavailable, WriteConflict
from storage.messages import MessageRepository, SaveResult
from storage.mongo import Lookup, Store
from storage.parking import ParkedRecord, ParkingRepository
from storage.state import (
    MessageState,
    Submission,
    apply_receipt,
    apply_submitted,
    new_state,
)

__all__ = [
    "ConversationRepository",
    "Lookup",
    "MessageRepository",
    "MessageState",
    "ParkedRecord",
    "ParkingRepository",
    "SaveResult",
    "StorageError",
    "Store",
    "StoreUnavailable",
    "Submission",
    "UserRepository",
    "WriteConflict",
    "apply_receipt",
    "apply_submitted",
    "new_state",
]
