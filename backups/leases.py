"""Who holds a running job, and how a reaper proves that holder dead.

A running backup or restore row names the process that runs it: ``lease_owner`` is
``host:pid:start-time`` and ``lease_expires_at`` is pushed forward by each progress
report, by the silence limit of the phase the job is in. A reaper fails a silent job
only with proof that its process is gone:

- on the same host, the pid has ended, or now belongs to a process that started at
  another time (pids are reused); a live process keeps its job however slow it is;
- on another host, where pids say nothing, the lease has expired: the owner has
  reported no progress for longer than its phase allows.

Every write the owner makes to its row is conditional on its lease (see
``LeasedJob`` in models), so an owner that was presumed dead and wakes up finds
its row taken and stops without overwriting anything.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone


class LeaseLost(Exception):
    """This process no longer holds the job: a reaper presumed it dead, or the job finished elsewhere."""


def host_id() -> str:
    return settings.BACKUP_HOST_ID or socket.gethostname()


def process_start(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), "" where unknown; None if no such pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            raw = stat.read().decode(errors="replace")
    except FileNotFoundError:
        return None
    except OSError:
        raw = ""
    if raw:
        # The command name (field 2) may hold spaces and parentheses: count fields after the last ")".
        fields = raw[raw.rfind(")") + 2 :].split()
        exiting = len(fields) > 6 and fields[6].isdigit() and int(fields[6]) & PF_EXITING
        if (fields and fields[0] in ("Z", "X")) or exiting or _kill_pending(pid):
            return None  # ended, exiting or being killed: it will never run another line of its code
        return fields[19] if len(fields) > 19 else ""
    # No /proc (macOS, BSD): only whether the pid exists, so a reused pid counts as alive (never a false "dead").
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return ""


PF_EXITING = 0x4  # the kernel's flag (stat field 9) on a process that has begun to exit


def _kill_pending(pid: int) -> bool:
    """True if SIGKILL is pending for ``pid``: it is dying, only not yet a zombie."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(("SigPnd:", "ShdPnd:")) and int(line.split()[1], 16) & (1 << 8):
                    return True
    except (OSError, ValueError, IndexError):
        pass
    return False


def this_process() -> str:
    """This process's lease owner string. Computed each time: a forked worker child has its own pid."""
    pid = os.getpid()
    return f"{host_id()}:{pid}:{process_start(pid) or ''}"


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    start: str

    @classmethod
    def parse(cls, value: str) -> Owner | None:
        host, sep, rest = value.rpartition(":")
        host, sep2, pid = host.rpartition(":")
        if not (sep and sep2 and pid.isdigit()):
            return None
        return cls(host, int(pid), rest)

    def __str__(self) -> str:
        return f"process {self.pid} on {self.host}"


def proof_of_death(lease_owner: str, lease_expires_at: datetime | None, now: datetime | None = None) -> str | None:
    """Why the job's process is known to be gone, or None if it may still be running.

    A row claimed before leases existed (no owner) keeps the old rule: silence alone.
    """
    if not lease_owner:
        return "it recorded no process to check"
    now = now or timezone.now()
    owner = Owner.parse(lease_owner)
    if owner is not None and owner.host == host_id():
        start = process_start(owner.pid)
        if start is None:
            return f"its {owner} has ended"
        if owner.start and start and start != owner.start:
            return f"its {owner} has ended (the pid now belongs to another process)"
        return None
    if lease_expires_at is not None and lease_expires_at < now:
        who = str(owner) if owner else lease_owner
        return f"its {who} let its lease expire at {lease_expires_at:%Y-%m-%d %H:%M:%S} UTC"
    return None


# Each phase of a backup, and how long it may be silent (the setting that says so). A phase is
# "dump", "copy:LOCATION" or "manifest:LOCATION"; restores have no phase and use the dump limit.
PHASE_LIMITS = {
    "dump": "BACKUP_STALE_SECONDS",
    "copy": "BACKUP_COPY_STALE_SECONDS",
    "manifest": "BACKUP_MANIFEST_STALE_SECONDS",
}


def phase_kind(phase: str) -> str:
    kind = phase.partition(":")[0]
    return kind if kind in PHASE_LIMITS else "dump"


def silence_limit(phase: str = "") -> int:
    """How many seconds a job in ``phase`` may go without reporting progress before it counts as stale."""
    return getattr(settings, PHASE_LIMITS[phase_kind(phase)])
