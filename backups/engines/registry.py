"""The engine registry: every kind of source the portal backs up, one ``Engine`` instance per name.

``backups/engines/__init__.py`` registers the built-in engines; a new engine is one module with an
``Engine`` subclass and one ``register()`` line there (see docs/adding-an-engine.md). Nothing else in the
portal names an engine: the services, the plan, the admin and the drills read the attributes.
"""

from __future__ import annotations

from .base import SourceError
from .engine import Engine
from .restore_base import Recovery, Restorer

# The live mapping, name -> instance, in registration order (which is also the lookup order by format).
ENGINES: dict[str, Engine] = {}


def register(engine_cls: type[Engine]) -> type[Engine]:
    """Add an engine (a class; it is instantiated once). Returns the class, so it also works as a decorator."""
    engine = engine_cls()
    if not engine.name or not engine.label:
        raise ValueError(f"{engine_cls.__name__} must set a name and a label")
    if len(engine.name) > 20:
        raise ValueError(f"engine name {engine.name!r} is longer than Target.engine's 20 characters")
    if engine.name in ENGINES and type(ENGINES[engine.name]) is not engine_cls:
        raise ValueError(f"engine {engine.name!r} is already registered by {type(ENGINES[engine.name]).__name__}")
    ENGINES[engine.name] = engine
    return engine_cls


def unregister(name: str) -> None:
    """Remove an engine (for tests that register their own)."""
    ENGINES.pop(name, None)


def get(name: str) -> Engine:
    """The engine called ``name``, or SourceError naming the known ones."""
    try:
        return ENGINES[name]
    except KeyError:
        raise SourceError(f"unknown engine {name!r}; known: {', '.join(sorted(ENGINES))}") from None


def find(name: str) -> Engine | None:
    """The engine called ``name``, or None (e.g. a run catalogued from another portal's manifest)."""
    return ENGINES.get(name)


def all() -> list[Engine]:  # noqa: A001 (the registry's own vocabulary: engines.all())
    """Every registered engine, in registration order."""
    return list(ENGINES.values())


def names(**flags: bool) -> list[str]:
    """Names of the engines whose attributes equal ``flags``, e.g. ``names(is_database=True)``."""
    return [e.name for e in ENGINES.values() if all_match(e, flags)]


def all_match(engine: Engine, flags: dict[str, bool]) -> bool:
    return not any(getattr(engine, key) != value for key, value in flags.items())


def choices() -> list[tuple[str, str]]:
    """(name, label) of every engine, by name: Target.engine's choices and the admin's menu."""
    return [(e.name, e.label) for e in sorted(ENGINES.values(), key=lambda e: e.name)]


def for_format(fmt: str) -> Engine | None:
    """The first engine whose backups have format ``fmt`` and that can restore them."""
    for engine in ENGINES.values():
        if engine.restorer is not None and engine.format == fmt:
            return engine
    return None


def restorer_for(fmt: str, destination: str, *, endpoint_url: str = "", scratch_prefix: str | None = None) -> Restorer:
    """The restorer for a backup format; ``endpoint_url`` goes only to engines that reach S3."""
    engine = for_format(fmt)
    if engine is None:
        raise SourceError(f"no restorer for backup format {fmt!r}")
    return engine.make_restorer(destination, scratch_prefix=scratch_prefix, endpoint_url=endpoint_url)


def recover_restore(restore, *, endpoint_url: str = "") -> Recovery:
    """Clean up after a restore whose process died, through the engine of its format (``Engine.recover_restore``).

    Any engine of that format will do, also one without a restorer (pgBackRest restores by itself).
    """
    engine = for_format(restore.format) or next((e for e in ENGINES.values() if e.format == restore.format), None)
    if engine is None:
        raise SourceError(f"no engine knows backup format {restore.format!r}")
    return engine.recover_restore(restore, endpoint_url=endpoint_url)
