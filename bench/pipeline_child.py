"""The portal's pipeline alone, in a process of its own (run by backup_bench.py).

    python bench/pipeline_child.py SOURCE_URL OUTPUT_FILE

Calls ``PostgreSQLEngine().dump()`` and ``encrypt_stream()`` exactly as the backup
service does (same compression and level settings), writing the artifact to
OUTPUT_FILE, and prints one JSON object: the pipeline's own wall time (Django
start-up excluded), sizes, per-table row counts and this process's peak RSS.
Needs DJANGO_SETTINGS_MODULE, DRPORTAL_HOME and BACKUP_AGE_RECIPIENTS in the
environment. BENCH_VARIANT (see variants.py) tries a change by monkeypatching;
BENCH_BREAKDOWN=1 adds a time breakdown of the main thread.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    source, output = sys.argv[1], sys.argv[2]

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "drportal.settings")
    django.setup()

    from django.conf import settings

    from backups.engines.postgresql import PostgreSQLEngine
    from backups.keys import load_recipients
    from backups.pipeline import encrypt_stream

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import variants

    variant = os.environ.get("BENCH_VARIANT", "")
    opts = variants.apply(variant)
    breakdown = None
    if os.environ.get("BENCH_BREAKDOWN"):
        breakdown = variants.Breakdown()
        breakdown.install()

    recipients = load_recipients()
    compression = os.environ.get("BENCH_COMPRESSION", settings.BACKUP_COMPRESSION)
    level = settings.BACKUP_ZSTD_LEVEL if compression == "zstd" else None
    if "level" in opts:
        level = int(opts["level"])
    t0 = time.perf_counter()
    c0 = time.process_time()
    with open(output, "wb") as out, PostgreSQLEngine().dump(source) as dump:
        result = encrypt_stream(dump.stream, out, recipients.keys, compression=compression, level=level)
        metadata = dump.finish()
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - c0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # VmHWM is this process's own peak; ru_maxrss also counts the parent's RSS at fork.
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    json.dump(
        {
            "seconds": seconds,
            "bytes_in": result.bytes_in,
            "bytes_out": result.bytes_out,
            "sha256": result.sha256,
            "tables": metadata.get("tables", {}),
            "compression": compression,
            "level": level,
            "variant": variant,
            "cpu_seconds": cpu,
            "breakdown": breakdown.report() if breakdown else None,
            "maxrss_mib": hwm / 1024,
            "cpu_user": usage.ru_utime,
            "cpu_system": usage.ru_stime,
        },
        sys.stdout,
    )
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
