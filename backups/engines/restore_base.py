"""What every restorer shares, importing no engine (each engine module imports this one).

The contract that makes restores safe:
``prepare()`` creates something new and touches nothing live; ``sink()`` is
where the stream goes; ``finish_load()`` raises if the loader failed;
``count_rows()`` reads the new copy; only ``swap()`` touches live data, and it
keeps the previous data under ``rollback_name``; ``discard()`` removes the new copy.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from django.utils import timezone

from .base import Place, SourceError, path_place

logger = logging.getLogger(__name__)


@dataclass
class Recovery:
    """What the reaper's cleanup after a dead restore did, in sentences for the row's message (failures too).

    ``rolled_back``: the previous data was put back where it was, so the row no longer names a rollback.
    """

    done: list[str]
    rolled_back: bool = False


@dataclass
class RestorePlan:
    destination: str  # safe to show
    replaces: str | None  # what live data will be replaced, if any
    rollback_name: str | None


def minute_stamp() -> str:
    return timezone.now().strftime("%Y%m%dT%H%M")


def swap_into_place(scratch: Path, path: Path, rollback: Path) -> Path | None:
    """Rename ``scratch`` to ``path``, first moving what is there to ``rollback`` (or a free
    name beside it); if the second rename fails, the first is undone. Returns where the
    previous data went, or None when there was none."""
    if not path.exists():
        os.replace(scratch, path)
        return None
    if rollback.exists():
        rollback = rollback.with_name(f"{rollback.name}{timezone.now():%S}")
    os.replace(path, rollback)
    try:
        os.replace(scratch, path)
    except OSError:
        os.replace(rollback, path)
        raise
    return rollback


class Restorer:
    """Loads one backup format into a new place; see the module docstring for the contract."""

    # The rollback name shown on a confirmation page; used when still free, so what the
    # person agreed to is what happens even if the minute changed in between.
    rollback_hint: str | None = None

    def plan(self) -> RestorePlan:
        raise NotImplementedError

    def places(self) -> list[Place]:
        """Where ``swap()`` would put the restored data (what the restore guards compare with live data)."""
        raise NotImplementedError

    def prepare(self) -> None:
        raise NotImplementedError

    def sink(self) -> BinaryIO:
        raise NotImplementedError

    def finish_load(self) -> None:
        raise NotImplementedError

    def count_rows(self, tables: list[str]) -> dict[str, int]:
        return {}

    def swap(self) -> str:
        """Put the new copy in place; returns how to roll back."""
        raise NotImplementedError

    def discard(self) -> None:
        raise NotImplementedError

    def recover(self, scratch: str, rollback: str | None) -> list[str]:
        """After a restore process died: put the previous data back if a swap was cut short,
        and remove the half-loaded copy. Returns what was done."""
        raise NotImplementedError


class FileRestorer(Restorer):
    """Restore into a new file beside the destination, check it, then rename it into place.

    Subclasses say how a destination names its file (``resolve_path``), how to check the
    new file (``check_file``) and count what it holds (``count_rows``), and may ask for a
    file mode (``mode``) that the new file has from its first byte and the kept one keeps.
    """

    scratch_suffix = ""
    mode: int | None = None

    def __init__(self, destination: str, *, scratch_prefix: str | None = None) -> None:
        self.path = self.resolve_path(destination)
        stamp = timezone.now().strftime("%Y%m%dT%H%M%S")
        if scratch_prefix:
            self.scratch = Path(tempfile.gettempdir()) / f"{scratch_prefix}_{stamp}{self.scratch_suffix}"
        else:
            self.scratch = self.path.with_name(f".{self.path.name}.restoring-{stamp}")
        self.rollback: Path | None = self.path.with_name(f"{self.path.name}.pre_restore_{minute_stamp()}")
        self._file: BinaryIO | None = None

    def resolve_path(self, destination: str) -> Path:
        raise NotImplementedError

    def check_file(self) -> None:
        """Raise SourceError if the restored file is not sound."""

    def places(self) -> list[Place]:
        return [path_place(self.path)]

    def plan(self) -> RestorePlan:
        if self.path.is_dir():
            raise SourceError(f"{self.path} is a folder, not a file")
        if self.rollback_hint and not Path(self.rollback_hint).exists():
            self.rollback = Path(self.rollback_hint)
        exists = self.path.exists()
        kept = f"kept as {self.rollback.name}" + (f", mode {self.mode:o}" if self.mode else "")
        return RestorePlan(
            destination=str(self.path),
            replaces=f"file {self.path} ({kept})" if exists else None,
            rollback_name=str(self.rollback) if exists else None,
        )

    def prepare(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.mode is None:
            self._file = open(self.scratch, "xb")
            return
        # Created with its mode from the first byte (secrets are never readable by others, not even briefly).
        fd = os.open(self.scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self.mode)
        os.fchmod(fd, self.mode)  # whatever the umask
        self._file = os.fdopen(fd, "wb")

    def sink(self) -> BinaryIO:
        assert self._file is not None
        return self._file

    def finish_load(self) -> None:
        assert self._file is not None
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
        self.check_file()

    def swap(self) -> str:
        assert self.rollback is not None
        self.rollback = swap_into_place(self.scratch, self.path, self.rollback)
        if self.rollback is None:
            return f"{self.path} did not exist before; nothing to roll back"
        if self.mode is not None:
            try:
                # The previous data stays around for rollback: no more readable than the new.
                os.chmod(self.rollback, self.mode)
            except OSError as exc:
                logger.warning("could not set the mode of %s: %s", self.rollback, exc.strerror)
        return f"previous file kept as {self.rollback}. To roll back: mv {self.rollback} {self.path}"

    @property
    def rollback_name(self) -> str | None:
        return str(self.rollback) if self.rollback else None

    def discard(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
        self.scratch.unlink(missing_ok=True)

    def recover(self, scratch: str, rollback: str | None) -> list[str]:
        done = []
        if rollback and not self.path.exists() and Path(rollback).exists():
            os.replace(rollback, self.path)
            done.append(f"moved {rollback} back to {self.path}")
        if scratch and Path(scratch).exists():
            Path(scratch).unlink()
            done.append(f"removed the half-restored file {scratch}")
        return done
