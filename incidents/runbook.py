"""Runbook commands rendered from the data: a scenario step's command names the scenario's own targets
and their locations, so the plan never goes stale when a target or location is renamed or added.

A step's ``command`` (``[[scenarios.KEY.steps]]`` in the plan file) may use these placeholders; a line
holding one is repeated for each of the scenario's targets (and, with a location placeholder, for each
location of that target):

- ``{target}``: the target's name (``manage.py listbackups --target {target}``);
- ``{engine}``: its engine (``postgresql``, ``files``, ``env``, ...);
- ``{location}``: the name of a location holding its copies (``manage.py restore RUN_ID --location {location}``);
- ``{location_url}``: that location's URL (a bucket and prefix or a folder: no credential is ever in it);
- ``{copies}``: the standard-tools command that lists the target's copies in that location, for the
  no-portal path of RECOVERY.md (``ls`` for a folder, ``aws s3 ls`` for a bucket).

Other braces (shell ``${VAR}``, awk's ``{print $4}``) are left alone.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

PLACEHOLDERS = ("target", "engine", "location", "location_url", "copies")
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
_LOCATION_PLACEHOLDERS = {"location", "location_url", "copies"}
# Anything that looks like a placeholder but is not one: a typo in the plan file ("{targets}").
_WORD_IN_BRACES = re.compile(r"(?<![$%])\{([a-z_]+)\}")


def unknown_placeholders(command: str) -> list[str]:
    """Placeholders the renderer would not fill, for the plan loader to refuse by name."""
    return sorted({name for name in _WORD_IN_BRACES.findall(command) if name not in PLACEHOLDERS})


def copies_command(target: str, url: str) -> str:
    """The no-portal listing of a target's copies in one location (RECOVERY.md, "What a location holds")."""
    parts = urlsplit(url)
    if parts.scheme == "s3":
        prefix = parts.path.strip("/")
        where = f"s3://{parts.netloc}/{prefix + '/' if prefix else ''}{target}/"
        return f"aws s3 ls --recursive {where} | grep '\\.age$' | tail -n 5"
    return f"ls -lt {parts.path.rstrip('/')}/{target}/*/*/*/*.age | head -n 5"


def render(command: str, targets) -> str:
    """Fill the placeholders of ``command`` from ``targets`` (Target rows, their locations prefetched or not)."""
    if not command or not _PLACEHOLDER.search(command):
        return command
    targets = sorted(targets, key=lambda t: t.name)
    out: list[str] = []
    for line in command.splitlines():
        names = set(_PLACEHOLDER.findall(line))
        if not names:
            out.append(line)
            continue
        if not targets:
            out.append("# (this scenario names no backed-up targets: nothing to fill in here)")
            continue
        for target in targets:
            values = {"target": target.name, "engine": target.engine}
            if not names & _LOCATION_PLACEHOLDERS:
                out.append(_fill(line, values))
                continue
            locations = sorted(target.locations.all(), key=lambda loc: loc.name)
            if not locations:
                out.append(f"# (target {target.name} has no location)")
            for location in locations:
                out.append(
                    _fill(
                        line,
                        {
                            **values,
                            "location": location.name,
                            "location_url": location.url,
                            "copies": copies_command(target.name, location.url),
                        },
                    )
                )
    return "\n".join(out)


def _fill(line: str, values: dict[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], line)
