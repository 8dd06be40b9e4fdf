"""How much smaller, for how much CPU: compression levels on a BotFlow-shaped dump.

    .venv/bin/python bench/compression_sweep.py [--size 1m] [--sample-mb 200] [--levels 1,2,3,5,7,9]
        [--variants "level=2,ldm=on,wlog=24;level=2,ldm=on,wlog=27"]

Takes the first ``--sample-mb`` of the plain ``pg_dump`` of a generated benchmark
database (see generate.py; created on first use), then compresses that sample in
memory with gzip -6 (the seed's script) and with the portal's own ``compressor()``
(zstd, two threads, the job size it uses at that level) at each level. Prints, per
level, CPU and wall seconds per 100 MB of SQL, the size relative to gzip -6 and the
compressor's own memory (the process's peak RSS while it ran, over its RSS before: the
peak is reset through /proc/self/clear_refs), and
the CPU budget a backup has for compression on this machine: what is left of two
cores once the PostgreSQL backend and pg_dump have had theirs, within 1.15× the time
of a bare pg_dump (the issue's pipeline target).

``--variants`` adds compressors described with variants.py's knobs (level, threads,
job, ldm, wlog), e.g. zstd's long-distance matching with a 16 MiB window:
``level=2,ldm=on,wlog=24``.

This is what decides which levels fit beside pg_dump; see bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import zlib
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

import generate  # noqa: E402
import variants  # noqa: E402

from backups.pipeline import CHUNK, compressor  # noqa: E402

PIPELINE_TARGET = 1.15  # the pipeline alone ≤ 1.15× bare pg_dump


def sample(url: str, limit: int) -> bytes:
    """The first ``limit`` bytes of pg_dump's plain output."""
    dump = subprocess.Popen(["pg_dump", "--format=plain", "--dbname", url], stdout=subprocess.PIPE)
    data = dump.stdout.read(limit)
    dump.kill()
    dump.wait()
    return data


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def dump_budget(url: str, database: str) -> tuple[float, float, float]:
    """Wall and CPU seconds of a bare pg_dump to /dev/null, and its backend's CPU (from /proc)."""
    before, started = children_cpu(), time.monotonic()
    with open(os.devnull, "wb") as sink:
        dump = subprocess.Popen(["pg_dump", "--format=plain", "--dbname", url], stdout=sink)
        backend_cpu = _backend_cpu_until_exit(dump, database)
    wall = time.monotonic() - started
    return wall, children_cpu() - before, backend_cpu


def _backend_cpu_until_exit(dump: subprocess.Popen, database: str) -> float:
    """CPU seconds of the PostgreSQL backends connected to ``database`` while pg_dump runs."""
    ticks = os.sysconf("SC_CLK_TCK")
    # Backends retitle themselves "postgres: [cluster: ]user database host(port) STATE".
    needle = f" {database} ".encode()
    seen: dict[int, float] = {}
    while dump.poll() is None:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                title = (entry / "cmdline").read_bytes()
                if not title.startswith(b"postgres:") or needle not in title:
                    continue
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            seen[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks
        time.sleep(0.05)
    return sum(seen.values())


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def measure(data: bytes, make) -> tuple[float, float, int, float]:
    """CPU seconds (all threads), wall seconds, output size and memory (MiB) of compressing ``data``.

    Each compressor runs in a forked child, so memory one compressor freed (and the allocator
    kept) does not hide the next one's: the child's peak RSS is reset through clear_refs
    once it has started, and its rise is the compressor's.
    """
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: measure, report one JSON line, leave without cleanup
        try:
            os.close(read)
            try:
                Path("/proc/self/clear_refs").write_text("5")  # VmHWM := the current RSS
            except OSError:
                pass
            rss_before = _status_kib("VmRSS")
            comp = make()
            cpu, wall, size = time.process_time(), time.monotonic(), 0
            for start in range(0, len(data), CHUNK):
                size += len(comp.compress(data[start : start + CHUNK]))
            size += len(comp.flush())
            cpu, wall = time.process_time() - cpu, time.monotonic() - wall
            memory = (_status_kib("VmHWM") - rss_before) / 1024
            os.write(write, json.dumps([cpu, wall, size, memory]).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as report:
        text = report.read()
    os.waitpid(pid, 0)
    if not text:
        raise SystemExit("the measuring child failed")
    cpu, wall, size, memory = json.loads(text)
    return cpu, wall, size, memory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1m", help="benchmark database: 100k, 1m, 4m (default 1m)")
    parser.add_argument("--sample-mb", type=int, default=200, help="MB of plain SQL to compress (default 200)")
    parser.add_argument("--levels", default="1,2,3,4,5,6,7,9", help="zstd levels (default 1,2,3,4,5,6,7,9)")
    parser.add_argument(
        "--variants",
        default="",
        help="';'-separated compressors in variants.py's knobs, e.g. 'level=2,ldm=on,wlog=24;level=2,ldm=on,wlog=27'",
    )
    args = parser.parse_args(argv)

    url = generate.generate(args.size, log=lambda m: print(m, flush=True))
    data = sample(url, args.sample_mb * 1_000_000)
    per100 = 100e6 / len(data)
    print(f"\nsample: first {len(data) / 1e6:.0f} MB of pg_dump {generate.db_name(args.size)}", flush=True)

    wall, client_cpu, backend_cpu = dump_budget(url, generate.db_name(args.size))
    dump_mb = _dump_size(url)
    spare = 2 * PIPELINE_TARGET * wall - client_cpu - backend_cpu
    print(
        f"bare pg_dump: {wall:.2f} s for {dump_mb:.0f} MB; CPU: pg_dump {client_cpu:.2f} s, backend {backend_cpu:.2f} s"
        f"\nCPU left on 2 cores within {PIPELINE_TARGET}× that time: {spare:.2f} s = "
        f"{spare * 100 / dump_mb:.2f} s per 100 MB, for reading, row counts, compression, age and hashing\n",
        flush=True,
    )

    gz_cpu, gz_wall, gz_size, gz_mem = measure(data, lambda: zlib.compressobj(6, zlib.DEFLATED, 31))
    width = max([10] + [len(v) + 2 for v in args.variants.split(";")])
    print(f"{'codec':<{width}}{'CPU s/100MB':>12}{'wall s/100MB':>14}{'× gzip -6 size':>16}{'memory MiB':>12}")
    print(f"{'gzip -6':<{width}}{gz_cpu * per100:>12.2f}{gz_wall * per100:>14.2f}{1:>16.3f}{gz_mem:>12.1f}")
    codecs = [(f"zstd {level}", lambda level=level: compressor("zstd", level)) for level in _ints(args.levels)]
    for spec in [v.strip() for v in args.variants.split(";") if v.strip()]:
        codecs.append((spec, lambda spec=spec: variants.zstd_compressor(variants.parse(spec))))
    for name, make in codecs:
        cpu, wall_s, size, mem = measure(data, make)
        print(
            f"{name:<{width}}{cpu * per100:>12.2f}{wall_s * per100:>14.2f}{size / gz_size:>16.3f}{mem:>12.1f}",
            flush=True,
        )
    return 0


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _dump_size(url: str) -> float:
    with subprocess.Popen(["pg_dump", "--format=plain", "--dbname", url], stdout=subprocess.PIPE) as dump:
        total = 0
        while chunk := dump.stdout.read(CHUNK):
            total += len(chunk)
    return total / 1e6


if __name__ == "__main__":
    sys.exit(main())
