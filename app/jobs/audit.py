"""Jobs that keep the audit trail: linking new entries into the hash chain."""

from __future__ import annotations

from app.services.audit_chain import seal_pending


def seal_audit_chain() -> int:
    """Seal the audit entries committed since the last run; return how many were sealed.

    Safe to run twice at once: sealers take turns on the chain head's lock.
    """
    return seal_pending()
