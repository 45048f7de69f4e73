"""All of ClinicDesk's models; importing this package registers every table on the shared metadata."""

from app.models.audit import AuditChainHead, AuditEntry, SubjectKey
from app.models.base import BranchOwnedMixin, TimestampMixin, utcnow
from app.models.org import Branch, Organisation, user_branch
from app.models.patients import ConsentChange, Patient, PatientClinical
from app.models.security import RecoveryCode, UserSecurity

__all__ = [
    "AuditChainHead",
    "AuditEntry",
    "Branch",
    "BranchOwnedMixin",
    "ConsentChange",
    "Organisation",
    "Patient",
    "PatientClinical",
    "RecoveryCode",
    "SubjectKey",
    "TimestampMixin",
    "UserSecurity",
    "user_branch",
    "utcnow",
]
