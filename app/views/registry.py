"""Every screen that shows records, with its model: the list the stored-XSS test walks.

A new record screen adds one line here: its model and the endpoints of its list, detail and,
when it has one, print page. tests/test_web_hardening.py writes a record with a script payload
in every text column for each screen listed and checks that each page shows it escaped; it also
fails when a model view of the app is missing from this list. ``fixed`` names text columns the
test must not fill with the payload, with the value to write instead: codes the database checks
and values that put the record on that screen (e.g. the access log shows ``kind="access"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flask_appbuilder.security.sqla.models import Group, Role, User

from app.models.audit import AuditEntry
from app.models.consultations import Consultation, Prescription
from app.models.lab import LabOrder, LabTest
from app.models.leads import Communication, FollowUp, Lead
from app.models.org import Branch, Organisation
from app.models.patients import Patient
from app.models.scheduling import (
    Appointment,
    DoctorLeave,
    Holiday,
    Service,
    StaffProfile,
    WorkingHours,
)


@dataclass(frozen=True)
class RecordScreen:
    """A model and the endpoints that render its records (``View.method``)."""

    model: type
    list_endpoint: str
    show_endpoint: str
    print_endpoint: str | None = None
    fixed: Mapping[str, Any] = field(default_factory=dict)

    @property
    def endpoints(self) -> tuple[str, ...]:
        return tuple(
            e for e in (self.list_endpoint, self.show_endpoint, self.print_endpoint) if e
        )


RECORD_SCREENS: tuple[RecordScreen, ...] = (
    RecordScreen(Branch, "BranchModelView.list", "BranchModelView.show"),
    RecordScreen(
        Patient, "PatientModelView.list", "PatientModelView.show",
        fixed={"sex": "female", "mrn": "MRN-XSS", "phone": "+918041234567",
               "emergency_contact_phone": "+918041234567", "phone_digits": "918041234567"},
    ),
    RecordScreen(Organisation, "OrganisationModelView.list", "OrganisationModelView.show"),
    RecordScreen(User, "ClinicUserModelView.list", "ClinicUserModelView.show"),
    RecordScreen(User, "StaffModelView.list", "StaffModelView.show"),
    RecordScreen(Role, "ClinicRoleModelView.list", "ClinicRoleModelView.show"),
    RecordScreen(Group, "ClinicGroupModelView.list", "ClinicGroupModelView.show"),
    RecordScreen(
        AuditEntry, "AuditLogModelView.list", "AuditLogModelView.show", fixed={"kind": "change"}
    ),
    RecordScreen(
        AuditEntry, "AccessLogModelView.list", "AccessLogModelView.show", fixed={"kind": "access"}
    ),
    RecordScreen(Service, "ServiceModelView.list", "ServiceModelView.show"),
    RecordScreen(
        StaffProfile, "DoctorProfileModelView.list", "DoctorProfileModelView.show",
        fixed={"calendar_colour": "#2f6fde"},
    ),
    RecordScreen(WorkingHours, "WorkingHoursModelView.list", "WorkingHoursModelView.show"),
    RecordScreen(DoctorLeave, "DoctorLeaveModelView.list", "DoctorLeaveModelView.show"),
    RecordScreen(Holiday, "HolidayModelView.list", "HolidayModelView.show"),
    RecordScreen(
        Appointment, "AppointmentModelView.list", "AppointmentModelView.show",
        # Cancelled: the copy may sit at its source's time (PostgreSQL refuses a double booking).
        fixed={"status": "cancelled"},
    ),
    RecordScreen(LabTest, "LabTestModelView.list", "LabTestModelView.show"),
    RecordScreen(
        LabOrder, "LabOrderModelView.list", "LabOrderModelView.show",
        print_endpoint="LabOrderModelView.print_report",
        fixed={"status": "resulted", "priority": "urgent"},
    ),
    RecordScreen(
        Consultation, "ConsultationModelView.list", "ConsultationModelView.show",
        fixed={"temperature_unit": "F", "weight_unit": "lb", "height_unit": "in"},
    ),
    RecordScreen(
        Prescription, "PrescriptionModelView.list", "PrescriptionModelView.show",
        print_endpoint="PrescriptionModelView.print_view", fixed={"status": "active"},
    ),
    RecordScreen(
        Lead, "LeadModelView.list", "LeadModelView.show",
        fixed={"stage": "new", "source": "phone", "lost_reason": None, "heard_about": None,
               "phone": "+918041234567", "phone_digits": "918041234567"},
    ),
    RecordScreen(
        Communication, "CommunicationModelView.list", "CommunicationModelView.show",
        fixed={"channel": "call", "direction": "out", "outcome": "reached"},
    ),
    RecordScreen(FollowUp, "FollowUpModelView.list", "FollowUpModelView.show"),
)
