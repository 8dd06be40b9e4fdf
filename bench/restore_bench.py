"""Restore benchmark: `manage.py restore RUN --to NEW_DB` vs bare `age -d | zstd -d | psql`.

    .venv/bin/python bench/restore_bench.py [--size 1m] [--repeat 3]

Takes one portal backup of the generated BotFlow-shaped database (bench/generate.py; the
1M-message one by default) with a throwaway portal (SQLite under a temporary
DRPORTAL_HOME), then, interleaved, ``--repeat`` times:

  bare      createdb; age -d -i KEY ARTIFACT | zstd -d | psql --single-transaction ON_ERROR_STOP
  portal    manage.py restore RUN --to postgresql://.../NEW --yes --json (whole process:
            start-up, checksum pass, key check, load, row-count check, rename)

Each restores into a database that does not exist yet and is dropped afterwards. Prints the
median wall time, the ratio, and the peak RSS (GNU time) of each. Target (issue 3): portal
≤ 1.4× bare, peak RSS ≤ 150 MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import generate  # noqa: E402

PYTHON = sys.executable
PG = os.environ.get("PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BASE = PG.rsplit("/", 1)[0]


def psql(sql: str) -> None:
    subprocess.run(["psql", "-X", "-q", "-d", PG, "-c", sql], check=True)


def timed(cmd, env: dict, shell: bool = False) -> tuple[float, float, str]:
    """Wall seconds, peak RSS MiB (GNU time: the process or its largest child) and stdout."""
    argv = ["/usr/bin/time", "-f", "%M", *(["bash", "-c", cmd] if shell else cmd)]
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"failed: {cmd}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    rss_kib = int(result.stderr.strip().splitlines()[-1])
    return wall, rss_kib / 1024, result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="1m", choices=sorted(generate.SIZES))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    source_url = generate.generate(args.size)
    source_db = source_url.rsplit("/", 1)[1]
    home = Path(tempfile.mkdtemp(prefix="drp-restore-bench-"))
    key = home / "identity.txt"
    env = {
        **os.environ,
        "DRPORTAL_HOME": str(home),
        "DJANGO_SETTINGS_MODULE": "drportal.settings",
        "BENCH_SOURCE_URL": source_url,
        "BACKUP_AGE_IDENTITY_FILE": str(key),
    }
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    public = subprocess.run(
        [
            PYTHON,
            "-c",
            "import django, sys; from pathlib import Path; django.setup(); "
            "from backups.keys import generate_identity_file; print(generate_identity_file(Path(sys.argv[1])))",
            str(key),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout.strip()
    env["BACKUP_AGE_RECIPIENTS"] = public
    plan = home / "plan.toml"
    plan.write_text(
        f'[locations.bench]\nurl = "file://{home}/backups"\n\n'
        f'[targets.bench]\nengine = "postgresql"\nsource = "env:BENCH_SOURCE_URL"\nlocations = ["bench"]\n'
    )
    for command in (["migrate", "-v0"], ["applyplan", str(plan)]):
        subprocess.run([PYTHON, "manage.py", *command], env=env, check=True, cwd=ROOT, capture_output=True)
    print(f"backing up {source_db} once...", flush=True)
    out = subprocess.run(
        [PYTHON, "manage.py", "backup", "bench", "--json"],
        env=env,
        check=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout
    run = json.loads(out)
    artifact = run["artifacts"][0]["url"].removeprefix("file://")
    print(f"  run #{run['id']}: {run['bytes_in'] / 1e6:.0f} MB of SQL, {run['bytes_out'] / 1e6:.1f} MB artifact")

    samples: dict[str, list[tuple[float, float]]] = {"bare": [], "portal": []}
    for i in range(args.repeat):
        for method in ("bare", "portal"):
            db = f"drp_restore_bench_{method}_{i}"
            psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            if method == "bare":
                cmd = (
                    f'createdb -h 127.0.0.1 -U postgres "{db}" && age -d -i "{key}" "{artifact}" | zstd -d '
                    f'| psql -X -q --set ON_ERROR_STOP=1 --single-transaction -o /dev/null "{BASE}/{db}"'
                )
                wall, rss, _ = timed(cmd, env, shell=True)
            else:
                wall, rss, stdout = timed(
                    [PYTHON, "manage.py", "restore", str(run["id"]), "--to", f"{BASE}/{db}", "--yes", "--json"], env
                )
                result = json.loads(stdout)
                assert result["status"] == "succeeded", result
            samples[method].append((wall, rss))
            print(f"  {method:<7} #{i + 1}: {wall:6.2f} s, {rss:6.1f} MiB", flush=True)
            psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

    bare = statistics.median(w for w, _ in samples["bare"])
    portal = statistics.median(w for w, _ in samples["portal"])
    rss = max(r for _, r in samples["portal"])
    print(
        f"\n{args.size}: bare {bare:.2f} s, portal {portal:.2f} s = {portal / bare:.2f}x bare "
        f"(target <= 1.4x: {'PASS' if portal / bare <= 1.4 else 'FAIL'}); "
        f"portal peak RSS {rss:.0f} MiB (target <= 150: {'PASS' if rss <= 150 else 'FAIL'})"
    )
    results = BENCH / "results"
    results.mkdir(exist_ok=True)
    (results / "restore-latest.json").write_text(
        json.dumps(
            {
                "size": args.size,
                "bare_seconds": bare,
                "portal_seconds": portal,
                "ratio": portal / bare,
                "portal_peak_rss_mib": rss,
                "samples": samples,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
