"""Follow-ups: mine or the branch's, added from a lead or a patient, done and undone in one
click, and the REST API."""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, g, redirect, request, url_for
from flask_appbuilder import expose, has_access
from flask_appbuilder.security.sqla.models import User
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from wtforms import SelectField, StringField
from wtforms.validators import Length, Optional

from app.extensions import db
from app.models.base import utcnow
from app.models.leads import FollowUp
from app.security.policy import CREATE, EDIT, FOLLOW_UPS, READ, VIEW_METHOD_PERMISSIONS
from app.security.scoping import allowed_branch_ids
from app.services.appointments import branch_zone, from_local
from app.services.communications import add_follow_up, is_overdue, mark_done, update_follow_up
from app.services.errors import ClinicError
from app.views.base import (
    BranchScopedMixin,
    ClinicModelApi,
    ClinicModelView,
    ClinicSQLAInterface,
    record_reads,
)
from app.views.contact_records import (
    ABOUT,
    DUE,
    LEAD_PAGE,
    STATE,
    SubjectApiMixin,
    SubjectForm,
    SubjectFormMixin,
    SubjectInterface,
    about,
    arg_int,
    clock,
    colleagues,
    my_branches,
    person,
    record_subject_reads,
    subject_page,
    when_field,
)
from app.views.forms import local_path


class FollowUpForm(SubjectForm):
    due_at = when_field(_l("Due"), required=True)
    assignee = SelectField(_l("Assigned to"), coerce=int, validate_choice=False)
    note = StringField(_l("Note"), validators=[Optional(), Length(max=300)],
                       description=_l("What to do, e.g. call back about the quote."))


class FollowUpModelView(SubjectFormMixin, BranchScopedMixin, ClinicModelView):
    """Follow-ups of the user's branches: mine (or the branch's), add, edit, done and undone."""

    route_base = "/follow-ups"
    datamodel = SubjectInterface(FollowUp)
    class_permission_name = FOLLOW_UPS
    method_permission_name = {**VIEW_METHOD_PERMISSIONS, "toggle_done": "edit"}
    base_permissions = [READ, CREATE, EDIT]
    exclude_route_methods = {"delete", "download"}
    access_log = "lead"
    form_class = FollowUpForm
    form_template = "clinic/communications/follow_up_form.html"
    list_title = _l("Follow-ups")
    show_title = _l("Follow-up")
    add_title = _l("Add a follow-up")
    edit_title = _l("Edit follow-up")
    page_size = 50
    list_columns = [DUE, ABOUT, "note", "assignee", STATE, "branch"]
    show_columns = [DUE, ABOUT, "note", "assignee", STATE, "is_automatic", "done_by", "branch"]
    search_columns: list[str] = []
    order_columns = ["due_at"]
    base_order = ("due_at", "asc")
    label_columns = {
        DUE: _l("Due"), ABOUT: _l("About"), "note": _l("Note"), "assignee": _l("Assigned to"),
        STATE: _l("Status"), "is_automatic": _l("Created automatically"),
        "done_by": _l("Done by"), "branch": _l("Branch"),
    }
    formatters_columns = {
        "assignee": person,
        "done_by": person,
        "note": lambda value: value or "—",
        "is_automatic": lambda value: str(_l("Yes")) if value else str(_l("No")),
    }

    def _show(self, pk: Any):
        widgets = super()._show(pk)
        record_subject_reads(self, "view", [pk])
        return widgets

    @expose("/list/")
    @has_access
    def list(self):
        """My open follow-ups (or the whole branch's, or done ones), overdue ones marked."""
        in_branches = select(FollowUp).where(FollowUp.branch_id.in_(allowed_branch_ids()))
        mine = in_branches.where(FollowUp.assignee_id == g.user.id)
        # Whoever has follow-ups of their own starts with their open ones, soonest due first;
        # someone who only oversees (nothing assigned) starts with the branch's newest.
        scope = request.args.get("scope")
        if scope not in ("mine", "branch"):
            has_own = db.session.scalar(select(mine.where(FollowUp.done_at.is_(None)).exists()))
            scope = "mine" if has_own else "branch"
        status = request.args.get("status")
        if status not in ("open", "done", "all"):
            status = "open" if scope == "mine" else "all"
        query = mine if scope == "mine" else in_branches
        if status == "open":
            query = query.where(FollowUp.done_at.is_(None)).order_by(FollowUp.due_at, FollowUp.id)
        elif status == "done":
            query = query.where(FollowUp.done_at.is_not(None)).order_by(
                FollowUp.done_at.desc(), FollowUp.id.desc())
        else:
            query = query.order_by(FollowUp.created_at.desc(), FollowUp.id.desc())
        total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
        # Past the last page shows the last one (a huge number would overflow the database's
        # OFFSET and fail with a server error).
        page = min(max(arg_int("page") or 0, 0), max(total - 1, 0) // self.page_size)
        rows = list(db.session.scalars(
            query.offset(page * self.page_size).limit(self.page_size)
        ))
        pks = [row.id for row in rows]
        if pks:
            record_reads(self, "view", pks)
            record_subject_reads(self, "view", pks)
        now = utcnow()
        return self.render_template(
            "clinic/communications/follow_up_list.html", title=self.list_title, rows=rows,
            scope=scope, status=status, total=total, page=page, page_size=self.page_size,
            overdue={row.id for row in rows if is_overdue(row, now)},
            clock=clock, about=about, person=person,
            lead_page=LEAD_PAGE if LEAD_PAGE in current_app.view_functions else None,
            can_edit=self.appbuilder.sm.has_access(EDIT, FOLLOW_UPS),
            can_add=self.appbuilder.sm.has_access(CREATE, FOLLOW_UPS),
        )

    def _fill_assignees(self, form: FollowUpForm) -> None:
        form.assignee.choices = [(0, str(_l("Nobody yet")))] + [
            (user.id, person(user)) for user in colleagues()
        ]

    def _assignee(self, form: FollowUpForm) -> User | None:
        allowed = {user_id for user_id, _label in form.assignee.choices}
        if form.assignee.data and form.assignee.data in allowed:
            return db.session.get(User, form.assignee.data)
        return None

    @expose("/add", methods=["GET", "POST"])
    @has_access
    def add(self):
        """Add a follow-up for a lead or a patient; back to their page once saved."""
        form = FollowUpForm(request.form if request.method == "POST" else None)
        form.branch.choices = [(b.id, b.name) for b in my_branches()]
        self._fill_assignees(form)
        if request.method != "POST":
            form.assignee.data = g.user.id
        valid = request.method == "POST" and form.validate()  # before the subject's errors
        lead, patient = self._subject(form)
        if valid and (lead or patient):
            branch = self._branch_of(form, lead)
            follow_up = FollowUp(
                lead=lead, patient=patient, branch=branch, note=form.note.data,
                assignee=self._assignee(form),
                due_at=from_local(branch, form.due_at.data) if branch else None,
            )
            try:
                add_follow_up(follow_up, branch_ids=allowed_branch_ids())
                db.session.commit()
            except ClinicError as error:
                db.session.rollback()
                flash(str(error), "danger")
            else:
                flash(str(_l("Follow-up added.")), "success")
                return redirect(subject_page(lead, patient) or url_for(".list"))
        return self._render_form(form, lead=lead, patient=patient)

    @expose("/edit/<pk>", methods=["GET", "POST"])
    @has_access
    def edit(self, pk):
        """Change a follow-up's due time, assignee or note."""
        follow_up = self.datamodel.get(self._deserialize_pk_if_composite(pk), self._base_filters)
        if follow_up is None:
            abort(404)
        form = FollowUpForm(request.form if request.method == "POST" else None)
        form.branch.choices = [(follow_up.branch_id, follow_up.branch.name)]
        self._fill_assignees(form)
        if request.method != "POST":
            form.due_at.data = follow_up.due_at.astimezone(
                branch_zone(follow_up.branch)).replace(tzinfo=None)
            form.assignee.data = follow_up.assignee_id or 0
            form.note.data = follow_up.note
        elif form.validate():
            follow_up.due_at = from_local(follow_up.branch, form.due_at.data)
            follow_up.assignee = self._assignee(form)
            follow_up.note = form.note.data
            try:
                update_follow_up(follow_up)
                db.session.commit()
            except ClinicError as error:
                db.session.rollback()
                flash(str(error), "danger")
            else:
                flash(str(self.edit_row_message), "success")
                return redirect(url_for(".show", pk=follow_up.id))
        return self._render_form(form, record=follow_up, lead=follow_up.lead,
                                 patient=follow_up.patient)

    @expose("/<int:pk>/done", methods=["POST"])
    @has_access
    def toggle_done(self, pk: int):
        """Mark done (``done=1``), open again (``done=0``), or toggle; back to ``next``."""
        follow_up = self.datamodel.get(pk, self._base_filters)
        if follow_up is None:
            abort(404)
        wanted = request.form.get("done")
        done = wanted == "1" if wanted in ("0", "1") else follow_up.done_at is None
        mark_done(follow_up, done)
        db.session.commit()
        flash(str(_l("Follow-up done.") if done else _l("Follow-up open again.")), "success")
        return redirect(local_path(request.form.get("next")) or url_for(".list"))


class FollowUpApi(SubjectApiMixin, BranchScopedMixin, ClinicModelApi):
    """``/api/v1/follow-ups/``: follow-up tasks, added through the same rules as the screen."""

    resource_name = "follow-ups"
    datamodel = ClinicSQLAInterface(FollowUp)
    class_permission_name = FOLLOW_UPS
    base_permissions = [READ, CREATE, EDIT]
    exclude_route_methods = {"delete"}
    access_log = "lead"
    list_columns = [
        "id", "lead.id", "patient.id", "patient.mrn", "branch.id", "branch.name", "due_at",
        "assignee.id", "note", "is_automatic", "done_at", "done_by.id",
    ]
    show_columns = list_columns
    add_columns = ["lead", "patient", "branch", "due_at", "assignee", "note"]
    edit_columns = ["due_at", "assignee", "note"]
    order_columns = ["due_at"]
    search_columns = ["due_at", "assignee", "lead", "patient", "done_at"]
    base_order = ("due_at", "asc")

    def pre_add(self, item: FollowUp) -> None:
        add_follow_up(item, branch_ids=allowed_branch_ids())
        super().pre_add(item)

    def pre_update(self, item: FollowUp) -> None:
        super().pre_update(item)
        update_follow_up(item)
