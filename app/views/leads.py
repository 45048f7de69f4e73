"""Leads: the list with its filters, each lead's page (matches, history, communications), staff
add/edit with a duplicate check, stage moves, conversion into a booked patient, and the REST API.

Business rules live in app/services/leads.py; these views only map its errors to messages.
"""

from __future__ import annotations

from datetime import datetime, timezone

from flask import abort, flash, g, has_request_context, redirect, request, url_for
from flask_appbuilder import expose, has_access
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.models.sqla.filters import FilterEqual
from flask_appbuilder.security.sqla.models import User
from flask_babel import lazy_gettext as _l
from markupsafe import Markup
from sqlalchemy import select
from wtforms import BooleanField, DateTimeLocalField, SelectField
from wtforms.validators import Email, Optional
from wtforms.widgets import DateTimeLocalInput

from app.extensions import db
from app.formatting import branch_time, or_dash, phone
from app.models.leads import Lead, LeadStageChange
from app.models.org import Branch
from app.models.patients import Patient
from app.models.scheduling import Service
from app.security.policy import CONVERT, CREATE, EDIT, LEADS, READ, VIEW_METHOD_PERMISSIONS
from app.security.scoping import allowed_branch_ids
from app.services.appointments import (
    SlotUnavailableError,
    available_doctors,
    branch_zone,
    from_local,
)
from app.services.errors import ClinicError
from app.services.leads import (
    HEARD_ABOUT_LABELS,
    LOST_REASON_LABELS,
    OBTAINED_LABELS,
    SOURCE_LABELS,
    STAGE_LABELS,
    CONSENT_LABELS,
    allowed_stages,
    consent_history,
    convert_lead,
    create_lead,
    find_matches,
    link_patient,
    move_stage,
    update_lead,
)
from app.views.base import (
    BranchScopedMixin,
    ClinicModelApi,
    ClinicModelView,
    ClinicSQLAInterface,
    log_matched_patients,
)
from app.views.forms import LOCAL_INPUT_FORMAT, dialable_phone, local_path
from app.views.timeline import timeline_source

#: Pseudo-columns of the list.
NAME = "full_name"
AGE = "age_label"
FOLLOW_UP = "follow_up_label"
STAGE_BADGE = "stage_badge"
RECEIVED = "received_label"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(when: datetime | None) -> datetime | None:
    if when is None:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def stage_label(stage: str | None) -> str:
    return str(STAGE_LABELS.get(stage, stage or "—"))


def source_label(source: str | None) -> str:
    return str(SOURCE_LABELS.get(source, source or "—"))


def _person(user: User | None) -> str:
    return f"{user.first_name} {user.last_name}" if user is not None else "—"


def age_text(lead: Lead) -> str:
    """How long ago the lead came in: "today", "3 days"."""
    created = _aware(lead.created_at)
    if created is None:
        return "—"
    days = (_now() - created).days
    if days <= 0:
        return str(_l("today"))
    return str(_l("%(num)d days", num=days)) if days != 1 else str(_l("1 day"))


def is_overdue(lead: Lead) -> bool:
    due = _aware(lead.next_follow_up_at)
    return due is not None and due < _now() and lead.stage not in ("converted", "lost")


def stage_badge(lead: Lead) -> Markup:
    return Markup('<span class="cd-status cd-lead-stage cd-lead-stage--{}">{}</span>').format(
        lead.stage, stage_label(lead.stage)
    )


def follow_up_html(lead: Lead) -> Markup:
    if lead.next_follow_up_at is None:
        return Markup("—")
    text = branch_time(lead.next_follow_up_at, lead.branch)
    if is_overdue(lead):
        return Markup('<span class="cd-lead-overdue">{} · {}</span>').format(
            text, _l("overdue")
        )
    return Markup("{}").format(text)


class LeadInterface(ClinicSQLAInterface):
    """Leads' data with the list's pseudo-columns (stage badge, age, follow-up)."""

    @staticmethod
    def _get_attr_value(item, col):
        if col == STAGE_BADGE:
            return stage_badge(item)
        if col == AGE:
            return age_text(item)
        if col == FOLLOW_UP:
            return follow_up_html(item)
        if col == RECEIVED:
            return branch_time(item.created_at, item.branch)
        return ClinicSQLAInterface._get_attr_value(item, col)


class FilterLeadListArgs(BaseFilter):
    """On the list page: the stage, source and owner chosen in the filter bar."""

    name = "Lead list filters"
    arg_name = "leadargs"

    def apply(self, query, value):
        if not has_request_context() or request.endpoint != "LeadModelView.list":
            return query
        stage = request.args.get("stage", "")
        if stage in STAGE_LABELS:
            query = query.filter(Lead.stage == stage)
        elif stage == "open":
            query = query.filter(Lead.stage.in_(("new", "contacted", "qualified", "booked")))
        source = request.args.get("source", "")
        if source in SOURCE_LABELS:
            query = query.filter(Lead.source == source)
        owner = request.args.get("owner", "")
        if owner == "none":
            query = query.filter(Lead.owner_id.is_(None))
        elif owner.isdigit():
            query = query.filter(Lead.owner_id == int(owner))
        return query


def _colleagues() -> list[User]:
    """Active staff of the signed-in user's branches (owner choices, list filter)."""
    return list(db.session.scalars(
        select(User)
        .where(User.active.is_(True), User.branches.any(Branch.id.in_(allowed_branch_ids())))
        .order_by(User.first_name, User.last_name)
    ))


def _follow_up_field() -> DateTimeLocalField:
    return DateTimeLocalField(
        _l("Next follow-up"), format=LOCAL_INPUT_FORMAT, widget=DateTimeLocalInput(),
        validators=[Optional()], description=_l("In the branch's local time."),
    )


def _form_fields() -> dict:
    return {
        "source": SelectField(_l("Source"), choices=list(SOURCE_LABELS.items()), default="phone"),
        "heard_about": SelectField(
            _l("How they heard of us"),
            choices=[("", "—"), *HEARD_ABOUT_LABELS.items()], validators=[Optional()],
        ),
        "next_follow_up_at": _follow_up_field(),
        "consent_contact": BooleanField(_l("Agrees to be contacted about this request")),
        "consent_reminders": BooleanField(_l("Agrees to appointment reminders")),
        "consent_marketing": BooleanField(_l("Agrees to news and offers (marketing)")),
        "consent_obtained": SelectField(
            _l("Consent obtained"), choices=list(OBTAINED_LABELS.items()), default="phone",
            description=_l("How the person gave or withdrew the consents above."),
        ),
    }


def _to_utc(lead: Lead) -> None:
    """The follow-up typed in the branch's local time, stored in UTC."""
    when = lead.next_follow_up_at
    if when is not None and when.tzinfo is None:
        branch = lead.branch or db.session.get(Branch, lead.branch_id)
        lead.next_follow_up_at = from_local(branch, when) if branch else when.replace(
            tzinfo=timezone.utc
        )


def _comm_labels() -> dict:
    """The communication log's labels (channel, direction, outcome), when the module is there."""
    try:
        from app.services import communications
    except ImportError:
        return {}
    labels: dict = {}
    for name in ("CHANNEL_LABELS", "DIRECTION_LABELS", "OUTCOME_LABELS"):
        labels.update(getattr(communications, name, {}))
    return labels


def _communications(lead: Lead):
    """The lead's communications and follow-ups, when the communications module is there."""
    try:
        from app.services.communications import for_lead
    except ImportError:
        return None, None
    try:
        return for_lead(lead)
    except Exception:  # noqa: BLE001 - another helper's module must not break the lead page
        db.session.rollback()
        return None, None


def _mine(leads: list[Lead]) -> list[Lead]:
    """Matched leads of the signed-in user's branches only (leads belong to their branch)."""
    allowed = set(allowed_branch_ids())
    return [lead for lead in leads if lead.branch_id in allowed]


def _doctors(branches: list[Branch]) -> list[User]:
    seen: dict[int, User] = {}
    for branch in branches:
        for doctor in available_doctors(branch):
            seen.setdefault(doctor.id, doctor)
    return sorted(seen.values(), key=lambda d: (d.first_name or "", d.last_name or ""))


class LeadModelView(BranchScopedMixin, ClinicModelView):
    """Leads of the user's branches: find, open, add with a duplicate check, move, convert."""

    route_base = "/leads"
    datamodel = LeadInterface(Lead)
    class_permission_name = LEADS
    method_permission_name = {**VIEW_METHOD_PERMISSIONS, "move": "edit", "convert": "convert",
                              "link": "edit"}
    base_permissions = [READ, CREATE, EDIT, CONVERT]
    base_filters = [["id", FilterLeadListArgs, None]]
    access_log = "lead"
    list_template = "clinic/leads/list.html"
    show_template = "clinic/leads/show.html"
    add_template = "clinic/leads/add.html"
    list_title = _l("Leads")
    show_title = _l("Lead")
    add_title = _l("Add a lead")
    edit_title = _l("Edit lead")
    add_row_message = _l("Lead added.")
    list_columns = [NAME, "phone", "source", STAGE_BADGE, "owner", FOLLOW_UP, AGE]
    show_columns = [
        "first_name", "last_name", "phone", "email", "branch", "source", "heard_about",
        "requested_service", "preferred_times", "reason", "owner", FOLLOW_UP,
        "consent_contact", "consent_reminders", "consent_marketing", "notes",
        "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", RECEIVED,
    ]
    _form = [
        "first_name", "last_name", "phone", "email", "branch", "source", "heard_about",
        "requested_service", "preferred_times", "reason", "owner", "next_follow_up_at",
        "consent_contact", "consent_reminders", "consent_marketing", "consent_obtained", "notes",
    ]
    add_columns = _form + ["confirm_new"]
    edit_columns = _form
    search_columns: list[str] = []
    order_columns = ["created_at", "next_follow_up_at"]
    base_order = ("id", "desc")
    add_form_extra_fields = {
        **_form_fields(),
        "confirm_new": BooleanField(
            _l("This is a new enquiry"),
            description=_l("Tick after checking the possible matches shown above."),
        ),
    }
    edit_form_extra_fields = _form_fields()
    _service_filter = {"requested_service": [["is_active", FilterEqual, True]]}
    add_form_query_rel_fields = _service_filter
    edit_form_query_rel_fields = _service_filter
    validators_columns = {
        "phone": [Optional(), dialable_phone("branch")],
        "email": [Optional(), Email(message=_l("Enter a valid e-mail address."))],
    }
    formatters_columns = {
        "phone": lambda value: Markup('<span class="cd-lead-nowrap">{}</span>').format(
            phone(value)
        ),
        "source": source_label,
        "heard_about": lambda value: str(HEARD_ABOUT_LABELS.get(value, "—")) if value else "—",
        "owner": _person,
        **{name: or_dash for name in (
            "last_name", "email", "requested_service", "preferred_times", "reason", "notes",
            "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
        )},
        **{
            name: (lambda value: str(_l("Yes")) if value else str(_l("No")))
            for name in ("consent_contact", "consent_reminders", "consent_marketing")
        },
    }
    label_columns = {
        NAME: _l("Name"),
        AGE: _l("Age"),
        FOLLOW_UP: _l("Next follow-up"),
        STAGE_BADGE: _l("Stage"),
        RECEIVED: _l("Received"),
        "first_name": _l("First name"),
        "last_name": _l("Last name"),
        "phone": _l("Phone"),
        "email": _l("E-mail"),
        "branch": _l("Branch"),
        "source": _l("Source"),
        "heard_about": _l("How they heard of us"),
        "requested_service": _l("Requested service"),
        "preferred_times": _l("Preferred times"),
        "reason": _l("Reason"),
        "owner": _l("Owner"),
        "next_follow_up_at": _l("Next follow-up"),
        "consent_contact": _l("Contact about this request"),
        "consent_reminders": _l("Appointment reminders"),
        "consent_marketing": _l("Marketing"),
        "consent_obtained": _l("Consent obtained"),
        "notes": _l("Staff notes"),
        "created_at": _l("Received"),
        "utm_source": _l("Campaign source"),
        "utm_medium": _l("Campaign medium"),
        "utm_campaign": _l("Campaign"),
        "utm_term": _l("Campaign term"),
        "utm_content": _l("Campaign content"),
        "confirm_new": _l("This is a new enquiry"),
        "stage": _l("Stage"),
    }

    def render_template(self, template, **kwargs):
        if template == self.list_template:
            kwargs.update(filter_stages=STAGE_LABELS, filter_sources=SOURCE_LABELS,
                          filter_owners=_colleagues())
        return super().render_template(template, **kwargs)

    def prefill_form(self, form, pk) -> None:
        lead = self.datamodel.get(pk, self._base_filters)
        if lead is not None and lead.next_follow_up_at is not None:
            form.next_follow_up_at.data = _aware(lead.next_follow_up_at).astimezone(
                branch_zone(lead.branch)
            ).replace(tzinfo=None)

    # Adding: matches first, then the service -------------------------------------------------

    def _candidate(self, form) -> Lead:
        candidate = Lead()
        for name in ("first_name", "last_name", "phone", "email"):
            setattr(candidate, name, form[name].data)
        branch = form.branch.data
        candidate.branch_id = getattr(branch, "id", None)
        return candidate

    def _add(self):
        form = self.add_form.refresh()
        if request.method != "POST":
            return self._get_add_widget(form=form)
        if not form.validate():
            return self._get_add_widget(form=form)
        if not form.phone.data and not form.email.data:
            form.phone.errors = [*form.phone.errors,
                                 str(_l("Please give a phone number or an e-mail address."))]
            return self._get_add_widget(form=form)
        if not form.confirm_new.data:
            patients, leads = find_matches(self._candidate(form))
            leads = _mine(leads)
            if patients or leads:
                log_matched_patients(patients)
                g.lead_matches = (patients, leads)
                g.lead_match_branches = allowed_branch_ids()
                return self._get_add_widget(form=form)
        self.process_form(form, True)
        item = self.datamodel.obj()
        try:
            form.populate_obj(item)
            self.pre_add(item)
            db.session.commit()
        except ClinicError as error:
            db.session.rollback()
            flash(str(error), "danger")
            return self._get_add_widget(form=form)
        flash(str(self.add_row_message), "success")
        return redirect(url_for(".show", pk=item.id))

    @expose("/add", methods=["GET", "POST"])
    @has_access
    def add(self):
        widget = self._add()
        if not isinstance(widget, dict):
            return widget
        return self.render_template(
            self.add_template, title=self.add_title, widgets=widget,
            stage_labels=STAGE_LABELS,
        )

    def pre_add(self, item: Lead) -> None:
        super().pre_add(item)  # the branch check
        item.heard_about = item.heard_about or None
        _to_utc(item)
        create_lead(item, obtained=getattr(item, "consent_obtained", None) or "phone")

    def pre_update(self, item: Lead) -> None:
        super().pre_update(item)
        item.heard_about = item.heard_about or None
        _to_utc(item)
        update_lead(item, obtained=getattr(item, "consent_obtained", None) or "phone")

    # The lead's page ---------------------------------------------------------------------------

    def _load(self, pk: int) -> Lead:
        lead = self.datamodel.get(pk, self._base_filters)
        if lead is None:
            abort(404)
        return lead

    @expose("/show/<pk>")
    @has_access
    def show(self, pk):
        pk = self._deserialize_pk_if_composite(pk)
        widgets = self._show(pk)
        lead = self._load(pk)
        sm = self.appbuilder.sm
        can_edit = sm.has_access(EDIT, LEADS)
        patients, leads = find_matches(lead) if lead.stage != "converted" else ([], [])
        leads = _mine(leads)
        log_matched_patients(patients)
        communications, follow_ups = _communications(lead)
        history = list(db.session.scalars(
            select(LeadStageChange).where(LeadStageChange.lead_id == lead.id)
            .order_by(LeadStageChange.changed_at.desc(), LeadStageChange.id.desc())
        ))
        return self.render_template(
            self.show_template, pk=pk, title=self.show_title, widgets=widgets, lead=lead,
            matches_patients=patients, matches_leads=leads, history=history,
            consents=list(reversed(consent_history(lead))),
            communications=communications, follow_ups=follow_ups,
            has_communications=communications is not None, comm_labels=_comm_labels(),
            can_edit=can_edit, can_convert=sm.has_access(CONVERT, LEADS),
            can_log=sm.has_access(CREATE, "Communications"),
            can_follow_up=sm.has_access(CREATE, "FollowUps"),
            next_stages=allowed_stages(lead) if can_edit else [],
            stage_labels=STAGE_LABELS, lost_reasons=LOST_REASON_LABELS,
            consent_labels=CONSENT_LABELS, obtained_labels=OBTAINED_LABELS,
            source_label=source_label, is_overdue=is_overdue(lead), age=age_text(lead),
            my_branch_ids=allowed_branch_ids(),
        )

    @expose("/<int:pk>/stage", methods=["POST"])
    @has_access
    def move(self, pk: int):
        """Move the lead to the posted stage; back to ``next`` (a local path) or its page."""
        lead = self._load(pk)
        to_stage = request.form.get("stage", "")
        try:
            move_stage(lead, to_stage, lost_reason=request.form.get("lost_reason") or None,
                       note=request.form.get("note") or None)
            db.session.commit()
        except ClinicError as error:
            db.session.rollback()
            flash(str(error), "danger")
        else:
            flash(str(_l("%(name)s: %(stage)s.", name=lead.full_name,
                         stage=stage_label(to_stage))), "success")
        target = local_path(request.form.get("next"))
        return redirect(target or url_for(".show", pk=pk))

    @expose("/<int:pk>/link", methods=["POST"])
    @has_access
    def link(self, pk: int):
        """Link one of the matched patients to this lead (no conversion yet)."""
        lead = self._load(pk)
        patient_id = request.form.get("patient", "")
        patient = db.session.get(Patient, int(patient_id)) if patient_id.isdigit() else None
        if patient is None or patient.id not in {p.id for p in find_matches(lead)[0]}:
            abort(404)
        try:
            link_patient(lead, patient)
            db.session.commit()
        except ClinicError as error:
            db.session.rollback()
            flash(str(error), "danger")
        else:
            flash(str(_l("Linked to %(name)s (%(mrn)s).", name=patient.full_name,
                         mrn=patient.mrn)), "success")
        return redirect(url_for(".show", pk=pk))

    # Conversion --------------------------------------------------------------------------------

    @expose("/<int:pk>/convert", methods=["GET", "POST"])
    @has_access
    def convert(self, pk: int):
        """Book the lead's first appointment: with a matched patient or a new registration."""
        lead = self._load(pk)
        if lead.stage in ("converted", "lost"):
            flash(str(_l("Only an open lead can be converted.")), "warning")
            return redirect(url_for(".show", pk=pk))
        branches = list(db.session.scalars(
            select(Branch).where(Branch.id.in_(allowed_branch_ids())).order_by(Branch.name)
        ))
        matches = find_matches(lead)[0]
        choices = list(matches)
        if lead.patient is not None and lead.patient.id not in {p.id for p in choices}:
            choices.insert(0, lead.patient)
        values = request.form if request.method == "POST" else request.args
        branch_id = values.get("branch", "")
        branch = next((b for b in branches if str(b.id) == branch_id), None) or next(
            (b for b in branches if b.id == lead.branch_id), branches[0] if branches else None
        )
        doctors = _doctors(branches)
        services = list(db.session.scalars(
            select(Service).where(Service.is_active.is_(True)).order_by(Service.name)
        ))
        errors: dict[str, str] = {}
        form = {
            "patient": values.get("patient", str(lead.patient_id) if lead.patient_id else (
                str(choices[0].id) if choices else "new")),
            "doctor": values.get("doctor", ""),
            "branch": str(branch.id) if branch else "",
            "starts_at": values.get("starts_at", ""),
            "service": values.get("service", str(lead.requested_service_id or "")),
            "duration_min": values.get("duration_min", ""),
        }
        if request.method == "POST":
            patient = None
            if form["patient"] != "new":
                patient = next((p for p in choices if str(p.id) == form["patient"]), None)
                if patient is None:
                    errors["patient"] = str(_l("Choose one of the patients listed, or a new one."))
            doctor = next((d for d in doctors if str(d.id) == form["doctor"]), None)
            if doctor is None:
                errors["doctor"] = str(_l("Choose a doctor."))
            service = next((s for s in services if str(s.id) == form["service"]), None)
            try:
                starts_local = datetime.strptime(form["starts_at"], LOCAL_INPUT_FORMAT)
            except ValueError:
                starts_local = None
                errors["starts_at"] = str(_l("Enter the date and time."))
            duration = None
            if form["duration_min"]:
                if form["duration_min"].isdigit() and 5 <= int(form["duration_min"]) <= 480:
                    duration = int(form["duration_min"])
                else:
                    errors["duration_min"] = str(
                        _l("Enter a duration between 5 and 480 minutes.")
                    )
            if branch is None:
                errors["branch"] = str(_l("Choose one of your own branches for this record."))
            if not errors:
                try:
                    patient, appointment = convert_lead(
                        lead, patient=patient, doctor=doctor, branch=branch,
                        starts_at=from_local(branch, starts_local), service=service,
                        duration_min=duration,
                    )
                    db.session.commit()
                except ClinicError as error:
                    db.session.rollback()
                    message = str(error)
                    key = "starts_at" if isinstance(error, SlotUnavailableError) else "form"
                    errors[key] = message
                    flash(message, "danger")
                    lead = self._load(pk)
                else:
                    flash(str(_l("%(name)s is booked: the lead is converted.",
                                 name=patient.full_name)), "success")
                    return redirect(url_for("AppointmentModelView.show", pk=appointment.id))
        return self.render_template(
            "clinic/leads/convert.html", title=_l("Convert lead"), lead=lead, form=form,
            errors=errors, choices=choices, branches=branches, doctors=doctors,
            services=services,
        )


class LeadApi(BranchScopedMixin, ClinicModelApi):
    """``/api/v1/leads/``: leads of the user's branches; writes go through the leads service.

    The pipeline's state (stage, lost reason, patient, appointment, dates) is never writable
    here: stage moves and conversion have their own screens and rules.
    """

    resource_name = "leads"
    datamodel = ClinicSQLAInterface(Lead)
    class_permission_name = LEADS
    base_permissions = [READ, CREATE, EDIT, CONVERT]
    access_log = "lead"
    _columns = [
        "first_name", "last_name", "phone", "email", "source", "heard_about",
        "preferred_times", "reason", "next_follow_up_at", "consent_contact",
        "consent_reminders", "consent_marketing", "notes",
    ]
    list_columns = [
        "id", *_columns, "stage", "lost_reason", "stage_changed_at", "branch.id", "branch.name",
        "owner.id", "requested_service.id", "patient.id", "appointment.id", "created_at",
        "booked_at", "converted_at",
    ]
    show_columns = list_columns
    add_columns = [*_columns, "branch", "owner", "requested_service"]
    edit_columns = add_columns
    order_columns = ["created_at", "stage", "next_follow_up_at"]
    search_columns = ["stage", "source", "owner", "branch"]

    def pre_add(self, item: Lead) -> None:
        super().pre_add(item)
        create_lead(item, obtained="phone")

    def pre_update(self, item: Lead) -> None:
        super().pre_update(item)
        update_lead(item, obtained="phone")


@timeline_source("lead", READ, LEADS)
def lead_items(patient: Patient, branch_ids: list[int]):
    """The leads that became (or were linked to) this patient, at the user's branches."""
    leads = db.session.scalars(
        select(Lead).where(Lead.patient_id == patient.id, Lead.branch_id.in_(branch_ids))
    )
    return [(lead.converted_at or lead.created_at, lead) for lead in leads]
