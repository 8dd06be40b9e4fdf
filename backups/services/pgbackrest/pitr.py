"""Restore to a moment: the plan and its checks, the request, and carrying it out on the database host.

The checks come in two parts. check_request holds anywhere (the web process, which may run on another
machine): the request, the destination as written, the backup set from the portal's catalogue.
check_on_host needs the database host (the worker of the target's queue, or the restore command there):
symlinks, the folder, the port, the cluster stopped, and pgBackRest's own catalogue.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import psycopg
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from ...engines import pgbackrest as pgbr
from ...engines.base import SourceError
from ...locations import LocationError
from ...models import Artifact, BackupRun, PgBackRestBackup, PgBackRestStanza, Restore, Target
from ..restore import authorize
from .stanza import HEARTBEAT_SECONDS, connect, repos_of, stanza_of

logger = logging.getLogger(__name__)


class PitrRefused(Exception):
    """A restore to a moment that will not be attempted, with the reason for people."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class BackupSet(NamedTuple):
    """The backup set a restore to a moment starts from, its catalogued run, and when and at which LSN it ended."""

    label: str
    run: BackupRun | None
    ended_at: datetime
    stop_lsn: str = ""


@dataclass
class PitrPlan:
    target: Target
    kind: str  # time, lsn or latest
    value: str
    to: Path
    port: int  # 0: a free one, picked on the database host
    in_place: bool
    keep_running: bool
    moment: datetime | None = None
    backup_set: str = ""
    run: BackupRun | None = None
    rollback: Path | None = None
    port_given: bool = False  # False: a free port was picked (and is picked again where it runs)
    backup_ended_at: datetime | None = None
    backup_stop_lsn: str = ""
    # True once the database host's checks ran (check_on_host): where the destination leads, the folder,
    # the port, the cluster stopped, and pgBackRest's own catalogue. Until then nothing may claim they passed.
    host_checked: bool = False

    @property
    def lsn(self) -> str | None:
        """The LSN to restore to (None unless the kind is lsn)."""
        return self.value if self.kind == "lsn" else None

    def lines(self) -> list[str]:
        what = {"time": f"to {self.value}", "lsn": f"to LSN {self.value}", "latest": "to the end of the archived WAL"}
        lines = [f"Restore target {self.target.name} {what[self.kind]} with pgBackRest"]
        if self.backup_set:
            lines.append(
                f"  from backup set {self.backup_set} (run #{self.run.pk if self.run else '?'}) plus archived WAL"
            )
        if self.in_place:
            stopped = "the cluster is stopped" if self.host_checked else "the cluster must be stopped first"
            lines.append(f"  OVER THE LIVE DATA DIRECTORY {self.to} ({stopped})")
            lines.append(f"  the current directory is kept as {self.rollback} for rollback")
            lines.append("  the restored cluster keeps archiving into the repository (it becomes production)")
        else:
            port = f"port {self.port}" if self.port else "a free port"
            lines.append(f"  into a new data directory {self.to}, started on {port}, archive_mode=off")
            lines.append(
                "  left running for you to switch over" if self.keep_running else "  checked, then stopped and removed"
            )
        return lines

    def checks(self) -> list[str]:
        """What was checked, from where, and what is left to the database host: never a check that was not run."""
        chosen = self._chosen_set()
        if self.host_checked:
            if self.in_place:
                done = f"the cluster in {self.to} is stopped"
            else:
                done = f"{self.to} is a new or empty folder whose parent exists, port {self.port} is free"
            return [f"Checked on the database host: {done}; pgBackRest's own catalogue: {chosen}."]
        if self.in_place:
            left = f"where {self.to} leads (symlinks resolved), that the cluster is stopped"
        else:
            port = f"port {self.port} is free" if self.port else "a free port is picked there"
            left = (
                f"where {self.to} leads (symlinks resolved), that the destination folder is new and empty and its "
                f"parent exists, that {port}"
            )
        return [
            f"Checked here from the portal's catalogue: {chosen}.",
            f"The worker on the database host (queue {self.target.queue}) checks again before touching anything: "
            f"{left}, and pgBackRest's own catalogue; if any fails, the restore is refused on its page, saying why.",
        ]

    def _chosen_set(self) -> str:
        run = f" (run #{self.run.pk})" if self.run else ""
        ended = self.backup_ended_at.isoformat() if self.backup_ended_at else "?"
        if self.kind == "time":
            return f"backup set {self.backup_set}{run} ended at {ended}, before {self.value}"
        if self.kind == "lsn":
            return (
                f"backup set {self.backup_set}{run} ended at LSN {self.backup_stop_lsn or '?'} ({ended}), "
                f"at or before LSN {self.value}"
            )
        return f"backup set {self.backup_set}{run}, the newest, ended at {ended}"


def _parse_moment(value: str) -> datetime:
    from django.utils.dateparse import parse_datetime

    moment = parse_datetime(value.strip().replace(" UTC", "Z")) if value else None
    if moment is None:
        raise PitrRefused(f"{value!r} is not a date and time; write it like 2026-12-01T14:03:06Z")
    if timezone.is_naive(moment):
        raise PitrRefused(f"{value!r} has no time zone; add Z for UTC or an offset like +02:00")
    return moment


def propose_pitr(
    target_name: str,
    *,
    moment: str | None = None,
    lsn: str | None = None,
    latest: bool = False,
    to: str | None,
    port: int | None = None,
    keep_running: bool = False,
    user=None,
    on_host: bool = True,
) -> PitrPlan:
    """Check a restore to a moment before anything is touched; raise PitrRefused saying why not.

    ``on_host`` False (a page in the web process, which may run on another machine): only the checks that
    hold anywhere (check_request). True (the worker on the database host, the restore command): those,
    then the ones only the database host can make (check_on_host).
    """
    plan = check_request(
        target_name,
        moment=moment,
        lsn=lsn,
        latest=latest,
        to=to,
        port=port,
        keep_running=keep_running,
        user=user,
    )
    return check_on_host(plan) if on_host else plan


def check_request(
    target_name: str,
    *,
    moment: str | None = None,
    lsn: str | None = None,
    latest: bool = False,
    to: str | None,
    port: int | None = None,
    keep_running: bool = False,
    user=None,
) -> PitrPlan:
    """The checks that hold wherever they run: the request itself, and the backup set from the portal's catalogue.

    No filesystem, port, process or pgBackRest call: the destination is compared with the live data directory
    as written (symlinks are the database host's to resolve, in check_on_host).
    """
    target = Target.objects.filter(name=target_name).first()
    if target is None:
        raise PitrRefused(f"no target named {target_name!r}")
    if target.engine != pgbr.ENGINE_NAME:
        raise PitrRefused(f"target {target.name} is not a pgbackrest target; --time, --lsn and --latest need one")
    chosen = [name for name, given in (("--time", moment), ("--lsn", lsn), ("--latest", latest)) if given]
    if len(chosen) != 1:
        raise PitrRefused("give exactly one of --time, --lsn or --latest")
    stanza = stanza_of(target)
    if not to:
        raise PitrRefused("--to is required: a new data directory (or the live one, with the cluster stopped)")
    destination = Path(to)  # pathlib drops repeated slashes and "." parts; ".." is refused
    if not destination.is_absolute() or ".." in destination.parts:
        raise PitrRefused(f"--to must be an absolute path without '..': {to}")
    # pathlib keeps a leading "//" (POSIX leaves its meaning to the system; on Linux it is "/").
    destination = Path("/" + str(destination).lstrip("/"))
    live = Path(os.path.normpath(stanza.pg_path))
    in_place = destination == live
    if not in_place and (live in destination.parents or destination in live.parents):
        raise PitrRefused(f"--to {to} is inside (or contains) the live data directory {live}; choose a separate folder")
    plan = PitrPlan(target, chosen[0][2:], moment or lsn or "", destination, port or 0, in_place, keep_running)
    plan.port_given = bool(port)
    if plan.kind == "time":
        plan.moment = _parse_moment(moment)
        if plan.moment > timezone.now():
            raise PitrRefused(f"{moment} is in the future; {_when_archived(stanza, plan.moment)}")
        plan.value = plan.moment.isoformat()
    if plan.kind == "lsn":
        try:
            pgbr.lsn_to_int(lsn)
        except (ValueError, AttributeError):
            raise PitrRefused(f"{lsn!r} is not an LSN like 0/3000060") from None
    if in_place:
        if user is not None and not user.has_perm("backups.restore_backuprun"):
            raise PitrRefused(f"{user.get_username()} lacks the restore_backuprun permission to restore over live data")
        plan.rollback = _rollback_path(live)
        plan.port = stanza.pg_port
    _use(plan, backup_set_for(target, plan.moment, lsn=plan.lsn))
    return plan


def check_on_host(plan: PitrPlan) -> PitrPlan:
    """The checks only the database host can make, on a plan check_request made; raise PitrRefused otherwise.

    Where the destination leads (symlinks), the folder new and empty with its parent there, the port free,
    the cluster stopped for a restore over it, and the backup set from pgBackRest's own catalogue
    (`pgbackrest info`, authoritative: the portal's may lag behind it).
    """
    stanza = stanza_of(plan.target)
    live = Path(stanza.pg_path).resolve()
    resolved = plan.to.resolve()
    if resolved == live and not plan.in_place:
        # Over live data only when it was asked for by name (the page asks to tick "replace" for that name).
        raise PitrRefused(
            f"--to {plan.to} leads to the live data directory {live} through a symlink: to restore over the live "
            f"data, name {stanza.pg_path} itself (with the cluster stopped)"
        )
    if not plan.in_place and (live in resolved.parents or resolved in live.parents):
        raise PitrRefused(
            f"--to {plan.to} is inside (or contains) the live data directory {live}"
            f"{' (through a symlink: it leads to ' + str(resolved) + ')' if resolved != plan.to else ''}; "
            "choose a separate folder"
        )
    given, plan.to = plan.to, resolved
    if plan.in_place:
        if pgbr.is_running(live):
            raise PitrRefused(f"the cluster in {live} is running: stop it first (pg_ctl stop) to restore over it")
        plan.rollback = _rollback_path(live)  # beside the directory pg_path really leads to, named as of now
    else:
        if resolved.exists() and any(resolved.iterdir()):
            raise PitrRefused(f"--to {given} exists and is not empty; name a new folder")
        if not resolved.parent.is_dir():
            raise PitrRefused(f"--to {given}: its parent folder {resolved.parent} does not exist")
        if plan.port_given and port_in_use(plan.port):
            raise PitrRefused(f"--port {plan.port} is in use; choose another or leave it out for a free one")
        plan.port = plan.port if plan.port_given else free_port()
    _use(plan, backup_set_in_repositories(plan.target, plan.moment, lsn=plan.lsn, stanza=stanza))
    plan.host_checked = True
    return plan


def _rollback_path(live: Path) -> Path:
    return live.with_name(f"{live.name}.pre-restore-{timezone.now():%Y%m%dT%H%M%S}")


def _use(plan: PitrPlan, chosen: BackupSet) -> None:
    plan.backup_set, plan.run, plan.backup_ended_at, plan.backup_stop_lsn = chosen


def _when_archived(stanza: PgBackRestStanza, moment: datetime) -> str:
    """When WAL past a future moment will be in the archive, as far as the cluster's settings tell."""
    try:
        with connect(stanza) as conn:
            seconds = conn.execute("SELECT setting::int FROM pg_settings WHERE name = 'archive_timeout'").fetchone()[0]
    except psycopg.Error:
        return "the archive cannot hold WAL past it yet (and the cluster is unreachable to say when it will)"
    if not seconds:
        return "WAL past it is archived only when a segment fills or WAL is switched (archive_timeout is off)"
    ready = moment + timedelta(seconds=seconds)
    return f"WAL past it will be archived by about {ready.isoformat(timespec='seconds')} (archive_timeout {seconds} s)"


def backup_set_for(target: Target, moment: datetime | None, *, lsn: str | None = None) -> BackupSet:
    """From the portal's catalogue (works anywhere): the backup set a restore to ``moment`` or to ``lsn``
    (neither: to the latest) starts from. The runs that succeeded, whose copy pgBackRest has not expired.

    Raises PitrRefused saying why there is none: no backup yet, or none had finished by the moment or the
    LSN (with the earliest one it can restore to). The database host asks pgBackRest itself
    (backup_set_in_repositories) before restoring.
    """
    stored = Artifact.objects.filter(run=OuterRef("run"), key=OuterRef("label"), status=Artifact.Status.STORED)
    sets = [
        BackupSet(row.label, row.run, row.stopped_at, row.lsn_stop)
        for row in PgBackRestBackup.objects.filter(
            run__target=target, run__status=BackupRun.Status.SUCCEEDED, stopped_at__isnull=False
        )
        .exclude(label="")
        .filter(Exists(stored))
        .select_related("run")
        .order_by("stopped_at", "pk")
    ]
    if not sets:
        raise PitrRefused(
            f"the portal's catalogue holds no finished backup of {target.name} yet: run a full backup first "
            "(one made outside the portal counts once `manage.py rebuildcatalog <location>` has imported it)"
        )
    return _choose(target, sets, moment=moment, lsn=lsn)


def backup_set_in_repositories(
    target: Target, moment: datetime | None, *, lsn: str | None = None, stanza: PgBackRestStanza | None = None
) -> BackupSet:
    """On the database host, from `pgbackrest info` (authoritative): the backup set a restore to ``moment``
    or to ``lsn`` (neither: to the latest) starts from, and its catalogued run (None if the portal does not
    know it).

    Raises PitrRefused as backup_set_for does.
    """
    stanza = stanza or stanza_of(target)
    data = pgbr.info(stanza)
    sets = [
        BackupSet(b["label"], None, pgbr.stamp(b["timestamp"]["stop"]), (b.get("lsn") or {}).get("stop") or "")
        for b in data.get("backup", [])
    ]
    if not sets:
        raise PitrRefused(f"the repositories of {target.name} hold no backup yet: run a full backup first")
    chosen = _choose(target, sorted(sets, key=lambda s: s.ended_at), moment=moment, lsn=lsn)
    return chosen._replace(run=BackupRun.objects.filter(target=target, artifacts__key=chosen.label).first())


def _choose(
    target: Target, sets: list[BackupSet], *, moment: datetime | None = None, lsn: str | None = None
) -> BackupSet:
    """The newest of ``sets`` (oldest first) that ended before ``moment``, or by ``lsn``; neither: the newest."""
    if lsn is not None:
        return _choose_by_lsn(target, sets, lsn)
    if moment is None:
        return sets[-1]
    # pgBackRest records whole seconds: a backup that stopped in T's own second may have ended after T.
    whole = moment.replace(microsecond=0)
    before = [s for s in sets if s.ended_at < whole]
    if not before:
        first = sets[0].ended_at
        raise PitrRefused(
            f"no backup had finished by {moment.isoformat()}: the earliest moment it can restore to is "
            f"{(first + timedelta(seconds=1)).isoformat()} (the first backup of {target.name} ended at "
            f"{first.isoformat()}; WAL before a backup cannot be replayed without one)"
        )
    return before[-1]


def _choose_by_lsn(target: Target, sets: list[BackupSet], lsn: str) -> BackupSet:
    """The newest of ``sets`` whose stop LSN is at or before ``lsn``.

    PostgreSQL is consistent only once it has replayed up to a backup's stop LSN: from a set that stopped
    after the LSN it refuses late ("requested recovery stop point is before consistent recovery point"),
    after the whole set was copied. LSNs are compared as numbers, which holds along one line of history;
    an LSN of an older timeline, after a restore started a new one, is not told apart here (out of scope).
    """
    wanted = pgbr.lsn_to_int(lsn)
    known = sorted((s for s in sets if s.stop_lsn), key=lambda s: pgbr.lsn_to_int(s.stop_lsn))
    if not known:
        raise PitrRefused(f"no backup of {target.name} records the LSN it stopped at: restore to a time instead")
    before = [s for s in known if pgbr.lsn_to_int(s.stop_lsn) <= wanted]
    if not before:
        first = known[0]
        raise PitrRefused(
            f"no backup had finished by LSN {lsn}: the earliest LSN it can restore to is {first.stop_lsn} "
            f"(the first backup of {target.name} ended there, at {first.ended_at.isoformat()}; WAL before a "
            "backup cannot be replayed without one)"
        )
    return before[-1]


# --- a restore to a moment asked for from a page (the admin, an incident) and run by a worker -----


def record_pitr(plan: PitrPlan, *, trigger: str, user=None, command_user: str = "", link=None) -> Restore:
    """The Restore row of a checked plan: everything a worker needs to check it again and carry it out."""
    with transaction.atomic():
        record = Restore.objects.create(
            source=f"{plan.target.name} {plan.kind} {plan.value}".strip(),
            target=plan.target,
            recovery_kind=plan.kind,
            recovery_target=plan.value,
            port=plan.port if plan.port_given or plan.in_place else None,
            keep_running=plan.keep_running,
            destination=str(plan.to),
            destination_display=str(plan.to),
            scratch_name="",  # set by the worker only if it creates the folder (services/pgbackrest, reaper)
            trigger=trigger,
            triggered_by=user,
            command_user=command_user,
            run=plan.run,
            format="pgbackrest",
            # Not the planned rollback folder: the worker names it on the row just before it moves the live
            # directory there, so a restore refused or failed before that never points at a folder that is not there.
            rollback_name="",
        )
        if link is not None:
            link(record)
    return record


def request_pitr(plan: PitrPlan, *, user, via: tuple[str, str] | None = None) -> Restore:
    """Queue a restore to a moment that ``user`` confirmed on a page showing ``plan``; the caller enqueues it.

    Raises RestoreNotAllowed (from the restore service's one check: the permission, or the incident
    it comes through). The row and its link (an incident's timeline) are made together or not at all.
    """
    link = authorize(user, via)
    return record_pitr(plan, trigger=BackupRun.Trigger.MANUAL, user=user, link=link)


def plan_of(record: Restore) -> PitrPlan:
    """Check a queued restore to a moment again, where it runs: the page's checks, then the database host's."""
    if record.target is None:
        raise PitrRefused("the target of this restore no longer exists")
    kind, value = record.recovery_kind, record.recovery_target
    user = record.triggered_by if record.trigger == BackupRun.Trigger.MANUAL else None
    return propose_pitr(
        record.target.name,
        moment=value if kind == "time" else None,
        lsn=value if kind == "lsn" else None,
        latest=kind == "latest",
        to=record.destination,
        port=record.port,
        keep_running=record.keep_running,
        user=user,
    )


def run_requested(record: Restore) -> Restore:
    """A worker carries out a queued restore to a moment; a refusal or failure is stored on the row."""
    if not record.start():
        record.refresh_from_db()
        return record
    try:
        plan = plan_of(record)
    except (PitrRefused, SourceError, LocationError) as exc:
        record.note(f"refused: {exc}")
        # Nothing was moved: the rollback the request named would otherwise read as "kept as" on its page.
        record.fail(str(exc), rollback_name="")
        return record
    if plan.port != record.port:
        record.write_held(port=plan.port)
    for line in plan.checks():
        record.note(line)
    chosen = plan.run.pk if plan.run else None
    if chosen != record.run_id:
        # The page chose from the portal's catalogue; pgBackRest's own, on this host, has the last word.
        reviewed = f"run #{record.run_id}" if record.run_id else "no catalogued run"
        record.note(
            f"pgBackRest's catalogue chose backup set {plan.backup_set}"
            f"{f' (run #{chosen})' if chosen else ' (not in the portal catalogue)'}, not {reviewed} as reviewed"
        )
        record.write_held(run=plan.run)
    return _carry_out(record, plan)


def ensure_wal_past(plan: PitrPlan, stanza: PgBackRestStanza, *, wait_seconds: float = 180, note=None) -> str:
    """Make sure WAL archived past the moment exists in a repository: switch WAL and wait if it is not yet.

    Returns what was found. With the source cluster unreachable nothing can be proven ahead;
    PostgreSQL itself then refuses to promote if the archive ends before the moment.
    """
    note = note or (lambda line: None)
    if plan.kind == "lsn":
        needed = pgbr.lsn_to_int(plan.value)
    elif plan.kind == "time":
        needed = None
    else:
        return "restoring to the end of the archived WAL"
    try:
        with connect(stanza) as conn:
            current = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]
            # Any WAL written now is after the moment (which is in the past): once the segment holding
            # the current position is archived, the archive reaches past the moment.
            target_lsn = needed if needed is not None else pgbr.lsn_to_int(current)
            if pgbr.lsn_to_int(current) < target_lsn:
                raise PitrRefused(f"LSN {plan.value} is past the cluster's current position {current}")
            segment = conn.execute("SELECT pg_walfile_name(%s::pg_lsn)", (_lsn_text(target_lsn),)).fetchone()[0]
            if _archived_max(stanza) >= segment:
                return f"WAL up to {segment} is archived (past the moment)"
            conn.execute("SELECT pg_switch_wal()")
            note(f"WAL past the moment was not archived yet: switched WAL, waiting for segment {segment}")
            deadline = time.monotonic() + wait_seconds
            while time.monotonic() < deadline:
                if _archived_max(stanza) >= segment:
                    return f"WAL up to {segment} is archived (after a WAL switch)"
                time.sleep(1)
            stats = conn.execute(
                "SELECT last_archived_wal, last_archived_time, failed_count, last_failed_wal, last_failed_time "
                "FROM pg_stat_archiver"
            ).fetchone()
    except psycopg.Error as exc:
        note(
            f"the source cluster is unreachable ({str(exc).strip().splitlines()[0]}): cannot check the archive "
            "ahead; PostgreSQL will refuse to promote if the archived WAL ends before the moment"
        )
        return "source unreachable: archive not checked ahead"
    why = (
        f"archiving is failing: {stats[2]} failure(s), the last for {stats[3]} at {stats[4]}"
        if stats[4] and (not stats[1] or stats[4] > stats[1])
        else f"the archiver last archived {stats[0]} at {stats[1]}"
    )
    raise PitrRefused(
        f"WAL past the moment (segment {segment}) was not archived within {wait_seconds:.0f} s of a WAL switch; {why}. "
        "Fix archiving (see PostgreSQL's log) and try again"
    )


def _lsn_text(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def _archived_max(stanza: PgBackRestStanza) -> str:
    """The newest WAL segment archived in any repository ('' when none)."""
    data = pgbr.info(stanza)
    return max((a.get("max") or "" for a in data.get("archive", [])), default="")


def execute_pitr(record: Restore, plan: PitrPlan) -> Restore:
    """Restore, start, wait for promotion, check; then stop and remove unless kept. Outcome stored on the row."""
    if not record.start():
        record.refresh_from_db()
        return record
    return _carry_out(record, plan)


def _claim(plan: PitrPlan, record: Restore) -> Path:
    """Take the destination for this restore alone (two restores asked for at once into one folder).

    Without it, the second would find the first one's files, fail, and clean up a folder that is not its own.
    """
    lock = pgbr.lock_path(plan.to)
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        holder = lock.read_text(errors="replace").strip() if lock.exists() else "?"
        raise PitrRefused(
            f"another restore ({holder}) is writing into {plan.to}; if no restore is running there any more, "
            f"remove {lock} and try again"
        ) from None
    with os.fdopen(fd, "w") as out:
        out.write(pgbr.lock_text(record.pk) + "\n")
    if not plan.in_place and plan.to.exists() and any(plan.to.iterdir()):
        lock.unlink(missing_ok=True)
        raise PitrRefused(f"{plan.to} is not empty any more; name a new folder")
    return lock


def _carry_out(record: Restore, plan: PitrPlan) -> Restore:
    try:
        lock = _claim(plan, record)
    except (PitrRefused, OSError) as exc:
        record.note(f"refused: {exc}")
        record.fail(str(exc), rollback_name="")  # refused before the live directory could be moved
        return record
    try:
        # pgbackrest restore and pg_ctl start say nothing for minutes on a big cluster: keep the row alive.
        with record.kept_alive(HEARTBEAT_SECONDS):
            return _restore_claimed(record, plan)
    finally:
        lock.unlink(missing_ok=True)


def _restore_claimed(record: Restore, plan: PitrPlan) -> Restore:
    stanza = stanza_of(plan.target)
    started = time.monotonic()
    created_dir = False  # this restore made the destination folder (else it existed, empty: only emptied)
    claimed_dir = False  # it may have written into the destination
    running = False
    moved = False  # this restore moved the live directory aside: only then is there anything to roll back
    try:
        repos = repos_of(plan.target)
        pgbr.write_config(stanza, repos)
        record.note(ensure_wal_past(plan, stanza, note=record.note))
        if plan.in_place:
            if pgbr.is_running(plan.to):
                raise PitrRefused(f"the cluster in {plan.to} started again: stop it first")
            if plan.rollback.exists():
                # Renaming onto it would fail (or, were it empty, silently replace it): never touch it.
                raise PitrRefused(f"{plan.rollback} exists already; keep or move it, then try again")
            # Recorded before the rename (and only while this process holds the restore): if it dies, the
            # reaper knows where the live directory went and puts it back.
            record.write_held(rollback_name=str(plan.rollback))
            plan.to.rename(plan.rollback)
            moved = True
            record.note(f"kept the live data directory as {plan.rollback}; to roll back, rename it back")
        args = (
            [f"--pg1-path={plan.to}", f"--set={plan.backup_set}"]
            if plan.kind != "latest"
            else [f"--pg1-path={plan.to}"]
        )
        if plan.kind == "time":
            args += ["--type=time", f"--target={plan.moment.isoformat(sep=' ')}", "--target-action=promote"]
        elif plan.kind == "lsn":
            args += ["--type=lsn", f"--target={plan.value}", "--target-action=promote"]
        else:
            args += ["--type=default"]
        if not plan.in_place:
            args.append("--archive-mode=off")  # never archive into the production repository
        created_dir = not plan.to.exists()
        if created_dir:
            # Recorded before the folder is made: a reaper removes a folder only when this restore made it.
            record.write_held(scratch_name=str(plan.to))
        claimed_dir = True
        plan.to.mkdir(mode=0o700, exist_ok=True)
        pgbr.chown_to(plan.to, stanza.os_user)
        record.note(f"pgbackrest restore {' '.join(a for a in args if not a.startswith('--pg1-path'))} into {plan.to}")
        pgbr.run(stanza, "restore", *args, what="pgbackrest restore")
        options = f"-p {plan.port}" + ("" if plan.in_place else " -c archive_mode=off")
        log = pgbr.startup_log(plan.to)
        log.touch()
        pgbr.chown_to(log, stanza.os_user)
        record.note(f"starting PostgreSQL on port {plan.port}" + ("" if plan.in_place else " with archive_mode=off"))
        try:
            pgbr.pg_ctl(stanza.os_user, "start", "-D", str(plan.to), "-l", str(log), "-w", "-t", "3600", "-o", options)
        except SourceError as exc:
            raise SourceError(f"{exc}\n{_tail(log)}") from None
        running = True
        tables = wait_and_check(stanza, plan, log, record)
        duration = time.monotonic() - started
        record.note(f"promoted and checked: {len(tables)} table(s) in {duration:.1f} s (RTO evidence)")
        if not plan.keep_running and not plan.in_place:
            removed = stop_and_remove(stanza, plan.to, log, created=created_dir)
            running = claimed_dir = False
            gone = created_dir and not plan.to.exists()
            record.note(f"stopped and removed {plan.to}" if gone else f"stopped; {removed}")
        elif not plan.in_place:
            record.note(f"left running on port {plan.port} in {plan.to} (archive_mode=off): switch over when ready")
        record.succeed(tables=tables)
    except Exception as exc:  # expected or not, the row must never be left running
        expected = isinstance(exc, (PitrRefused, SourceError, LocationError, OSError))
        if not expected:
            logger.exception("restore %s crashed", record.pk)
        message = str(exc) if expected else f"unexpected error: {type(exc).__name__}: {exc}"
        record.note(f"failed: {message}")
        kept = {}
        if moved:
            message += _roll_back(stanza, plan, record)
        elif plan.in_place:
            kept["rollback_name"] = ""  # the live directory was never moved: no rollback folder to name
        elif running or claimed_dir:
            stop_and_remove(stanza, plan.to, pgbr.startup_log(plan.to), created=created_dir)
        record.fail(message, **kept)
    return record


def _roll_back(stanza: PgBackRestStanza, plan: PitrPlan, record: Restore) -> str:
    """A failed restore over the live directory that moved it aside puts the previous one back (stopped, as it was)."""
    failed = plan.to.with_name(f"{plan.to.name}.failed-restore-{timezone.now():%Y%m%dT%H%M%S}")
    try:
        if pgbr.is_running(plan.to):
            pgbr.pg_ctl(stanza.os_user, "stop", "-D", str(plan.to), "-m", "immediate", "-w", timeout=120)
        if plan.to.exists():
            plan.to.rename(failed)
        plan.rollback.rename(plan.to)
    except (OSError, SourceError) as exc:
        note = f"; rolling back failed too ({exc}): the previous data directory is {plan.rollback}"
        record.note(note[2:])
        return note
    Restore.objects.filter(pk=record.pk).update(rollback_name="")
    record.rollback_name = ""
    record.note(f"rolled back: the previous data directory is in place again (stopped); the failed one is {failed}")
    return (
        f"; rolled back: {plan.to} is the previous data directory again (stopped). If the archive ended before "
        "the moment, start the cluster, run SELECT pg_switch_wal(), wait for it to be archived, stop it and retry"
    )


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_and_check(stanza: PgBackRestStanza, plan: PitrPlan, log: Path, record: Restore | None) -> list[dict]:
    deadline = time.monotonic() + 3600
    while True:
        if not pgbr.is_running(plan.to):
            raise SourceError(f"the restored cluster stopped during recovery:\n{_tail(log)}")
        try:
            with connect(stanza, port=plan.port) as conn:
                if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                    break
        except psycopg.OperationalError:
            pass
        if time.monotonic() > deadline:
            raise SourceError("the restored cluster did not finish recovery within an hour")
        time.sleep(0.5)
    return count_tables(stanza, plan.port)


def count_tables(stanza: PgBackRestStanza, port: int) -> list[dict]:
    """Every user table of every database of the cluster on ``port``, with its exact row count."""
    tables = []
    with connect(stanza, port=port) as conn:
        names = [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datallowconn ORDER BY datname")]
    for dbname in names:
        with connect(stanza, dbname, port=port) as conn:
            rows = conn.execute(
                "SELECT schemaname, tablename FROM pg_tables "
                "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
            ).fetchall()
            for schema, table in rows:
                count = conn.execute(
                    psycopg.sql.SQL("SELECT count(*) FROM {}.{}").format(
                        psycopg.sql.Identifier(schema), psycopg.sql.Identifier(table)
                    )
                ).fetchone()[0]
                tables.append({"name": f"{dbname}.{schema}.{table}", "expected": None, "restored": count})
    return tables


def stop_and_remove(stanza: PgBackRestStanza, data_dir: Path, log: Path, *, created: bool = True) -> str:
    """Stop a restored copy and remove its data directory; one that existed before (``created`` False) is emptied."""
    if pgbr.is_running(data_dir):
        try:
            pgbr.stop_cluster(stanza.os_user, data_dir)
        except SourceError as exc:
            logger.warning("could not stop the restored copy in %s: %s", data_dir, exc)
    log.unlink(missing_ok=True)
    if not data_dir.exists():
        return f"{data_dir} was not created"
    try:
        return pgbr.clear_data_dir(data_dir, created=created)
    except OSError as exc:
        logger.warning("could not remove the restored copy in %s: %s", data_dir, exc)
        return f"could not remove what was restored into {data_dir}: {exc}"


# --- verification -------------------------------------------------------------------------
