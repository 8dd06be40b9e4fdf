"""Backup benchmark: bare pg_dump vs the seed's shell pipeline vs the portal.

    .venv/bin/python bench/backup_bench.py [--sizes 1m,4m] [--repeat 3] [--quiet-wait 120]
        [--variant "level=1,job=2m"] [--portal-db sqlite|postgresql]

For each size (a generated BotFlow-shaped database, see generate.py; created on
first use) it measures, as separate processes, the median wall time over
``--repeat`` runs, the output size and the peak RSS of:

  pg_dump      bare ``pg_dump`` (plain SQL) to /dev/null
  seed         ``pg_dump | gzip | openssl enc -aes-256-cbc -pbkdf2`` to a file
  pipeline     the portal's pipeline alone: ``PostgreSQLEngine().dump()`` +
               ``encrypt_stream()`` in a child process (time measured inside it,
               Python/Django start-up excluded)
  manage.py    ``manage.py backup TARGET --json`` as a whole process, start-up,
               portal database writes and the copy to a file:// location included
  manage.py local+S3
               the same, copying to a file:// location and to an S3 location (moto's
               server on loopback, started by the bench): multipart upload, manifest,
               server-side copy to the final key

and checks the targets: manage.py ≤ 1.3× pg_dump and ≤ 0.3× seed, pipeline ≤ 1.15×
pg_dump (time targets are defined at 4M messages; smaller sizes are shown for
information), artifact ≤ 1.0× the seed's size (never larger), portal peak RSS ≤ 150 MiB (every size, the
local+S3 backup included).

Results are printed as one table per size and written to bench/results/. See
bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import generate  # noqa: E402

PYTHON = sys.executable
TIME = "/usr/bin/time"  # GNU time, for the max RSS of a process tree

TARGETS = {
    "manage_vs_pg_dump": 1.3,
    "manage_vs_seed": 0.3,
    "pipeline_vs_pg_dump": 1.15,
    "artifact_vs_seed": 1.0,  # never larger than the seed's (issue 15; was 0.9, see README "The size target")
    "rss_mib": 150,
}
TIME_TARGET_SIZES = {"4m"}


@dataclass
class Sample:
    wall: float  # seconds, whole process
    seconds: float  # the figure compared (== wall except for the in-process pipeline)
    out_bytes: int | None
    rss_tree_mib: float  # max RSS over the process and its descendants (GNU time)
    rss_main_mib: float | None  # VmHWM of the measured process itself (polled from /proc)
    cpu: float  # CPU seconds of the process tree (PostgreSQL's own backend not included)
    extra: dict = field(default_factory=dict)
    machine_cpu: float = 0.0  # CPU seconds the whole machine (everyone) used during the run
    quiet_before: float | None = None  # machine busy fraction just before the run


def _read_hwm(pid: int) -> float | None:
    """Peak RSS (VmHWM) of a live process, in MiB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])
    return total - idle, total


def wait_for_quiet(timeout: float, max_busy: float = 0.25) -> float:
    """Wait (up to ``timeout`` s) for a second in which the machine is at most ``max_busy`` busy.

    Other work on a small machine skews timings badly; returns the last busy fraction seen.
    """
    deadline = time.monotonic() + timeout
    while True:
        b0, t0 = _cpu_ticks()
        time.sleep(1)
        b1, t1 = _cpu_ticks()
        busy = (b1 - b0) / max(1, t1 - t0)
        if busy <= max_busy or time.monotonic() >= deadline:
            return busy


def _child_of(ppid: int) -> int | None:
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == ppid:
            return int(entry.name)
    return None


@dataclass
class Measured:
    wall: float
    code: int
    rss_tree_mib: float  # max RSS over the command and its descendants (GNU time)
    rss_main_mib: float | None  # VmHWM of the command's own process
    cpu: float  # user + system CPU seconds of the command and its descendants
    stderr: str
    machine_cpu: float = 0.0  # CPU seconds the whole machine was busy meanwhile (everyone's)


def measure(argv: list[str], *, env: dict, stdout=subprocess.DEVNULL, cwd=ROOT) -> Measured:
    """Run argv and measure its wall time, peak RSS and CPU time.

    The command runs under GNU time, whose wait4() rusage gives the max RSS over the
    command and every descendant it reaped. (Measuring with wait4() from here would
    not do: a forked child's high-water mark starts at this process's own RSS.) The
    command's own peak is its VmHWM, polled from /proc while it runs.
    """
    rss_file = tempfile.NamedTemporaryFile(prefix="rss-", delete=False)
    rss_file.close()
    stderr_file = tempfile.TemporaryFile()
    busy0, _ = _cpu_ticks()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [TIME, "-f", "%M %U %S", "-o", rss_file.name, *argv], env=env, stdout=stdout, stderr=stderr_file, cwd=cwd
    )
    peak = [0.0]
    done = threading.Event()

    def poll() -> None:
        pid = None
        while not done.is_set():
            pid = pid or _child_of(proc.pid)
            value = _read_hwm(pid) if pid else None
            if value:
                peak[0] = max(peak[0], value)
            done.wait(0.02)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    code = proc.wait()
    wall = time.perf_counter() - t0
    machine_cpu = (_cpu_ticks()[0] - busy0) / os.sysconf("SC_CLK_TCK")
    done.set()
    poller.join()
    stderr_file.seek(0)
    err = stderr_file.read().decode("utf-8", "replace")
    fields = Path(rss_file.name).read_text().splitlines()[-1].split()
    os.unlink(rss_file.name)
    tree, cpu = int(fields[0]) / 1024, float(fields[1]) + float(fields[2])
    return Measured(wall, code, tree, peak[0] or None, cpu, err, machine_cpu)


class Bench:
    def __init__(self, args) -> None:
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="drp-bench-", dir=args.workdir))
        self.home = self.work / "portal"
        self.store = self.work / "store"
        self.out = self.work / "out"
        for d in (self.home, self.store, self.out):
            d.mkdir(parents=True)
        self.passphrase = secrets.token_urlsafe(24)
        self.verified: dict[tuple, bool] = {}  # one artifact per size and variant is decrypted and checked
        self.base_env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DJANGO_", "BACKUP_"))}
        self.base_env.pop("DATABASE_URL", None)
        self.base_env.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
        self.moto = None
        self.bucket = "drp-bench"
        if "manage_s3" in args.only.split(","):
            self._start_moto()
        self.portal_env = {
            **self.base_env,
            "DJANGO_SETTINGS_MODULE": "drportal.settings",
            "DRPORTAL_HOME": str(self.home),
            "LOG_LEVEL": "WARNING",
            "CELERY_BROKER_URL": "memory://",
        }
        if args.portal_db == "postgresql":
            self.portal_db = "drp_bench_portal"
            with generate.admin() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.portal_db}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{self.portal_db}"')
            self.portal_env["DATABASE_URL"] = generate.db_url(self.portal_db)
        self._setup_keys()
        self._django(["migrate", "--noinput", "-v", "0"])

    def _start_moto(self) -> None:
        """moto's S3 server on loopback, in its own process (its memory is not the portal's)."""
        import socket
        import urllib.request

        import boto3

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.moto_log = open(self.work / "moto.log", "wb")
        self.moto = subprocess.Popen(
            [PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=self.moto_log,
            stderr=self.moto_log,
            env=self.base_env,
        )
        self.s3_endpoint = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                urllib.request.urlopen(self.s3_endpoint + "/moto-api/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        self.s3 = boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            region_name="us-east-1",
        )
        self.s3.create_bucket(Bucket=self.bucket)

    def empty_bucket(self) -> list[str]:
        """Delete every object; returns what a run should not have left (staged keys, unfinished uploads)."""
        left = [u["Key"] for u in self.s3.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])]
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for obj in page.get("Contents", []):
                if "/.incomplete/" in obj["Key"]:
                    left.append(obj["Key"])
                self.s3.delete_object(Bucket=self.bucket, Key=obj["Key"])
        return left

    def _setup_keys(self) -> None:
        code = (
            "import sys; sys.path.insert(0, sys.argv[2]); from pathlib import Path;"
            "from backups.keys import generate_identity_file; print(generate_identity_file(Path(sys.argv[1])))"
        )
        identity = self.home / "identity.txt"
        env = {**self.portal_env}
        self.recipient = subprocess.run(
            [PYTHON, "-c", code, str(identity), str(ROOT)], env=env, check=True, capture_output=True, text=True
        ).stdout.strip()
        self.portal_env["BACKUP_AGE_RECIPIENTS"] = self.recipient
        self.portal_env["BACKUP_AGE_IDENTITY_FILE"] = str(identity)

    def _django(self, args: list[str], env: dict | None = None) -> str:
        result = subprocess.run(
            [PYTHON, "manage.py", *args], env=env or self.portal_env, cwd=ROOT, capture_output=True, text=True
        )
        if result.returncode != 0:
            raise SystemExit(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def close(self) -> None:
        if self.moto is not None:
            self.moto.terminate()
            self.moto.wait(10)
            self.moto_log.close()
        if not self.args.keep:
            shutil.rmtree(self.work, ignore_errors=True)
        if self.args.portal_db == "postgresql":
            with generate.admin() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.portal_db}" WITH (FORCE)')

    # --- the four measurements ---------------------------------------------------------

    def pg_env(self, url: str) -> dict:
        return {**self.base_env, **_pg_env(url)}

    def run_pg_dump(self, url: str) -> Sample:
        m = measure(["pg_dump", "--format=plain"], env=self.pg_env(url))
        _check(m.code, "pg_dump", m.stderr)
        return Sample(m.wall, m.wall, None, m.rss_tree_mib, m.rss_main_mib, m.cpu, machine_cpu=m.machine_cpu)

    def run_seed(self, url: str) -> Sample:
        target = self.out / "seed.sql.gz.enc"
        script = 'set -o pipefail; pg_dump | gzip | openssl enc -aes-256-cbc -pbkdf2 -pass env:BENCH_PASS -out "$1"'
        env = {**self.pg_env(url), "BENCH_PASS": self.passphrase}
        m = measure(["bash", "-c", script, "seed", str(target)], env=env)
        _check(m.code, "seed pipeline", m.stderr)
        size = target.stat().st_size
        target.unlink()
        return Sample(m.wall, m.wall, size, m.rss_tree_mib, None, m.cpu, machine_cpu=m.machine_cpu)

    def run_pipeline(self, url: str, variant: str | None = None) -> Sample:
        target = self.out / "pipeline.sql.zst.age"
        env = {**self.portal_env}
        if variant:
            env["BENCH_VARIANT"] = variant
        if self.args.compression:
            env["BENCH_COMPRESSION"] = self.args.compression
        out_file = self.out / "pipeline.json"
        with open(out_file, "wb") as out:
            m = measure([PYTHON, str(BENCH / "pipeline_child.py"), url, str(target)], env=env, stdout=out)
        _check(m.code, "pipeline", m.stderr)
        report = json.loads(out_file.read_text())
        if not self.verified.get((url, variant)):
            self.verify(target, report)
            self.verified[url, variant] = True
        target.unlink()
        return Sample(
            m.wall,
            report["seconds"],
            report["bytes_out"],
            m.rss_tree_mib,
            max(m.rss_main_mib or 0, report["maxrss_mib"]),
            m.cpu,
            {k: report[k] for k in ("bytes_in", "tables", "compression", "level", "cpu_seconds", "breakdown")},
            machine_cpu=m.machine_cpu,
        )

    def verify(self, artifact: Path, report: dict) -> None:
        """Check one artifact end to end: its SHA-256, and that `age -d | zstd -d` gives the dump back."""
        digest = hashlib.sha256()
        with open(artifact, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        if digest.hexdigest() != report["sha256"]:
            raise SystemExit(f"{artifact.name}: SHA-256 differs from the one the pipeline reported")
        decompress = "zstd -dc" if report["compression"] == "zstd" else "gzip -dc"
        script = f'set -o pipefail; age -d -i "$1" "$2" | {decompress} | wc -c'
        identity = self.portal_env["BACKUP_AGE_IDENTITY_FILE"]
        result = subprocess.run(
            ["bash", "-c", script, "verify", identity, str(artifact)], capture_output=True, text=True
        )
        if result.returncode != 0 or int(result.stdout.strip() or -1) != report["bytes_in"]:
            raise SystemExit(f"{artifact.name}: does not decrypt and decompress to the dump: {result.stderr[-2000:]}")
        print(f"  verified: the artifact's SHA-256, and age -d | {decompress} gives back {report['bytes_in']:,} bytes")

    def prepare_target(self, size: str, url: str) -> tuple[str, dict]:
        """``bench-SIZE`` backs up to the local folder; ``bench-SIZE-s3`` (with moto) to it and to S3."""
        target = f"bench-{size}"
        plan = self.work / f"plan-{size}.toml"
        compression = self.args.compression or "zstd"
        text = (
            "[locations.bench]\n"
            f'url = "file://{self.store}"\n\n'
            f"[targets.{target}]\n"
            'engine = "postgresql"\n'
            f'source = "env:BENCH_SOURCE_URL_{size.upper()}"\n'
            f'compression = "{compression}"\n'
            'locations = ["bench"]\n'
        )
        if self.moto is not None:
            text += (
                "\n[locations.bench-s3]\n"
                f'url = "s3://{self.bucket}/daily"\n'
                f'endpoint_url = "{self.s3_endpoint}"\n\n'
                f"[targets.{target}-s3]\n"
                'engine = "postgresql"\n'
                f'source = "env:BENCH_SOURCE_URL_{size.upper()}"\n'
                f'compression = "{compression}"\n'
                'locations = ["bench", "bench-s3"]\n'
            )
        plan.write_text(text)
        self._django(["applyplan", str(plan)])
        return target, {**self.portal_env, f"BENCH_SOURCE_URL_{size.upper()}": url}

    def run_manage(self, target: str, env: dict, variant: str | None = None) -> Sample:
        out_file = self.out / "backup.json"
        argv = [PYTHON, "manage.py", "backup", target, "--json"]
        if variant:
            argv[1] = str(BENCH / "manage_variant.py")
            env = {**env, "BENCH_VARIANT": variant}
        with open(out_file, "wb") as out:
            m = measure(argv, env=env, stdout=out)
        text = out_file.read_text()
        _check(m.code, "manage.py backup", m.stderr + text)
        run = json.loads(text)
        if run["status"] != "succeeded":
            raise SystemExit(f"manage.py backup: run {run['status']}: {run['error']}")
        for path in self.store.rglob("*"):  # keep the disk clear between runs
            if path.is_file():
                path.unlink()
        if self.moto is not None:
            left = self.empty_bucket()
            if left:
                raise SystemExit(f"manage.py backup left in S3: {left}")
        return Sample(
            m.wall,
            m.wall,
            run["bytes_out"],
            m.rss_tree_mib,
            m.rss_main_mib,
            m.cpu,
            {"bytes_in": run["bytes_in"], "tables": run["tables"]},
            machine_cpu=m.machine_cpu,
        )


def _pg_env(url: str) -> dict:
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(url)
    names = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "password": "PGPASSWORD", "dbname": "PGDATABASE"}
    return {names[k]: str(v) for k, v in params.items() if k in names}


def _check(code: int, what: str, err: str) -> None:
    if code != 0:
        raise SystemExit(f"{what} failed (exit {code}):\n{err[-4000:]}")


METHODS = [
    ("pg_dump", "bare pg_dump > /dev/null"),
    ("seed", "pg_dump | gzip | openssl enc"),
    ("pipeline", "portal pipeline (in-process)"),
    ("manage", "manage.py backup (whole process)"),
    ("manage_s3", "manage.py backup, local + S3 (whole process)"),
]


def summarise(samples: dict[str, list[Sample]]) -> dict:
    out = {}
    for key, runs in samples.items():
        sizes = [s.out_bytes for s in runs if s.out_bytes is not None]
        mains = [s.rss_main_mib for s in runs if s.rss_main_mib is not None]
        out[key] = {
            "seconds": statistics.median(s.seconds for s in runs),
            "wall": statistics.median(s.wall for s in runs),
            "all_seconds": [round(s.seconds, 3) for s in runs],
            "out_bytes": sizes[0] if sizes else None,
            "rss_tree_mib": max(s.rss_tree_mib for s in runs),
            "rss_main_mib": max(mains) if mains else None,
            "cpu": statistics.median(s.cpu for s in runs),
            "machine_cpu": statistics.median(s.machine_cpu for s in runs),
            "extra": runs[-1].extra,
        }
    base, seed = out["pg_dump"]["seconds"], out["seed"]["seconds"]
    seed_size = out["seed"]["out_bytes"]
    for entry in out.values():
        entry["x_pg_dump"] = entry["seconds"] / base
        entry["x_seed"] = entry["seconds"] / seed
        entry["x_seed_size"] = entry["out_bytes"] / seed_size if entry["out_bytes"] else None
    return out


def verdicts(size: str, result: dict, variant: str | None = None) -> list[dict]:
    """The targets, for the portal as it is; with ``variant``, for the variant's rows (shown, not counted)."""
    timed = size in TIME_TARGET_SIZES
    pipeline, manage = ("pipeline_v", "manage_v") if variant else ("pipeline", "manage")
    tag = " [variant]" if variant else ""
    checks = []

    def add(what, value, limit, applies=True):
        checks.append(
            {
                "target": what + tag,
                "value": value,
                "limit": limit,
                "applies": applies and not variant,
                "proposed": bool(variant),
                "pass": value <= limit,
            }
        )

    add("manage.py backup ≤ 1.3× pg_dump", result[manage]["x_pg_dump"], TARGETS["manage_vs_pg_dump"], timed)
    add("manage.py backup ≤ 0.3× seed", result[manage]["x_seed"], TARGETS["manage_vs_seed"], timed)
    add("pipeline ≤ 1.15× pg_dump", result[pipeline]["x_pg_dump"], TARGETS["pipeline_vs_pg_dump"], timed)
    add("artifact ≤ 1.0× seed size", result[manage]["x_seed_size"], TARGETS["artifact_vs_seed"], timed)
    for key, name in ((pipeline, "pipeline"), (manage, "manage.py"), ("manage_s3", "manage.py local + S3")):
        if key in result:
            add(f"{name} peak RSS ≤ 150 MiB", result[key]["rss_main_mib"] or 0, TARGETS["rss_mib"], True)
    return checks


def print_table(size: str, messages: int, result: dict, checks: list[dict], methods: list[tuple[str, str]]) -> None:
    plain = result["pipeline"]["extra"].get("bytes_in")
    print()
    print(f"== {size}: {messages:,} messages, plain SQL {plain / 1e6:,.0f} MB ==")
    header = (
        f"{'':44} {'wall s':>7} {'×pg_dump':>9} {'×seed':>6} {'out MB':>8} {'×seed size':>10}"
        f" {'RSS MiB':>8} {'tree MiB':>9} {'CPU s':>6}"
    )
    print(header)
    print("-" * len(header))
    for key, label in methods:
        r = result[key]
        out = f"{r['out_bytes'] / 1e6:8.1f}" if r["out_bytes"] else f"{'-':>8}"
        ratio = f"{r['x_seed_size']:10.3f}" if r["x_seed_size"] else f"{'-':>10}"
        main = f"{r['rss_main_mib']:8.1f}" if r["rss_main_mib"] else f"{'-':>8}"
        print(
            f"{label:44} {r['seconds']:7.2f} {r['x_pg_dump']:9.2f} {r['x_seed']:6.2f} {out} {ratio}"
            f" {main} {r['rss_tree_mib']:9.1f} {r['cpu']:6.1f}"
        )
    print("  (wall s: median; pipeline: measured inside its process, start-up excluded; RSS MiB: the")
    print("   measured process's own peak; tree MiB: max over it and its children; CPU s: median, the")
    print("   process and its children, not the PostgreSQL server's backend)")
    print()
    for c in checks:
        if c["applies"]:
            state = "PASS" if c["pass"] else "FAIL"
        else:
            state = ("pass" if c["pass"] else "miss") + (" (variant)" if c.get("proposed") else " (info)")
        print(f"  {state:15} {c['target']:44} {c['value']:.3f} (limit {c['limit']})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1m,4m")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--portal-db",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="the throwaway portal's own database (default: SQLite in a temp DRPORTAL_HOME)",
    )
    parser.add_argument(
        "--compression",
        choices=["zstd", "gzip"],
        default=None,
        help="the targets' compression (default: the portal's default, zstd)",
    )
    parser.add_argument(
        "--variant",
        default=None,
        help="also measure the pipeline and manage.py with this change applied (knobs: see variants.py), "
        'e.g. "level=1,job=2m,putfile=link"; shown as extra rows, not counted in the verdict',
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=0,
        metavar="SECONDS",
        help="before each measurement, wait up to SECONDS for the machine to be idle (≤25%% busy for 1 s)",
    )
    parser.add_argument("--workdir", default=None, help="where outputs are written (default: $TMPDIR)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--only",
        default="pg_dump,seed,pipeline,manage,manage_s3",
        help="the measurements to run (pg_dump,seed,pipeline,manage,manage_s3; pg_dump and seed are always run)",
    )
    args = parser.parse_args(argv)

    sizes = [s.strip().lower() for s in args.sizes.split(",") if s.strip()]
    for size in sizes:
        generate.generate(size, log=lambda m: print(m, flush=True))

    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"note: load average is {load:.1f}; other work on this machine skews the timings", flush=True)
    bench = Bench(args)
    report = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "pg_dump": subprocess.run(["pg_dump", "--version"], capture_output=True, text=True).stdout.strip(),
        "repeat": args.repeat,
        "loadavg_at_start": os.getloadavg(),
        "portal_db": args.portal_db,
        "variant": args.variant,
        "targets": TARGETS,
        "sizes": {},
    }
    try:
        for size in sizes:
            url = generate.db_url(generate.db_name(size))
            messages = generate.parse_size(size)
            target, manage_env = bench.prepare_target(size, url)
            runners = {
                "pg_dump": partial(bench.run_pg_dump, url),
                "seed": partial(bench.run_seed, url),
                "pipeline": partial(bench.run_pipeline, url),
                "manage": partial(bench.run_manage, target, manage_env),
                "manage_s3": partial(bench.run_manage, f"{target}-s3", manage_env),
            }
            wanted = {"pg_dump", "seed", *args.only.split(",")}
            methods = [(key, label) for key, label in METHODS if key in wanted]
            if args.variant:
                runners["pipeline_v"] = partial(bench.run_pipeline, url, args.variant)
                runners["manage_v"] = partial(bench.run_manage, target, manage_env, args.variant)
                methods += [("pipeline_v", f"pipeline [{args.variant}]"), ("manage_v", f"manage.py [{args.variant}]")]
            print(f"{size}: warming the cache with one unmeasured pg_dump...", flush=True)
            bench.run_pg_dump(url)
            samples: dict[str, list[Sample]] = {key: [] for key, _ in methods}
            # Interleave the methods so drift (cache, other load) hits them all alike.
            for i in range(args.repeat):
                for key, _label in methods:
                    quiet = wait_for_quiet(args.quiet_wait) if args.quiet_wait else None
                    sample = runners[key]()
                    sample.quiet_before = quiet
                    samples[key].append(sample)
                    print(
                        f"  [{size} {i + 1}/{args.repeat}] {key:10} {sample.seconds:7.2f} s"
                        f"  (machine busy {sample.machine_cpu / sample.wall:.2f} of {os.cpu_count()} CPUs)",
                        flush=True,
                    )
            result = summarise(samples)
            checks = verdicts(size, result)
            if args.variant:
                checks += verdicts(size, result, args.variant)
            report["sizes"][size] = {
                "messages": messages,
                "database": generate.db_name(size),
                "results": result,
                "checks": checks,
                "loadavg_after": os.getloadavg(),
                "samples": {k: [asdict(s) for s in v] for k, v in samples.items()},
            }
            print_table(size, messages, result, checks, methods)
    finally:
        bench.close()

    results_dir = BENCH / "results"
    results_dir.mkdir(exist_ok=True)
    stamp = re.sub(r"[-:]", "", report["started_at"])
    path = results_dir / f"backup-{stamp}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    (results_dir / "latest.json").write_text(path.read_text())
    applicable = [c for s in report["sizes"].values() for c in s["checks"] if c["applies"]]
    failed = [c for c in applicable if not c["pass"]]
    print()
    print(f"results: {path.relative_to(ROOT)}")
    print(
        f"targets: {len(applicable) - len(failed)}/{len(applicable)} pass"
        + ("" if set(TIME_TARGET_SIZES) & set(sizes) else " (time and size targets apply at 4m only)")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
