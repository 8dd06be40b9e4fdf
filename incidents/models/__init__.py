"""Incident response models, one module per sub-domain; every model is imported here so Django finds it
(and ``from incidents.models import X`` keeps working, in code and in migrations)."""

from .catalog import (
    PUBLIC_IMPACTS,
    ChecklistItemTemplate,
    Contact,
    ResponseRole,
    Scenario,
    ScenarioStep,
    ServiceProvider,
    Severity,
)
from .incident import (
    COMMANDER_ROLE,
    RECOVERY_VERIFIED,
    STATUS_PAGE_UPDATED,
    Incident,
    IncidentChecklistItem,
    IncidentStep,
    RoleAssignment,
    check_evidence,
)
from .status_page import StatusComponent, StatusUpdate
from .switches import PortalSwitch
from .timeline import IncidentJob, TimelineEntry

__all__ = [
    "PUBLIC_IMPACTS",
    "Severity",
    "Scenario",
    "ScenarioStep",
    "ChecklistItemTemplate",
    "ResponseRole",
    "Contact",
    "ServiceProvider",
    "Incident",
    "RECOVERY_VERIFIED",
    "STATUS_PAGE_UPDATED",
    "COMMANDER_ROLE",
    "check_evidence",
    "IncidentStep",
    "IncidentChecklistItem",
    "RoleAssignment",
    "TimelineEntry",
    "IncidentJob",
    "StatusComponent",
    "StatusUpdate",
    "PortalSwitch",
]
