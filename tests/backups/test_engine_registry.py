"""The engine registry: a new engine is one module and one register() line, and every engine says what it is.

The toy "textfile" engine below lives only in this test: it is registered here, and goes through the
real backup, verification (with a restore test) and restore services, as `manage.py backup`, `verify`
and `restore` drive them, without any other file knowing it exists.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.core.exceptions import ValidationError

from backups import engines
from backups.engines.base import Dump, Place, SourceError, path_place, resolve_source
from backups.engines.engine import Engine
from backups.engines.restore_base import FileRestorer, Restorer
from backups.models import BackupRun, Target, Verification
from backups.services import verify
from tests.conftest import run_backup, run_restore

pytestmark = pytest.mark.django_db


# --- the toy engine: everything an engine needs, in one place ---------------------------------------------


def count_lines(data: bytes) -> dict[str, int]:
    return {"lines": data.count(b"\n")}


class TextFileDump(Dump):
    def __init__(self, source: str) -> None:
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise SourceError(f"cannot read {source}: {exc.strerror}") from None
        self.counts = count_lines(data)
        self.stream = io.BytesIO(data)

    def finish(self) -> dict:
        return {"tables": self.counts}


class TextFileRestorer(FileRestorer):
    """A new file beside the destination, its lines counted, then renamed into place (FileRestorer does the rest)."""

    scratch_suffix = ".txt"

    def resolve_path(self, destination: str) -> Path:
        return Path(destination).expanduser().resolve()

    def count_rows(self, tables: list[str]) -> dict[str, int]:
        counts = count_lines(self.scratch.read_bytes())
        return {name: counts.get(name, -1) for name in tables} if tables else counts


class TextFileEngine(Engine):
    name = "textfile"
    label = "One text file (toy engine of the registry test)"
    format = "text"
    extension = ".txt"
    reads_local_disk = True
    restore_hint = "cat > restored.txt"
    restorer = TextFileRestorer

    def dump(self, source: str, *, endpoint_url: str = "") -> Dump:
        return TextFileDump(source)

    def check_source(self, source: str) -> None:
        if not source.startswith("/"):
            raise SourceError("a text file source is an absolute path")

    def places(self, source: str) -> list[Place]:
        return [path_place(resolve_source(source))]

    def local_path(self, source: str) -> Path | None:
        return Path(source)


@pytest.fixture
def textfile_engine():
    engines.register(TextFileEngine)
    yield engines.get("textfile")
    engines.unregister("textfile")


@pytest.fixture
def notes(tmp_path) -> Path:
    path = tmp_path / "app" / "notes.txt"
    path.parent.mkdir()
    path.write_text("first line\nsecond line\nthird line\n")
    return path


# --- a new engine goes through backup, verify and restore -------------------------------------------------


def test_a_toy_engine_registered_here_backs_up_verifies_and_restores(
    textfile_engine, notes, local_location, make_target
):
    target = make_target("notes", str(notes), [local_location], engine="textfile")
    target.full_clean()  # its name is one of Target.engine's choices, which come from the registry

    run = run_backup(target)

    assert run.status == BackupRun.Status.SUCCEEDED, run.error
    assert (run.engine, run.format, run.tables) == ("textfile", "text", {"lines": 3})
    artifact = Path(urlsplit(run.artifacts.get().url).path)
    assert artifact.name.endswith(".txt.zst.age")
    sidecar = json.loads(artifact.with_name(artifact.name + ".json").read_text())
    assert sidecar["engine"] == "textfile" and sidecar["format"] == "text"
    assert sidecar["restore"].endswith("| zstd -d | cat > restored.txt")  # the engine's own hint

    verification = verify.verify(
        verify.start_verification(run, kind=Verification.Kind.RESTORE_TEST, trigger=BackupRun.Trigger.COMMAND)
    )

    assert verification.status == Verification.Status.PASSED, (verification.error, verification.checks)
    assert {c["name"] for c in verification.checks} >= {"present:local", "checksum:local", "decrypt:local", "restore"}
    assert verification.tables == [{"name": "lines", "expected": 3, "restored": 3}]

    original = notes.read_bytes()
    notes.write_text("overwritten by mistake\n")

    code, result = run_restore(str(run.pk))

    assert code == 0, result
    assert result["status"] == "succeeded"
    assert notes.read_bytes() == original
    assert Path(result["rollback_name"]).read_text() == "overwritten by mistake\n"


def test_the_toy_engine_refuses_a_source_it_cannot_read_and_is_gone_once_unregistered(textfile_engine, tmp_path):
    with pytest.raises(ValidationError, match="absolute path"):
        Target(name="notes", engine="textfile", source="relative.txt").full_clean()

    engines.unregister("textfile")

    with pytest.raises(ValidationError):
        Target(name="notes", engine="textfile", source="/srv/notes.txt").full_clean()
    with pytest.raises(SourceError, match="unknown engine 'textfile'"):
        engines.get("textfile")


def test_registering_a_name_twice_for_two_classes_is_refused(textfile_engine):
    class Impostor(TextFileEngine):
        pass

    with pytest.raises(ValueError, match="already registered"):
        engines.register(Impostor)


# --- every engine says what it is -------------------------------------------------------------------------

# What every engine must set in its own class (the rest have defaults that are right for most engines).
DECLARED = ("name", "label", "format", "extension", "restore_hint", "restorer")
ATTRIBUTES = {
    "name": str,
    "label": str,
    "format": str,
    "extension": str,
    "needs_source": bool,
    "uses_endpoint": bool,
    "is_database": bool,
    "reads_local_disk": bool,
    "runs_own_backup": bool,
    "restores_in_place": bool,
    "restores_to_a_moment": bool,
    "restore_hint": str,
    "restore_refusal": str,
    "implied_source": str,
}


def test_the_attribute_list_is_the_engine_base_class():
    assert set(ATTRIBUTES) | {"restorer"} == set(Engine.__annotations__)


@pytest.mark.parametrize("name", sorted(engines.ENGINES))
def test_every_registered_engine_declares_every_attribute(name):
    engine = engines.get(name)
    own = {attr for cls in type(engine).__mro__ if cls is not Engine and cls is not object for attr in vars(cls)}

    assert not [attr for attr in DECLARED if attr not in own], f"{name} inherits what it must declare"
    for attr, kind in ATTRIBUTES.items():
        assert isinstance(getattr(engine, attr), kind), f"{name}.{attr}"
    assert engine.name == name and len(name) <= Target._meta.get_field("engine").max_length
    assert engine.label and engine.format and engine.restore_hint
    restorer = engine.restorer
    assert restorer is None or (isinstance(restorer, type) and issubclass(restorer, Restorer))
    if restorer is None:
        # Backups the generic restore cannot load: the engine restores them its own way, and says how.
        assert engine.runs_own_backup and engine.restore_refusal
    else:
        assert engine.extension.startswith(".")
        assert engines.for_format(engine.format).restorer is restorer  # one restorer per format
    if not engine.restores_in_place:
        assert engine.restore_refusal
    if not engine.needs_source and not engine.runs_own_backup:
        assert engine.implied_source  # the admin says what it backs up instead of a source


def test_the_capabilities_the_services_ask_for():
    assert engines.names(is_database=True) == ["postgresql", "sqlite", "portal"]
    assert engines.names(restores_in_place=False) == ["portal"]
    assert engines.names(runs_own_backup=True) == ["pgbackrest"]
    assert engines.names(restores_to_a_moment=True) == ["pgbackrest"]
    assert engines.names(needs_source=False) == ["portal", "pgbackrest"]
    assert engines.names(uses_endpoint=True) == ["files"]
    assert sorted(engines.names(reads_local_disk=True)) == ["env", "files", "sqlite"]
    assert [value for value, _label in Target._meta.get_field("engine").choices] == sorted(engines.ENGINES)


def test_an_s3_destination_gets_the_upload_restorer_and_a_restore_test_a_folder(tmp_path):
    from backups.engines.files import S3TarRestorer, TarRestorer

    assert type(engines.restorer_for("tar", "s3://bucket/prefix/")) is S3TarRestorer
    assert type(engines.restorer_for("tar", str(tmp_path / "folder"))) is TarRestorer
    assert type(engines.restorer_for("tar", "s3://bucket/prefix/", scratch_prefix="drp_test")) is TarRestorer
