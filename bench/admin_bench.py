"""Admin benchmark: the runs changelist and the dashboard with 1M backup runs in PostgreSQL.

Run: `.venv/bin/python bench/admin_bench.py [--runs 1000000] [--repeat 20]`

It creates (once) a portal database `drp_bench_admin` on the local PostgreSQL, migrates it,
and fills it with 20 targets, 5 objectives and N backup runs (hourly, newest now, a passed
verification for every 10th run, an artifact per run) with server-side SQL. Then it renders
both pages through Django's test client in this process (no network, so the figure is the
server's own time) and prints the median and p95 render time and the number of SQL queries.
Targets: each page renders with a bounded number of queries and under 300 ms median.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB = "drp_bench_admin"
PG = os.environ.get("PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def prepare(runs: int) -> None:
    import psycopg

    with psycopg.connect(PG, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DB}"')
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from backups.models import BackupRun

    have = BackupRun.objects.count()
    if have == runs:
        print(f"{DB}: {have} runs already there")
        return
    print(f"{DB}: filling with {runs} runs (server-side SQL)...", flush=True)
    started = time.monotonic()
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "TRUNCATE backups_artifact, backups_verification, backups_backuprun, backups_objective_targets, "
            "backups_objective, backups_target_locations, backups_target, backups_location CASCADE"
        )
        cur.execute(
            "INSERT INTO backups_location (name, url, endpoint_url, region, storage_class, access_key_id, "
            "secret_access_key, enabled, description, created_at, updated_at) VALUES ('disk', "
            "'file:///var/backups/bench', '', '', '', '', '', true, '', now(), now())"
        )
        cur.execute(
            "INSERT INTO backups_target (name, engine, source, endpoint_url, schedule, timezone, compression, "
            "enabled, description, created_at, updated_at) "
            "SELECT 'target-' || g, 'postgresql', '', '', '', 'UTC', 'zstd', true, '', now(), now() "
            "FROM generate_series(1, 20) g"
        )
        cur.execute(
            "INSERT INTO backups_target_locations (target_id, location_id) "
            "SELECT t.id, l.id FROM backups_target t, backups_location l"
        )
        # Hourly runs per target, newest now; 2% failed.
        cur.execute(
            """
            INSERT INTO backups_backuprun (target_id, status, trigger, command_user, queued_at, started_at,
                finished_at, heartbeat_at, worker, bytes_in, bytes_out, sha256, engine, format, compression, key_ids,
                recipients, tables, error)
            SELECT t.id,
                   CASE WHEN g %% 50 = 0 THEN 'failed' ELSE 'succeeded' END, 'schedule', '',
                   now() - make_interval(hours => (g / 20)::int),
                   now() - make_interval(hours => (g / 20)::int),
                   now() - make_interval(hours => (g / 20)::int) + make_interval(secs => 30 + g %% 17),
                   NULL, 'bench', 200000000 + g %% 1000000, 40000000 + g %% 100000,
                   CASE WHEN g %% 50 = 0 THEN '' ELSE md5(g::text) || md5((g + 1)::text) END,
                   'postgresql', 'postgresql-sql', 'zstd', '[]', '[]', '{}',
                   CASE WHEN g %% 50 = 0 THEN 'pg_dump failed: connection refused' ELSE '' END
            FROM generate_series(0, %s - 1) g
            JOIN backups_target t ON t.name = 'target-' || (1 + g %% 20)
            """,
            [runs],
        )
        cur.execute(
            "INSERT INTO backups_artifact (run_id, location_id, key, url, size, sha256, storage_class, status, "
            "created_at) SELECT r.id, l.id, 'k/' || r.id, 'file:///var/backups/bench/k/' || r.id, r.bytes_out, "
            "r.sha256, '', 'stored', r.finished_at FROM backups_backuprun r, backups_location l "
            "WHERE r.status = 'succeeded'"
        )
        cur.execute(
            "INSERT INTO backups_verification (run_id, target_id, kind, status, trigger, command_user, queued_at, "
            "started_at, finished_at, duration_seconds, checks, tables, error) SELECT id, target_id, 'integrity', "
            "'passed', 'schedule', '', finished_at, "
            "finished_at, finished_at, 2.0, '[]', '[]', '' FROM backups_backuprun "
            "WHERE status = 'succeeded' AND id % 10 = 0"
        )
        for i in range(1, 6):
            cur.execute(
                "INSERT INTO backups_objective (name, description, rpo, grace, ping, ping_token, state, enabled, "
                "last_good_at, exposure_seconds) VALUES (%s, '', interval '1 hour', NULL, false, md5(%s), 'ok', true, "
                "now(), 0)",
                [f"objective-{i}", str(i)],
            )
            cur.execute(
                "INSERT INTO backups_objective_targets (objective_id, target_id) SELECT o.id, t.id FROM "
                "backups_objective o, backups_target t WHERE o.name = %s AND t.name IN (%s, %s)",
                [f"objective-{i}", f"target-{i}", f"target-{i + 5}"],
            )
        cur.execute("ANALYZE")
    print(f"  filled in {time.monotonic() - started:.0f} s", flush=True)


def measure(client, url: str, repeat: int) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(url)  # warm caches and connections
    times, queries = [], []
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as ctx:
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
        queries.append(len(ctx.captured_queries))
    times.sort()
    return {
        "url": url,
        "median_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[int(0.95 * (len(times) - 1))], 1),
        "queries": max(queries),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    os.environ["DATABASE_URL"] = f"{PG.rsplit('/', 1)[0]}/{DB}"
    os.environ.setdefault("DRPORTAL_HOME", "/tmp/drp-bench-admin")
    os.environ["DJANGO_SETTINGS_MODULE"] = "drportal.settings"
    import django

    django.setup()
    prepare(args.runs)
    from django.contrib.auth.models import User
    from django.test import Client

    user, _ = User.objects.get_or_create(username="bench", defaults={"is_staff": True, "is_superuser": True})
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    results = [measure(client, url, args.repeat) for url in ("/admin/backups/backuprun/", "/admin/")]
    print(f"\n{'page':<30} {'median ms':>10} {'p95 ms':>8} {'queries':>8}  target: < 300 ms median, bounded queries")
    for r in results:
        verdict = "PASS" if r["median_ms"] < 300 else "FAIL"
        print(f"{r['url']:<30} {r['median_ms']:>10} {r['p95_ms']:>8} {r['queries']:>8}  {verdict}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "admin-latest.json").write_text(json.dumps({"runs": args.runs, "results": results}, indent=2))


if __name__ == "__main__":
    main()
