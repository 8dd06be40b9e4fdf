"""pgBackRest: the portal drives it; it never ships WAL or copies data files itself.

This module knows pgBackRest and PostgreSQL's command-line tools: it renders a stanza's
configuration (one file per target), runs pgBackRest and ``pg_ctl`` as the cluster's OS
user with a timeout, and reads ``pgbackrest info --output=json``. The workflows (backup,
restore to a moment, verify, RPO) live in ``backups.services.pgbackrest``.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings

from ..leases import Owner, host_id
from .base import Dump, SourceError, scrub
from .engine import Engine
from .restore_base import Recovery

ENGINE_NAME = "pgbackrest"
# pgBackRest keeps its repository inside this folder of a location, so a location shared with
# the portal's own age artifacts never mixes the two (and a target named "archive" is harmless).
REPO_FOLDER = "pgbackrest"
DEFAULT_TIMEOUT = 6 * 3600
WAL_SEGMENT_RE = re.compile(r"^[0-9A-F]{24}$")


class PgBackRestError(SourceError):
    """pgBackRest (or pg_ctl) failed: its own words, verbatim, and its exit code."""

    def __init__(self, what: str, code: int | None, output: str) -> None:
        self.what, self.code, self.output = what, code, output
        status = "did not finish in time and was stopped" if code is None else f"failed with exit code {code}"
        super().__init__(f"{what} {status}: {output}" if output else f"{what} {status}")


class PgBackRestEngine(Engine):
    """A self-hosted PostgreSQL cluster backed up by pgBackRest (full, diff, incr + WAL archive)."""

    name = ENGINE_NAME
    label = "PostgreSQL cluster through pgBackRest (point-in-time recovery; set its pgBackRest settings)"
    format = "pgbackrest"
    extension = ""  # no artifact of its own: pgBackRest writes its repository
    # Its settings (PgBackRestStanza) say what it reads, not a source.
    needs_source = False
    # A physical cluster: its restore test is pgBackRest's own (services/pgbackrest), which the drill does not run.
    is_database = False
    # The backup service hands the whole run to backups.services.pgbackrest instead of streaming a dump.
    runs_own_backup = True
    # Restored by pgBackRest to a moment, never through the generic restore (restorer None).
    restores_to_a_moment = True
    restorer = None
    restore_hint = "pgbackrest --stanza=TARGET restore"
    restore_refusal = (
        "a pgBackRest backup: restore its target to a moment with "
        "manage.py restore TARGET --time T --to NEW_DATA_DIR (or --latest)"
    )

    def dump(self, source: str, *, endpoint_url: str = "") -> Dump:
        raise SourceError("a pgbackrest target is backed up by pgBackRest, not by a streamed dump")

    def recover_restore(self, restore, *, endpoint_url: str = "") -> Recovery:
        """A dead restore to a moment: stop what it started, remove what it made, put back what it moved."""
        return recover_restore(restore)


# --- who runs it -------------------------------------------------------------------------


def as_user(argv: list[str], os_user: str) -> list[str]:
    """Run ``argv`` as ``os_user``: directly if this process already is that user, else through runuser."""
    try:
        wanted = pwd.getpwnam(os_user).pw_uid
    except KeyError:
        raise SourceError(f"OS user {os_user!r} does not exist on this worker") from None
    if os.geteuid() == wanted:
        return argv
    if os.geteuid() != 0:
        raise SourceError(
            f"this worker runs as {pwd.getpwuid(os.geteuid()).pw_name}, not as the cluster's OS user {os_user}: "
            "run the target's queue on a worker started as that user"
        )
    return ["runuser", "-u", os_user, "--", *argv]


def chown_to(path: Path, os_user: str) -> None:
    """Give a file or folder the portal made to the cluster's OS user (only possible, and needed, as root)."""
    if os.geteuid() == 0:
        entry = pwd.getpwnam(os_user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def pg_tool(name: str) -> str:
    path = Path(settings.PG_BINDIR) / name
    return str(path) if path.exists() else name


# --- configuration ------------------------------------------------------------------------


@dataclass(frozen=True)
class Repo:
    """One location seen as a pgBackRest repository."""

    index: int
    location: object  # backups.models.Location
    kind: str  # posix or s3
    path: str  # repo-path: a folder, or the key prefix inside the bucket

    @property
    def label(self) -> str:
        return f"repo{self.index} ({self.location.name})"


def repos_for(locations) -> list[Repo]:
    repos = []
    for index, location in enumerate(locations, 1):
        parts = urlsplit(location.url)
        if parts.scheme == "file":
            repos.append(Repo(index, location, "posix", f"{parts.path.rstrip('/')}/{REPO_FOLDER}"))
        elif parts.scheme == "s3":
            prefix = parts.path.strip("/")
            repos.append(Repo(index, location, "s3", f"/{prefix}/{REPO_FOLDER}" if prefix else f"/{REPO_FOLDER}"))
        else:
            raise SourceError(f"location {location.name}: pgBackRest cannot use {parts.scheme}:// locations")
    if not repos:
        raise SourceError("a pgbackrest target needs at least one enabled location")
    if len(repos) > 4:
        raise SourceError("pgBackRest supports at most 4 repositories; this target has more enabled locations")
    return repos


def _s3_options(n: int, location, verify_tls: bool) -> list[str]:
    parts = urlsplit(location.url)
    lines = [f"repo{n}-type=s3", f"repo{n}-s3-bucket={parts.netloc}"]
    region = location.region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    if location.endpoint_url:
        endpoint = urlsplit(location.endpoint_url)
        if endpoint.scheme != "https":
            raise SourceError(
                f"location {location.name}: pgBackRest speaks S3 over TLS only; "
                f"its endpoint must be https:// (it is {endpoint.scheme}://)"
            )
        lines += [f"repo{n}-s3-endpoint={endpoint.hostname}", f"repo{n}-s3-uri-style=path"]
        if endpoint.port:
            lines.append(f"repo{n}-storage-port={endpoint.port}")
    else:
        lines.append(f"repo{n}-s3-endpoint=s3.{region}.amazonaws.com")
    lines.append(f"repo{n}-s3-region={region}")
    key = location.access_key_id or os.environ.get("AWS_ACCESS_KEY_ID", "")
    secret = location.secret_access_key or os.environ.get("AWS_SECRET_ACCESS_KEY", "")
    if key and secret:
        lines += [f"repo{n}-s3-key={key}", f"repo{n}-s3-key-secret={secret}"]
    else:
        lines.append(f"repo{n}-s3-key-type=auto")  # the instance's role
    if not verify_tls:
        lines.append(f"repo{n}-storage-verify-tls=n")
    return lines


def retention_options(n: int, location) -> list[str]:
    """The location's retention in pgBackRest's terms; WAL is kept for the backups that are kept."""
    if location.retention_days:
        # pgBackRest counts one retention per repository: by age (days) wins over a count.
        return [f"repo{n}-retention-full-type=time", f"repo{n}-retention-full={location.retention_days}"]
    if location.keep_last:
        return [f"repo{n}-retention-full-type=count", f"repo{n}-retention-full={location.keep_last}"]
    return []


def config_path(target_name: str) -> Path:
    return Path(settings.PGBACKREST_CONFIG_DIR) / f"{target_name}.conf"


def work_dir(target_name: str) -> Path:
    """Logs, locks and spool of one stanza, beside its configuration."""
    return Path(settings.PGBACKREST_CONFIG_DIR) / target_name


def render_config(stanza, repos: list[Repo]) -> str:
    """The whole configuration file of one target's stanza (it holds secrets: written 0600)."""
    name = stanza.target.name
    work = work_dir(name)
    lines = [
        f"# Generated by DR Portal for target {name}: do not edit; change the target and run pgbackrest-setup.",
        "[global]",
        f"log-path={work}/log",
        f"lock-path={work}/lock",
        f"spool-path={work}/spool",
        # stdout stays clean for --output=json; warnings and errors go to stderr (and PostgreSQL's log).
        "log-level-console=off",
        "log-level-stderr=warn",
        "log-level-file=info",
        f"compress-type={settings.PGBACKREST_COMPRESS_TYPE}",
        f"compress-level={settings.PGBACKREST_COMPRESS_LEVEL}",
        f"process-max={settings.PGBACKREST_PROCESS_MAX}",
        "start-fast=y",
    ]
    for repo in repos:
        n = repo.index
        lines.append(f"repo{n}-path={repo.path}")
        if repo.kind == "s3":
            lines += _s3_options(n, repo.location, stanza.verify_tls)
        lines += [f"repo{n}-cipher-type=aes-256-cbc", f"repo{n}-cipher-pass={stanza.cipher_pass}"]
        lines += retention_options(n, repo.location)
        if settings.PGBACKREST_REPO_BUNDLE:
            lines.append(f"repo{n}-bundle=y")
    lines += ["", f"[{name}]", f"pg1-path={stanza.pg_path}", f"pg1-port={stanza.pg_port}"]
    # pgBackRest reads the data directory, so the cluster is on this worker's host and is reached through
    # its socket; pg_host only serves the portal's own SQL checks (pg1-host would mean a remote pgBackRest).
    if stanza.pg_socket:
        lines.append(f"pg1-socket-path={stanza.pg_socket}")
    lines.append(f"pg1-user={stanza.os_user}")
    return "\n".join(lines) + "\n"


def write_config(stanza, repos: list[Repo]) -> Path:
    """Write the stanza's configuration where the cluster's OS user (and only it) can read it."""
    base = Path(settings.PGBACKREST_CONFIG_DIR)
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)  # the OS user must reach its own file; the file itself is 0600
    work = work_dir(stanza.target.name)
    for sub in ("", "log", "lock", "spool"):
        folder = work / sub if sub else work
        folder.mkdir(exist_ok=True)
        folder.chmod(0o700)
        chown_to(folder, stanza.os_user)
    path = config_path(stanza.target.name)
    tmp = path.with_suffix(".conf.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(render_config(stanza, repos))
    chown_to(tmp, stanza.os_user)
    tmp.replace(path)
    for repo in repos:
        if repo.kind == "posix":
            folder = Path(repo.path)
            if not folder.exists():
                folder.mkdir(parents=True, mode=0o750)
                chown_to(folder, stanza.os_user)
    return path


def archive_command(target_name: str) -> str:
    return (
        f"{shlex.quote(settings.PGBACKREST_BIN)} --config={shlex.quote(str(config_path(target_name)))} "
        f"--stanza={target_name} archive-push %p"
    )


def restore_command(target_name: str) -> str:
    return (
        f"{shlex.quote(settings.PGBACKREST_BIN)} --config={shlex.quote(str(config_path(target_name)))} "
        f'--stanza={target_name} archive-get %f "%p"'
    )


def setup_lines(target_name: str, archive_timeout: int = 60) -> list[str]:
    """The lines the DBA appends to postgresql.conf (a restart is needed for archive_mode and wal_level)."""
    command = archive_command(target_name).replace("'", "''")
    return [
        f"# DR Portal: WAL archiving of target {target_name} through pgBackRest",
        "archive_mode = on",
        "wal_level = replica",
        f"archive_timeout = {archive_timeout}",
        f"archive_command = '{command}'",
    ]


# --- running it ---------------------------------------------------------------------------


def run(stanza, command: str, *args: str, timeout: float = DEFAULT_TIMEOUT, what: str = "") -> str:
    """Run ``pgbackrest COMMAND ARGS`` for the stanza as its OS user; returns stdout.

    Raises PgBackRestError with pgBackRest's own message and exit code. Secrets never
    reach the command line: they are in the 0600 configuration file.
    """
    name = stanza.target.name
    options = [a for a in args if a.startswith("--")]
    parameters = [a for a in args if not a.startswith("--")]  # e.g. repo-ls PATH: after the command
    argv = [
        settings.PGBACKREST_BIN,
        f"--config={config_path(name)}",
        f"--stanza={name}",
        *options,
        command,
        *parameters,
    ]
    return _run(argv, stanza, timeout=timeout, what=what or f"pgbackrest {command}")


def subprocess_env() -> dict[str, str]:
    """The environment of a pgbackrest process: the portal's own, without its PGBACKREST_* settings.

    pgBackRest reads every PGBACKREST_<OPTION> variable as an option that overrides the configuration file
    (PGBACKREST_PROCESS_MAX would be process-max; PGBACKREST_CONFIG_DIR is refused with a warning, and an
    indexed option such as repo-bundle is an error): the generated file alone says how it runs, as it does
    for the archive_command PostgreSQL runs.
    """
    env = {name: value for name, value in os.environ.items() if not name.startswith("PGBACKREST_")}
    env["LC_ALL"] = "C.UTF-8"
    return env


def _run(argv: list[str], stanza, *, timeout: float, what: str) -> str:
    secrets = [stanza.cipher_pass]
    for location in stanza.target.locations.all():
        secrets += [location.secret_access_key, location.access_key_id]
    try:
        result = subprocess.run(
            as_user(argv, stanza.os_user),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd="/",
            env=subprocess_env(),
        )
    except subprocess.TimeoutExpired as exc:
        output = (exc.stderr or b"").decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        raise PgBackRestError(what, None, scrub(output.strip(), secrets)) from None
    except FileNotFoundError:
        raise SourceError(f"{argv[0]} is not installed on this worker") from None
    if result.returncode != 0:
        output = "\n".join(part.strip() for part in (result.stderr, result.stdout) if part.strip())
        raise PgBackRestError(what, result.returncode, scrub(output, secrets))
    return result.stdout


def info(stanza, *, timeout: float = 300) -> dict:
    """The stanza's entry of ``pgbackrest info --output=json``."""
    text = run(stanza, "info", "--output=json", timeout=timeout)
    try:
        data = json.loads(text)
    except ValueError:
        raise SourceError(f"pgbackrest info printed something that is not JSON: {text[:200]}") from None
    for entry in data:
        if entry.get("name") == stanza.target.name:
            return entry
    raise SourceError(f"pgbackrest info knows no stanza {stanza.target.name}")


def stamp(seconds: int | None) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds else None


def newest_segment_time(stanza, repo_index: int, segment: str, *, timeout: float = 120) -> datetime | None:
    """When WAL segment ``segment`` landed in repository ``repo_index`` (the file's time in the repo)."""
    db_id = None
    listing = run(stanza, "repo-ls", f"--repo={repo_index}", f"archive/{stanza.target.name}", "--output=json")
    for name in json.loads(listing):
        if re.match(r"^\d+-\d+$", name) and (db_id is None or int(name.split("-")[1]) > int(db_id.split("-")[1])):
            db_id = name
    if db_id is None:
        return None
    folder = f"archive/{stanza.target.name}/{db_id}/{segment[:16]}"
    listing = json.loads(run(stanza, "repo-ls", f"--repo={repo_index}", folder, "--output=json", timeout=timeout))
    times = [entry.get("time") for name, entry in listing.items() if name.startswith(segment)]
    times = [t for t in times if t]
    return stamp(max(times)) if times else None


def segment_end_lsn(segment: str, segment_size: int = 16 * 1024 * 1024) -> int:
    """The LSN (as an integer) just past the end of WAL segment ``segment`` (TTTTTTTTXXXXXXXXYYYYYYYY)."""
    log, seg = int(segment[8:16], 16), int(segment[16:24], 16)
    per_log = 0x100000000 // segment_size
    return (log * per_log + seg + 1) * segment_size


def lsn_to_int(lsn: str) -> int:
    high, low = lsn.split("/")
    return (int(high, 16) << 32) + int(low, 16)


# --- PostgreSQL's own tools, as the OS user -----------------------------------------------


def pg_ctl(os_user: str, *args: str, timeout: float = 600) -> str:
    argv = [pg_tool("pg_ctl"), *args]
    try:
        result = subprocess.run(
            as_user(argv, os_user),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd="/",
            stdin=subprocess.DEVNULL,
            # The server it starts runs archive-get (restore_command) with this environment: no PGBACKREST_*.
            env={name: value for name, value in os.environ.items() if not name.startswith("PGBACKREST_")},
        )
    except subprocess.TimeoutExpired:
        raise PgBackRestError(f"pg_ctl {args[0]}", None, "") from None
    if result.returncode != 0:
        raise PgBackRestError(f"pg_ctl {args[0]}", result.returncode, (result.stderr + result.stdout).strip())
    return result.stdout


def is_running(data_dir: Path) -> bool:
    """A postmaster owns this data directory (its pid file names a live process)."""
    pid_file = Path(data_dir) / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- a restore to a moment's own files, and cleaning up after one whose worker died ----------


def lock_path(data_dir: Path) -> Path:
    """The file that gives one restore a destination to itself (beside it: the folder may not exist yet)."""
    return data_dir.parent / f".{data_dir.name}.drportal-restore.lock"


def lock_text(restore_pk: int) -> str:
    return f"restore #{restore_pk}"


def startup_log(data_dir: Path) -> Path:
    """Where a restored cluster's server log goes while it starts (beside the data directory, not in it)."""
    return data_dir.parent / f"{data_dir.name}.startup.log"


def stop_cluster(os_user: str, data_dir: Path) -> str:
    """Stop the cluster running in ``data_dir`` at once (a restored copy: nothing to flush); raises SourceError."""
    pg_ctl(os_user, "stop", "-D", str(data_dir), "-m", "immediate", "-w", timeout=120)
    return f"stopped the restored cluster left running in {data_dir} (pg_ctl stop -m immediate as {os_user})"


def clear_data_dir(data_dir: Path, *, created: bool) -> str:
    """Remove a restored data directory the restore created; empty one that existed before (the folder stays)."""
    if created:
        shutil.rmtree(data_dir)
        return f"removed the data directory {data_dir} the restore had created"
    for entry in list(data_dir.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    return f"emptied {data_dir}, which existed before the restore (the folder itself is kept)"


def restore_processes(data_dir: Path) -> list[int]:
    """Pids of ``pgbackrest ... restore`` processes writing into ``data_dir`` (Linux: read from /proc)."""
    wanted = f"--pg1-path={data_dir}"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in argv if a]
        if args and Path(args[0]).name == "pgbackrest" and "restore" in args and wanted in args:
            found.append(int(entry.name))
    return found


def _end(pids: list[int], grace: float = 10) -> list[int]:
    """SIGTERM, then SIGKILL after ``grace`` seconds; returns the pids still alive after both."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while pids and time.monotonic() < deadline:
            pids = [pid for pid in pids if Path(f"/proc/{pid}").exists() and not _zombie(pid)]
            time.sleep(0.1)
        if not pids:
            return []
    return pids


def _zombie(pid: int) -> bool:
    try:
        return (Path(f"/proc/{pid}") / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _owner(path: Path) -> str | None:
    try:
        return pwd.getpwuid(path.stat().st_uid).pw_name
    except (OSError, KeyError):
        return None


def recover_restore(restore) -> Recovery:
    """Clean up after a restore to a moment whose process died (kill -9, OOM, a lost host), saying what was done.

    What the restore recorded on its row before each step (``services.pgbackrest``) says what is its own:
    ``scratch_name`` is the data directory it created (empty: the folder existed before, or it never got
    that far), ``rollback_name`` where an in-place restore moved the live data directory, and the lock file
    beside the destination names the restore that claimed it. Never removes a folder the restore did not
    create, and touches the live data directory only to put the previous one back.
    """
    destination = Path(restore.destination)
    stanza = getattr(restore.target, "pgbackrest", None) if restore.target_id else None
    live = Path(stanza.pg_path).resolve() if stanza is not None and stanza.pg_path else None
    in_place = bool(restore.rollback_name) or destination == live
    lock = lock_path(destination)
    owner = Owner.parse(restore.lease_owner)
    if owner is not None and owner.host != host_id():
        # Its folders are on the database host it ran on; this reaper sees another disk.
        steps = [f"stop any cluster in {destination} (pg_ctl stop -m immediate as the cluster's OS user)"]
        if in_place and restore.rollback_name:
            steps.append(f"if {restore.rollback_name} exists, move {destination} aside and rename it back")
        else:
            steps.append(f"remove what it restored into {destination}")
        steps.append(f"remove {lock}")
        todo = ", ".join(steps)
        return Recovery([f"it ran on {owner.host}, not on this host: nothing was cleaned up; there, {todo}"])
    try:
        holder = lock.read_text(errors="replace").strip()
    except FileNotFoundError:
        holder = None
    except OSError as exc:
        return Recovery([f"could not read the lock {lock} ({exc.strerror}): left {destination} as it is"])
    if holder is not None and holder != lock_text(restore.pk):
        other = holder or "another restore"
        return Recovery([f"{destination} is claimed by {other} now: left it and {lock} as they are"])
    created = bool(restore.scratch_name) and Path(restore.scratch_name) == destination
    if holder is None and not created:
        # Died before it claimed the destination (or the lock was removed by hand): nothing here is known to be its own.
        return Recovery([f"it had not claimed {destination} (no lock {lock}): left it as it is"])
    done: list[str] = []
    os_user = stanza.os_user if stanza is not None else _owner(destination)
    # The worker's own process group usually dies with it; a pgbackrest restore that outlived it still writes.
    writers = restore_processes(destination)
    if writers:
        left = _end(writers)
        pids = ", ".join(map(str, left or writers))
        if left:
            done.append(f"could not stop the pgbackrest restore (pid {pids}) still writing into {destination}")
            return Recovery(done)
        done.append(f"stopped the pgbackrest restore (pid {pids}) still writing into {destination}")
    if is_running(destination):
        try:
            if os_user is None:
                raise SourceError("the cluster's OS user is unknown")
            done.append(stop_cluster(os_user, destination))
        except SourceError as exc:
            done.append(f"could not stop the restored cluster running in {destination}: {exc}; it was left as it is")
            return Recovery(done)
    recovery = Recovery(done)
    if in_place:
        _put_back(restore, destination, created, recovery)
    elif not created and destination.is_dir() and not any(destination.iterdir()):
        done.append(f"{destination} is empty, as it was before the restore: left it")
    elif destination.exists():
        try:
            done.append(clear_data_dir(destination, created=created))
        except OSError as exc:
            done.append(f"could not remove what the restore wrote into {destination}: {exc}")
            return recovery
        log = startup_log(destination)
        if log.exists():
            log.unlink()
            done.append(f"removed its startup log {log}")
    else:
        done.append(f"{destination} had not been created yet")
    if holder is not None:
        try:
            lock.unlink()
            done.append(f"removed the lock {lock}")
        except OSError as exc:
            done.append(f"could not remove the lock {lock}: {exc.strerror}")
    if not in_place:
        done.append("the live cluster was not touched")
    return recovery


def _put_back(restore, destination: Path, created: bool, recovery: Recovery) -> None:
    """An in-place restore that died: the previous data directory goes back where it was (stopped, as it was)."""
    done = recovery.done
    rollback = Path(restore.rollback_name) if restore.rollback_name else None
    if rollback is None or not rollback.exists():
        if created:
            where = f"the previous data directory {rollback} is not there" if rollback else "it named no rollback"
            done.append(f"{where}: left {destination} (the restored one) as it is")
        else:
            done.append(f"the live data directory {destination} had not been moved: it was not touched")
        return
    if destination.exists():
        if not created:
            done.append(
                f"both {destination} and {rollback} exist and the restore had not recorded creating {destination}: "
                f"left both as they are; {rollback} is the data directory as it was before the restore"
            )
            return
        failed = destination.with_name(f"{destination.name}.failed-restore-{datetime.now(UTC):%Y%m%dT%H%M%S}")
        try:
            destination.rename(failed)
        except OSError as exc:
            done.append(f"could not move the half-restored {destination} aside: {exc}; {rollback} is the previous one")
            return
        done.append(f"moved the half-restored data directory aside as {failed}")
    try:
        rollback.rename(destination)
    except OSError as exc:
        done.append(f"could not put {rollback} back as {destination}: {exc}; rename it back by hand")
        return
    recovery.rolled_back = True
    done.append(f"put the previous data directory back: {destination} is as it was before the restore (stopped)")
