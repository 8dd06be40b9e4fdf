"""What an engine is: the attributes every engine declares and the methods the services call."""

from __future__ import annotations

from pathlib import Path

from .base import Dump, Place, SourceError, resolve_source
from .restore_base import Recovery, Restorer


class Engine:
    """One kind of source: what it is, said once. Subclass it in one module and ``register()`` it.

    The services read these attributes; none of them knows an engine by its name.
    ``tests/backups/test_engine_registry.py`` checks that every registered engine sets each one.
    """

    #: The key stored in ``Target.engine`` and ``BackupRun.engine`` (at most 20 characters; never rename).
    name: str = ""
    #: What the admin's engine menu shows.
    label: str = ""
    #: The format of its backups (the manifest's ``format``); a restore finds its restorer by it.
    format: str = ""
    #: The artifact's file extension, before ``.zst``/``.gz`` and ``.age`` (e.g. ``.sql``).
    extension: str = ""
    #: Whether a target of this engine must say what it reads (a URL, a path, ``env:NAME``).
    needs_source: bool = True
    #: Whether its source or restore destination may be on S3: dump and restorer then get the target's endpoint.
    uses_endpoint: bool = False
    #: Whether its backups are a database a restore test loads into a scratch database (the monthly drill tests these).
    is_database: bool = False
    #: Whether its source is a path on the worker's disk (``local_path()``), which locations must stay clear of.
    reads_local_disk: bool = False
    #: Whether it backs up by itself (its own service writes the run); ``dump()`` is then never called.
    runs_own_backup: bool = False
    #: Whether a restore may replace its live source; False refuses an in-place restore (``restore_refusal`` says why).
    restores_in_place: bool = True
    #: Whether its target restores to a moment (a time, an LSN, the latest WAL) rather than to one run's copy: the
    #: admin's "Restore to a moment…" and an incident's "restore to T" then apply (backups.services.pgbackrest).
    restores_to_a_moment: bool = False
    #: What a person runs to load a decrypted, decompressed artifact by hand (written into every manifest).
    restore_hint: str = "cat > restored"
    #: When the portal refuses to restore its backups (in place when not restores_in_place, at all when it has no
    #: restorer): what they are and what to do instead, completing "run #N is ..." / "target T is ...".
    restore_refusal: str = ""
    #: Shown in the admin's source column when a target of this engine has no source (it needs none).
    implied_source: str = ""
    #: The class that loads its backups into a new place (None: the generic restore cannot load them).
    restorer: type[Restorer] | None = None

    def dump(self, source: str, *, endpoint_url: str = "") -> Dump:
        """Start reading ``source`` (resolved from ``env:NAME`` already); ``endpoint_url`` is for uses_endpoint."""
        raise SourceError(f"the {self.name} engine does not back up through the portal's pipeline")

    def check_source(self, source: str) -> None:
        """Raise SourceError when ``source`` cannot be right, without reading it (on save)."""

    def places(self, source: str) -> list[Place]:
        """Where its live data is (for the restore guards); empty when it has no place to restore over."""
        return []

    def local_path(self, source: str) -> Path | None:
        """The path on the worker's disk this source reads, when reads_local_disk."""
        return None

    def live_places(self) -> list[tuple[Place, str]]:
        """Places that are live data whatever the targets say, each with what it is (never a restore destination)."""
        return []

    def in_place_destination(self, source: str) -> str:
        """The restore destination that replaces this live source (a restore test's scratch copy goes beside it)."""
        return resolve_source(source)

    def make_restorer(self, destination: str, *, scratch_prefix: str | None = None, endpoint_url: str = "") -> Restorer:
        """A restorer for ``destination``; with ``scratch_prefix``, a restore test's throwaway copy."""
        if self.restorer is None:
            raise SourceError(f"the portal cannot restore {self.name} backups itself: {self.restore_refusal}")
        if self.uses_endpoint:
            return self.restorer(destination, scratch_prefix=scratch_prefix, endpoint_url=endpoint_url)
        return self.restorer(destination, scratch_prefix=scratch_prefix)

    def recover_restore(self, restore, *, endpoint_url: str = "") -> Recovery:
        """After a restore's process died (the reaper proved it): undo what it left behind, and say what was done.

        ``restore`` is the ``Restore`` row as its process last wrote it (destination, scratch and rollback names,
        recorded before each was made). The default asks the engine's restorer; an engine that restores by other
        means (pgBackRest) overrides it. Failures are sentences in the result, never exceptions, where they can be.
        """
        restorer = self.make_restorer(restore.destination, endpoint_url=endpoint_url)
        return Recovery(restorer.recover(restore.scratch_name, restore.rollback_name or None))
