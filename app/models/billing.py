"""Money: tax rates, branch price lists, invoices (and pharmacy bills, credit notes), payments.

Every amount is ``Numeric`` in the branch's currency, never a float. An invoice is a draft until it
is issued; issuing gives it the next number of its branch, financial year and kind, and from then on
its lines and totals never change: a correction is a credit note, a mistake is a void.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from flask_appbuilder import Model
from flask_appbuilder.security.sqla.models import User
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import BranchOwnedMixin, TimestampMixin, utcnow

if TYPE_CHECKING:
    from app.models.lab import LabTest
    from app.models.patients import Patient
    from app.models.pharmacy import PharmacyItem
    from app.models.scheduling import Service

#: Amounts: up to 9,999,999,999.99 in the branch's currency.
Money = Numeric(12, 2)
#: Tax rates as a percentage with up to three decimals (e.g. 18.000, 2.500).
Percent = Numeric(6, 3)
#: Quantities on invoice lines (a service is 1, a strip of tablets may be 1.5).
Quantity = Numeric(10, 2)

INVOICE_KINDS = ("invoice", "pharmacy_bill", "credit_note")
INVOICE_STATUSES = ("draft", "issued", "partly_paid", "paid", "void")
LINE_KINDS = ("service", "lab_test", "medicine", "item")
PAYMENT_METHODS = ("cash", "card", "upi", "bank_transfer", "insurance", "other")


class TaxRate(TimestampMixin, Model):
    """A tax slab the organisation charges (e.g. "GST 12 %"), shared by every branch."""

    __tablename__ = "tax_rate"
    __table_args__ = (CheckConstraint("rate >= 0 AND rate < 100", name="ck_tax_rate_rate"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(60), unique=True, nullable=False)
    rate: Mapped[Decimal] = mapped_column(Percent, nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)

    def __repr__(self) -> str:
        return self.name


class PriceListEntry(BranchOwnedMixin, TimestampMixin, Model):
    """What one branch charges for a service or a lab test, and the tax on it."""

    __tablename__ = "price_list_entry"
    __table_args__ = (
        CheckConstraint(
            "(service_id IS NULL) <> (lab_test_id IS NULL)", name="ck_price_list_entry_target"
        ),
        CheckConstraint("price >= 0", name="ck_price_list_entry_price"),
        CheckConstraint(
            "duration_min IS NULL OR duration_min BETWEEN 5 AND 480",
            name="ck_price_list_entry_duration",
        ),
        UniqueConstraint("branch_id", "service_id", name="uq_price_list_entry_service"),
        UniqueConstraint("branch_id", "lab_test_id", name="uq_price_list_entry_lab_test"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int | None] = mapped_column(
        ForeignKey("service.id", ondelete="RESTRICT"), index=True
    )
    lab_test_id: Mapped[int | None] = mapped_column(
        ForeignKey("lab_test.id", ondelete="RESTRICT"), index=True
    )
    price: Mapped[Decimal] = mapped_column(Money, nullable=False)
    tax_rate_id: Mapped[int | None] = mapped_column(ForeignKey("tax_rate.id", ondelete="RESTRICT"))
    # True: the price already includes the tax (what the patient pays); False: tax is added.
    tax_inclusive: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # This branch's own duration for the service, when it differs from the catalogue's.
    duration_min: Mapped[int | None] = mapped_column(Integer)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)

    service: Mapped["Service | None"] = relationship("Service")
    lab_test: Mapped["LabTest | None"] = relationship("LabTest")
    tax_rate: Mapped[TaxRate | None] = relationship(TaxRate)

    def __repr__(self) -> str:
        return str(self.service or self.lab_test or self.id)


class DocumentSequence(Model):
    """The last number given to one kind of document of one branch in one financial year.

    Issuing increments it inside the issuing transaction, so a rolled-back issue gives its
    number back: numbers have no gaps and, the row being locked by the update, no duplicates.
    """

    __tablename__ = "document_sequence"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('invoice', 'pharmacy_bill', 'credit_note', 'receipt')",
            name="ck_document_sequence_kind",
        ),
        CheckConstraint("last_number >= 0", name="ck_document_sequence_last_number"),
    )

    branch_id: Mapped[int] = mapped_column(
        ForeignKey("branch.id", ondelete="RESTRICT"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    # The calendar year the financial year starts in (FY 2026-27 is 2026).
    financial_year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_number: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class Invoice(BranchOwnedMixin, TimestampMixin, Model):
    """An invoice, a pharmacy bill or a credit note: who pays what, for what, and how it stands."""

    __tablename__ = "invoice"
    __audit_subject__ = ("patient", "patient_id")
    __table_args__ = (
        CheckConstraint(
            "kind IN ('invoice', 'pharmacy_bill', 'credit_note')", name="ck_invoice_kind"
        ),
        CheckConstraint(
            "status IN ('draft', 'issued', 'partly_paid', 'paid', 'void')",
            name="ck_invoice_status",
        ),
        # Only a pharmacy's over-the-counter sale may have no patient on file.
        CheckConstraint(
            "patient_id IS NOT NULL OR kind = 'pharmacy_bill'", name="ck_invoice_patient"
        ),
        # Drafts have no number; everything issued has one (a discarded draft is void, unnumbered).
        CheckConstraint("status <> 'draft' OR number IS NULL", name="ck_invoice_draft_unnumbered"),
        CheckConstraint(
            "status IN ('draft', 'void') OR number IS NOT NULL", name="ck_invoice_issued_numbered"
        ),
        CheckConstraint(
            "status <> 'void' OR (void_reason IS NOT NULL AND length(void_reason) > 0)",
            name="ck_invoice_void_reason",
        ),
        CheckConstraint(
            "(kind = 'credit_note') = (credit_note_for_id IS NOT NULL)",
            name="ck_invoice_credit_note_for",
        ),
        CheckConstraint("discount >= 0", name="ck_invoice_discount"),
        CheckConstraint("subtotal >= 0 AND tax_total >= 0 AND total >= 0", name="ck_invoice_totals"),
        CheckConstraint("amount_paid >= 0 AND amount_paid <= total", name="ck_invoice_amount_paid"),
        CheckConstraint(
            "amount_credited >= 0 AND amount_credited <= total", name="ck_invoice_amount_credited"
        ),
        Index("ix_invoice_branch_date", "branch_id", "invoice_date"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False, default="invoice")
    # "INV-DT-2026-0001": kind prefix, branch code, financial year, sequence. None while draft.
    number: Mapped[str | None] = mapped_column(String(40), unique=True)
    status: Mapped[str] = mapped_column(String(12), nullable=False, default="draft", index=True)
    patient_id: Mapped[int | None] = mapped_column(
        ForeignKey("patient.id", ondelete="RESTRICT"), index=True
    )
    # An over-the-counter buyer who is not a registered patient.
    customer_name: Mapped[str | None] = mapped_column(String(120))
    invoice_date: Mapped[date] = mapped_column(Date, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    # A discount on the whole invoice, spread over its lines before tax.
    discount: Mapped[Decimal] = mapped_column(Money, nullable=False, default=Decimal("0"))
    # Taxable amount after discounts, tax, and what is payable; set by the billing service.
    subtotal: Mapped[Decimal] = mapped_column(Money, nullable=False, default=Decimal("0"))
    tax_total: Mapped[Decimal] = mapped_column(Money, nullable=False, default=Decimal("0"))
    total: Mapped[Decimal] = mapped_column(Money, nullable=False, default=Decimal("0"))
    # Payments less refunds.
    amount_paid: Mapped[Decimal] = mapped_column(Money, nullable=False, default=Decimal("0"))
    # The totals of the issued credit notes against it.
    amount_credited: Mapped[Decimal] = mapped_column(Money, nullable=False, default=Decimal("0"))
    notes: Mapped[str | None] = mapped_column(Text)
    # Where it came from, when it was made in one step from a visit or an order.
    appointment_id: Mapped[int | None] = mapped_column(
        ForeignKey("appointment.id", ondelete="RESTRICT"), index=True
    )
    consultation_id: Mapped[int | None] = mapped_column(
        ForeignKey("consultation.id", ondelete="RESTRICT"), index=True
    )
    lab_order_id: Mapped[int | None] = mapped_column(
        ForeignKey("lab_order.id", ondelete="RESTRICT"), index=True
    )
    # The invoice a credit note corrects.
    credit_note_for_id: Mapped[int | None] = mapped_column(
        ForeignKey("invoice.id", ondelete="RESTRICT"), index=True
    )
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="SET NULL"))
    issued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    issued_by_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="SET NULL"))
    void_reason: Mapped[str | None] = mapped_column(String(300))
    voided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    voided_by_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="SET NULL"))

    patient: Mapped["Patient | None"] = relationship("Patient")
    lines: Mapped[list["InvoiceLine"]] = relationship(
        back_populates="invoice", order_by="InvoiceLine.position", cascade="all, delete-orphan"
    )
    payments: Mapped[list["Payment"]] = relationship(
        back_populates="invoice", order_by="Payment.received_at"
    )
    credit_note_for: Mapped["Invoice | None"] = relationship(
        "Invoice", remote_side=[id], back_populates="credit_notes"
    )
    credit_notes: Mapped[list["Invoice"]] = relationship(
        "Invoice", back_populates="credit_note_for", order_by="Invoice.id"
    )
    created_by: Mapped[User | None] = relationship(User, foreign_keys=[created_by_id])
    issued_by: Mapped[User | None] = relationship(User, foreign_keys=[issued_by_id])
    voided_by: Mapped[User | None] = relationship(User, foreign_keys=[voided_by_id])

    @property
    def balance(self) -> Decimal:
        """What is still owed on it: negative when the patient is owed a refund (paid, then
        credited); zero for drafts, voided documents and credit notes themselves."""
        if self.status in ("draft", "void") or self.kind == "credit_note":
            return Decimal("0.00")
        return self.total - self.amount_paid - self.amount_credited

    def __repr__(self) -> str:
        return self.number or f"draft {self.id}"


class InvoiceLine(Model):
    """One line of an invoice: what, how many, at what price, less what discount, with what tax."""

    __tablename__ = "invoice_line"
    __audit_subject__ = ("patient", "patient_id")
    __table_args__ = (
        CheckConstraint(
            "kind IN ('service', 'lab_test', 'medicine', 'item')", name="ck_invoice_line_kind"
        ),
        CheckConstraint("quantity > 0", name="ck_invoice_line_quantity"),
        CheckConstraint("unit_price >= 0", name="ck_invoice_line_unit_price"),
        CheckConstraint("discount >= 0", name="ck_invoice_line_discount"),
        CheckConstraint("tax_rate >= 0 AND tax_rate < 100", name="ck_invoice_line_tax_rate"),
        CheckConstraint("net_amount >= 0 AND tax_amount >= 0", name="ck_invoice_line_amounts"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(
        ForeignKey("invoice.id", ondelete="CASCADE"), index=True, nullable=False
    )
    # Copied from the invoice so the audit trail can name the patient of a changed line.
    patient_id: Mapped[int | None] = mapped_column(
        ForeignKey("patient.id", ondelete="RESTRICT"), index=True
    )
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    kind: Mapped[str] = mapped_column(String(10), nullable=False, default="item")
    service_id: Mapped[int | None] = mapped_column(ForeignKey("service.id", ondelete="RESTRICT"))
    lab_test_id: Mapped[int | None] = mapped_column(ForeignKey("lab_test.id", ondelete="RESTRICT"))
    pharmacy_item_id: Mapped[int | None] = mapped_column(
        ForeignKey("pharmacy_item.id", ondelete="RESTRICT")
    )
    description: Mapped[str] = mapped_column(String(200), nullable=False)
    quantity: Mapped[Decimal] = mapped_column(Quantity, nullable=False, default=Decimal("1"))
    unit_price: Mapped[Decimal] = mapped_column(Money, nullable=False)
    # A discount on this line, as an amount off quantity × unit price.
    discount: Mapped[Decimal] = mapped_column(Money, nullable=False, default=Decimal("0"))
    # The tax as it stood when the line was written (a later change of slab changes nothing here).
    tax_rate: Mapped[Decimal] = mapped_column(Percent, nullable=False, default=Decimal("0"))
    tax_inclusive: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # Set by the billing service: the taxable amount after both discounts, and its tax.
    net_amount: Mapped[Decimal] = mapped_column(Money, nullable=False, default=Decimal("0"))
    tax_amount: Mapped[Decimal] = mapped_column(Money, nullable=False, default=Decimal("0"))

    invoice: Mapped[Invoice] = relationship(back_populates="lines")
    service: Mapped["Service | None"] = relationship("Service")
    lab_test: Mapped["LabTest | None"] = relationship("LabTest")
    pharmacy_item: Mapped["PharmacyItem | None"] = relationship("PharmacyItem")

    @property
    def line_total(self) -> Decimal:
        return self.net_amount + self.tax_amount

    def __repr__(self) -> str:
        return self.description


class Payment(BranchOwnedMixin, TimestampMixin, Model):
    """Money received against an invoice, or (a negative amount) refunded from it."""

    __tablename__ = "payment"
    __audit_subject__ = ("patient", "patient_id")
    __table_args__ = (
        CheckConstraint(
            "method IN ('cash', 'card', 'upi', 'bank_transfer', 'insurance', 'other')",
            name="ck_payment_method",
        ),
        CheckConstraint("amount <> 0", name="ck_payment_amount"),
        CheckConstraint(
            "amount > 0 OR (reason IS NOT NULL AND length(reason) > 0)",
            name="ck_payment_refund_reason",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # "RCP-DT-2026-0001", from the branch's receipt sequence.
    number: Mapped[str] = mapped_column(String(40), unique=True, nullable=False)
    invoice_id: Mapped[int] = mapped_column(
        ForeignKey("invoice.id", ondelete="RESTRICT"), index=True, nullable=False
    )
    patient_id: Mapped[int | None] = mapped_column(
        ForeignKey("patient.id", ondelete="RESTRICT"), index=True
    )
    method: Mapped[str] = mapped_column(String(16), nullable=False)
    # Positive: received. Negative: refunded (with a reason).
    amount: Mapped[Decimal] = mapped_column(Money, nullable=False)
    # Card slip, UPI transaction id, cheque or insurer claim number.
    reference: Mapped[str | None] = mapped_column(String(120))
    reason: Mapped[str | None] = mapped_column(String(300))
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, index=True
    )
    received_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("ab_user.id", ondelete="SET NULL")
    )

    invoice: Mapped[Invoice] = relationship(back_populates="payments")
    patient: Mapped["Patient | None"] = relationship("Patient")
    received_by: Mapped[User | None] = relationship(User)

    @property
    def is_refund(self) -> bool:
        return self.amount < 0

    def __repr__(self) -> str:
        return self.number
