#!/usr/bin/env python3
"""Fleet benchmark: many targets, several workers over several queues, beat every minute.

    .venv/bin/python bench/fleet.py                         # 20 targets, 3 workers, 2 queues, 2 minutes
    .venv/bin/python bench/fleet.py --targets 200 --workers 3 --queues 2 --minutes 10

The portal runs on a fresh PostgreSQL database (PG_ADMIN_URL's server) and a Redis server of its
own (started here on a free port, so its command counts are this run's alone). Each target is a
small SQLite file backed up to one local folder, scheduled "* * * * *". Worker k consumes the
shared queue (beat's entry points, housekeeping) and queue fleet-(k mod Q). Halfway through, one
worker is killed with SIGKILL (its process group: no cleanup runs); a queue keeps another worker
whenever W > Q. After the last minute beat is stopped and the runs are left to finish
(``--drain`` seconds; the bench runs the stale-run reaper every 10 s meanwhile, as beat's
"jobs: reap dead workers' jobs" entry would every 5 minutes; every phase's silence limit is 30 s here).

Printed: runs started, succeeded, failed; schedule-to-start latency (beat's "Sending due task"
log line to the run's started_at) p50/p95/max, and its parts: beat's lag (the minute the entry was
due to the send), the dispatch (the send to the run's row, made by beat's entry point
``backup_target`` on the shared queue) and the queue wait (the row to the run's start); then the
latency from the due minute split by what each run found when it was queued, from the jobs' own
timestamps: a free pool process of its queue (fewer of the queue's backups and verifications
queued before it and unfinished than its live workers have pool processes), or busy workers;
overlapping runs of one target; runs lost (a send with no run, or a run never started or never
finished); portal SQL queries and broker messages (Redis LPUSH: each is one task message) per run.
JSON goes to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script (bench/fleet.py): the repository's packages import from its root

from devtools.processes import stop_all  # noqa: E402

PY = str(ROOT / ".venv" / "bin" / "python")
PG_ADMIN_URL = os.environ.get("PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SEND_RE = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): INFO/MainProcess\] Scheduler: Sending due task backup (\S+) "
)


def say(message: str) -> None:
    print(f"{datetime.now(UTC):%H:%M:%S} {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pg_url(dbname: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + dbname


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def make_sources(folder: Path, count: int, rows: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"t{index:04d}.sqlite3"
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, body TEXT)")
            db.executemany(
                "INSERT INTO events (body) VALUES (?)", [(f"event {index}-{n} " + "x" * 40,) for n in range(rows)]
            )
        paths.append(path)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=20)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--queues", type=int, default=2)
    parser.add_argument("--minutes", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2, help="pool processes per worker")
    parser.add_argument("--rows", type=int, default=2000, help="rows in each target's SQLite source")
    parser.add_argument("--no-kill", action="store_true", help="do not SIGKILL a worker halfway")
    parser.add_argument("--drain", type=int, default=240, help="seconds to wait for runs after the last minute")
    parser.add_argument("--keep", action="store_true", help="keep the database and folder afterwards")
    parser.add_argument("--db-prefix", default="drp_fleet", help="the portal database is named <prefix>_<random>")
    args = parser.parse_args()

    import psycopg

    tag = secrets.token_hex(3)
    dbname = f"{args.db_prefix}_{tag}"
    work = Path(tempfile.mkdtemp(prefix="drp-fleet-"))
    redis_port = free_port()
    processes: dict[str, subprocess.Popen] = {}
    logs: dict[str, Path] = {}
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    redis_server = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    broker = f"redis://127.0.0.1:{redis_port}/0"
    env = {
        **os.environ,
        "TZ": "UTC",
        "DJANGO_SETTINGS_MODULE": "bench.fleet_settings",
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": pg_url(dbname),
        "REDIS_URL": broker,
        "DRPORTAL_HOME": str(work / "home"),
        # Every phase's silence limit (dump, copy, manifest) is 30 s here: a small SQLite backup
        # reports far more often, and a run the kill took down is judged within the drain.
        "BACKUP_STALE_SECONDS": "30",
        "BACKUP_COPY_STALE_SECONDS": "30",
        "BACKUP_MANIFEST_STALE_SECONDS": "30",
        # A message the killed worker had taken (unacknowledged) comes back after this long; the
        # default 900 s would land after a 10-minute run's drain.
        "BROKER_VISIBILITY_TIMEOUT": "60",
        "LOG_LEVEL": "INFO",
    }
    env.pop("CELERY_BROKER_URL", None)
    try:
        from cryptography.fernet import Fernet

        env["FIELD_ENCRYPTION_KEYS"] = Fernet.generate_key().decode()
        os.environ.update({k: v for k, v in env.items() if k != "FLEET_COUNTER_URL"})
        say(f"portal database {dbname}, broker {broker}, folder {work}")
        subprocess.run([PY, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)

        import django

        from backups.keys import generate_identity_file  # noqa: E402  (needs no app registry)

        identity = work / "identity.txt"
        env["BACKUP_AGE_RECIPIENTS"] = generate_identity_file(identity)
        env["BACKUP_AGE_IDENTITY_FILE"] = str(identity)
        os.environ.update(BACKUP_AGE_RECIPIENTS=env["BACKUP_AGE_RECIPIENTS"], BACKUP_AGE_IDENTITY_FILE=str(identity))
        django.setup()
        from backups.models import BackupRun, Location, Target
        from backups.services.backup import reap_stale_runs

        sources = make_sources(work / "sources", args.targets, args.rows)
        location = Location.objects.create(name="local", url=f"file://{work / 'backups'}")
        for index, path in enumerate(sources):
            target = Target(
                name=f"fleet-{index:04d}",
                engine="sqlite",
                source=f"sqlite:///{path}",
                schedule="* * * * *",
                queue=f"fleet-{index % args.queues}",
            )
            target.save()
            target.locations.set([location])
        say(f"{args.targets} targets over {args.queues} queues; starting {args.workers} workers")

        env["FLEET_COUNTER_URL"] = f"redis://127.0.0.1:{redis_port}/1"

        def start(name: str, argv: list[str]) -> None:
            logs[name] = work / f"{name}.log"
            processes[name] = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=open(logs[name], "wb"), stderr=subprocess.STDOUT, start_new_session=True
            )

        celery = str(ROOT / ".venv" / "bin" / "celery")
        for k in range(args.workers):
            start(
                f"w{k}",
                [celery, "-A", "drportal", "worker", "-Q", f"celery,fleet-{k % args.queues}", "-n", f"fleet-w{k}@%h",
                 f"--concurrency={args.concurrency}", "--without-gossip", "--without-mingle", "--loglevel=INFO"],
            )  # fmt: skip
        from drportal.models import Heartbeat

        deadline = time.monotonic() + 120
        while Heartbeat.objects.filter(kind="worker", name__startswith="fleet-w").count() < args.workers:
            if time.monotonic() > deadline:
                raise SystemExit("workers did not start; see " + str(work))
            time.sleep(0.5)
        start("beat", [celery, "-A", "drportal", "beat", "--loglevel=INFO", "--pidfile="])
        now = datetime.now(UTC)
        first = (now + timedelta(seconds=5)).replace(second=0, microsecond=0) + timedelta(minutes=1)
        end = first + timedelta(minutes=args.minutes) - timedelta(seconds=5)
        # Halfway: the first minute tick past the middle; the worker dies as soon as it is running a backup.
        kill_at = first + timedelta(minutes=args.minutes // 2)
        say(f"beat started; first tick {first:%H:%M:%S}, last before {end:%H:%M:%S}, kill from {kill_at:%H:%M:%S}")
        victim = "w0"
        killed = None
        while datetime.now(UTC) < end:
            if not args.no_kill and killed is None and datetime.now(UTC) >= kill_at:
                running = BackupRun.objects.filter(status="running", worker__startswith="fleet-w0@").count()
                if running or datetime.now(UTC) >= kill_at + timedelta(seconds=20):
                    os.killpg(processes[victim].pid, signal.SIGKILL)
                    processes[victim].wait(10)
                    killed = datetime.now(UTC)
                    say(f"SIGKILL {victim} (fleet-w0, queue fleet-0) with {running} backup(s) running on it")
                time.sleep(0.02)
                continue
            time.sleep(0.5)
        os.killpg(processes["beat"].pid, signal.SIGTERM)
        processes["beat"].wait(30)
        say("beat stopped; draining")

        sends: dict[str, list[datetime]] = {}
        for line in logs["beat"].read_text(errors="replace").splitlines():
            if m := SEND_RE.match(line):
                at = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC)
                sends.setdefault(m.group(2), []).append(at)
        expected = sum(len(v) for v in sends.values())

        drain_end = time.monotonic() + args.drain
        while time.monotonic() < drain_end:
            reap_stale_runs()
            created = BackupRun.objects.count()
            unfinished = BackupRun.objects.filter(status__in=["queued", "running"]).count()
            if created >= expected and unfinished == 0:
                break
            time.sleep(10)

        runs = list(
            BackupRun.objects.select_related("target")
            .order_by("target__name", "queued_at")
            .values_list("target__name", "status", "queued_at", "started_at", "finished_at", "worker", "queue", "error")
        )
        by_target: dict[str, list[tuple]] = {}
        for row in runs:
            by_target.setdefault(row[0], []).append(row)
        # Every job a queue's workers run (backups and their verifications), to tell, from the jobs'
        # own timestamps, whether a run found a free pool process of its queue when it was queued.
        from backups.models import Verification

        jobs_by_queue: dict[str, list[tuple]] = {}
        for queue, queued, finished in [(r[6], r[2], r[4]) for r in runs] + list(
            Verification.objects.values_list("target__queue", "queued_at", "finished_at")
        ):
            jobs_by_queue.setdefault(queue, []).append((queued, finished or datetime.max.replace(tzinfo=UTC)))

        def slots(queue: str, at: datetime) -> int:
            serving = [k for k in range(args.workers) if f"fleet-{k % args.queues}" == queue]
            if killed and at >= killed:
                serving = [k for k in serving if k != 0]
            return len(serving) * args.concurrency

        def found_free_slot(queue: str, at: datetime) -> bool:
            # Jobs of the queue queued before this one and not finished by then: running or ahead of it.
            busy = sum(1 for queued, finished in jobs_by_queue.get(queue, []) if queued < at < finished)
            return busy < slots(queue, at)

        latencies, lost_no_run, overlaps = [], 0, 0
        split: dict[str, list[float]] = {"free": [], "busy": []}  # due -> started, by what the run found
        beat_lags, dispatch, queue_waits, from_due = [], [], [], []
        for name, times in sends.items():
            rows = by_target.get(name, [])
            lost_no_run += max(0, len(times) - len(rows))
            for sent, row in zip(times, rows, strict=False):
                due = sent.replace(second=0, microsecond=0)  # "* * * * *": due on the minute
                beat_lags.append((sent - due).total_seconds())
                dispatch.append((row[2] - sent).total_seconds())
                if row[3] is not None:
                    latencies.append((row[3] - sent).total_seconds())
                    from_due.append((row[3] - due).total_seconds())
                    queue_waits.append((row[3] - row[2]).total_seconds())
                    split["free" if found_free_slot(row[6], row[2]) else "busy"].append((row[3] - due).total_seconds())
            spans = sorted((r[3], r[4] or datetime.max.replace(tzinfo=UTC)) for r in rows if r[3])
            overlaps += sum(1 for a, b in zip(spans, spans[1:], strict=False) if b[0] < a[1])
        started = sum(1 for r in runs if r[3] is not None)
        succeeded = sum(1 for r in runs if r[1] == "succeeded")
        failed = sum(1 for r in runs if r[1] == "failed")
        never_started = sum(1 for r in runs if r[1] == "queued")
        never_finished = sum(1 for r in runs if r[1] == "running")
        # The runs the kill took down, and whether each target's next run succeeded elsewhere on its queue.
        reaped, followed, recovered = 0, 0, 0
        for rows in by_target.values():
            for index, row in enumerate(rows):
                if row[1] == "failed" and "presumed dead" in row[7]:
                    reaped += 1
                    following = rows[index + 1] if index + 1 < len(rows) else None
                    followed += following is not None
                    if following and following[1] == "succeeded" and following[5] != row[5]:
                        recovered += following[6] == row[6]
        failures: dict[str, int] = {}
        for r in runs:
            if r[1] == "failed":
                reason = re.sub(r"\d+", "N", r[7])[:90]
                failures[reason] = failures.get(reason, 0) + 1

        import redis

        counter = redis.Redis.from_url(env["FLEET_COUNTER_URL"])
        time.sleep(1.5)  # the counters' last flush
        queries = int(counter.get("fleet:queries") or 0)
        stats = redis.Redis.from_url(broker).info("commandstats")
        lpush = stats.get("cmdstat_lpush", {}).get("calls", 0)
        total_commands = sum(v.get("calls", 0) for k, v in stats.items() if k.startswith("cmdstat_"))
        incr = stats.get("cmdstat_incrby", {}).get("calls", 0)
        per_run = max(1, len(runs))
        result = {
            "targets": args.targets,
            "workers": args.workers,
            "queues": args.queues,
            "minutes": args.minutes,
            "concurrency": args.concurrency,
            "killed_worker": bool(killed),
            "scheduled": expected,
            "runs_created": len(runs),
            "started": started,
            "succeeded": succeeded,
            "failed": failed,
            "failures": failures,
            "latency_p50_s": percentile(latencies, 0.5),
            "latency_p95_s": percentile(latencies, 0.95),
            "latency_max_s": max(latencies, default=None),
            "latency_mean_s": statistics.fmean(latencies) if latencies else None,
            **{
                f"{key}_{name}_s": percentile(values, q)
                for key, values in (
                    ("beat_lag", beat_lags),
                    ("dispatch", dispatch),
                    ("queue_wait", queue_waits),
                    ("due_to_start", from_due),
                    ("due_to_start_free", split["free"]),
                    ("due_to_start_busy", split["busy"]),
                )
                for name, q in (("p50", 0.5), ("p95", 0.95), ("max", 1.0))
            },  # fmt: skip
            "runs_that_found_a_free_slot": len(split["free"]),
            "runs_that_waited_behind_busy_workers": len(split["busy"]),
            "overlapping_runs": overlaps,
            "reaped_after_kill": reaped,
            "reaped_with_a_later_run": followed,
            "next_run_succeeded_on_another_worker_of_the_queue": recovered,
            "lost_no_run": lost_no_run,
            "lost_never_started": never_started,
            "lost_never_finished": never_finished,
            "lost": lost_no_run + never_started + never_finished,
            "db_queries": queries,
            "db_queries_per_run": round(queries / per_run, 1),
            "broker_messages": lpush,
            "broker_messages_per_run": round(lpush / per_run, 2),
            "broker_commands_per_run": round((total_commands - incr) / per_run, 1),
        }
        print()
        print(f"fleet: {args.targets} targets, {args.workers} workers x {args.concurrency} over {args.queues} queues, "
              f"{args.minutes} min, {'one worker SIGKILLed halfway' if killed else 'no worker killed'}")  # fmt: skip
        print(f"  scheduled (beat sends)      {expected}")
        print(f"  runs started                {started}")
        print(f"  runs succeeded              {succeeded}")
        print(f"  runs failed                 {failed}  {failures or ''}")
        print(
            f"  schedule-to-start           p50 {result['latency_p50_s']:.2f} s, p95 {result['latency_p95_s']:.2f} s, "
            f"max {result['latency_max_s']:.2f} s"
            if latencies
            else "  schedule-to-start           (no run started)"
        )

        def line(label: str, values: list[float]) -> None:
            if values:
                print(f"  {label:<32}p50 {percentile(values, 0.5):.2f} s, p95 {percentile(values, 0.95):.2f} s, "
                      f"max {max(values):.2f} s  ({len(values)} runs)")  # fmt: skip
            else:
                print(f"  {label:<32}(no run)")

        line("  beat lag (due -> send)", beat_lags)
        line("  dispatch (send -> queued)", dispatch)
        line("  queue wait (queued -> start)", queue_waits)
        line("due-to-start, all", from_due)
        line("  found a free worker slot", split["free"])
        line("  waited behind busy workers", split["busy"])
        print(f"  overlapping runs of a target {overlaps}")
        print(
            f"  killed mid-run               {reaped} run(s) reaped as failed; {followed} had a later run, which "
            f"succeeded on another worker of the same queue for {recovered} of them"
        )
        print(
            f"  runs lost                   {result['lost']} (no run for a send: {lost_no_run}, never started: "
            f"{never_started}, never finished: {never_finished})"
        )
        print(f"  portal DB queries per run   {result['db_queries_per_run']} ({queries} in all)")
        print(f"  broker messages per run     {result['broker_messages_per_run']} ({lpush} LPUSH; "
              f"{result['broker_commands_per_run']} Redis commands per run in all)")  # fmt: skip
        out = ROOT / "bench" / "results"
        out.mkdir(exist_ok=True)
        path = out / f"fleet-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"  -> {path.relative_to(ROOT)}")
        return 0 if overlaps == 0 and result["lost"] == 0 else 1
    finally:
        stop_all(processes.values(), grace=60)
        redis_server.terminate()
        redis_server.wait(10)
        if not args.keep:
            from django.db import connections

            connections.close_all()
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    sys.exit(main())
