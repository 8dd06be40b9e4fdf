"""RPO in seconds: the newest WAL archived to every repository."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg
from django.utils import timezone

from ...engines import pgbackrest as pgbr
from ...engines.base import SourceError
from ...models import PgBackRestStanza, Target
from .stanza import connect, repos_of, stanza_of

logger = logging.getLogger(__name__)


@dataclass
class WalPoint:
    point: datetime | None
    notes: list[str] = field(default_factory=list)
    failing: bool = False


def wal_recovery_point(target: Target, now: datetime | None = None) -> WalPoint:
    """The moment up to which the target's changes are safe in every repository.

    Per repository: when its newest archived WAL segment landed (a repository that cannot be
    read keeps the last point seen, so its exposure keeps growing). The point is the oldest of
    them, unless the source has written nothing since that segment and its archiver is not
    failing: then nothing is exposed and the point is now.
    """
    now = now or timezone.now()
    result = WalPoint(None)
    try:
        stanza = stanza_of(target)
        repos = repos_of(target)
    except SourceError as exc:
        result.notes.append(str(exc))
        return result
    known = dict(stanza.wal_points or {})
    try:
        data = pgbr.info(stanza, timeout=60)
        maxima = {a["database"]["repo-key"]: a.get("max") or "" for a in data.get("archive", [])}
    except SourceError as exc:
        result.notes.append(str(exc))
        maxima = {}
    points = {}
    for repo in repos:
        segment = maxima.get(repo.index, "")
        seen = known.get(repo.location.name) or {}
        if segment and segment != seen.get("segment"):
            try:
                landed = pgbr.newest_segment_time(stanza, repo.index, segment, timeout=60)
            except (SourceError, ValueError) as exc:
                result.notes.append(f"{repo.label}: {exc}")
                landed = None
            if landed is not None:
                seen = {"segment": segment, "at": landed.isoformat()}
                known[repo.location.name] = seen
        if not seen.get("at"):
            result.notes.append(f"{repo.label}: no archived WAL seen yet")
            points[repo.index] = None
            continue
        points[repo.index] = (datetime.fromisoformat(seen["at"]), seen["segment"])
    PgBackRestStanza.objects.filter(pk=stanza.pk).update(wal_points=known)
    if any(p is None for p in points.values()):
        return result
    oldest_at, oldest_segment = min(points.values())
    result.point = oldest_at
    try:
        with connect(stanza) as conn:
            insert, segment_now, timeout_seconds = conn.execute(
                "SELECT pg_current_wal_insert_lsn()::text, pg_walfile_name(pg_current_wal_insert_lsn()), "
                "(SELECT setting::int FROM pg_settings WHERE name = 'archive_timeout')"
            ).fetchone()
            last_wal, last_ok, failed, failed_wal, last_failed = conn.execute(
                "SELECT last_archived_wal, last_archived_time, failed_count, last_failed_wal, last_failed_time "
                "FROM pg_stat_archiver"
            ).fetchone()
    except psycopg.Error as exc:
        result.notes.append(f"source unreachable: {str(exc).strip().splitlines()[0]}")
        return result
    if last_failed and (not last_ok or last_failed > last_ok):
        result.failing = True
        result.notes.append(f"archiving is failing: {failed} failure(s), the last for {failed_wal} at {last_failed}")
        return result
    everywhere = min(segment for _, segment in points.values())
    if everywhere != last_wal or everywhere >= segment_now:
        # A repository is behind the archiver, or the archiver is still pushing the segment just switched:
        # keep the oldest landing time.
        return result
    if pgbr.lsn_to_int(insert) - pgbr.segment_end_lsn(everywhere) <= 40:
        result.point = now  # nothing written past what every repository holds (a page header at most)
    elif timeout_seconds:
        # Healthy and caught up: PostgreSQL switches any segment holding a data change within archive_timeout,
        # so what is not archived yet was written at most archive_timeout ago (idle clusters write only
        # checkpoint records, which archive_timeout rightly does not switch for).
        result.point = max(oldest_at, now - timedelta(seconds=timeout_seconds))
    return result


def exposure_points(targets: list[Target], now: datetime) -> dict[int, datetime | None]:
    """For the RPO service: each pgbackrest target's WAL recovery point."""
    return {t.pk: wal_recovery_point(t, now).point for t in targets if t.engine == pgbr.ENGINE_NAME}
