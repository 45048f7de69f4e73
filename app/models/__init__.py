"""All of ClinicDesk's models; importing this package registers every table on the shared metadata."""

from app.models.base import BranchOwnedMixin, TimestampMixin, utcnow
from app.models.org import Branch, Organisation, user_branch

__all__ = [
    "Branch",
    "BranchOwnedMixin",
    "Organisation",
    "TimestampMixin",
    "user_branch",
    "utcnow",
]
