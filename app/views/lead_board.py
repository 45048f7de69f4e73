"""The pipeline board: one column per stage, a card per lead, a form on each card to move it.

``/leads/board`` shows the leads of the user's branches by stage (converted and lost leads only
from the last 30 days), filtered by branch, owner and source through a plain GET form. Each card
carries a small POST form ("Move to" + lost reason) that posts to ``LeadModelView.move`` and
comes back here with the same filters; ``static/js/board.js`` adds drag and drop that submits
the same form, so the keyboard and no-script way stays the form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

from flask import g, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.security.sqla.models import User
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from app.extensions import db
from app.models.leads import LEAD_SOURCES, LEAD_STAGES, Lead
from app.models.org import Branch
from app.security.policy import CONVERT, CREATE, EDIT, LEADS, READ
from app.security.scoping import allowed_branch_ids
from app.services.audit import record_access
from app.services.leads import (
    LOST_REASON_LABELS,
    SOURCE_LABELS,
    OPEN_STAGES,
    STAGE_LABELS,
    allowed_stages,
)
from app.views.base import may_open

#: Stages that end a lead: their columns show only the recent ones.
CLOSED_STAGES = ("converted", "lost")
#: How far back the converted and lost columns look.
CLOSED_DAYS = 30
#: The most cards one column shows (the count above it is always the full number).
COLUMN_LIMIT = 60
MOVE_ENDPOINT = "LeadModelView.move"
SHOW_ENDPOINT = "LeadModelView.show"
CONVERT_ENDPOINT = "LeadModelView.convert"
LIST_ENDPOINT = "LeadModelView.list"
STAGE_ICONS = {
    "new": "fa-solid fa-inbox",
    "contacted": "fa-solid fa-phone",
    "qualified": "fa-solid fa-clipboard-check",
    "booked": "fa-regular fa-calendar-check",
    "converted": "fa-solid fa-user-check",
    "lost": "fa-solid fa-circle-xmark",
}


def as_utc(when: datetime | None) -> datetime | None:
    if when is None:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def age_label(since: datetime | None, now: datetime) -> str:
    """A short age: "5 min", "3 h", "4 d" (the time since ``since``)."""
    since = as_utc(since)
    if since is None:
        return "—"
    seconds = max(0, int((now - since).total_seconds()))
    if seconds < 3600:
        return _("%(n)s min", n=max(1, seconds // 60))
    if seconds < 86400:
        return _("%(n)s h", n=seconds // 3600)
    return _("%(n)s d", n=seconds // 86400)


@dataclass
class Card:
    lead: Lead
    age: str
    in_stage: str
    overdue: bool
    targets: list[tuple[str, str]]
    #: The stage the form offers first: the next one forward when there is one.
    suggested: str | None = None

    @property
    def may_lose(self) -> bool:
        return any(stage == "lost" for stage, _label in self.targets)


@dataclass
class Column:
    stage: str
    label: str
    icon: str
    count: int = 0
    cards: list[Card] = field(default_factory=list)

    @property
    def hidden(self) -> int:
        return self.count - len(self.cards)


def _int(value: str | None) -> int | None:
    try:
        return int(value or "")
    except ValueError:
        return None


def suggested_target(lead: Lead, targets: list[tuple[str, str]]) -> str | None:
    """The next stage forward (new → contacted → qualified → booked), else the first allowed."""
    allowed = [stage for stage, _label in targets]
    if lead.stage in OPEN_STAGES:
        ahead = OPEN_STAGES[OPEN_STAGES.index(lead.stage) + 1:]
        for stage in ahead:
            if stage in allowed:
                return stage
    return allowed[0] if allowed else None


def move_targets(lead: Lead) -> list[tuple[str, str]]:
    """Where the card's form may send the lead (the service's rule: never "converted", which
    has its own page; a lost lead only reopens; a converted one stays)."""
    return [(stage, str(STAGE_LABELS[stage])) for stage in allowed_stages(lead)]


class LeadBoardView(BaseView):
    """The lead pipeline as columns, with counts, ages, overdue follow-ups and moves."""

    route_base = "/leads"
    default_view = "board"
    class_permission_name = LEADS
    method_permission_name = {"board": "read"}
    # The same permissions as the leads screen that shares this name (FAB keeps only the pairs
    # every view of one name declares).
    base_permissions = [READ, CREATE, EDIT, CONVERT]

    @expose("/board")
    @has_access
    def board(self):
        """The board of the user's branches, filtered by branch, owner and source."""
        allowed = allowed_branch_ids()
        branches = list(
            db.session.scalars(select(Branch).where(Branch.id.in_(allowed)).order_by(Branch.name))
        )
        # Another branch's id is ignored: the board never shows a branch the user may not see.
        branch_id = _int(request.args.get("branch"))
        branch = next((b for b in branches if b.id == branch_id), None)
        branch_ids = [branch.id] if branch is not None else allowed
        source = request.args.get("source", "")
        source = source if source in LEAD_SOURCES else ""
        owner_arg = request.args.get("owner", "")
        owners = self._owners(branch_ids)
        owner: str = ""
        if owner_arg == "none":
            owner = "none"
        elif (owner_id := _int(owner_arg)) is not None and any(o.id == owner_id for o in owners):
            owner = str(owner_id)

        now = datetime.now(timezone.utc)
        since = now - timedelta(days=CLOSED_DAYS)
        query = (
            select(Lead)
            .where(
                Lead.branch_id.in_(branch_ids),
                or_(Lead.stage.not_in(CLOSED_STAGES), Lead.stage_changed_at >= since),
            )
            .options(
                selectinload(Lead.owner), selectinload(Lead.requested_service),
            )
            .order_by(Lead.created_at, Lead.id)
        )
        if source:
            query = query.where(Lead.source == source)
        if owner == "none":
            query = query.where(Lead.owner_id.is_(None))
        elif owner:
            query = query.where(Lead.owner_id == int(owner))
        leads = list(db.session.scalars(query))

        columns = {
            stage: Column(stage, str(STAGE_LABELS[stage]), STAGE_ICONS[stage])
            for stage in LEAD_STAGES
        }
        cards: dict[str, list[Card]] = {stage: [] for stage in LEAD_STAGES}
        for lead in leads:
            follow_up = as_utc(lead.next_follow_up_at)
            overdue = (
                follow_up is not None and follow_up < now and lead.stage not in CLOSED_STAGES
            )
            targets = move_targets(lead)
            cards[lead.stage].append(
                Card(
                    lead=lead,
                    age=age_label(lead.created_at, now),
                    in_stage=age_label(lead.stage_changed_at, now),
                    overdue=overdue,
                    targets=targets,
                    suggested=suggested_target(lead, targets),
                )
            )
        far = datetime.max.replace(tzinfo=timezone.utc)
        for stage, stage_cards in cards.items():
            # Overdue first, then the nearest follow-up, then the oldest enquiry.
            stage_cards.sort(
                key=lambda c: (
                    not c.overdue,
                    as_utc(c.lead.next_follow_up_at) or far,
                    as_utc(c.lead.created_at) or far,
                )
            )
            if stage in CLOSED_STAGES:  # the most recent endings first
                stage_cards.sort(key=lambda c: as_utc(c.lead.stage_changed_at), reverse=True)
            columns[stage].count = len(stage_cards)
            columns[stage].cards = stage_cards[:COLUMN_LIMIT]

        shown = [card.lead.id for column in columns.values() for card in column.cards]
        if shown:  # the names (and services asked for) of every lead the page showed
            record_access(
                "lead", None, "view", records=shown, model="Lead", subject_ids=shown,
                branch_id=branch.id if branch is not None else (
                    branch_ids[0] if len(branch_ids) == 1 else None
                ),
            )

        filters = {
            key: value
            for key, value in (
                ("branch", str(branch.id) if branch is not None else ""),
                ("owner", owner),
                ("source", source),
            )
            if value
        }
        here = url_for(".board") + (f"?{urlencode(filters)}" if filters else "")
        branch_by_id = {b.id: b for b in branches}
        return self.render_template(
            "clinic/leads/board.html",
            title=_l("Pipeline"),
            columns=list(columns.values()),
            total=len(leads),
            branches=branches,
            branch=branch,
            branch_by_id=branch_by_id,
            owners=owners,
            owner=owner,
            sources=[(s, str(SOURCE_LABELS[s])) for s in LEAD_SOURCES],
            source=source,
            source_labels=SOURCE_LABELS,
            lost_reasons=[(r, str(label)) for r, label in LOST_REASON_LABELS.items()],
            lost_reason_labels=LOST_REASON_LABELS,
            filtered=bool(owner or source or branch is not None),
            here=here,
            closed_days=CLOSED_DAYS,
            column_limit=COLUMN_LIMIT,
            me=g.user.id,
            can_move=may_open(MOVE_ENDPOINT),
            can_show=may_open(SHOW_ENDPOINT),
            can_convert=may_open(CONVERT_ENDPOINT),
            can_list=may_open(LIST_ENDPOINT),
            can_add=may_open("LeadModelView.add"),
        )

    @staticmethod
    def _owners(branch_ids: list[int]) -> list[User]:
        """Staff who own a lead at these branches, and the signed-in user, by name."""
        owner_ids = select(Lead.owner_id).where(
            Lead.branch_id.in_(branch_ids), Lead.owner_id.is_not(None)
        )
        users = list(
            db.session.scalars(
                select(User)
                .where(or_(User.id.in_(owner_ids), User.id == g.user.id))
                .order_by(User.first_name, User.last_name, User.id)
            )
        )
        return users
