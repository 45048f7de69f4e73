"""All of ClinicDesk's models; importing this package registers every table on the shared metadata."""

from app.models.audit import AuditChainHead, AuditEntry, SubjectKey
from app.models.billing import (
    DocumentSequence,
    Invoice,
    InvoiceLine,
    Payment,
    PriceListEntry,
    TaxRate,
)
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
from app.models.pharmacy import (
    Dispensing,
    DispensingLine,
    GoodsReceipt,
    PharmacyItem,
    ReorderLevel,
    StockBatch,
    StockMovement,
    Supplier,
)
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
    "Dispensing",
    "DispensingLine",
    "DoctorLeave",
    "DocumentSequence",
    "FollowUp",
    "GoodsReceipt",
    "Holiday",
    "Invoice",
    "InvoiceLine",
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
    "Payment",
    "PharmacyItem",
    "Prescription",
    "PrescriptionItem",
    "PriceListEntry",
    "RecoveryCode",
    "ReorderLevel",
    "Service",
    "StaffProfile",
    "StockBatch",
    "StockMovement",
    "SubjectKey",
    "Supplier",
    "TaxRate",
    "TimestampMixin",
    "UserSecurity",
    "WorkingHours",
    "user_branch",
    "utcnow",
]
