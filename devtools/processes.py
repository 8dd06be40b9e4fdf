"""Stopping the processes a test or a benchmark started, whole process groups at a time.

Each process is expected to lead its own group (``subprocess.Popen(..., start_new_session=True)``),
so a signal reaches what it started too (a Celery worker's pool, gunicorn's workers).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterable


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:  # the whole group has gone already
        pass


def stop_all(processes: Iterable[subprocess.Popen], *, grace: float = 30, sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` to every running process's group at once, wait up to ``grace`` seconds for each,
    then SIGKILL the group of any that is still running (and reap it)."""
    processes = list(processes)
    for proc in processes:
        if proc.poll() is None:
            _signal_group(proc, sig)
    for proc in processes:
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait(10)


def stop(proc: subprocess.Popen, *, grace: float = 30, sig: int = signal.SIGTERM) -> None:
    """`stop_all` for one process."""
    stop_all([proc], grace=grace, sig=sig)
