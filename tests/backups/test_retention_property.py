"""Retention as a property: random histories pruned at random dates.

Several targets share two file:// locations; runs are succeeded, partial or failed with
some copies stored, verified or not, of random ages; each location has a random
keep_last / retention_days. After prune, for every history:
- a target that had a stored copy still has one;
- the newest verified run (else the newest run with a stored copy) of each target keeps every copy;
- the copies kept are exactly those a rule explains (keep_last, retention_days, that protection),
  and the files in the locations (artifact, sidecar, index) match the catalogue.
Catalogue rows and tiny files only, so it fits in the suite.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backups.models import Artifact, BackupRun, Location, Target, Verification
from backups.services import retention

pytestmark = pytest.mark.django_db

LOCATIONS = ("near", "far")

run_strategy = st.fixed_dictionaries(
    {
        "target": st.integers(0, 2),
        "status": st.sampled_from(["succeeded", "partial", "failed"]),
        "verified": st.booleans(),
        # Which of the two locations hold a copy; succeeded runs hold one everywhere.
        "stored_in": st.sets(st.sampled_from(LOCATIONS)),
    }
)
policy = st.tuples(st.none() | st.integers(0, 4), st.none() | st.integers(0, 20))

history_strategy = st.fixed_dictionaries(
    {
        "runs": st.lists(run_strategy, min_size=1, max_size=12),
        # Distinct ages in minutes, so "newest" is never a tie.
        "ages": st.lists(st.integers(0, 40 * 24 * 60), min_size=12, max_size=12, unique=True),
        "policies": st.tuples(policy, policy),
        "prune_in_days": st.floats(0, 60),
    }
)


def make_history(data: dict, root: Path, now):
    Artifact.objects.all().delete()
    Verification.objects.all().delete()
    BackupRun.objects.all().delete()
    Target.objects.all().delete()
    Location.objects.all().delete()
    locations = {}
    for name, (keep_last, retention_days) in zip(LOCATIONS, data["policies"], strict=True):
        locations[name] = Location.objects.create(
            name=name, url=f"file://{root / name}", keep_last=keep_last, retention_days=retention_days
        )
    targets = []
    for i in range(3):
        target = Target.objects.create(name=f"t{i}", engine="postgresql", source="postgresql://x/y")
        target.locations.set(locations.values())
        targets.append(target)
    for spec, age in zip(data["runs"], data["ages"], strict=False):
        when = now - timedelta(minutes=age)
        stored_in = set(LOCATIONS) if spec["status"] == "succeeded" else spec["stored_in"]
        if spec["status"] == "partial" and not stored_in:
            stored_in = {LOCATIONS[0]}  # partial means at least one copy landed
        run = BackupRun.objects.create(
            target=targets[spec["target"]],
            status=spec["status"],
            sha256="0" * 64,
            format="postgresql-sql",
            compression="zstd",
            queued_at=when,
            started_at=when,
            finished_at=when,
        )
        if spec["verified"]:
            Verification.objects.create(run=run, kind="integrity", status="passed")
        for name in sorted(stored_in):
            key = f"{run.target.name}/r{run.pk}.age"
            path = root / name / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x")
            path.with_name(path.name + ".json").write_bytes(b"{}")
            Artifact.objects.create(
                run=run,
                location=locations[name],
                key=key,
                url=f"file://{path}",
                size=1,
                sha256="0" * 64,
                created_at=when,
            )


def expected_protection() -> dict[int, int]:
    """target id → the run that must keep every copy: newest verified with a copy, else newest with a copy."""
    chosen: dict[int, int] = {}
    for target in Target.objects.all():
        with_copy = [
            run
            for run in BackupRun.objects.filter(target=target).order_by("-started_at")
            if run.artifacts.filter(status="stored").exists()
        ]
        verified = [run for run in with_copy if run.verifications.filter(status="passed").exists()]
        if with_copy:
            chosen[target.pk] = (verified or with_copy)[0].pk
    return chosen


def explained(copy: Artifact, as_of, protected: set[int]) -> bool:
    location = copy.location
    if location.keep_last is None and location.retention_days is None:
        return True
    if copy.run_id in protected:
        return True
    newer = Artifact.objects.filter(
        location=location, run__target=copy.run.target, status="stored", created_at__gt=copy.created_at
    ).count()
    if location.keep_last is not None and newer < location.keep_last:
        return True
    return location.retention_days is not None and copy.created_at >= as_of - timedelta(days=location.retention_days)


@settings(max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(history_strategy)
def test_prune_never_strands_a_target_and_keeps_only_what_a_rule_explains(data):
    root = Path(tempfile.mkdtemp(prefix="prop-retention-"))
    try:
        now = timezone.now()
        make_history(data, root, now)
        as_of = now + timedelta(days=data["prune_in_days"])
        protected = expected_protection()
        had_copy = set(protected)
        before = list(Artifact.objects.filter(status="stored").select_related("location", "run__target"))
        should_keep = {copy.pk for copy in before if explained(copy, as_of, set(protected.values()))}

        retention.prune(as_of)

        kept = set(Artifact.objects.filter(status="stored").values_list("pk", flat=True))
        assert kept == should_keep
        for target_id in had_copy:
            assert Artifact.objects.filter(run__target_id=target_id, status="stored").exists()
        for run_id in protected.values():
            assert not Artifact.objects.filter(run_id=run_id, status="deleted").exists()
        for copy in before:
            path = root / copy.location.name / copy.key
            sidecar = path.with_name(path.name + ".json")
            assert path.exists() == sidecar.exists() == (copy.pk in kept), copy.key
        for location in Location.objects.all():
            for target in Target.objects.all():
                index = root / location.name / target.name / "manifest.json"
                if index.exists():  # rewritten wherever prune deleted something
                    listed = {entry["run_id"] for entry in json.loads(index.read_text())["runs"]}
                    stored = Artifact.objects.filter(location=location, run__target=target, status="stored")
                    assert listed == set(stored.values_list("run_id", flat=True))
    finally:
        shutil.rmtree(root, ignore_errors=True)
