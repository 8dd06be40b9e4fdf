"""`make run` (scripts/run-dev.sh) started and stopped by a test as a person does: Ctrl-C, then nothing is left.

The script starts the web server, the Celery worker and beat in sessions of their own (so that stopping one
stops its children), which is also why killing the script's process group does not stop them: only its
Ctrl-C handler does. A test that cannot deliver that Ctrl-C leaves a running portal behind, so stop() checks
that every process of the portal is gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from tests.conftest import ROOT


def _ctrl_c_reaches_the_script() -> None:
    # A suite started in the background (`make test &`, a CI job) has SIGINT ignored, which its children
    # inherit; a shell that starts with SIGINT ignored cannot trap it (POSIX), so run-dev.sh's Ctrl-C handler
    # would never run. A terminal's Ctrl-C reaches a script whose SIGINT is not ignored: make it so.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(env: dict, log_path: Path) -> subprocess.Popen:
    with open(log_path, "w") as log:
        return subprocess.Popen(
            ["bash", "scripts/run-dev.sh"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_ctrl_c_reaches_the_script,
        )


def processes_of(home: Path) -> list[int]:
    """Every live process whose environment says DRPORTAL_HOME=home (zombies have no environment)."""
    marker = f"DRPORTAL_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if marker in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def stop(proc: subprocess.Popen, home: Path) -> None:
    """Ctrl-C to the script, as in its terminal; then no process of that portal may be left running.

    Leftovers are killed (a failed test must not leave a portal running) and then fail the test by name.
    """
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    deadline = time.monotonic() + 10
    while (left := processes_of(home)) and time.monotonic() < deadline:
        time.sleep(0.2)
    if left:
        described = []
        for pid in left:
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                described.append(f"{pid}: {command}")
                os.kill(pid, signal.SIGKILL)
            except OSError:
                continue
        raise AssertionError("make run left these running after Ctrl-C:\n" + "\n".join(described))
