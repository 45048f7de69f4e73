"""The home page: a role-aware start screen for whoever signs in."""

from __future__ import annotations

from flask import g
from flask_appbuilder import IndexView, expose

from app.security.actions import signed_in
from app.models.base import utcnow
from app.security.policy import APPOINTMENTS, EDIT, FOLLOW_UPS, LAB_ORDERS, READ
from app.security.scoping import allowed_branch_ids, role_names
from app.services.appointments import APPOINTMENT_STATUS_LABELS, is_doctor
from app.services.communications import my_follow_ups
from app.services.lab import ORDER_STATUS_LABELS
from app.services.org import get_organisation
from app.services.today import OPEN_LAB_STATUSES, diary_today, lab_queue


class HomeView(IndexView):
    """``/``: today at the user's branches, their roles and the screens they can open."""

    route_base = ""
    index_template = "clinic/home.html"

    @expose("/")
    @signed_in
    def index(self):
        user = g.user
        sm = self.appbuilder.sm
        branch_ids = allowed_branch_ids()
        own_day = is_doctor(user)
        return self.render_template(
            self.index_template,
            organisation=get_organisation(),
            roles=sorted(role_names(user)),
            branches=sorted(user.branches, key=lambda branch: branch.name),
            branch_count=len(branch_ids),
            # A doctor's home shows their own patients today; the desk sees the whole branch.
            diary=(
                diary_today(branch_ids, doctor_id=user.id if own_day else None)
                if sm.has_access(READ, APPOINTMENTS)
                else None
            ),
            own_day=own_day,
            status_labels=APPOINTMENT_STATUS_LABELS,
            lab=lab_queue(branch_ids) if sm.has_access(READ, LAB_ORDERS) else None,
            lab_statuses=OPEN_LAB_STATUSES,
            lab_labels=ORDER_STATUS_LABELS,
            # (overdue, due later today) assigned to the user, each with a "done" button.
            follow_ups=(
                my_follow_ups(user, utcnow(), branch_ids)
                if sm.has_access(READ, FOLLOW_UPS)
                else None
            ),
            can_finish_follow_ups=sm.has_access(EDIT, FOLLOW_UPS),
        )
