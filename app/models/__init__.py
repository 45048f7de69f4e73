"""All of ClinicDesk's models; importing this package registers every table on the shared metadata."""

from app.models.audit import AuditChainHead, AuditEntry, SubjectKey
from app.models.base import BranchOwnedMixin, TimestampMixin, utcnow
from app.models.consultations import Consultation, Prescription, PrescriptionItem
from app.models.lab import LabOrder, LabReferenceRange, LabResult, LabResultAmendment, LabTest
from app.models.leads import (
    Communication,
    FollowUp,
    Lead,
    LeadConsentChange,
    LeadStageChange,
    Notification,
)
from app.models.org import Branch, Organisation, user_branch
from app.models.patients import ConsentChange, Patient, PatientClinical
from app.models.scheduling import (
    Appointment,
    AppointmentChange,
    DoctorLeave,
    Holiday,
    Service,
    StaffProfile,
    WorkingHours,
)
from app.models.security import RecoveryCode, UserSecurity

__all__ = [
    "Appointment",
    "AppointmentChange",
    "AuditChainHead",
    "AuditEntry",
    "Branch",
    "BranchOwnedMixin",
    "Communication",
    "ConsentChange",
    "Consultation",
    "DoctorLeave",
    "FollowUp",
    "Holiday",
    "LabOrder",
    "LabReferenceRange",
    "LabResult",
    "LabResultAmendment",
    "LabTest",
    "Lead",
    "LeadConsentChange",
    "LeadStageChange",
    "Notification",
    "Organisation",
    "Patient",
    "PatientClinical",
    "Prescription",
    "PrescriptionItem",
    "RecoveryCode",
    "Service",
    "StaffProfile",
    "SubjectKey",
    "TimestampMixin",
    "UserSecurity",
    "WorkingHours",
    "user_branch",
    "utcnow",
]
