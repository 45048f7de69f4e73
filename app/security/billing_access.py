"""Which kinds of billing document the signed-in user may see.

Invoices and credit notes belong to the front desk and the accountant; the pharmacy's bills to the
pharmacist. Lists, pages, prints, payments and APIs over ``Invoice`` all ask this one function.
"""

from __future__ import annotations

from flask import current_app

from app.security.policy import INVOICES, PHARMACY_BILLS, READ

#: The document kinds each view's READ permission opens.
KINDS_BY_VIEW = {
    INVOICES: frozenset({"invoice", "credit_note"}),
    PHARMACY_BILLS: frozenset({"pharmacy_bill"}),
}


def visible_invoice_kinds() -> frozenset[str]:
    """The ``Invoice.kind`` values the current user may read (empty for none)."""
    sm = current_app.appbuilder.sm
    kinds: frozenset[str] = frozenset()
    for view, view_kinds in KINDS_BY_VIEW.items():
        if sm.has_access(READ, view):
            kinds |= view_kinds
    return kinds
