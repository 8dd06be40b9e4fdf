"""Errors of backup locations, in a module of their own so the S3 module and the location backends share them."""

from __future__ import annotations


class LocationError(Exception):
    """A location could not be reached or written; the message names the location, never a secret."""


class ObjectNotFound(LocationError):
    pass


class StorageStalled(LocationError):
    """A storage server stopped answering: no byte moved for ``BACKUP_STORAGE_TIMEOUT_SECONDS``."""
