"""The hot path: source stream → compress → age-encrypt → SHA-256 → sink, in constant memory.

pyrage pulls plaintext from a reader and pushes ciphertext to a writer, so the
pipeline is two small adapters around it: the reader compresses the source on
the fly, the writer hashes and counts what is written. Nothing holds more than
one chunk of the source at a time.
"""

from __future__ import annotations

import hashlib
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

import pyrage
import zstandard

CHUNK = 1 << 20


@dataclass
class PipelineResult:
    bytes_in: int
    bytes_out: int
    sha256: str


class PipelineError(Exception):
    pass


class StreamError(PipelineError):
    """Reading the source (``side`` "source") or writing the sink ("sink") failed with the OSError ``cause``.

    pyrage wraps what its reader or writer raise (``EncryptError: OSError...``); the adapters keep the
    original, so the caller can say which side failed and why (a full disk is not a crash).
    """

    def __init__(self, side: str, cause: OSError, done: int) -> None:
        self.side, self.cause, self.done = side, cause, done
        doing = "reading the source" if side == "source" else "writing the encrypted stream"
        super().__init__(f"{doing} failed: {cause.strerror or cause}")


# Levels a target may ask for. zstd's 20-22 ("ultra") need hundreds of MiB per thread: left out.
COMPRESSION_LEVELS = {"zstd": range(-7, 20), "gzip": range(1, 10)}
DEFAULT_GZIP_LEVEL = 6
# The default zstd level (settings.BACKUP_ZSTD_LEVEL unless set). Level 2, not 3: the lowest level whose
# artifact is never larger than the seed's `pg_dump | gzip | openssl enc` on any dataset in bench/
# (bench/size_compare.py: 0.972× fleet.py's SQLite source, 0.997× BotFlow 100k, 0.994× 1M, 0.989× 4M),
# where level 3 made the SQLite source 1.056× the seed's (its double-fast matcher misses the short
# repeats level 2's fast one finds) and level 1 BotFlow dumps 1.03×. It also takes ~25 % less CPU than
# level 3 (bench/compression_sweep.py), which is the margin of the time targets on 2 cores, at the same
# memory (2 MiB jobs below). zstd's long-distance matching (enable_ldm) at level 2 was measured and left
# off: on these dumps it is not smaller than level 3 (4M: 0.985× against 0.976×), costs level 3's CPU,
# and its window costs memory: 2^24 +13 MiB of peak RSS, 2^27 +134 MiB (over the 150 MiB target).
DEFAULT_ZSTD_LEVEL = 2


def check_level(kind: str, level: int) -> None:
    """Raise ValueError naming the allowed range when ``level`` does not suit ``kind``."""
    allowed = COMPRESSION_LEVELS.get(kind)
    if allowed is None:
        raise ValueError(f"unknown compression {kind!r}")
    if level not in allowed:
        raise ValueError(f"{kind} levels run from {allowed.start} to {allowed.stop - 1}, got {level}")


def compressor(kind: str, level: int | None = None):
    """A streaming compressor object with ``compress()`` and ``flush()``."""
    if kind == "zstd":
        level = DEFAULT_ZSTD_LEVEL if level is None else level
        # Two worker threads let zstd compress while this thread reads the source,
        # which is what keeps a backup close to the speed of bare pg_dump.
        # Up to level 3, 2 MiB jobs: zstd's default (8 MiB, several in flight) costs ~60 MiB
        # of memory for no gain in speed or size (bench/: peak RSS 170 → 105 MiB). From level
        # 4 up, jobs that small no longer overlap (one thread waits on the other: level 7 took
        # 1.6 s instead of 0.9 s per 100 MB in bench/compression_sweep.py), so zstd sizes them.
        params = zstandard.ZstdCompressionParameters.from_level(
            level, threads=2, job_size=(2 << 20) if level <= 3 else 0, write_checksum=True
        )
        return zstandard.ZstdCompressor(compression_params=params).compressobj(size=-1)
    if kind == "gzip":
        return zlib.compressobj(DEFAULT_GZIP_LEVEL if level is None else level, zlib.DEFLATED, 31)
    raise PipelineError(f"unknown compression {kind!r}")


def decompressor(kind: str):
    if kind == "zstd":
        return zstandard.ZstdDecompressor().decompressobj()
    if kind == "gzip":
        return zlib.decompressobj(31)
    raise PipelineError(f"unknown compression {kind!r}")


COMPRESSION_SUFFIX = {"zstd": ".zst", "gzip": ".gz"}


class _CompressingReader:
    """The reader pyrage pulls from: the source stream, compressed as it is read."""

    def __init__(self, source: BinaryIO, comp, on_chunk: Callable[[], None] | None = None) -> None:
        self.source = source
        self.comp = comp
        # Called after each chunk read: progress must follow the source, not only the output, which a
        # compressor holds back for megabytes (zstd's 2 MiB jobs: a slow source looks stuck otherwise).
        self.on_chunk = on_chunk
        self.pending = b""
        self.offset = 0
        self.eof = False
        self.bytes_in = 0
        self.error: OSError | None = None

    def _fill(self) -> None:
        while self.offset >= len(self.pending) and not self.eof:
            try:
                chunk = self.source.read(CHUNK)
            except OSError as exc:
                self.error = exc
                raise
            if chunk:
                self.bytes_in += len(chunk)
                self.pending = self.comp.compress(chunk)
                if self.on_chunk is not None:
                    self.on_chunk()
            else:
                self.eof = True
                self.pending = self.comp.flush()
            self.offset = 0

    def read(self, size: int = -1) -> bytes:
        self._fill()
        end = len(self.pending) if size is None or size < 0 else self.offset + size
        data = self.pending[self.offset : end]
        self.offset += len(data)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class HashingWriter:
    """The writer pyrage pushes to: hashes, counts and forwards every byte."""

    def __init__(self, out: BinaryIO, on_progress: Callable[[int], None] | None = None, interval: float = 1.0):
        self.out = out
        self.sha256 = hashlib.sha256()
        self.bytes_out = 0
        self.on_progress = on_progress
        self.interval = interval
        self._next_report = time.monotonic() + interval
        self.error: OSError | None = None
        # What the progress callback raised (e.g. the run lost its lease): pyrage wraps whatever its
        # writer raises in an EncryptError, so encrypt_stream raises this original instead.
        self.progress_error: BaseException | None = None

    def write(self, data) -> int:
        self.sha256.update(data)
        try:
            self.out.write(data)
        except OSError as exc:
            self.error = exc
            raise
        self.bytes_out += len(data)
        self.maybe_report()
        return len(data)

    def maybe_report(self) -> None:
        """Report progress if ``interval`` has passed since the last report (on writes and on source reads)."""
        if self.on_progress is not None:
            now = time.monotonic()
            if now >= self._next_report:
                self._next_report = now + self.interval
                try:
                    self.on_progress(self.bytes_out)
                except BaseException as exc:
                    self.progress_error = exc
                    raise

    def flush(self) -> None:
        try:
            self.out.flush()
        except OSError as exc:
            self.error = exc
            raise


def encrypt_stream(
    source: BinaryIO,
    sink: BinaryIO,
    recipients: list,
    *,
    compression: str = "zstd",
    level: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    progress_interval: float = 1.0,
) -> PipelineResult:
    """Compress, encrypt and hash ``source`` into ``sink``; returns sizes and checksum."""
    if not recipients:
        raise PipelineError("no recipients: refusing to write an unencrypted backup")
    reader = _CompressingReader(source, compressor(compression, level))
    report = (lambda out: on_progress(reader.bytes_in, out)) if on_progress else None
    writer = HashingWriter(sink, report, progress_interval)
    reader.on_chunk = writer.maybe_report
    try:
        pyrage.encrypt_io(reader, writer, list(recipients))
        writer.flush()
    except Exception as exc:
        if writer.progress_error is not None:
            raise writer.progress_error from None
        if writer.error is not None:
            raise StreamError("sink", writer.error, writer.bytes_out) from exc
        if reader.error is not None:
            raise StreamError("source", reader.error, reader.bytes_in) from exc
        raise
    return PipelineResult(reader.bytes_in, writer.bytes_out, writer.sha256.hexdigest())


class HashingReader:
    """The reader pyrage pulls ciphertext from: hashes and counts every byte read."""

    def __init__(self, raw: BinaryIO, on_progress: Callable[[int], None] | None = None, interval: float = 1.0):
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.bytes_read = 0
        self.on_progress = on_progress
        self.interval = interval
        self._next_report = time.monotonic() + interval

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size if size and size > 0 else CHUNK)
        if data:
            self.sha256.update(data)
            self.bytes_read += len(data)
            if self.on_progress is not None:
                now = time.monotonic()
                if now >= self._next_report:
                    self._next_report = now + self.interval
                    self.on_progress(self.bytes_read)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class DecompressingWriter:
    """The writer pyrage pushes plaintext to: decompresses and forwards to ``out``."""

    def __init__(self, out: BinaryIO | None, compression: str) -> None:
        self.out = out
        self.decomp = decompressor(compression)
        self.bytes_out = 0

    def write(self, data) -> int:
        plain = self.decomp.decompress(data)
        if plain:
            self.bytes_out += len(plain)
            if self.out is not None:
                self.out.write(plain)
        return len(data)

    def flush(self) -> None:
        if self.out is not None:
            self.out.flush()

    @property
    def complete(self) -> bool:
        """True when the compressed stream reached its proper end (not cut short)."""
        return self.decomp.eof


@dataclass
class DecryptResult:
    bytes_in: int
    bytes_out: int
    sha256: str
    complete: bool


def decrypt_stream(
    source: BinaryIO,
    sink: BinaryIO | None,
    identities: list,
    *,
    compression: str,
    on_progress: Callable[[int], None] | None = None,
    progress_interval: float = 1.0,
) -> DecryptResult:
    """Hash, decrypt and decompress ``source`` into ``sink`` (or nowhere, to just check it).

    Raises ``pyrage.DecryptError`` for a key that does not match and ``OSError``
    when authentication fails (tampered or truncated ciphertext).
    """
    reader = HashingReader(source, on_progress, progress_interval)
    writer = DecompressingWriter(sink, compression)
    pyrage.decrypt_io(reader, writer, list(identities))
    # Drain anything left after the last authenticated chunk, so the checksum covers it all.
    while reader.read(CHUNK):
        pass
    writer.flush()
    return DecryptResult(reader.bytes_read, writer.bytes_out, reader.sha256.hexdigest(), writer.complete)
