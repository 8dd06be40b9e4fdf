"""Admin for incident response, one module per sub-domain (catalogue, incidents and their inlines, status page,
notifications). Everything is re-exported here, so ``from incidents.admin import X`` keeps working."""

from .catalog import (
    ChecklistItemTemplateAdmin,
    ContactAdmin,
    ResponseRoleAdmin,
    ScenarioAdmin,
    ScenarioStepInline,
    ServiceProviderAdmin,
    SeverityAdmin,
)
from .incident import RTO_STATE_CLASSES, IncidentAdmin, IncidentForm, ReportFilter
from .inlines import (
    NEXT_CHECKLIST_ITEMS,
    AssignRoleForm,
    AssignRoleFormSet,
    AssignRoleInline,
    ChecklistFormSet,
    ChecklistInline,
    ChecklistItemForm,
    IncidentFormSet,
    RoleHistoryInline,
    StepForm,
    StepFormSet,
    StepInline,
)
from .status_page import StatusComponentAdmin, StatusUpdateAdmin

__all__ = [
    "SeverityAdmin",
    "ScenarioStepInline",
    "ScenarioAdmin",
    "ChecklistItemTemplateAdmin",
    "ResponseRoleAdmin",
    "ContactAdmin",
    "ServiceProviderAdmin",
    "StatusComponentAdmin",
    "StatusUpdateAdmin",
    "IncidentFormSet",
    "RoleHistoryInline",
    "AssignRoleFormSet",
    "AssignRoleForm",
    "AssignRoleInline",
    "ChecklistFormSet",
    "ChecklistItemForm",
    "ChecklistInline",
    "NEXT_CHECKLIST_ITEMS",
    "StepFormSet",
    "StepForm",
    "StepInline",
    "RTO_STATE_CLASSES",
    "IncidentForm",
    "ReportFilter",
    "IncidentAdmin",
]
