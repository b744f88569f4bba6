"""Errors raised at the storage boundary.

Driver exceptions never leave ``storage``; they are translated into::

    CourierError                     (contracts.errors)
    └── StorageError
        ├── StoreUnavailable         the store cannot be reached or timed out;
        │                            transient: retry the same work later
        └── WriteConflict            another writer changed a document first;
                                     transient: re-read and apply again
"""

from __future__ import annotations

from contracts.errors import CourierError


class StorageError(CourierError):
    """A failure of the MongoDB-wire store."""


class StoreUnavailable(StorageError):
    """The store could not be reached, or did not answer in time."""


class WriteConflict(StorageError):
    """A document changed under a conditional write; retry from a fresh read."""
