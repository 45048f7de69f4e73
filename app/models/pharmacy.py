"""The pharmacy: its catalogue and suppliers, stock by batch, the stock ledger, and dispensing.

Stock lives in batches (one lot of one item at one branch, with its expiry). Every change of a
batch's quantity is a row of the ledger (``StockMovement``) written in the same transaction, so a
batch's ``quantity_on_hand`` always equals the sum of its movements; ``clinic check-stock`` proves
it. The database refuses a negative quantity on hand, whatever the code does.
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
from app.models.billing import Money, TaxRate

if TYPE_CHECKING:
    from app.models.billing import Invoice
    from app.models.consultations import Prescription, PrescriptionItem
    from app.models.patients import Patient

ITEM_KINDS = ("medicine", "consumable")
MOVEMENT_KINDS = ("receipt", "dispense", "return", "adjustment", "expiry_write_off")


class Supplier(TimestampMixin, Model):
    """Who the clinic buys stock from (organisation-wide)."""

    __tablename__ = "supplier"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(150), unique=True, nullable=False)
    contact_person: Mapped[str | None] = mapped_column(String(120))
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(254))
    address: Mapped[str | None] = mapped_column(Text)
    tax_id: Mapped[str | None] = mapped_column(String(64))
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)

    def __repr__(self) -> str:
        return self.name


class PharmacyItem(TimestampMixin, Model):
    """A medicine or consumable the pharmacy stocks and sells (organisation-wide catalogue)."""

    __tablename__ = "pharmacy_item"
    __table_args__ = (
        CheckConstraint("kind IN ('medicine', 'consumable')", name="ck_pharmacy_item_kind"),
        CheckConstraint("selling_price >= 0", name="ck_pharmacy_item_selling_price"),
        UniqueConstraint("brand_name", "strength", "form", name="uq_pharmacy_item_product"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(12), nullable=False, default="medicine")
    generic_name: Mapped[str] = mapped_column(String(150), nullable=False, index=True)
    brand_name: Mapped[str] = mapped_column(String(150), nullable=False, index=True)
    # Tablet, capsule, syrup, injection, cream, drops… and for consumables e.g. "pack".
    form: Mapped[str | None] = mapped_column(String(40))
    strength: Mapped[str | None] = mapped_column(String(60))
    # The unit stock is counted and sold in: tablet, strip, bottle, tube, piece.
    unit: Mapped[str] = mapped_column(String(20), nullable=False, default="unit")
    # HSN code (India's tax classification) or the clinic's own SKU.
    code: Mapped[str | None] = mapped_column(String(40), index=True)
    tax_rate_id: Mapped[int | None] = mapped_column(ForeignKey("tax_rate.id", ondelete="RESTRICT"))
    # Price per unit; inclusive of tax as printed on the pack (MRP) unless said otherwise.
    selling_price: Mapped[Decimal] = mapped_column(Money, nullable=False)
    tax_inclusive: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)

    tax_rate: Mapped[TaxRate | None] = relationship(TaxRate)

    @property
    def display_name(self) -> str:
        parts = [self.brand_name, self.strength or "", self.form or ""]
        return " ".join(part for part in parts if part)

    def __repr__(self) -> str:
        return self.display_name


class ReorderLevel(Model):
    """How low one branch lets an item's stock fall before it orders more."""

    __tablename__ = "reorder_level"
    __table_args__ = (CheckConstraint("level >= 0", name="ck_reorder_level_level"),)

    branch_id: Mapped[int] = mapped_column(
        ForeignKey("branch.id", ondelete="CASCADE"), primary_key=True
    )
    item_id: Mapped[int] = mapped_column(
        ForeignKey("pharmacy_item.id", ondelete="CASCADE"), primary_key=True
    )
    level: Mapped[int] = mapped_column(Integer, nullable=False, default=0)

    item: Mapped[PharmacyItem] = relationship(PharmacyItem)


class GoodsReceipt(BranchOwnedMixin, TimestampMixin, Model):
    """A delivery from a supplier: the batches it brought in."""

    __tablename__ = "goods_receipt"

    id: Mapped[int] = mapped_column(primary_key=True)
    supplier_id: Mapped[int] = mapped_column(
        ForeignKey("supplier.id", ondelete="RESTRICT"), index=True, nullable=False
    )
    # The supplier's own invoice or delivery note number.
    supplier_reference: Mapped[str | None] = mapped_column(String(60))
    received_on: Mapped[date] = mapped_column(Date, nullable=False)
    received_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("ab_user.id", ondelete="SET NULL")
    )
    notes: Mapped[str | None] = mapped_column(Text)

    supplier: Mapped[Supplier] = relationship(Supplier)
    received_by: Mapped[User | None] = relationship(User)
    batches: Mapped[list["StockBatch"]] = relationship(
        back_populates="goods_receipt", order_by="StockBatch.id"
    )

    def __repr__(self) -> str:
        return f"{self.supplier} {self.supplier_reference or ''}".strip()


class StockBatch(BranchOwnedMixin, TimestampMixin, Model):
    """One lot of one item at one branch: its expiry, cost and what is left of it."""

    __tablename__ = "stock_batch"
    __table_args__ = (
        CheckConstraint("quantity_on_hand >= 0", name="ck_stock_batch_on_hand"),
        CheckConstraint("quantity_received > 0", name="ck_stock_batch_received"),
        CheckConstraint("purchase_cost >= 0", name="ck_stock_batch_purchase_cost"),
        UniqueConstraint("branch_id", "item_id", "lot_number", name="uq_stock_batch_lot"),
        # First-expiry-first-out picking reads batches of one item at one branch by expiry.
        Index("ix_stock_batch_pick", "branch_id", "item_id", "expiry_date"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(
        ForeignKey("pharmacy_item.id", ondelete="RESTRICT"), nullable=False
    )
    goods_receipt_id: Mapped[int | None] = mapped_column(
        ForeignKey("goods_receipt.id", ondelete="RESTRICT"), index=True
    )
    lot_number: Mapped[str] = mapped_column(String(40), nullable=False)
    expiry_date: Mapped[date] = mapped_column(Date, nullable=False)
    # Cost per unit, as bought.
    purchase_cost: Mapped[Decimal] = mapped_column(Money, nullable=False)
    quantity_received: Mapped[int] = mapped_column(Integer, nullable=False)
    # Changed only together with a ledger row; never below zero (CHECK).
    quantity_on_hand: Mapped[int] = mapped_column(Integer, nullable=False)

    item: Mapped[PharmacyItem] = relationship(PharmacyItem)
    goods_receipt: Mapped[GoodsReceipt | None] = relationship(back_populates="batches")

    def __repr__(self) -> str:
        return f"{self.item} · {self.lot_number}" if self.item else self.lot_number


class Dispensing(BranchOwnedMixin, TimestampMixin, Model):
    """Medicines handed over, against a prescription or over the counter, and their bill."""

    __tablename__ = "dispensing"
    __audit_subject__ = ("patient", "patient_id")

    id: Mapped[int] = mapped_column(primary_key=True)
    prescription_id: Mapped[int | None] = mapped_column(
        ForeignKey("prescription.id", ondelete="RESTRICT"), index=True
    )
    patient_id: Mapped[int | None] = mapped_column(
        ForeignKey("patient.id", ondelete="RESTRICT"), index=True
    )
    customer_name: Mapped[str | None] = mapped_column(String(120))
    # The pharmacy bill made in the same transaction.
    invoice_id: Mapped[int] = mapped_column(
        ForeignKey("invoice.id", ondelete="RESTRICT"), unique=True, nullable=False
    )
    dispensed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, index=True
    )
    dispensed_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("ab_user.id", ondelete="SET NULL")
    )
    notes: Mapped[str | None] = mapped_column(Text)

    prescription: Mapped["Prescription | None"] = relationship("Prescription")
    patient: Mapped["Patient | None"] = relationship("Patient")
    invoice: Mapped["Invoice"] = relationship("Invoice")
    dispensed_by: Mapped[User | None] = relationship(User)
    lines: Mapped[list["DispensingLine"]] = relationship(
        back_populates="dispensing", order_by="DispensingLine.id"
    )

    def __repr__(self) -> str:
        return str(self.invoice) if self.invoice else str(self.id)


class DispensingLine(Model):
    """So many units of one batch, handed over in one dispensing."""

    __tablename__ = "dispensing_line"
    __audit_subject__ = ("patient", "patient_id")
    __table_args__ = (CheckConstraint("quantity > 0", name="ck_dispensing_line_quantity"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dispensing_id: Mapped[int] = mapped_column(
        ForeignKey("dispensing.id", ondelete="CASCADE"), index=True, nullable=False
    )
    patient_id: Mapped[int | None] = mapped_column(
        ForeignKey("patient.id", ondelete="RESTRICT"), index=True
    )
    item_id: Mapped[int] = mapped_column(
        ForeignKey("pharmacy_item.id", ondelete="RESTRICT"), nullable=False
    )
    batch_id: Mapped[int] = mapped_column(
        ForeignKey("stock_batch.id", ondelete="RESTRICT"), index=True, nullable=False
    )
    prescription_item_id: Mapped[int | None] = mapped_column(
        ForeignKey("prescription_item.id", ondelete="RESTRICT")
    )
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    # Units of this line since returned to stock.
    quantity_returned: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Why the pharmacist chose this batch over the first-expiring one.
    override_reason: Mapped[str | None] = mapped_column(String(300))

    dispensing: Mapped[Dispensing] = relationship(back_populates="lines")
    item: Mapped[PharmacyItem] = relationship(PharmacyItem)
    batch: Mapped[StockBatch] = relationship(StockBatch)
    prescription_item: Mapped["PrescriptionItem | None"] = relationship("PrescriptionItem")


class StockMovement(BranchOwnedMixin, Model):
    """One row of the stock ledger: a batch's quantity went up or down, why, and by whom."""

    __tablename__ = "stock_movement"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('receipt', 'dispense', 'return', 'adjustment', 'expiry_write_off')",
            name="ck_stock_movement_kind",
        ),
        CheckConstraint("quantity <> 0", name="ck_stock_movement_quantity"),
        CheckConstraint(
            "(kind IN ('receipt', 'return') AND quantity > 0)"
            " OR (kind IN ('dispense', 'expiry_write_off') AND quantity < 0)"
            " OR kind = 'adjustment'",
            name="ck_stock_movement_sign",
        ),
        CheckConstraint(
            "kind NOT IN ('adjustment', 'expiry_write_off', 'return')"
            " OR (reason IS NOT NULL AND length(reason) > 0)",
            name="ck_stock_movement_reason",
        ),
        Index("ix_stock_movement_batch", "batch_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(
        ForeignKey("stock_batch.id", ondelete="RESTRICT"), nullable=False
    )
    item_id: Mapped[int] = mapped_column(
        ForeignKey("pharmacy_item.id", ondelete="RESTRICT"), index=True, nullable=False
    )
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    # Signed: positive into stock, negative out of it.
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    reason: Mapped[str | None] = mapped_column(String(300))
    dispensing_id: Mapped[int | None] = mapped_column(
        ForeignKey("dispensing.id", ondelete="RESTRICT"), index=True
    )
    goods_receipt_id: Mapped[int | None] = mapped_column(
        ForeignKey("goods_receipt.id", ondelete="RESTRICT")
    )
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, index=True
    )
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="SET NULL"))

    batch: Mapped[StockBatch] = relationship(StockBatch)
    item: Mapped[PharmacyItem] = relationship(PharmacyItem)
    created_by: Mapped[User | None] = relationship(User)
