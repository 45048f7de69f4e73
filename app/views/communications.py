"""The communication log: its list with filters, logging one from a lead or a patient, the REST
API, and the patient timeline's communications."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import abort, flash, has_request_context, redirect, request, url_for
from flask_appbuilder import expose, has_access
from flask_appbuilder.fieldwidgets import BS3TextAreaFieldWidget
from flask_appbuilder.models.filters import BaseFilter
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, false, or_, select
from wtforms import RadioField, SelectField, TextAreaField
from wtforms.validators import Length, Optional

from app.extensions import db
from app.models.leads import Communication
from app.models.org import Branch
from app.models.patients import Patient
from app.security.policy import COMMUNICATIONS, CREATE, EDIT, READ, VIEW_METHOD_PERMISSIONS
from app.security.scoping import allowed_branch_ids
from app.services.appointments import branch_zone, day_bounds, from_local
from app.services.communications import (
    CHANNEL_LABELS,
    DIRECTION_LABELS,
    OUTCOME_LABELS,
    check_communication,
    for_patient,
    log_communication,
)
from app.services.errors import ClinicError
from app.views.base import BranchScopedMixin, ClinicModelApi, ClinicModelView, ClinicSQLAInterface
from app.views.contact_records import (
    ABOUT,
    WHEN,
    SubjectApiMixin,
    SubjectForm,
    SubjectFormMixin,
    SubjectInterface,
    communication_label,
    my_branches,
    person,
    record_subject_reads,
    subject_page,
    when_field,
)
from app.views.timeline import timeline_source

#: Registered as the "communication_label" template filter (app/views/__init__.py).
__all__ = ["CommunicationApi", "CommunicationModelView", "communication_label"]


def _day_spans(column, day) -> Any:
    branches = db.session.scalars(select(Branch).where(Branch.id.in_(allowed_branch_ids())))
    spans = []
    for branch in branches:
        start, end = day_bounds(branch, day)
        spans.append(and_(Communication.branch_id == branch.id, column >= start, column < end))
    return or_(*spans) if spans else false()


class FilterCommunicationArgs(BaseFilter):
    """On the list page: channel, direction, outcome and day (branch-local) from the filter bar."""

    name = "List filters"
    arg_name = "commargs"

    def apply(self, query, value):
        if not has_request_context() or request.endpoint != "CommunicationModelView.list":
            return query
        for name, labels in (("channel", CHANNEL_LABELS), ("direction", DIRECTION_LABELS),
                             ("outcome", OUTCOME_LABELS)):
            chosen = request.args.get(name, "")
            if chosen in labels:
                query = query.filter(getattr(Communication, name) == chosen)
        try:
            day = datetime.strptime(request.args.get("date", ""), "%Y-%m-%d").date()
        except ValueError:
            day = None
        if day is not None:
            query = query.filter(_day_spans(Communication.occurred_at, day))
        return query


class CommunicationForm(SubjectForm):
    channel = SelectField(_l("Channel"), choices=list(CHANNEL_LABELS.items()), default="call",
                          validate_choice=False)
    direction = RadioField(_l("Direction"), choices=list(DIRECTION_LABELS.items()), default="out",
                           validate_choice=False)
    outcome = SelectField(_l("Outcome"), choices=list(OUTCOME_LABELS.items()), default="reached",
                          validate_choice=False)
    occurred_at = when_field(_l("When"), required=False)
    summary = TextAreaField(
        _l("Summary"), widget=BS3TextAreaFieldWidget(), validators=[Optional(), Length(max=2000)],
        description=_l("What was said or agreed."),
    )


class CommunicationModelView(SubjectFormMixin, BranchScopedMixin, ClinicModelView):
    """The communication log of the user's branches: filter, open, log one for a lead or patient."""

    route_base = "/communications"
    datamodel = SubjectInterface(Communication)
    class_permission_name = COMMUNICATIONS
    method_permission_name = VIEW_METHOD_PERMISSIONS
    base_permissions = [READ, CREATE, EDIT]
    exclude_route_methods = {"delete", "download"}
    base_filters = [["id", FilterCommunicationArgs, None]]
    access_log = "lead"
    list_template = "clinic/communications/list.html"
    form_class = CommunicationForm
    form_template = "clinic/communications/form.html"
    list_title = _l("Communications")
    show_title = _l("Communication")
    add_title = _l("Log a communication")
    edit_title = _l("Edit communication")
    list_columns = [WHEN, ABOUT, "channel", "direction", "outcome", "summary", "staff"]
    show_columns = [WHEN, ABOUT, "channel", "direction", "outcome", "summary", "staff", "branch"]
    search_columns: list[str] = []
    order_columns = ["occurred_at"]
    # The most recently logged first (a call logged late still tops the list once).
    base_order = ("created_at", "desc")
    label_columns = {
        WHEN: _l("When"), ABOUT: _l("With"), "channel": _l("Channel"),
        "direction": _l("Direction"), "outcome": _l("Outcome"), "summary": _l("Summary"),
        "staff": _l("Logged by"), "branch": _l("Branch"),
    }
    formatters_columns = {
        "channel": lambda value: str(CHANNEL_LABELS.get(value, value)),
        "direction": lambda value: str(DIRECTION_LABELS.get(value, value)),
        "outcome": lambda value: str(OUTCOME_LABELS.get(value, value)),
        "summary": lambda value: (
            (value[:120] + "…" if len(value) > 120 else value) if value else "—"
        ),
        "staff": person,
    }

    def _list(self, **kwargs: Any):
        widgets = super()._list(**kwargs)
        record_subject_reads(self, "view", widgets["list"].template_args["pks"])
        return widgets

    def _show(self, pk: Any):
        widgets = super()._show(pk)
        record_subject_reads(self, "view", [pk])
        return widgets

    def render_template(self, template, **kwargs):
        if template == self.list_template:
            kwargs.update(channels=CHANNEL_LABELS, directions=DIRECTION_LABELS,
                          outcomes=OUTCOME_LABELS)
        return super().render_template(template, **kwargs)

    @expose("/add", methods=["GET", "POST"])
    @has_access
    def add(self):
        """Log a communication with a lead or a patient; back to their page once saved."""
        form = CommunicationForm(request.form if request.method == "POST" else None)
        form.branch.choices = [(b.id, b.name) for b in my_branches()]
        valid = request.method == "POST" and form.validate()  # before the subject's errors
        lead, patient = self._subject(form)
        if valid and (lead or patient):
            branch = self._branch_of(form, lead)
            comm = Communication(
                lead=lead, patient=patient, branch=branch, channel=form.channel.data,
                direction=form.direction.data, outcome=form.outcome.data,
                summary=form.summary.data,
                occurred_at=from_local(branch, form.occurred_at.data)
                if form.occurred_at.data and branch else None,
            )
            try:
                log_communication(comm, branch_ids=allowed_branch_ids())
                db.session.commit()
            except ClinicError as error:
                db.session.rollback()
                flash(str(error), "danger")
            else:
                flash(str(_l("Communication logged.")), "success")
                return redirect(subject_page(lead, patient) or url_for(".show", pk=comm.id))
        return self._render_form(form, lead=lead, patient=patient)

    @expose("/edit/<pk>", methods=["GET", "POST"])
    @has_access
    def edit(self, pk):
        """Correct a logged communication's channel, direction, outcome, time or summary."""
        comm = self.datamodel.get(self._deserialize_pk_if_composite(pk), self._base_filters)
        if comm is None:
            abort(404)
        form = CommunicationForm(request.form if request.method == "POST" else None, obj=comm)
        form.branch.choices = [(comm.branch_id, comm.branch.name)]
        if request.method != "POST":
            form.occurred_at.data = comm.occurred_at.astimezone(
                branch_zone(comm.branch)).replace(tzinfo=None) if comm.occurred_at else None
        elif form.validate():
            comm.channel, comm.direction = form.channel.data, form.direction.data
            comm.outcome, comm.summary = form.outcome.data, form.summary.data
            if form.occurred_at.data:
                comm.occurred_at = from_local(comm.branch, form.occurred_at.data)
            try:
                check_communication(comm)
                db.session.commit()
            except ClinicError as error:
                db.session.rollback()
                flash(str(error), "danger")
            else:
                flash(str(self.edit_row_message), "success")
                back = subject_page(comm.lead, comm.patient)
                return redirect(back or url_for(".show", pk=comm.id))
        return self._render_form(form, record=comm, lead=comm.lead, patient=comm.patient)


class CommunicationApi(SubjectApiMixin, BranchScopedMixin, ClinicModelApi):
    """``/api/v1/communications/``: the log, written through the same rules as the screen."""

    resource_name = "communications"
    datamodel = ClinicSQLAInterface(Communication)
    class_permission_name = COMMUNICATIONS
    base_permissions = [READ, CREATE, EDIT]
    exclude_route_methods = {"delete"}
    access_log = "lead"
    list_columns = [
        "id", "lead.id", "patient.id", "patient.mrn", "branch.id", "branch.name", "channel",
        "direction", "outcome", "summary", "occurred_at", "staff.id",
    ]
    show_columns = list_columns
    add_columns = ["lead", "patient", "branch", "channel", "direction", "outcome", "summary",
                   "occurred_at"]
    edit_columns = ["channel", "direction", "outcome", "summary", "occurred_at"]
    order_columns = ["occurred_at"]
    search_columns = ["channel", "direction", "outcome", "occurred_at", "lead", "patient"]
    base_order = ("occurred_at", "desc")

    def pre_add(self, item: Communication) -> None:
        log_communication(item, branch_ids=allowed_branch_ids())
        super().pre_add(item)

    def pre_update(self, item: Communication) -> None:
        super().pre_update(item)
        check_communication(item)


@timeline_source("communication", READ, COMMUNICATIONS)
def communication_items(patient: Patient, branch_ids: list[int]):
    """The patient's communications (their leads' included) at the user's branches."""
    comms, _follow_ups = for_patient(patient, branch_ids)
    return [(comm.occurred_at, comm) for comm in comms]
