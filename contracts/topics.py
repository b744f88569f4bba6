"""Topic names, in one place.

Every name can carry a prefix (``COURIER_TOPIC_PREFIX``) so that several
deployments, or several test runs, can share one cluster without mixing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Topics:
    """The full topic names for one deployment."""

    prefix: str = ""

    @property
    def users(self) -> str:
        return f"{self.prefix}chat.users.v1"

    @property
    def conversations(self) -> str:
        return f"{self.prefix}chat.conversations.v1"

    @property
    def messages(self) -> str:
        return f"{self.prefix}chat.messages.v1"

    @property
    def receipts(self) -> str:
        return f"{self.prefix}chat.receipts.v1"

    @property
    def client_messages(self) -> str:
        return f"{self.prefix}chat.client.messages.v1"

    @property
    def message_changes(self) -> str:
        return f"{self.prefix}chat.internal.message-changes.v1"

    @property
    def directory_changes(self) -> str:
        return f"{self.prefix}chat.internal.directory-changes.v1"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}chat.dlq.v1"

    @property
    def inbound(self) -> tuple[str, str, str, str]:
        """The topics upstream services publish to."""
        return (self.users, self.conversations, self.messages, self.receipts)

    @property
    def all(self) -> tuple[str, ...]:
        return (
            *self.inbound,
            self.message_changes,
            self.directory_changes,
            self.client_messages,
            self.dlq,
        )
