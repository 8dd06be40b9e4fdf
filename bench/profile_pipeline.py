"""Try pipeline variants against bare pg_dump, without touching the portal's code.

    .venv/bin/python bench/profile_pipeline.py --size 4m --repeat 3 \\
        --variants "baseline;level=1;job=2m;level=1,job=2m;counter=off" [--breakdown]

Each repetition runs, for every variant, a bare ``pg_dump`` to /dev/null and then the
portal's pipeline (pipeline_child.py) with the variant applied by monkeypatching
(knobs: see variants.py), back to back, so both see the same machine load. Prints,
per variant, the medians of: pipeline seconds, ratio to the pg_dump run next to it,
the pipeline process's CPU seconds, peak RSS and artifact size. ``--breakdown`` adds
where the main thread's time went (waiting on pg_dump, counting rows, handing data
to zstd, age, hashing and writing).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import generate  # noqa: E402
from backup_bench import PYTHON, _check, _pg_env, measure, wait_for_quiet  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="4m")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--variants",
        default="baseline;level=1;job=2m;level=1,job=2m;counter=off",
        help="semicolon-separated variants, each a comma-separated list of knobs",
    )
    parser.add_argument("--breakdown", action="store_true")
    parser.add_argument("--quiet-wait", type=float, default=0, metavar="SECONDS", help="as in backup_bench.py")
    parser.add_argument("--json", dest="json_out", help="also write the results to this file")
    args = parser.parse_args(argv)

    url = generate.generate(args.size, log=lambda m: print(m, flush=True))
    variants = [v.strip() for v in args.variants.split(";") if v.strip()]
    work = Path(tempfile.mkdtemp(prefix="drp-profile-"))
    home = work / "portal"
    code = (
        "import sys; sys.path.insert(0, sys.argv[2]); from pathlib import Path;"
        "from backups.keys import generate_identity_file; print(generate_identity_file(Path(sys.argv[1])))"
    )
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DJANGO_", "BACKUP_"))}
    base_env.pop("DATABASE_URL", None)
    env = {
        **base_env,
        "DJANGO_SETTINGS_MODULE": "drportal.settings",
        "DRPORTAL_HOME": str(home),
        "CELERY_BROKER_URL": "memory://",
        "LOG_LEVEL": "WARNING",
    }
    env["BACKUP_AGE_RECIPIENTS"] = subprocess.run(
        [PYTHON, "-c", code, str(home / "identity.txt"), str(ROOT)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if args.breakdown:
        env["BENCH_BREAKDOWN"] = "1"
    pg_env = {**base_env, **_pg_env(url)}

    measure(["pg_dump"], env=pg_env)  # warm the cache
    rows: dict[str, list[dict]] = {v: [] for v in variants}
    for i in range(args.repeat):
        for variant in variants:
            if args.quiet_wait:
                wait_for_quiet(args.quiet_wait)
            base = measure(["pg_dump"], env=pg_env)
            _check(base.code, "pg_dump", base.stderr)
            out = work / "out.age"
            with open(work / "report.json", "wb") as report_file:
                m = measure(
                    [PYTHON, str(BENCH / "pipeline_child.py"), url, str(out)],
                    env={**env, "BENCH_VARIANT": variant},
                    stdout=report_file,
                )
            _check(m.code, f"pipeline ({variant})", m.stderr)
            report = json.loads((work / "report.json").read_text())
            out.unlink()
            row = {
                "pg_dump": base.wall,
                "seconds": report["seconds"],
                "ratio": report["seconds"] / base.wall,
                "cpu": m.cpu,
                "rss": report["maxrss_mib"],
                "bytes_out": report["bytes_out"],
                "breakdown": report["breakdown"],
            }
            rows[variant].append(row)
            print(
                f"  [{i + 1}/{args.repeat}] {variant:28} pg_dump {base.wall:6.2f} s  pipeline {row['seconds']:6.2f} s"
                f"  ×{row['ratio']:.2f}  cpu {m.cpu:5.1f} s  rss {row['rss']:5.1f} MiB",
                flush=True,
            )

    print()
    print(f"== {args.size}: medians over {args.repeat} ==")
    print(
        f"{'variant':28} {'pg_dump s':>9} {'pipeline s':>10} {'×pg_dump':>9} {'CPU s':>6} {'RSS MiB':>8} {'out MB':>7}"
    )
    summary = {}
    for variant, runs in rows.items():
        med = {k: statistics.median(r[k] for r in runs) for k in ("pg_dump", "seconds", "ratio", "cpu")}
        med["rss"] = max(r["rss"] for r in runs)
        med["bytes_out"] = runs[0]["bytes_out"]
        summary[variant] = {**med, "runs": runs}
        print(
            f"{variant:28} {med['pg_dump']:9.2f} {med['seconds']:10.2f} {med['ratio']:9.2f} {med['cpu']:6.1f}"
            f" {med['rss']:8.1f} {med['bytes_out'] / 1e6:7.1f}"
        )
        if args.breakdown:
            keys = runs[0]["breakdown"]["seconds"].keys()
            parts = {k: statistics.median(r["breakdown"]["seconds"][k] for r in runs) for k in keys}
            print("    main thread: " + ", ".join(f"{k} {v:.2f}" for k, v in parts.items()))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"size": args.size, "variants": summary}, indent=2) + "\n")
    subprocess.run(["rm", "-rf", str(work)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
