"""applyplan: the shipped plan applies idempotently; mistakes are named by file, table and key."""

from __future__ import annotations

import textwrap

import pytest
from django.core.management import CommandError, call_command

from backups.models import Location, Target
from tests.conftest import PLAN

pytestmark = pytest.mark.django_db


def apply(path, capsys=None) -> str:
    call_command("applyplan", str(path))
    return capsys.readouterr().out if capsys else ""


def write_plan(tmp_path, text: str):
    path = tmp_path / "plan.toml"
    path.write_text(textwrap.dedent(text))
    return path


def rows(*models) -> dict[str, list[dict]]:
    """Every row of ``models``, every column (updated_at too) and every many-to-many link, in pk order."""
    return {
        model.__name__: [
            {field.attname: getattr(obj, field.attname) for field in model._meta.concrete_fields}
            | {
                field.name: sorted(getattr(obj, field.name).values_list("pk", flat=True))
                for field in model._meta.many_to_many
            }
            for obj in model.objects.order_by("pk")
        ]
        for model in models
    }


def backups_rows() -> dict:
    from backups.models import Objective

    return rows(Location, Target, Objective)


def incidents_rows() -> dict:
    from incidents.models import (
        ChecklistItemTemplate,
        Contact,
        ResponseRole,
        Scenario,
        ScenarioStep,
        ServiceProvider,
        Severity,
        StatusComponent,
    )

    return rows(
        Severity, Scenario, ScenarioStep, ChecklistItemTemplate, ResponseRole, Contact, ServiceProvider, StatusComponent
    )


def drills_rows() -> dict:
    from drills.models import ChangeLogEntry, PlanDocument, TestActivity

    return rows(TestActivity, PlanDocument, ChangeLogEntry)


# One test for the whole plan's idempotence, once per app's sections (it was three copies, one per app):
# the first apply creates that app's rows, the second reports nothing to change and leaves them as they were.
@pytest.mark.parametrize(
    ("created", "snapshot"),
    [
        (["created location local", "created target portal", "created objective "], backups_rows),
        (["created severity P1", "created scenario database-corruption", "created role "], incidents_rows),
        (["created test backup-verification", "created document botflow-dr-plan"], drills_rows),
    ],
    ids=["backups", "incidents", "drills"],
)
def test_the_shipped_plan_applies_twice_with_the_same_result(capsys, monkeypatch, tmp_path, created, snapshot):
    monkeypatch.setenv("BACKUP_LOCAL_DIR", str(tmp_path))
    first = apply(PLAN, capsys)
    for line in created:
        assert line in first, first
    before = snapshot()
    assert all(before.values()), before  # the plan made rows of every kind snapshotted
    assert apply(PLAN, capsys).strip().endswith(": nothing to change")
    assert snapshot() == before


def test_the_shipped_plan_makes_its_locations_and_targets(plan_applied):
    assert Location.objects.get(name="local").url == f"file://{plan_applied}/botflow"
    assert Location.objects.get(name="s3-daily").storage_class == "STANDARD_IA"
    assert Location.objects.get(name="s3-archive").retention_days == 365
    portal = Target.objects.get(name="portal")
    assert portal.engine == "portal" and [loc.name for loc in portal.locations.all()] == ["local"]
    assert Target.objects.get(name="database").source == "env:BOTFLOW_DATABASE_URL"


def test_a_changed_plan_updates_rows(tmp_path, capsys):
    path = write_plan(
        tmp_path,
        f"""
        [locations.a]
        url = "file://{tmp_path}/a"
        retention_days = 7
    """,
    )
    apply(path)
    path.write_text(path.read_text().replace("retention_days = 7", "retention_days = 30"))
    assert "updated location a: retention_days" in apply(path, capsys)
    assert Location.objects.get(name="a").retention_days == 30


def test_targets_take_the_configured_compression_unless_they_name_one(tmp_path, settings):
    settings.BACKUP_COMPRESSION = "gzip"
    path = write_plan(
        tmp_path,
        """
        [locations.a]
        url = "file:///x"
        [targets.plain]
        engine = "postgresql"
        source = "env:X"
        locations = ["a"]
        [targets.tuned]
        engine = "postgresql"
        source = "env:X"
        locations = ["a"]
        compression = "zstd"
        compression_level = 9
        """,
    )
    apply(path)

    plain, tuned = Target.objects.get(name="plain"), Target.objects.get(name="tuned")
    assert (plain.compression, plain.compression_level, plain.effective_compression_level) == ("gzip", None, 6)
    assert (tuned.compression, tuned.effective_compression_level) == ("zstd", 9)
    assert Target(name="admin-made", engine="postgresql").compression == "gzip"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[locations.a]\nurl = "file:///x"\nretension_days = 3\n', "[locations.a] key 'retension_days': unknown key"),
        ('[locations.a]\nurl = "ftp://x"\n', "[locations.a] key 'url': Location URL must start with"),
        ('[locations.a]\nurl = "file:///x"\nkeep_last = "seven"\n', "key 'keep_last': must be a whole number"),
        ('[locations.a]\nurl = "file:///x"\nkeep_last = 0\n', "key 'keep_last': must be at least 1"),
        ('[targets.t]\nengine = "mysql"\nsource = "x"\nlocations = []\n', "key 'engine': must be one of"),
        ('[targets.t]\nengine = "postgresql"\nsource = "env:X"\nlocations = ["nope"]\n', "unknown location(s): nope"),
        (
            '[locations.a]\nurl = "file:///x"\n[targets.t]\nengine = "postgresql"\n'
            'source = "postgresql://u:hunter2@h/db"\nlocations = ["a"]\n',
            "key 'source': holds a password; use env:NAME",
        ),
        ('[locations.a]\nurl = "${NOT_SET_ANYWHERE}"\n', "environment variable NOT_SET_ANYWHERE is not set"),
        (
            '[locations.a]\nurl = "file:///x"\n[targets.t]\nengine = "postgresql"\nsource = "env:X"\n'
            'locations = ["a"]\ncompression_level = 22\n',
            "key 'compression_level': zstd levels run from -7 to 19, got 22",
        ),
        (
            '[locations.a]\nurl = "file:///x"\n[targets.t]\nengine = "postgresql"\nsource = "env:X"\n'
            'locations = ["a"]\ncompression = "gzip"\ncompression_level = 0\n',
            "key 'compression_level': gzip levels run from 1 to 9, got 0",
        ),
        (
            '[locations.a]\nurl = "file:///x"\n[targets.t]\nengine = "postgresql"\nsource = "env:X"\n'
            'locations = ["a"]\ncompression_level = "max"\n',
            "key 'compression_level': must be a whole number",
        ),
        (
            '[locations.a]\nurl = "file:///x"\n[targets.t]\nengine = "postgresql"\nsource = "env:X"\n'
            'locations = ["a"]\nqueue = "db-eu,db-us"\n',
            "key 'queue': A queue name uses letters, digits",
        ),
        ("[widgets.a]\nx = 1\n", "unknown section [widgets]"),
        ("[locations.a\n", "not valid TOML"),
    ],
)
def test_plan_mistakes_name_file_table_and_key(tmp_path, body, message):
    path = write_plan(tmp_path, body)
    with pytest.raises(CommandError) as excinfo:
        apply(path)
    assert str(path) in str(excinfo.value)
    assert message in str(excinfo.value)
    assert "hunter2" not in str(excinfo.value)
    assert not Location.objects.exists() and not Target.objects.exists()


def test_missing_plan_file(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        apply(tmp_path / "missing.toml")


def test_a_target_names_its_queue_or_takes_the_shared_one(tmp_path, settings):
    path = write_plan(
        tmp_path,
        """
        [locations.a]
        url = "file:///x"
        [targets.near]
        engine = "postgresql"
        source = "env:X"
        locations = ["a"]
        queue = "db-eu"
        [targets.anywhere]
        engine = "postgresql"
        source = "env:X"
        locations = ["a"]
        """,
    )
    apply(path)

    assert Target.objects.get(name="near").queue == "db-eu"
    assert Target.objects.get(name="anywhere").queue == settings.CELERY_TASK_DEFAULT_QUEUE == "celery"
