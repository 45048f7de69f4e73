"""What the home page tells each role about today: the diary at their branches, the lab's queue."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select

from app.extensions import db
from app.models.base import utcnow
from app.models.lab import LabOrder
from app.models.org import Branch
from app.models.scheduling import Appointment
from app.services.appointments import day_bounds, local_time

#: Lab orders still waiting for someone: to collect, to run, to result, to verify.
OPEN_LAB_STATUSES = ("ordered", "collected", "in_progress", "resulted")


@dataclass
class BranchDay:
    """Today's appointments at one branch, counted by status."""

    branch: Branch
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def waiting(self) -> int:
        """Patients checked in and not yet seen."""
        return self.counts.get("arrived", 0)


def diary_today(branch_ids: list[int], doctor_id: int | None = None,
                now: datetime | None = None) -> list[BranchDay]:
    """Today's appointments (each branch's own local today) by status, one query per branch.

    ``doctor_id`` keeps to one doctor's appointments (a doctor's own day).
    """
    now = now or utcnow()
    days = []
    branches = db.session.scalars(
        select(Branch).where(Branch.id.in_(branch_ids), Branch.is_active.is_(True))
        .order_by(Branch.name)
    )
    for branch in branches:
        start, end = day_bounds(branch, local_time(branch, now).date())
        query = (
            select(Appointment.status, func.count())
            .where(
                Appointment.branch_id == branch.id,
                Appointment.starts_at >= start,
                Appointment.starts_at < end,
            )
            .group_by(Appointment.status)
        )
        if doctor_id is not None:
            query = query.where(Appointment.doctor_id == doctor_id)
        days.append(BranchDay(branch, dict(db.session.execute(query).all())))
    return days


def lab_queue(branch_ids: list[int]) -> dict[str, int]:
    """Open lab orders at these branches by status (cancelled and verified ones are done)."""
    rows = db.session.execute(
        select(LabOrder.status, func.count())
        .where(LabOrder.branch_id.in_(branch_ids), LabOrder.status.in_(OPEN_LAB_STATUSES))
        .group_by(LabOrder.status)
    )
    return dict(rows.all())
