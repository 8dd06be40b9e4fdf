"""Per-table row counts read from a real pg_dump stream, whatever the data and however it is chunked."""

from __future__ import annotations

import subprocess

import psycopg
import pytest

from backups.engines import postgresql
from backups.engines.postgresql import CopyRowCounter
from tests.conftest import pg_admin, pg_url

# Values whose COPY text form holds backslashes, dots and escaped line ends in every position
# a terminator search could trip over: "\." alone, at the start, at the end, escaped newlines.
TRICKY = [
    "\\.",
    "\\.\n",
    "\n\\.\n",
    "a\\.",
    ".\\",
    "\\",
    "line one\nline two",
    "tab\there",
    "plain",
    "",
    "COPY x FROM stdin;",
    "\\.\nCOPY public.fake (id) FROM stdin;\n1\n\\.",
]


@pytest.fixture(scope="module")
def tricky_dump(django_db_blocker):
    """A database with backslash-heavy text and bytea, dumped by pg_dump; yields the SQL and true counts."""
    import secrets

    name = f"drp_counter_{secrets.token_hex(4)}"
    with pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(pg_url(name), autocommit=True) as conn:
            conn.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
            conn.execute('CREATE TABLE "Odd ""Name""" (id int)')
            conn.execute("CREATE TABLE blobs (id int, data bytea)")  # hex: a backslash on every row
            conn.execute("CREATE TABLE empty (id int)")
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO notes VALUES (%s, %s)", [(i, TRICKY[i % len(TRICKY)]) for i in range(6000)]
                )
                cur.executemany("INSERT INTO blobs VALUES (%s, %s)", [(i, bytes([i % 256]) * 40) for i in range(9000)])
            conn.execute('INSERT INTO "Odd ""Name""" SELECT generate_series(1, 7)')
            truth = {
                "public.notes": 6000,
                'public."Odd ""Name"""': 7,
                "public.blobs": 9000,
                "public.empty": 0,
            }
        sql = subprocess.run(
            ["pg_dump", "--format=plain", "--dbname", pg_url(name)], check=True, capture_output=True
        ).stdout
        yield sql, truth
    finally:
        with pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 64, 4096, 1 << 20])
def test_counts_match_the_database_for_every_chunk_size(tricky_dump, chunk):
    sql, truth = tricky_dump
    counter = CopyRowCounter()
    for start in range(0, len(sql), chunk):
        counter.feed(sql[start : start + chunk])

    assert counter.tables == truth


def test_dense_backslashes_fall_back_to_the_plain_search_and_count_the_same(tricky_dump, monkeypatch):
    sql, truth = tricky_dump
    monkeypatch.setattr(postgresql, "_BACKSLASHES_CHECKED", 3)
    counter = CopyRowCounter()
    for start in range(0, len(sql), 4096):
        counter.feed(sql[start : start + 4096])

    assert counter.tables == truth
