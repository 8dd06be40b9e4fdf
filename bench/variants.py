"""Pipeline variants and a time breakdown, applied by monkeypatching (the portal's code is untouched).

Used by pipeline_child.py when BENCH_VARIANT / BENCH_BREAKDOWN are set, and driven
by profile_pipeline.py. A variant is a comma-separated list of knobs:

  level=N        zstd level (default: settings.BACKUP_ZSTD_LEVEL)
  threads=N      zstd worker threads (portal: 2)
  job=SIZE       zstd multithreading job size, e.g. 2m (portal: 2 MiB up to level 3, zstd's own above;
                 when threads/ldm/wlog are given without job, zstd's own)
  ldm=on|off     zstd long-distance matching (enable_ldm)
  wlog=N         zstd window log, e.g. 24 (16 MiB window); ≤ 27 stays readable by `zstd -d` without --long
  chunk=SIZE     pipeline.CHUNK, the read size from pg_dump (portal: 1m)
  pipesize=SIZE  F_SETPIPE_SZ on pg_dump's stdout (Linux default: 64k)
  counter=off    no CopyRowCounter (measures its cost; loses per-table row counts)
  putfile=link   file:// locations hard-link the spooled artifact (same filesystem) instead of
                 copying it, then fsync as before; falls back to the copy (manage.py only)
"""

from __future__ import annotations

import fcntl
import threading
import time

F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


def parse_size(text: str) -> int:
    text = text.strip().lower()
    for suffix, factor in (("k", 1 << 10), ("m", 1 << 20), ("g", 1 << 30)):
        if text.endswith(suffix):
            return int(float(text[:-1]) * factor)
    return int(text)


def parse(spec: str) -> dict[str, str]:
    opts = {}
    for part in (spec or "").split(","):
        part = part.strip()
        if part and part != "baseline":
            key, _, value = part.partition("=")
            opts[key.strip()] = value.strip()
    return opts


def zstd_compressor(opts: dict[str, str], default_level: int | None = None, portal=None):
    """The zstd compressor a variant's knobs describe (level, threads, job, ldm, wlog).

    With only ``level`` (or nothing), the portal's own ``compressor()`` at that level.
    """
    import zstandard

    from backups import pipeline

    portal = portal or pipeline.compressor
    if default_level is None:
        default_level = pipeline.DEFAULT_ZSTD_LEVEL
    lvl = int(opts["level"]) if "level" in opts else default_level
    if not {"threads", "job", "ldm", "wlog"} & set(opts):
        return portal("zstd", lvl)  # the portal's own parameters for that level
    params = {"threads": int(opts.get("threads", 2)), "write_checksum": True}
    if "job" in opts:  # otherwise zstd sizes its jobs (from the window, or LDM's cycle)
        params["job_size"] = parse_size(opts["job"])
    if "ldm" in opts:
        if opts["ldm"] not in ("on", "off"):
            raise SystemExit(f"ldm={opts['ldm']}: expected on or off")
        params["enable_ldm"] = opts["ldm"] == "on"
    if "wlog" in opts:
        params["window_log"] = int(opts["wlog"])
    cparams = zstandard.ZstdCompressionParameters.from_level(lvl, **params)
    return zstandard.ZstdCompressor(compression_params=cparams).compressobj(size=-1)


def apply(spec: str) -> dict[str, str]:
    from backups import pipeline
    from backups.engines import postgresql

    opts = parse(spec)
    known = {"level", "threads", "job", "ldm", "wlog", "chunk", "pipesize", "counter", "putfile"}
    unknown = set(opts) - known
    if unknown:
        raise SystemExit(f"unknown variant knob(s): {', '.join(sorted(unknown))}")
    if "chunk" in opts:
        pipeline.CHUNK = parse_size(opts["chunk"])
    if {"level", "threads", "job", "ldm", "wlog"} & set(opts):
        original = pipeline.compressor

        def compressor(kind: str, level: int | None = None):
            if kind != "zstd":
                return original(kind, level)
            return zstd_compressor(opts, level, original)

        pipeline.compressor = compressor
    if "pipesize" in opts:
        size = parse_size(opts["pipesize"])
        init = postgresql.PostgreSQLDump.__init__

        def patched_init(self, source):
            init(self, source)
            fcntl.fcntl(self.process.stdout.fileno(), F_SETPIPE_SZ, size)

        postgresql.PostgreSQLDump.__init__ = patched_init
    counter = opts.get("counter")
    if counter == "off":
        postgresql._CountingReader.read = lambda self, size=-1: self.raw.read(size)
    elif counter:
        raise SystemExit(f"counter={counter}: expected off")
    if "putfile" in opts:
        if opts["putfile"] != "link":
            raise SystemExit("putfile: expected link")
        _patch_put_file_link()
    return opts


def _patch_put_file_link() -> None:
    import os

    from backups import locations

    copy = locations.LocalBackend.put_file

    def put_file(self, path, key):
        final = self._path(key)
        partial = final.with_name(f".{final.name}.partial")
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            partial.unlink(missing_ok=True)
            os.link(path, partial)
        except OSError:  # another filesystem (EXDEV), no hard links: copy as before
            return copy(self, path, key)
        try:
            fd = os.open(partial, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(partial, final)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise locations.LocationError(f"location {self.name}: cannot write {key}: {exc.strerror or exc}") from None
        return locations.StoredObject(key=key, url=self.url_for(key), size=final.stat().st_size)

    locations.LocalBackend.put_file = put_file


class Breakdown:
    """Where the main thread's time goes: waiting on pg_dump, counting, compressing, hashing/writing.

    Wall time per stage, measured around the calls the pipeline makes; what is left of
    pyrage.encrypt_io after its reader and writer callbacks is age's own encryption.
    """

    def __init__(self) -> None:
        self.t = {k: 0.0 for k in ("pg_read", "count", "compress", "reader_total", "write", "encrypt_io")}
        self.calls = {"reader": 0, "writer": 0, "pg_read": 0}

    def install(self) -> None:
        from backups import pipeline
        from backups.engines import postgresql

        b = self
        raw_read = postgresql._CountingReader.read

        def counting_read(self, size=-1):
            t0 = time.perf_counter()
            data = self.raw.read(size)
            t1 = time.perf_counter()
            b.t["pg_read"] += t1 - t0
            b.calls["pg_read"] += 1
            if data:
                self.counter.feed(data)
            b.t["count"] += time.perf_counter() - t1
            return data

        if raw_read.__name__ != "<lambda>":  # counter=off keeps its own read
            postgresql._CountingReader.read = counting_read

        original_compressor = pipeline.compressor

        class TimedCompressor:
            def __init__(self, inner):
                self.inner = inner

            def compress(self, data):
                t0 = time.perf_counter()
                out = self.inner.compress(data)
                b.t["compress"] += time.perf_counter() - t0
                return out

            def flush(self):
                t0 = time.perf_counter()
                out = self.inner.flush()
                b.t["compress"] += time.perf_counter() - t0
                return out

        pipeline.compressor = lambda kind, level=None: TimedCompressor(original_compressor(kind, level))

        reader_read = pipeline._CompressingReader.read

        def timed_reader_read(self, size=-1):
            t0 = time.perf_counter()
            out = reader_read(self, size)
            b.t["reader_total"] += time.perf_counter() - t0
            b.calls["reader"] += 1
            return out

        pipeline._CompressingReader.read = timed_reader_read
        writer_write = pipeline.HashingWriter.write

        def timed_write(self, data):
            t0 = time.perf_counter()
            n = writer_write(self, data)
            b.t["write"] += time.perf_counter() - t0
            b.calls["writer"] += 1
            return n

        pipeline.HashingWriter.write = timed_write
        encrypt_io = pipeline.pyrage.encrypt_io

        class PyrageProxy:
            def __getattr__(self, name):
                import pyrage

                return getattr(pyrage, name)

            @staticmethod
            def encrypt_io(reader, writer, recipients):
                t0 = time.perf_counter()
                try:
                    return encrypt_io(reader, writer, recipients)
                finally:
                    b.t["encrypt_io"] += time.perf_counter() - t0

        pipeline.pyrage = PyrageProxy()

    def report(self) -> dict:
        t = dict(self.t)
        inner_read = t["pg_read"] + t["count"] + t["compress"]
        t["reader_other"] = max(0.0, t["reader_total"] - inner_read)
        t["age_encrypt"] = max(0.0, t["encrypt_io"] - t["reader_total"] - t["write"])
        return {
            "seconds": {k: round(v, 3) for k, v in t.items()},
            "calls": self.calls,
            "threads_at_end": threading.active_count(),
        }
