"""The events alerts can be sent for: a registry each app fills in from its AppConfig.ready().

alerts sits below the apps that raise events, so it cannot list them; each app registers its own
(backups its backup/objective/queue events, incidents its incident events, ...). A Channel's event
selection and the plan's ``[channels.*] events`` are checked against this registry.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    name: str
    label: str
    description: str = ""


_EVENTS: dict[str, Event] = {}


def register(name: str, label: str, description: str = "") -> Event:
    """Declare an event; registering the same name again with another label is a programming error."""
    event = Event(name, label, description)
    known = _EVENTS.get(name)
    if known is not None and known != event:
        raise ValueError(f"alert event {name!r} is already registered as {known.label!r}")
    _EVENTS[name] = event
    return event


def registered() -> list[Event]:
    """Every registered event, in registration order."""
    return list(_EVENTS.values())


def names() -> set[str]:
    return set(_EVENTS)


def choices() -> list[tuple[str, str]]:
    return [(e.name, e.label) for e in _EVENTS.values()]


def unknown(selected) -> list[str]:
    """The names in ``selected`` that no app registered, sorted."""
    return sorted(set(selected) - set(_EVENTS))
