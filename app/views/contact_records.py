"""What the communication log and the follow-ups share: times in the branch's clock, whom a
record is about, forms opened from a lead (``?lead=``) or a patient (``?patient=``), and the
access log's entries for records about a patient alone."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from flask import abort, current_app, request, url_for
from flask_appbuilder.forms import DynamicForm
from flask_appbuilder.security.sqla.models import User
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from wtforms import DateTimeLocalField, SelectField, StringField
from wtforms.validators import InputRequired, Length, Optional
from wtforms.widgets import DateTimeLocalInput

from app.extensions import db
from app.models.leads import Communication, FollowUp, Lead
from app.models.org import Branch
from app.models.patients import Patient
from app.security.scoping import allowed_branch_ids
from app.services.appointments import branch_zone
from app.services.audit import record_access
from app.services.communications import (
    CHANNEL_LABELS,
    DIRECTION_LABELS,
    OUTCOME_LABELS,
    is_overdue,
)
from app.views.base import ClinicSQLAInterface

LOCAL_FORMAT = "%Y-%m-%d %H:%M"
#: Pseudo-columns: the time in the record's branch's clock, and whom the record is about.
WHEN = "when_local"
DUE = "due_local"
ABOUT = "about"
STATE = "state"
LEAD_PAGE = "LeadModelView.show"


def communication_label(value: str | None) -> str:
    """A channel, direction or outcome code as people read it ("left_message": "Left a message")."""
    for labels in (CHANNEL_LABELS, DIRECTION_LABELS, OUTCOME_LABELS):
        if value in labels:
            return str(labels[value])
    return value or "—"


def person(user: User | None) -> str:
    if user is None:
        return "—"
    return f"{user.first_name} {user.last_name}".strip() or user.username


def clock(when: datetime | None, branch: Branch | None) -> str:
    """A stored UTC time as the branch's clock reads it, e.g. ``2026-03-04 09:30``."""
    if when is None:
        return "—"
    when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    return when.astimezone(branch_zone(branch)).strftime(LOCAL_FORMAT) if branch else \
        when.strftime(LOCAL_FORMAT + " UTC")


def about(record: Communication | FollowUp) -> str:
    if record.lead is not None:
        return str(_l("Lead: %(name)s", name=record.lead.full_name))
    if record.patient is not None:
        return f"{record.patient.full_name} · {record.patient.mrn}"
    return "—"


def arg_int(name: str) -> int | None:
    value = request.values.get(name, "")
    return int(value) if value.isdigit() else None


def subject_page(lead: Lead | None, patient: Patient | None) -> str | None:
    """The lead's page (when the leads screen exists), else the patient's."""
    if lead is not None and LEAD_PAGE in current_app.view_functions:
        return url_for(LEAD_PAGE, pk=lead.id)
    if patient is not None:
        return url_for("PatientModelView.show", pk=patient.id)
    if lead is not None and lead.patient_id:
        return url_for("PatientModelView.show", pk=lead.patient_id)
    return None


def record_subject_reads(view: Any, action: str, pks: list[Any]) -> None:
    """The access log's entries for a page of communications or follow-ups.

    Rows about a lead are lead reads (the view's ``access_log``, written by the base class);
    rows about a patient alone are reads of that patient's data, recorded here as such, so the
    patient's "who viewed this record" shows them.
    """
    model = view.datamodel.obj
    rows = [row for row in (db.session.get(model, pk) for pk in pks) if row is not None]
    patient_rows = [row for row in rows if row.lead_id is None and row.patient_id is not None]
    if not patient_rows:
        return
    branches = {row.branch_id for row in patient_rows}
    record_access(
        "patient", None, action, records=[row.id for row in patient_rows], model=model.__name__,
        subject_ids=[row.patient_id for row in patient_rows],
        branch_id=branches.pop() if len(branches) == 1 else None,
    )


class SubjectInterface(ClinicSQLAInterface):
    """Communications' and follow-ups' data with their times in their branch's clock."""

    @staticmethod
    def _get_attr_value(item, col):
        if col == WHEN:
            return clock(item.occurred_at, item.branch)
        if col == DUE:
            return clock(item.due_at, item.branch)
        if col == ABOUT:
            return about(item)
        if col == STATE:
            if item.done_at is not None:
                return str(_l("Done"))
            return str(_l("Overdue")) if is_overdue(item) else str(_l("Open"))
        return ClinicSQLAInterface._get_attr_value(item, col)


def when_field(label, required: bool) -> DateTimeLocalField:
    validators = (
        [InputRequired(message=_l("Enter the date and time."))] if required else [Optional()]
    )
    return DateTimeLocalField(
        label, format="%Y-%m-%dT%H:%M", widget=DateTimeLocalInput(), validators=validators,
        description=_l("In the branch's local time."),
    )


class SubjectForm(DynamicForm):
    patient_mrn = StringField(
        _l("Patient's MRN"), description=_l("As on the patient's page, e.g. MRN-000123."),
        validators=[Optional(), Length(max=20)],
    )
    branch = SelectField(_l("Branch"), coerce=int, validate_choice=False)


def my_branches() -> list[Branch]:
    return list(db.session.scalars(
        select(Branch).where(Branch.id.in_(allowed_branch_ids())).order_by(Branch.name)
    ))


def colleagues() -> list[User]:
    """Staff who work at the signed-in user's branches (follow-ups' assignees)."""
    return list(db.session.scalars(
        select(User)
        .where(User.active.is_(True), User.branches.any(Branch.id.in_(allowed_branch_ids())))
        .order_by(User.first_name, User.last_name)
    ))


class SubjectFormMixin:
    """Adding and editing a record about a lead (``?lead=``) or a patient (``?patient=``)."""

    form_class: type[SubjectForm]
    form_template: str

    def _subject(self, form: SubjectForm) -> tuple[Lead | None, Patient | None]:
        """The lead (of the user's branches) or patient the form is about; 404 for others."""
        lead_id, patient_id = arg_int("lead"), arg_int("patient")
        if lead_id:
            lead = db.session.get(Lead, lead_id)
            if lead is None or lead.branch_id not in allowed_branch_ids():
                abort(404)
            return lead, None
        if patient_id:
            patient = db.session.get(Patient, patient_id)
            if patient is None or patient.merged_into_id is not None:
                abort(404)
            return None, patient
        mrn = (form.patient_mrn.data or "").strip().upper()
        if request.method == "POST" and mrn:
            patient = db.session.scalar(
                select(Patient).where(Patient.mrn == mrn, Patient.merged_into_id.is_(None))
            )
            if patient is None:
                form.patient_mrn.errors = [str(_l("No patient has this MRN."))]
            return None, patient
        if request.method == "POST":
            form.patient_mrn.errors = [str(_l("Enter the patient's MRN."))]
        return None, None

    def _render_form(self, form, record=None, lead=None, patient=None, **extra):
        return self.render_template(
            self.form_template, title=self.edit_title if record else self.add_title, form=form,
            record=record, lead=lead, patient=patient, back=subject_page(lead, patient),
            one_branch=len(form.branch.choices) == 1, **extra,
        )

    def _branch_of(self, form: SubjectForm, lead: Lead | None) -> Branch | None:
        if lead is not None:
            return lead.branch
        if not form.branch.choices:
            return None
        chosen = form.branch.data if len(form.branch.choices) > 1 else form.branch.choices[0][0]
        return db.session.get(Branch, chosen) if chosen in allowed_branch_ids() else None


class SubjectApiMixin:
    """The branch may be left out: a lead's record takes the lead's, a patient's the user's own.

    API reads of records about a patient alone are logged as reads of that patient's data, as
    the screens log them (the base class logs the lead reads).
    """

    def pre_get(self, data: dict[str, Any]) -> None:
        super().pre_get(data)
        record_subject_reads(self, "api_read", [data["id"]])

    def pre_get_list(self, data: dict[str, Any]) -> None:
        super().pre_get_list(data)
        record_subject_reads(self, "api_read", data["ids"])

    def _init_model_schemas(self) -> None:
        super()._init_model_schemas()
        for name in ("branch", "occurred_at", "direction"):
            field = self.add_model_schema.fields.get(name)
            if field is not None:
                field.required = False
                field.allow_none = True
