"""Real throwaway PostgreSQL clusters for the pgbackrest engine, and moto's S3 server over TLS.

A cluster is made with `initdb` as the `postgres` OS user in a temporary folder (owned by
postgres, outside pytest's root-only tmp folder so the OS user can reach it), on a free port
with its unix socket in that folder, `archive_mode=on`, `wal_level=replica` and the portal's
generated `archive_command`. It is stopped and removed at teardown, also when the test fails,
together with any restored copy a test left running under the same folder.

Import the fixtures into a test module: `from tests.pg_cluster import pg_cluster, s3_tls  # noqa: F401`.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from tests.conftest import ROOT, free_port

PG_BIN = Path(os.environ.get("PG_BINDIR", "/usr/lib/postgresql/15/bin"))
OS_USER = "postgres"


def as_postgres(*argv: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["runuser", "-u", OS_USER, "--", *argv], capture_output=True, text=True, timeout=timeout, cwd="/"
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr}{result.stdout}")
    return result


def chown_postgres(path: Path) -> None:
    shutil.chown(path, OS_USER, OS_USER)


@dataclass
class Cluster:
    base: Path
    data: Path
    socket: Path
    port: int
    log: Path
    extra: list[Path] = field(default_factory=list)

    def connect(self, dbname: str = "postgres", port: int | None = None) -> psycopg.Connection:
        return psycopg.connect(
            host=str(self.socket), port=port or self.port, user=OS_USER, dbname=dbname, autocommit=True
        )

    def sql(self, query: str, params=None, dbname: str = "app", port: int | None = None) -> list[tuple]:
        with self.connect(dbname, port) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def start(self) -> None:
        as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "120", "start")

    def stop(self, mode: str = "fast") -> None:
        as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def folder(self, name: str) -> Path:
        """A folder under the cluster's base owned by postgres (repositories, restore destinations)."""
        path = self.base / name
        path.mkdir(mode=0o750, exist_ok=True)
        chown_postgres(path)
        return path


def _write_conf(data: Path, lines: list[str]) -> None:
    with open(data / "postgresql.conf", "a") as conf:
        conf.write("\n# tests/pg_cluster.py\n" + "\n".join(lines) + "\n")


def make_cluster(archive_command: str, *, archive_timeout: int = 60) -> Cluster:
    base = Path(tempfile.mkdtemp(prefix="drp-pgbr-"))
    base.chmod(0o755)
    socket_dir = base / "sock"
    socket_dir.mkdir(mode=0o755)
    chown_postgres(socket_dir)
    data = base / "data"
    data.mkdir(mode=0o700)
    chown_postgres(data)
    log = base / "postgres.log"
    log.touch()
    chown_postgres(log)
    cluster = Cluster(base, data, socket_dir, free_port(), log)
    try:
        _init(cluster, archive_command, archive_timeout)
    except BaseException:
        destroy(cluster)
        raise
    return cluster


def _init(cluster: Cluster, archive_command: str, archive_timeout: int) -> None:
    data, socket_dir, port = cluster.data, cluster.socket, cluster.port
    as_postgres(
        str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", OS_USER, "-E", "UTF8", "--no-sync", timeout=120
    )
    escaped = archive_command.replace("'", "''")
    _write_conf(
        data,
        [
            f"port = {port}",
            "listen_addresses = ''",
            f"unix_socket_directories = '{socket_dir}'",
            "archive_mode = on",
            "wal_level = replica",
            f"archive_timeout = {archive_timeout}",
            f"archive_command = '{escaped}'",
            "max_wal_senders = 3",
            "fsync = off",
            "shared_buffers = 32MB",
        ],
    )
    cluster.start()
    with cluster.connect() as conn:
        conn.execute("CREATE DATABASE app")


def destroy(cluster: Cluster) -> None:
    """Stop every cluster running under the base folder (restored copies too), then remove it all."""
    for pid_file in cluster.base.rglob("postmaster.pid"):
        as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(pid_file.parent), "-m", "immediate", "-w", "stop", check=False)
    shutil.rmtree(cluster.base, ignore_errors=True)


@pytest.fixture
def pg_cluster(settings):
    """make(target_name, archive_timeout=60) -> Cluster whose archive_command is the portal's for that target."""
    from backups.engines import pgbackrest as pgbr

    made: list[Cluster] = []
    conf_dir = Path(tempfile.mkdtemp(prefix="drp-pgbr-conf-"))
    conf_dir.chmod(0o755)
    settings.PGBACKREST_CONFIG_DIR = conf_dir

    def make(target_name: str, archive_timeout: int = 60) -> Cluster:
        cluster = make_cluster(pgbr.archive_command(target_name), archive_timeout=archive_timeout)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        destroy(cluster)
    shutil.rmtree(conf_dir, ignore_errors=True)


# --- moto's S3 server over TLS -------------------------------------------------------------


def self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@dataclass
class TlsS3:
    endpoint: str
    ca_file: Path
    proc: subprocess.Popen

    def bucket(self) -> str:
        import boto3

        name = f"drp-pgbr-{secrets.token_hex(4)}"
        boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1", verify=str(self.ca_file)).create_bucket(
            Bucket=name
        )
        return name


@pytest.fixture(scope="session")
def s3_tls(tmp_path_factory, s3_endpoint):
    """moto over TLS on loopback; boto3 in this process trusts its certificate through AWS_CA_BUNDLE."""
    folder = tmp_path_factory.mktemp("moto-tls")
    cert, key = self_signed(folder)
    port = free_port()
    log = open(folder / "moto.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "moto_tls.py"), "127.0.0.1", str(port), str(cert), str(key)],
        stdout=log,
        stderr=log,
    )
    endpoint = f"https://127.0.0.1:{port}"
    previous = os.environ.get("AWS_CA_BUNDLE")
    os.environ["AWS_CA_BUNDLE"] = str(cert)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(
                    endpoint + "/moto-api/", timeout=1, context=ssl.create_default_context(cafile=cert)
                )
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto over TLS did not start: " + (folder / "moto.log").read_text()[-2000:])
                time.sleep(0.2)
        yield TlsS3(endpoint, cert, proc)
    finally:
        if previous is None:
            os.environ.pop("AWS_CA_BUNDLE", None)
        else:
            os.environ["AWS_CA_BUNDLE"] = previous
        proc.terminate()
        proc.wait(10)
        log.close()


# --- catalogue rows for a pgbackrest target ------------------------------------------------


def make_pgbr_target(cluster: Cluster, locations, name: str = "maindb", **fields):
    from backups.models import PgBackRestStanza, Target

    target = Target.objects.create(name=name, engine="pgbackrest", source="")
    target.locations.set(locations)
    PgBackRestStanza.objects.create(
        target=target,
        pg_path=str(cluster.data),
        pg_port=cluster.port,
        pg_socket=str(cluster.socket),
        os_user=OS_USER,
        verify_tls=False,
        **fields,
    )
    return target


def posix_location(cluster: Cluster, name: str = "local", **fields):
    from backups.models import Location

    return Location.objects.create(name=name, url=f"file://{cluster.folder('repo-' + name)}", **fields)
