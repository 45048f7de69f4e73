"""The pipeline's reports: the conversion funnel per source and branch, time to booking, losses.

``funnel`` reads the leads created in a date range (each branch's own local days) and counts, per
source and per branch, how many reached each stage. A lead *reached* a stage when its stage
history ever entered that stage or a later one (new → contacted → qualified → booked →
converted), so a lead that went straight from "new" to "booked" counts as contacted and
qualified too; "lost" counts the leads whose current stage is lost. Three queries, whatever the
number of leads: the counts are aggregated by the database, the booking times come back as one
row per booked lead (the median is taken here, the same way on SQLite and PostgreSQL), and the
lost reasons are grouped by the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from statistics import median

from sqlalchemy import Select, and_, case, func, or_, select

from app.extensions import db
from app.models.leads import LEAD_SOURCES, Lead, LeadStageChange
from app.models.org import Branch
from app.services.appointments import day_bounds

#: The stages a lead passes on its way to becoming a patient, in order; "lost" stands apart.
FUNNEL_STAGES = ("contacted", "qualified", "booked", "converted")
_RANK = {"new": 0, "contacted": 1, "qualified": 2, "booked": 3, "converted": 4}


@dataclass
class FunnelRow:
    """One line of the funnel: the leads created, how far they got, and how fast they booked."""

    key: str | int | None
    created: int = 0
    contacted: int = 0
    qualified: int = 0
    booked: int = 0
    converted: int = 0
    lost: int = 0
    median_to_booking: timedelta | None = None
    bookings_timed: int = 0

    def add(self, other: FunnelRow) -> None:
        for name in ("created", *FUNNEL_STAGES, "lost"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def share(self, stage: str) -> float | None:
        """The stage's count as a fraction of the leads created (None when none were)."""
        return getattr(self, stage) / self.created if self.created else None

    @property
    def conversion_rate(self) -> float | None:
        return self.share("converted")


@dataclass
class LeadFunnel:
    """The funnel of the leads created at ``branch_ids`` from ``start`` to ``end`` (inclusive)."""

    start: date
    end: date
    branch_ids: list[int]
    total: FunnelRow
    by_source: list[FunnelRow]
    by_branch: list[FunnelRow]
    lost_reasons: list[tuple[str, int]] = field(default_factory=list)


def _aware(when: datetime) -> datetime:
    # SQLite hands stored times back naive; they are UTC.
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when


def _created_between(branches: list[Branch], start: date, end: date):
    """Leads created from the first branch-local day to the last one, branch by branch."""
    windows = []
    for branch in branches:
        first, _ = day_bounds(branch, start)
        _, last = day_bounds(branch, end)
        windows.append(
            and_(Lead.branch_id == branch.id, Lead.created_at >= first, Lead.created_at < last)
        )
    return or_(*windows) if windows else Lead.id.is_(None)


def _per_lead(created) -> Select:
    """One row per lead in range: its source, branch, furthest stage and first booking time."""
    ranked = case(
        *((LeadStageChange.to_stage == stage, rank) for stage, rank in _RANK.items()),
        else_=0,
    )
    booked_change = func.min(
        case(
            (LeadStageChange.to_stage.in_(("booked", "converted")), LeadStageChange.changed_at),
            else_=None,
        )
    )
    return (
        select(
            Lead.id.label("lead_id"),
            Lead.source.label("source"),
            Lead.branch_id.label("branch_id"),
            Lead.created_at.label("created_at"),
            func.coalesce(func.max(ranked), 0).label("history_rank"),
            case(
                (or_(Lead.stage == "converted", Lead.converted_at.is_not(None)), 4),
                (or_(Lead.stage == "booked", Lead.booked_at.is_not(None)), 3),
                (Lead.stage == "qualified", 2),
                (Lead.stage == "contacted", 1),
                else_=0,
            ).label("current_rank"),
            case((Lead.stage == "lost", 1), else_=0).label("is_lost"),
            func.coalesce(booked_change, Lead.booked_at).label("booked_at"),
        )
        .outerjoin(LeadStageChange, LeadStageChange.lead_id == Lead.id)
        .where(created)
        .group_by(Lead.id)
    )


def _counts(per_lead: Select) -> dict[tuple[str, int], FunnelRow]:
    """Funnel counts per (source, branch), aggregated by the database."""
    leads = per_lead.subquery()

    def reached(rank: int):
        hit = or_(leads.c.history_rank >= rank, leads.c.current_rank >= rank)
        return func.sum(case((hit, 1), else_=0))

    query = select(
        leads.c.source,
        leads.c.branch_id,
        func.count(),
        *(reached(_RANK[stage]) for stage in FUNNEL_STAGES),
        func.sum(leads.c.is_lost),
    ).group_by(leads.c.source, leads.c.branch_id)
    cells = {}
    for source, branch_id, created, *stages, lost in db.session.execute(query):
        row = FunnelRow((source, branch_id), created=created, lost=int(lost or 0))
        for stage, count in zip(FUNNEL_STAGES, stages):
            setattr(row, stage, int(count or 0))
        cells[(source, branch_id)] = row
    return cells


def _booking_times(per_lead: Select) -> list[tuple[str, int, timedelta]]:
    """(source, branch, time from request to booking) of every booked lead in range."""
    leads = per_lead.subquery()
    query = select(
        leads.c.source, leads.c.branch_id, leads.c.created_at, leads.c.booked_at
    ).where(leads.c.booked_at.is_not(None))
    return [
        (source, branch_id, _aware(booked) - _aware(created))
        for source, branch_id, created, booked in db.session.execute(query)
    ]


def _timed(row: FunnelRow, durations: list[timedelta]) -> FunnelRow:
    # A booking recorded before the request (a back-dated lead) would be a negative wait: 0.
    durations = [max(d, timedelta(0)) for d in durations]
    row.bookings_timed = len(durations)
    row.median_to_booking = median(durations) if durations else None
    return row


def funnel(branch_ids: list[int], start: date, end: date) -> LeadFunnel:
    """The conversion funnel of the leads created at ``branch_ids`` from ``start`` to ``end``.

    Days are each branch's local days, both ends included. Sources are listed in the model's
    order and branches by name, with zero rows for those without leads, so a report always
    shows every source and every chosen branch.
    """
    if end < start:
        start, end = end, start
    branches = list(
        db.session.scalars(select(Branch).where(Branch.id.in_(branch_ids)).order_by(Branch.name))
    )
    per_lead = _per_lead(_created_between(branches, start, end))
    cells = _counts(per_lead)
    times = _booking_times(per_lead)

    total = FunnelRow(None)
    by_source = {source: FunnelRow(source) for source in LEAD_SOURCES}
    by_branch = {branch.id: FunnelRow(branch.id) for branch in branches}
    for (source, branch_id), cell in cells.items():
        total.add(cell)
        by_source.setdefault(source, FunnelRow(source)).add(cell)
        by_branch[branch_id].add(cell)
    _timed(total, [d for _s, _b, d in times])
    for source, row in by_source.items():
        _timed(row, [d for s, _b, d in times if s == source])
    for branch_id, row in by_branch.items():
        _timed(row, [d for _s, b, d in times if b == branch_id])

    lost = (
        select(Lead.lost_reason, func.count())
        .where(_created_between(branches, start, end), Lead.stage == "lost")
        .group_by(Lead.lost_reason)
        .order_by(func.count().desc(), Lead.lost_reason)
    )
    return LeadFunnel(
        start=start,
        end=end,
        branch_ids=[branch.id for branch in branches],
        total=total,
        by_source=list(by_source.values()),
        by_branch=list(by_branch.values()),
        lost_reasons=[(reason, count) for reason, count in db.session.execute(lost)],
    )
