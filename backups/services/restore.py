"""The restore workflow: prove the artifact, restore into something new, check it, then swap.

Live data is touched at exactly one moment, ``Restorer.swap()``, after the new
copy loaded without error, matched its checksum and has the recorded row
counts. Everything before that can fail, be interrupted or be killed and the
live data is as it was; that moment is recorded (``Restore.swapped_at``), so
what is said after a later failure is worded from it.

Whatever asks for a restore (the command, the admin's page, a Celery task, an
incident's "restore before T") goes through :func:`propose`, which refuses a
destination that is live data of something else: another target's source, the
portal's own database, or a backup location.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pyrage
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .. import engines
from ..engines import SourceError, restorer_for
from ..engines.base import Place, path_place, s3_place
from ..engines.restore_base import RestorePlan, Restorer
from ..leases import LeaseLost, proof_of_death
from ..locations import LocationError
from ..models import Artifact, BackupRun, Location, Restore, Target
from ..pipeline import decrypt_stream
from . import artifacts
from .artifacts import ArtifactRef, ArtifactRefused

logger = logging.getLogger(__name__)


class RestoreFailed(Exception):
    pass


class RestoreNotAllowed(Exception):
    """The person (or the way they came) may not start this restore. Safe to show."""


# --- who may ask for a restore, and through what ------------------------------------------------
# A higher app (incidents) registers how a restore "requested via" one of its objects is checked and
# linked; backups never imports it. The checker gets the opaque reference (e.g. an incident id as
# typed in a URL) and the user, and returns what to call with the new Restore, or raises
# RestoreNotAllowed saying why.
RequestChecker = Callable[[str, object], Callable[[Restore], None]]
_REQUESTERS: dict[str, RequestChecker] = {}


def register_requester(kind: str, checker: RequestChecker) -> None:
    """Called by another app at ready(): restores may be requested via ``kind`` when ``checker`` agrees."""
    _REQUESTERS[kind] = checker


def requester_kinds() -> list[str]:
    return sorted(_REQUESTERS)


def authorize(user, via: tuple[str, str] | None = None) -> Callable[[Restore], None] | None:
    """Check that ``user`` may start a restore, directly or ``via`` (kind, reference); returns the link step.

    Raises RestoreNotAllowed. A reference that is given is always checked, even for someone who could
    restore without it: a restore is never linked to something that does not exist or is over.
    """
    if via is None:
        if not user.has_perm("backups.restore_backuprun"):
            raise RestoreNotAllowed("you do not have permission to restore backups")
        return None
    kind, reference = via
    checker = _REQUESTERS.get(kind)
    if checker is None:
        raise RestoreNotAllowed(f"restores cannot be requested via {kind}")
    return checker(reference, user)


def request_restore(
    run: BackupRun, proposal: Proposal, *, to: str, user, via: tuple[str, str] | None = None
) -> Restore:
    """Queue a restore that ``user`` confirmed on a page showing ``proposal``; the caller enqueues it.

    The row and its link (e.g. to an incident's timeline) are made together or not at all.
    Raises RestoreNotAllowed.
    """
    link = authorize(user, via)
    with transaction.atomic():
        record = Restore.objects.create(
            run=run,
            source=str(run.pk),
            location=proposal.ref.location,
            destination=to,
            destination_display=proposal.plan.destination,
            rollback_name=proposal.plan.rollback_name or "",  # what the confirmation page promised
            triggered_by=user,
            trigger=BackupRun.Trigger.MANUAL,
        )
        if link is not None:
            link(record)
    return record


def stored_copies(run: BackupRun) -> list[Artifact]:
    """The copies of ``run`` a restore can read, in the order the confirmation page offers them."""
    return list(run.artifacts.filter(status=Artifact.Status.STORED).select_related("location"))


def offer(run: BackupRun, copies: list[Artifact], *, to: str = "", location: str = "") -> tuple[Proposal | None, str]:
    """What restoring ``run`` (from ``location``, default its first copy) into ``to`` would do, or why it cannot.

    Changes nothing: the confirmation page shows the proposal; ``request_restore`` acts on it.
    """
    if not copies:
        return None, "This run has no stored copy to restore from."
    try:
        return propose(str(run.pk), to=to or None, location=location or copies[0].location.name), ""
    except (ArtifactRefused, RestoreFailed, SourceError, LocationError) as exc:
        return None, str(exc)


# --- destinations that are live data -------------------------------------------------------------


def _location_places(location: Location) -> list[Place]:
    parts = urlsplit(location.url)
    if parts.scheme == "file":
        return [path_place(parts.path)]
    if parts.scheme == "s3":
        return [s3_place(parts.netloc, parts.path)]
    return []


def _target_places(target: Target) -> list[Place]:
    engine = engines.find(target.engine)
    try:
        return engine.places(target.source) if engine else []
    except SourceError:
        return []  # e.g. env:NAME not set in this process: its source is not known here


def live_places() -> Iterator[tuple[Place, str]]:
    """Every place holding live data a restore must not land on, with what it is.

    Places live whatever the targets (the portal's own database) and the locations are refused
    whatever the target; the backup's own source is handled by :func:`refuse_live_destination`.
    """
    for engine in engines.all():
        yield from engine.live_places()
    for location in Location.objects.order_by("name"):
        for place in _location_places(location):
            yield place, f"the folder of backup location {location.name}"
    for target in Target.objects.order_by("name"):
        for place in _target_places(target):
            yield place, f"the live source of target {target.name}"


def refuse_live_destination(restorer: Restorer, own_target: Target | None) -> None:
    """Raise RestoreFailed if the restore would replace (or land inside, or contain) live data.

    Exactly the backup's own source is allowed: that is the in-place restore, which keeps the previous
    data for rollback (also when another target backs up the same source, as a database and its archive
    do). Inside it, around it, or beside it (a SQLite file's -wal) is not.
    """
    wanted = restorer.places()
    own = set()
    own_engine = engines.find(own_target.engine) if own_target is not None else None
    if own_engine is not None and own_engine.restores_in_place:
        own = {place.key for place in _target_places(own_target)[:1]}  # the source itself, not its -wal
    for place, what in live_places():
        for dest in wanted:
            if dest.key in own and dest.key == place.key:
                continue
            if dest.overlaps(place):
                relation = "is" if dest.key == place.key else "overlaps"
                raise RestoreFailed(f"refusing to restore into {dest.label}: it {relation} {what}")


@dataclass
class Proposal:
    """What a restore would do, worked out without changing anything (for confirmation pages)."""

    ref: ArtifactRef
    destination: str  # may hold credentials: never show it
    restorer: Restorer
    plan: RestorePlan

    def lines(self) -> list[str]:
        m = self.ref.manifest
        taken = m.get("finished_at") or m.get("started_at") or "unknown time"
        lines = [
            f"Restore {self.ref.label}",
            f"  target {m.get('target', '?')}, taken {taken}, {m.get('bytes_out')} bytes, SHA-256 {m['sha256'][:16]}…",
            f"into {self.plan.destination}",
        ]
        if self.plan.replaces:
            lines.append(f"This REPLACES {self.plan.replaces}.")
            lines.append(f"The previous data is kept for rollback as {self.plan.rollback_name}.")
        else:
            lines.append("Nothing exists there yet; it will be created.")
        lines.append("Nothing is changed until the restored copy has loaded and been checked.")
        return lines


def destination_for(ref: ArtifactRef, to: str | None) -> str:
    if to:
        return to
    target = Target.objects.filter(name=ref.target_name).first() if ref.target_name else None
    if target is None:
        raise RestoreFailed(
            f"the backup's target {ref.target_name or '(unknown)'} is not in this portal; "
            "say where to restore with --to"
        )
    engine = engines.find(target.engine)
    if engine is not None and not engine.restores_in_place:
        raise RestoreFailed(f"refusing to restore target {target.name} in place: it is {engine.restore_refusal}")
    try:
        return engine.in_place_destination(target.source) if engine else engines.resolve_source(target.source)
    except SourceError as exc:
        raise RestoreFailed(str(exc)) from None


def propose(
    source: str, *, to: str | None = None, location: str | None = None, rollback_hint: str | None = None
) -> Proposal:
    if source.isdigit():
        own = Target.objects.filter(runs__pk=int(source), engine__in=engines.names(runs_own_backup=True)).first()
        if own is not None:
            raise RestoreFailed(f"run #{source} is {engines.get(own.engine).restore_refusal}")
    ref = artifacts.resolve(source, location)
    destination = destination_for(ref, to)
    target = Target.objects.filter(name=ref.target_name).first() if ref.target_name else None
    restorer = restorer_for(ref.format, destination, endpoint_url=target.endpoint_url if target else "")
    refuse_live_destination(restorer, target)
    restorer.rollback_hint = rollback_hint
    return Proposal(ref, destination, restorer, restorer.plan())


def load_into(restorer: Restorer, ref: ArtifactRef, identities, on_progress=None) -> dict[str, dict]:
    """Stream the artifact into a prepared restorer and check the copy. Touches nothing live."""
    try:
        with ref.open() as stream:
            result = decrypt_stream(
                stream,
                restorer.sink(),
                identities,
                compression=ref.compression,
                on_progress=on_progress,
                progress_interval=settings.BACKUP_PROGRESS_INTERVAL,
            )
    except (pyrage.DecryptError, OSError, LocationError) as exc:
        # The loader's own message (e.g. a psql error that closed the pipe) says more.
        restorer.finish_load()
        raise RestoreFailed(f"decryption failed midway (tampered or truncated): {exc}") from None
    restorer.finish_load()
    if result.sha256 != ref.sha256:
        raise RestoreFailed("checksum mismatch: the artifact changed while it was being restored")
    if not result.complete:
        raise RestoreFailed("truncated: the compressed stream ends early")
    expected = ref.tables
    restored = restorer.count_rows(list(expected))
    tables = [
        {"name": n, "expected": expected.get(n), "restored": restored.get(n)} for n in sorted(expected or restored)
    ]
    wrong = [t for t in tables if t["expected"] is not None and t["expected"] != t["restored"]]
    if wrong:
        detail = ", ".join(f"{t['name']} {t['restored']} rows, expected {t['expected']}" for t in wrong)
        raise RestoreFailed(f"row counts differ from the backup: {detail}")
    return {"tables": tables, "bytes": result.bytes_out}


def execute(restore: Restore, *, to: str | None = None, identities=None) -> Restore:
    """Carry out a queued restore. Failures are stored on the row, never raised."""
    if not restore.start():
        restore.refresh_from_db()
        return restore
    swapped_at = None
    try:
        proposal = propose(
            restore.source,
            to=to or restore.destination or None,
            location=restore.location.name if restore.location else None,
            rollback_hint=restore.rollback_name or None,
        )
        restore.note(" / ".join(proposal.lines()))
        identities = artifacts.identities_or_refuse(identities)
        for check in artifacts.preflight(proposal.ref, identities):
            restore.note(f"{check['name']}: {check['message']}")
        restorer = proposal.restorer
        # Recorded before anything is created, so a reaper can clean up after a killed process.
        restore.write_held(
            destination=proposal.destination,
            bytes_total=proposal.ref.expected_size,
            run=proposal.ref.run,
            destination_display=proposal.plan.destination,
            scratch_name=str(restorer.scratch),
            format=proposal.ref.format,
        )
        restorer.prepare()
        try:
            outcome = load_into(restorer, proposal.ref, identities, on_progress=restore.report_progress)
            restore.note(f"loaded {outcome['bytes']} bytes; row counts match the backup")
            # Conditional on the lease: a restore presumed dead (and cleaned up by a reaper) never swaps.
            restore.write_held(rollback_name=proposal.plan.rollback_name or "")
            rollback = restorer.swap()
        except BaseException:
            restorer.discard()
            raise
        # From here on the live data IS the restored copy: whatever fails next must not say otherwise.
        swapped_at = timezone.now()
        restore.mark_swapped(swapped_at, restorer.rollback_name or "")
        restore.note(f"swapped in; {rollback}")
        logger.info("restore %s done: %s", restore.pk, rollback)
        restore.succeed(
            tables=outcome["tables"], rollback_name=restorer.rollback_name or "", bytes_done=proposal.ref.expected_size
        )
    except LeaseLost:
        _lost(restore)
    except Exception as exc:
        if swapped_at is not None:
            logger.exception("restore %s: swapped in, then recording the result failed", restore.pk)
            _fail(restore, after_swap_message(swapped_at, restorer.rollback_name, exc))
        elif isinstance(exc, (ArtifactRefused, RestoreFailed, SourceError, LocationError)):
            logger.warning("restore %s refused or failed: %s", restore.pk, exc)
            _fail(restore, str(exc))
        else:
            logger.exception("restore %s crashed", restore.pk)
            _fail(restore, f"unexpected error: {type(exc).__name__}: {exc}")
    return restore


def _fail(restore: Restore, error: str) -> None:
    try:
        restore.fail(error)
    except LeaseLost:
        _lost(restore)


def _lost(restore: Restore) -> None:
    # A reaper presumed this process dead and failed the restore: what it recorded stands.
    logger.warning("restore %s lost its lease; stopped without writing", restore.pk)
    restore.refresh_from_db()


def swapped_in_words(swapped_at: datetime, rollback_name: str | None) -> str:
    """What is true once the swap happened: the live data changed at that moment, and how to go back."""
    kept = (
        f"the previous data is kept as {rollback_name}"
        if rollback_name
        else "there was no previous data (nothing to roll back to)"
    )
    return f"the restored data was swapped in at {swapped_at.astimezone(UTC):%H:%M:%S} UTC; {kept}"


def after_swap_message(swapped_at: datetime, rollback_name: str | None, exc: BaseException) -> str:
    """What to say when something failed after the swap (never "the live data was not changed")."""
    return f"{swapped_in_words(swapped_at, rollback_name)}; recording the result failed: {type(exc).__name__}: {exc}"


def reap_stale_restores() -> int:
    """Fail restores whose process died, putting back anything a cut-short swap moved.

    As for backups: silent for longer than BACKUP_STALE_SECONDS and proven dead (``leases``); a
    live restore, however slow, is never cleaned up under its feet.
    """
    from datetime import timedelta

    from django.utils import timezone

    cutoff = timezone.now() - timedelta(seconds=settings.BACKUP_STALE_SECONDS)
    silent = Restore.objects.filter(status=Restore.Status.RUNNING, heartbeat_at__lt=cutoff).select_related(
        "run__target"
    )
    reaped = 0
    for record in silent:
        proof = proof_of_death(record.lease_owner, record.lease_expires_at)
        if proof is None:
            logger.warning(
                "restore %s has reported no progress since %s, but its process is alive", record.pk, record.heartbeat_at
            )
            continue
        done: list[str] = []
        kept: dict[str, str] = {}
        if record.format and record.destination:
            # The endpoint the restore itself used (propose() takes the backed-up target's): an S3 prefix to clean
            # up is on that server, not on AWS.
            target = record.run.target if record.run else None
            try:
                # Through the engine of the restore's format: each knows what its restores leave behind.
                recovery = engines.recover_restore(record, endpoint_url=target.endpoint_url if target else "")
                done = recovery.done
                if recovery.rolled_back:
                    kept["rollback_name"] = ""  # put back: the row no longer points at a folder that is gone
            except Exception as exc:  # cleaning up must not stop the reaper
                logger.exception("restore %s: cleaning up after its dead process failed", record.pk)
                done = [f"cleanup failed: {type(exc).__name__}: {exc}"]
        if record.swapped_at is not None:
            # It died after the swap: the live data is the restored copy, whatever cleanup found.
            detail = "; ".join([swapped_in_words(record.swapped_at, record.rollback_name), *done])
        else:
            detail = "; ".join(done) if done else "the live data was not replaced; nothing was left to clean up"
        if record.reap(f"the restore process stopped reporting and is presumed dead ({proof}): {detail}", **kept):
            reaped += 1
    return reaped


def restore_test(ref: ArtifactRef, identities, destination: str) -> dict:
    """Restore into a scratch database beside ``destination``, count rows, and always drop it."""
    prefix = f"drp_restore_test_{secrets.token_hex(3)}"
    restorer = restorer_for(ref.format, destination, scratch_prefix=prefix)
    started = time.monotonic()
    restorer.prepare()
    try:
        outcome = load_into(restorer, ref, identities)
    finally:
        restorer.discard()
    outcome["duration_seconds"] = round(time.monotonic() - started, 3)
    outcome["scratch"] = str(restorer.scratch)
    return outcome
