"""The default artifact's size against the seed's, on every dataset the benches generate.

    .venv/bin/python bench/size_compare.py                          # botflow 100k, 1m, 4m; fleet's SQLite
    .venv/bin/python bench/size_compare.py --datasets botflow:1m,sqlite:2000 --recipients 2
    .venv/bin/python bench/size_compare.py --variants "level=2,ldm=on,wlog=24;level=3"

Datasets: ``botflow:SIZE`` is generate.py's BotFlow-shaped PostgreSQL database (dumped by the
portal's PostgreSQL engine, as a backup does; ``BENCH_DB_PREFIX`` names the databases),
``sqlite:ROWS`` one of fleet.py's SQLite sources (dumped by the portal's SQLite engine). Each
dump is spooled to a temporary file once, then turned into:

* the seed's artifact: ``gzip | openssl enc -aes-256-cbc -pbkdf2 -pass env:…`` (the seed's
  script, as backup_bench.py runs it);
* the portal's default artifact: ``backups.pipeline.encrypt_stream`` with the settings' default
  compression and level (``BACKUP_COMPRESSION``, ``BACKUP_ZSTD_LEVEL``) to ``--recipients`` age
  keys (2 = a working key and an escrow key; every recipient adds ~100 bytes of header);
* each ``--variants`` compressor (variants.py's knobs), through the same ``encrypt_stream``.

Prints bytes and the ratio to the seed's artifact per dataset; the issue's target is the
default ≤ 1.000 on every dataset. Results go to ``bench/results/sizes-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

import generate  # noqa: E402
import variants  # noqa: E402

SEED = "gzip | openssl enc -aes-256-cbc -pbkdf2 -pass env:BENCH_PASS"


class Counter:
    def __init__(self) -> None:
        self.size = 0

    def write(self, data) -> int:
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass


def spool(dataset: str, folder: Path) -> Path:
    """The dataset's dump, as the portal's engine produces it, in a file."""
    from backups.engines import registry

    kind, _, arg = dataset.partition(":")
    out = folder / f"{kind}-{arg}.dump"
    if kind == "botflow":
        source, engine = generate.generate(arg, log=lambda m: print(m, flush=True)), registry.get("postgresql")
    elif kind == "sqlite":
        import fleet

        path = fleet.make_sources(folder / "sqlite", 1, int(arg))[0]
        source, engine = f"sqlite:///{path}", registry.get("sqlite")
    else:
        raise SystemExit(f"unknown dataset {dataset!r}: botflow:SIZE or sqlite:ROWS")
    with open(out, "wb") as sink, engine.dump(source) as dump:
        shutil.copyfileobj(dump.stream, sink, 1 << 20)
        dump.finish()
    return out


def seed_size(path: Path) -> int:
    env = dict(os.environ, BENCH_PASS=secrets.token_hex(16))
    with open(path, "rb") as source:
        done = subprocess.run(
            ["bash", "-c", f"set -o pipefail; {SEED} | wc -c"], stdin=source, env=env, capture_output=True, check=True
        )
    return int(done.stdout)


def portal_size(path: Path, recipients: list, compression: str, level: int | None) -> tuple[int, float]:
    from backups.pipeline import encrypt_stream

    sink, started = Counter(), time.process_time()
    with open(path, "rb") as source:
        encrypt_stream(source, sink, recipients, compression=compression, level=level)
    return sink.size, time.process_time() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="botflow:100k,botflow:1m,botflow:4m,sqlite:2000")
    parser.add_argument("--recipients", type=int, default=1, help="age recipients (default 1; 2 with an escrow key)")
    parser.add_argument("--variants", default="", help="';'-separated zstd compressors in variants.py's knobs")
    parser.add_argument("--workdir", default=None, help="where dumps are spooled (default: $TMPDIR)")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "drportal.settings")
    import django

    django.setup()
    from django.conf import settings
    from pyrage import x25519

    from backups import pipeline

    recipients = [x25519.Identity.generate().to_public() for _ in range(args.recipients)]
    compression, level = settings.BACKUP_COMPRESSION, settings.BACKUP_ZSTD_LEVEL
    if compression != "zstd":
        level = None
    specs = [v.strip() for v in args.variants.split(";") if v.strip()]
    default_name = f"default ({compression} {level})" if level is not None else f"default ({compression})"
    results = []
    print(f"{'dataset':<14}{'dump MB':>9}{'seed bytes':>13}  {'codec':<36}{'bytes':>13}{'× seed':>8}{'CPU s':>7}")
    with tempfile.TemporaryDirectory(prefix="drp-sizes-", dir=args.workdir) as tmp:
        for dataset in [d.strip() for d in args.datasets.split(",") if d.strip()]:
            path = spool(dataset, Path(tmp))
            dump_bytes = path.stat().st_size
            seed = seed_size(path)
            row = {"dataset": dataset, "dump_bytes": dump_bytes, "seed_bytes": seed, "codecs": {}}
            codecs = [(default_name, None)] + [(spec, spec) for spec in specs]
            original = pipeline.compressor
            for name, spec in codecs:
                if spec is not None:
                    opts = variants.parse(spec)
                    pipeline.compressor = lambda kind, lvl=None, o=opts, p=original: variants.zstd_compressor(o, lvl, p)
                try:
                    size, cpu = portal_size(path, recipients, compression if spec is None else "zstd", level)
                finally:
                    pipeline.compressor = original
                row["codecs"][name] = {"bytes": size, "ratio": size / seed, "cpu_seconds": cpu}
                figures = f"{size:>13}{size / seed:>8.3f}{cpu:>7.1f}"
                print(f"{dataset:<14}{dump_bytes / 1e6:>9.1f}{seed:>13}  {name:<36}{figures}", flush=True)
            path.unlink()
            results.append(row)
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    report = out / f"sizes-{time.strftime('%Y%m%d-%H%M%S')}.json"
    report.write_text(json.dumps({"recipients": args.recipients, "seed": SEED, "results": results}, indent=1))
    print(f"\nwritten: {report.relative_to(ROOT)}")
    worst = max(r["codecs"][default_name]["ratio"] for r in results)
    verdict = "PASS" if worst <= 1 else "FAIL"
    print(f"default artifact vs the seed's, worst dataset: {worst:.3f} (target ≤ 1.000: {verdict})")
    return 0 if worst <= 1 else 1


if __name__ == "__main__":
    sys.exit(main())
