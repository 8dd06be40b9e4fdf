"""pgBackRest benchmark: full backup and restore to a moment, beside pg_dump and the portal's logical path.

    .venv/bin/python bench/pgbackrest_bench.py [--size 4m] [--repeat 1]      # as root (runs postgres via runuser)
    .venv/bin/python bench/pgbackrest_bench.py --variants lz4:1:2,zst:1:2,lz4:1:1,lz4:1:2:bundle --backups-only

Copies the generated BotFlow-shaped database (bench/generate.py; drp_bench_4m ≈ 940 MB of
messages) into a throwaway PostgreSQL 15 cluster made with initdb as the postgres OS user
(default settings apart from port and socket), and drives it through a throwaway portal
(SQLite under a temporary DRPORTAL_HOME): `manage.py pgbackrest-setup` prints the lines that are
appended to postgresql.conf, `--apply` creates the stanza. Then, ``--repeat`` times:

  pg_dump          bare ``pg_dump --format=plain`` of the database > /dev/null
  portal backup    manage.py backup logical --verify no (pg_dump | zstd | age, to a local folder)
  pgbackrest full  manage.py backup bench --type full --verify no (posix repository, zst, aes-256-cbc)
  logical restore  manage.py restore RUN --to postgresql://.../new_db (into the same throwaway cluster)
  PITR restore     manage.py restore bench --time T --to NEW_DIR (restore, start on a free port with
                   archive_mode=off, replay to T, promote, count every table, stop, remove), with T
                   just after the full backup (WAL written since the backup adds its replay time)

``--variants`` repeats the pgBackRest full backup with other generated settings
(``compress-type:compress-level:process-max[:bundle]``, through the PGBACKREST_* environment the
portal reads), each also timed as a bare ``pgbackrest backup`` (the engine alone, without the
portal's Django start, catalogue import and manifest checksum); ``--backups-only`` skips the restores.

``PGBACKREST_BIN=/path/to/pgbackrest`` benchmarks another pgBackRest build (the portal reads the same
variable). Debian 12's pgBackRest 2.45 waits at least 100 ms for each SQL query it sends (pgBackRest
issue #2458, fixed in 2.54), about a second of fixed waits per backup; the figures name the version.

Targets (issue 16): pgBackRest full ≤ 1.0× bare pg_dump; restore to a moment ≤ 0.5× the logical
restore. The machine may be shared: figures are wall times of single runs unless --repeat says
otherwise. Results go to bench/results/pgbackrest-latest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import generate  # noqa: E402

PYTHON = sys.executable
PG_BIN = Path(os.environ.get("PG_BINDIR", "/usr/lib/postgresql/15/bin"))
PG_ADMIN = os.environ.get("PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
# The portal reads the same variable: PGBACKREST_BIN=/path/to/another/pgbackrest benchmarks that build throughout.
PGBACKREST_BIN = os.environ.get("PGBACKREST_BIN", "pgbackrest")


def pgbackrest_version() -> str:
    return subprocess.run([PGBACKREST_BIN, "version"], capture_output=True, text=True, check=True).stdout.strip()


def as_postgres(*argv: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["runuser", "-u", "postgres", "--", *argv], capture_output=True, text=True, cwd="/", **kwargs
    )
    if check and result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{result.stderr}{result.stdout}")
    return result


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Bench:
    def __init__(self, size: str) -> None:
        self.size = size
        self.base = Path(tempfile.mkdtemp(prefix="drp-pgbr-bench-"))
        self.base.chmod(0o755)
        self.home = self.base / "portal"
        self.home.mkdir(mode=0o755)
        self.data = self.base / "data"
        self.sock = self.base / "sock"
        self.repo = self.base / "repo"
        self.restores = self.base / "restores"
        for folder in (self.data, self.sock, self.repo, self.restores):
            folder.mkdir(mode=0o700 if folder == self.data else 0o755)
            shutil.chown(folder, "postgres", "postgres")
        self.log = self.base / "postgres.log"
        self.log.touch()
        shutil.chown(self.log, "postgres", "postgres")
        self.port = free_port()
        self.key = self.home / "identity.txt"
        self.env = {
            **os.environ,
            "DRPORTAL_HOME": str(self.home),
            "DJANGO_SETTINGS_MODULE": "drportal.settings",
            "BACKUP_AGE_IDENTITY_FILE": str(self.key),
            "PGBACKREST_CONFIG_DIR": str(self.home / "pgbackrest"),
            "BENCH_SOURCE_URL": f"postgresql://postgres@/botflow?host={self.sock}&port={self.port}",
        }
        self.env.pop("DATABASE_URL", None)
        self.env.pop("REDIS_URL", None)

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([PYTHON, "manage.py", *args], env=self.env, capture_output=True, text=True, cwd=ROOT)
        if check and result.returncode != 0:
            raise SystemExit(f"manage.py {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result

    def pg_ctl(self, action: str) -> None:
        as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "600", action)

    def psql(self, sql: str, db: str = "botflow") -> str:
        return as_postgres(
            str(PG_BIN / "psql"), "-X", "-At", "-h", str(self.sock), "-p", str(self.port), "-d", db, "-c", sql
        ).stdout.strip()

    def setup(self) -> None:
        source = generate.generate(self.size)
        self.pgbackrest = pgbackrest_version()
        print(self.pgbackrest, flush=True)
        as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"\nport = {self.port}\nlisten_addresses = ''\nunix_socket_directories = '{self.sock}'\n")
        self.pg_ctl("start")
        self.psql("CREATE DATABASE botflow", db="postgres")
        print(f"copying {source.rsplit('/', 1)[1]} into the throwaway cluster...", flush=True)
        started = time.monotonic()
        subprocess.run(
            f'pg_dump "{source}" | "{PG_BIN}/psql" -X -q -h "{self.sock}" -p {self.port} -U postgres -d botflow '
            "--set ON_ERROR_STOP=1 -o /dev/null",
            shell=True,
            check=True,
        )
        self.psql("VACUUM ANALYZE")
        size = self.psql("SELECT pg_size_pretty(pg_database_size('botflow'))")
        print(f"  {time.monotonic() - started:.0f} s; database size {size}", flush=True)
        # pgBackRest gives each file to one process: the largest relation segment (at most 1 GiB) is the
        # critical path of a full backup however many processes run.
        self.largest_file = max(f.stat().st_size for f in (self.data / "base").rglob("*") if f.is_file())
        print(f"  largest data file {self.largest_file / 1e6:.0f} MB", flush=True)
        public = subprocess.run(
            [
                PYTHON,
                "-c",
                "import django, sys; from pathlib import Path; django.setup(); "
                "from backups.keys import generate_identity_file; print(generate_identity_file(Path(sys.argv[1])))",
                str(self.key),
            ],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout.strip()
        self.env["BACKUP_AGE_RECIPIENTS"] = public
        plan = self.home / "plan.toml"
        plan.write_text(
            f'[locations.portal]\nurl = "file://{self.home}/backups"\n\n'
            f'[locations.repo]\nurl = "file://{self.repo}"\n\n'
            f'[targets.logical]\nengine = "postgresql"\nsource = "env:BENCH_SOURCE_URL"\nlocations = ["portal"]\n\n'
            f'[targets.bench]\nengine = "pgbackrest"\nlocations = ["repo"]\npg_path = "{self.data}"\n'
            f'pg_port = {self.port}\npg_socket = "{self.sock}"\nos_user = "postgres"\n'
        )
        self.manage("migrate", "-v0")
        self.manage("applyplan", str(plan))
        lines = self.manage("pgbackrest-setup", "bench").stdout
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write("\n" + lines)
        print("postgresql.conf gained:\n  " + lines.strip().replace("\n", "\n  "), flush=True)
        self.pg_ctl("restart")
        self.manage("pgbackrest-setup", "bench", "--apply")

    def timed(self, argv: list[str], **kwargs) -> tuple[float, subprocess.CompletedProcess]:
        started = time.perf_counter()
        result = subprocess.run(argv, capture_output=True, text=True, **kwargs)
        wall = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(f"failed: {argv}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return wall, result

    def settle_archive(self, timeout: float = 600) -> float:
        """Wait until the cluster has archived every finished WAL segment; return the seconds waited.

        The logical restore of the previous round writes ~1.3 GB of WAL into this cluster; a backup timed while
        the archiver still pushes that backlog would wait for it at its stop (the WAL it needs is queued behind
        the backlog), measuring the benchmark's own leftovers rather than the backup.
        """
        ready = self.data / "pg_wal" / "archive_status"
        started = time.monotonic()
        while any(ready.glob("*.ready")):
            if time.monotonic() - started > timeout:
                raise SystemExit(f"the archiver did not catch up within {timeout:.0f} s")
            time.sleep(0.5)
        return time.monotonic() - started

    def pg_dump(self) -> dict:
        wall, _ = self.timed(
            ["bash", "-c", f'pg_dump --format=plain -h "{self.sock}" -p {self.port} -U postgres botflow > /dev/null']
        )
        return {"seconds": wall}

    def portal_backup(self) -> dict:
        wall, result = self.timed(
            [PYTHON, "manage.py", "backup", "logical", "--verify", "no", "--json"], env=self.env, cwd=ROOT
        )
        run = json.loads(result.stdout)
        assert run["status"] == "succeeded", run
        return {"seconds": wall, "bytes": run["bytes_out"], "run": run["id"]}

    def pgbackrest_full(self, variant: str = "") -> dict:
        wall, result = self.timed(
            [PYTHON, "manage.py", "backup", "bench", "--type", "full", "--verify", "no", "--json"],
            env={**self.env, **variant_env(variant)},
            cwd=ROOT,
        )
        run = json.loads(result.stdout)
        assert run["status"] == "succeeded", run
        # The run's own span, as a worker spends it: the wall time above adds the Python and Django start of
        # manage.py (about a second here), which a Celery worker pays once, not per backup.
        span = datetime.fromisoformat(run["finished_at"]) - datetime.fromisoformat(run["started_at"])
        return {
            "seconds": wall,
            "run_seconds": span.total_seconds(),
            "bytes": run["bytes_out"],
            "run": run["id"],
            "database_bytes": run["bytes_in"],
        }

    def pgbackrest_bare(self) -> dict:
        """The engine alone, with the configuration the portal generated last (its variant's settings)."""
        config = self.home / "pgbackrest" / "bench.conf"
        wall, _ = self.timed(
            ["runuser", "-u", "postgres", "--", PGBACKREST_BIN, f"--config={config}", "--stanza=bench", "--type=full"]
            + ["backup"],
            cwd="/",
        )
        return {"seconds": wall}

    def logical_restore(self, run_id: int, i: int) -> dict:
        db = f"restored_{i}"
        url = f"postgresql://postgres@/{db}?host={self.sock}&port={self.port}"
        wall, result = self.timed(
            [PYTHON, "manage.py", "restore", str(run_id), "--to", url, "--yes", "--json"], env=self.env, cwd=ROOT
        )
        outcome = json.loads(result.stdout)
        assert outcome["status"] == "succeeded", outcome
        self.psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)', db="postgres")
        for rollback in self.psql(
            "SELECT datname FROM pg_database WHERE datname LIKE 'restored%'", db="postgres"
        ).split():
            self.psql(f'DROP DATABASE IF EXISTS "{rollback}" WITH (FORCE)', db="postgres")
        return {"seconds": wall}

    def pitr_restore(self, i: int) -> dict:
        self.psql("CREATE TABLE IF NOT EXISTS bench_marks (id serial PRIMARY KEY, at timestamptz DEFAULT now())")
        self.psql("INSERT INTO bench_marks DEFAULT VALUES")
        time.sleep(1.1)
        moment = self.psql("SELECT now()")
        time.sleep(1.1)
        self.psql("INSERT INTO bench_marks DEFAULT VALUES")  # after T: must not come back
        marks = int(self.psql("SELECT count(*) FROM bench_marks")) - 1
        target = self.restores / f"pitr-{i}"
        wall, result = self.timed(
            [PYTHON, "manage.py", "restore", "bench", "--time", moment, "--to", str(target), "--yes", "--json"],
            env=self.env,
            cwd=ROOT,
        )
        outcome = json.loads(result.stdout)
        assert outcome["status"] == "succeeded", outcome
        restored = {t["name"]: t["restored"] for t in outcome["tables"]}
        assert restored["botflow.public.bench_marks"] == marks, (restored, marks)
        return {
            "seconds": wall,
            "tables": len(restored),
            "messages": restored.get("botflow.public.messages"),
            "log": outcome["log"],
        }

    def repo_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.repo.rglob("*") if p.is_file())

    def close(self) -> None:
        for pid_file in self.base.rglob("postmaster.pid"):
            as_postgres(
                str(PG_BIN / "pg_ctl"), "-D", str(pid_file.parent), "-m", "immediate", "-w", "stop", check=False
            )
        shutil.rmtree(self.base, ignore_errors=True)


def variant_env(variant: str) -> dict[str, str]:
    """``lz4:1:2`` or ``zst:1:2:bundle`` -> the PGBACKREST_* settings the portal generates the stanza from."""
    if not variant:
        return {}
    kind, level, processes, *rest = variant.split(":")
    return {
        "PGBACKREST_COMPRESS_TYPE": kind,
        "PGBACKREST_COMPRESS_LEVEL": level,
        "PGBACKREST_PROCESS_MAX": processes,
        "PGBACKREST_REPO_BUNDLE": "1" if "bundle" in rest else "0",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="4m", choices=sorted(generate.SIZES))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="Leave the throwaway cluster and portal for inspection.")
    parser.add_argument("--variants", default="", help="Comma-separated type:level:process-max[:bundle] settings.")
    parser.add_argument("--backups-only", action="store_true", help="Time the backups only (no restores).")
    args = parser.parse_args()
    if args.variants:
        variants_main(args)
        return
    bench = Bench(args.size)
    samples: dict[str, list[dict]] = {k: [] for k in ("pg_dump", "portal", "pgbackrest", "logical_restore", "pitr")}
    try:
        bench.setup()
        for i in range(args.repeat):
            waited = bench.settle_archive()
            if waited > 1:
                print(f"  (waited {waited:.0f} s for the archiver to push the last round's WAL)", flush=True)
            for name, call in (
                ("pg_dump", bench.pg_dump),
                ("portal", bench.portal_backup),
                ("pgbackrest", bench.pgbackrest_full),
            ):
                sample = call()
                samples[name].append(sample)
                print(f"  {name:<16} #{i + 1}: {sample['seconds']:7.1f} s", flush=True)
            # The restore to a moment first: the logical restore writes ~1.3 GB of WAL into the same cluster,
            # which a later restore to a moment would have to archive and replay.
            sample = bench.pitr_restore(i)
            samples["pitr"].append(sample)
            print(f"  {'PITR restore':<16} #{i + 1}: {sample['seconds']:7.1f} s", flush=True)
            sample = bench.logical_restore(samples["portal"][-1]["run"], i)
            samples["logical_restore"].append(sample)
            print(f"  {'logical restore':<16} #{i + 1}: {sample['seconds']:7.1f} s", flush=True)
        repo = bench.repo_bytes()
    finally:
        if not args.keep:
            bench.close()

    med = {name: statistics.median(s["seconds"] for s in values) for name, values in samples.items()}
    full_ratio = med["pgbackrest"] / med["pg_dump"]
    run_span = statistics.median(s["run_seconds"] for s in samples["pgbackrest"])
    pitr_ratio = med["pitr"] / med["logical_restore"]
    result = {
        "size": args.size,
        "pgbackrest": bench.pgbackrest,
        "database_bytes": samples["pgbackrest"][0]["database_bytes"],
        "seconds": med,
        "portal_artifact_bytes": samples["portal"][0]["bytes"],
        "pgbackrest_full_repo_bytes": samples["pgbackrest"][0]["bytes"],
        "pgbackrest_repo_total_bytes": repo,
        "full_vs_pg_dump": full_ratio,
        "full_run_span_seconds": run_span,
        "full_run_span_vs_pg_dump": run_span / med["pg_dump"],
        "largest_data_file_bytes": bench.largest_file,
        "pitr_vs_logical_restore": pitr_ratio,
        "samples": samples,
    }
    print(
        f"\n{args.size} ({result['database_bytes'] / 1e6:.0f} MB cluster data):\n"
        f"  bare pg_dump            {med['pg_dump']:7.1f} s\n"
        f"  manage.py backup        {med['portal']:7.1f} s   artifact {result['portal_artifact_bytes'] / 1e6:7.1f} MB\n"
        f"  pgBackRest full         {med['pgbackrest']:7.1f} s   "
        f"repository {result['pgbackrest_full_repo_bytes'] / 1e6:7.1f} MB"
        f"  = {full_ratio:.2f}x pg_dump (target <= 1.0: {'PASS' if full_ratio <= 1.0 else 'FAIL'})\n"
        f"    the run itself        {run_span:7.1f} s   = {run_span / med['pg_dump']:.2f}x pg_dump"
        " (without manage.py's start)\n"
        f"  manage.py restore --to  {med['logical_restore']:7.1f} s\n"
        f"  restore --time T        {med['pitr']:7.1f} s   = {pitr_ratio:.2f}x logical restore "
        f"(target <= 0.5: {'PASS' if pitr_ratio <= 0.5 else 'FAIL'})"
    )
    results = BENCH / "results"
    results.mkdir(exist_ok=True)
    (results / "pgbackrest-latest.json").write_text(json.dumps(result, indent=2, default=str))


def variants_main(args) -> None:
    """pg_dump, manage.py backup, then each variant's full backup (portal, then bare pgbackrest), per repeat."""
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for variant in variants:
        variant_env(variant)  # a malformed one fails before the long setup
    bench = Bench(args.size)
    samples: dict[str, list[dict]] = {"pg_dump": [], "portal": []}
    for variant in variants:
        samples[f"pgbackrest {variant}"] = []
        samples[f"bare {variant}"] = []
    try:
        bench.setup()
        for i in range(args.repeat):
            for name, call in (("pg_dump", bench.pg_dump), ("portal", bench.portal_backup)):
                samples[name].append(call())
                print(f"  {name:<28} #{i + 1}: {samples[name][-1]['seconds']:7.1f} s", flush=True)
            for variant in variants:
                # A pg_dump right before each variant: on a shared machine the load moves between samples, and
                # the ratio that matters is against the pg_dump taken under the same load.
                dump = bench.pg_dump()
                samples["pg_dump"].append(dump)
                print(f"  {'pg_dump':<28} #{i + 1}: {dump['seconds']:7.1f} s", flush=True)
                sample = bench.pgbackrest_full(variant)
                sample["vs_pg_dump_before"] = sample["seconds"] / dump["seconds"]
                samples[f"pgbackrest {variant}"].append(sample)
                print(
                    f"  {'pgbackrest ' + variant:<28} #{i + 1}: {sample['seconds']:7.1f} s "
                    f"{sample['bytes'] / 1e6:7.1f} MB",
                    flush=True,
                )
                sample = bench.pgbackrest_bare()
                samples[f"bare {variant}"].append(sample)
                print(f"  {'bare ' + variant:<28} #{i + 1}: {sample['seconds']:7.1f} s", flush=True)
            if not args.backups_only:
                sample = bench.pitr_restore(i)
                print(f"  {'PITR restore':<28} #{i + 1}: {sample['seconds']:7.1f} s", flush=True)
    finally:
        if not args.keep:
            bench.close()
    med = {name: statistics.median(s["seconds"] for s in values) for name, values in samples.items() if values}
    lines = [
        f"\n{args.size}, {bench.pgbackrest}, median of {args.repeat}:",
        f"  bare pg_dump {med['pg_dump']:27.1f} s",
    ]
    lines.append(f"  manage.py backup {med['portal']:23.1f} s   artifact {samples['portal'][0]['bytes'] / 1e6:7.1f} MB")
    for variant in variants:
        full, bare = med[f"pgbackrest {variant}"], med[f"bare {variant}"]
        size = samples[f"pgbackrest {variant}"][0]["bytes"] / 1e6
        paired = statistics.median(s["vs_pg_dump_before"] for s in samples[f"pgbackrest {variant}"])
        span = statistics.median(s["run_seconds"] for s in samples[f"pgbackrest {variant}"])
        lines.append(
            f"  pgBackRest {variant:<20} {full:7.1f} s = {full / med['pg_dump']:.2f}x pg_dump "
            f"({paired:.2f}x the pg_dump just before), repository {size:7.1f} MB"
            f" (the run itself {span:.1f} s = {span / med['pg_dump']:.2f}x;"
            f" bare pgbackrest {bare:.1f} s = {bare / med['pg_dump']:.2f}x)"
        )
    print("\n".join(lines), flush=True)
    results = BENCH / "results"
    results.mkdir(exist_ok=True)
    (results / "pgbackrest-variants-latest.json").write_text(
        json.dumps(
            {"size": args.size, "pgbackrest": bench.pgbackrest, "seconds": med, "samples": samples},
            indent=2,
            default=str,
        )
    )


if __name__ == "__main__":
    main()
