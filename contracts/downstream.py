"""For downstream consumers of ``chat.client.messages.v1``.

Courier delivers each DTO at least once: after a crash it may publish a
DTO again, always with the same ``version``. A consumer that keeps the
highest version it has applied per message id, and skips anything at or
below it, sees every change exactly once and never goes backwards.
"""

from __future__ import annotations

from collections import OrderedDict

from contracts.events import MessageDTO


class LatestVersions:
    """Remembers the highest version applied per message id.

    ``capacity`` bounds memory: the least recently seen ids are forgotten
    first. Keep it above the number of messages whose DTOs can still be in
    flight, or persist the versions next to the data you apply them to.
    """

    def __init__(self, capacity: int = 1_000_000) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[str, int] = OrderedDict()

    def is_new(self, dto: MessageDTO) -> bool:
        """True the first time a version above the last applied one arrives."""
        held = self._seen.get(dto.id)
        if held is not None and dto.version <= held:
            return False
        self._seen[dto.id] = dto.version
        self._seen.move_to_end(dto.id)
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)

        return True
