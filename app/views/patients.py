"""Patients: the organisation-wide register, each patient's page, duplicates and merging."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, g, has_request_context, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.fieldwidgets import BS3TextAreaFieldWidget
from flask_appbuilder.forms import DynamicForm
from flask_appbuilder.models.filters import BaseFilter
from flask_babel import lazy_gettext as _l
from sqlalchemy import false, or_, select
from wtforms import BooleanField, DateField, SelectField, StringField, TextAreaField
from wtforms.widgets import DateInput
from wtforms.validators import DataRequired, Email, Optional

from app.extensions import db
from app.formatting import or_dash, phone
from app.models.patients import ConsentChange, Patient, PatientClinical
from app.security.policy import (
    CREATE,
    EDIT,
    MERGE,
    PATIENT_CLINICAL,
    PATIENTS,
    READ,
    SEE_VIEWERS,
    VIEW_METHOD_PERMISSIONS,
)
from app.security.scoping import FilterInBranches, allowed_branch_ids
from app.services.audit import record_access, who_viewed
from app.services.patients import (
    PatientMergeError,
    find_possible_duplicates,
    merge_patients,
    register_patient,
    search_conditions,
    update_patient,
)
from app.views.base import (
    BranchNotAllowedError,
    ClinicModelApi,
    ClinicModelView,
    ClinicSQLAInterface,
    log_matched_patients,
)
from app.views.forms import dialable_phone
from app.views.timeline import patient_timeline, timeline_source

SEX_CHOICES = [
    ("female", _l("Female")),
    ("male", _l("Male")),
    ("other", _l("Other")),
    ("unknown", _l("Not stated")),
]
CONSENT_SOURCE_LABELS = {
    "in_person": _l("In person"),
    "phone": _l("By phone"),
    "web_form": _l("Web form"),
    "written": _l("In writing"),
}
CONSENT_KIND_LABELS = {
    "sms": _l("Reminders by SMS"),
    "email": _l("Reminders by e-mail"),
    "whatsapp": _l("Reminders by WhatsApp"),
    "marketing": _l("Marketing"),
}
#: The form parameter of the list page's search box.
SEARCH_ARG = "search"


class FilterActivePatients(BaseFilter):
    """Patients not merged into another one; on the list page, also those the search box finds."""

    name = "Active patients"
    arg_name = "active"

    def apply(self, query, value):
        query = query.where(Patient.merged_into_id.is_(None))
        on_list = has_request_context() and request.endpoint == "PatientModelView.list"
        text = request.args.get(SEARCH_ARG, "") if on_list else ""
        conditions = search_conditions(text)
        if text.strip():
            query = query.where(or_(*conditions) if conditions else false())
        return query


def check_registering_branch(patient: Patient) -> None:
    """A new patient is registered at one of the registering user's own branches.

    :raises BranchNotAllowedError: for another branch (the API loads any branch by id).
    """
    branch = patient.registered_branch
    branch_id = branch.id if branch is not None else patient.registered_branch_id
    if branch_id not in allowed_branch_ids():
        raise BranchNotAllowedError(str(_l("Choose one of your own branches for this record.")))


def _consent_fields() -> dict[str, Any]:
    return {
        # The browser's own date picker: typed or picked, always sent as YYYY-MM-DD.
        "date_of_birth": DateField(
            _l("Date of birth"), widget=DateInput(), validators=[Optional()]
        ),
        "sex": SelectField(_l("Sex"), choices=SEX_CHOICES, validators=[DataRequired()]),
        "consent_sms": BooleanField(_l("Reminders by SMS")),
        "consent_email": BooleanField(_l("Reminders by e-mail")),
        "consent_whatsapp": BooleanField(_l("Reminders by WhatsApp")),
        "consent_marketing": BooleanField(_l("Marketing messages")),
        "consent_obtained": SelectField(
            _l("Consent obtained"),
            choices=list(CONSENT_SOURCE_LABELS.items()),
            default="in_person",
            description=_l("How the patient gave or withdrew the consents above."),
        ),
    }


class PatientModelView(ClinicModelView):
    """The patient register: search, a page per patient, registration with a duplicate check."""

    route_base = "/patients"
    datamodel = ClinicSQLAInterface(Patient)
    class_permission_name = PATIENTS
    method_permission_name = {**VIEW_METHOD_PERMISSIONS, "merge": "merge"}
    base_permissions = [READ, CREATE, EDIT, MERGE, SEE_VIEWERS]
    base_filters = [["id", FilterActivePatients, None]]
    access_log = "patient"
    list_template = "clinic/patients/list.html"
    show_template = "clinic/patients/show.html"
    add_template = "clinic/patients/add.html"
    list_title = _l("Patients")
    show_title = _l("Patient")
    add_title = _l("Register a patient")
    edit_title = _l("Edit patient")
    add_row_message = _l("Patient registered.")
    list_columns = ["mrn", "full_name", "age", "phone", "registered_branch"]
    order_columns = ["mrn"]
    base_order = ("id", "desc")
    search_columns: list[str] = []
    _form = [
        "first_name", "last_name", "date_of_birth", "sex", "phone", "email", "address",
        "emergency_contact_name", "emergency_contact_phone", "preferred_language",
        "registered_branch", "consent_sms", "consent_email", "consent_whatsapp",
        "consent_marketing", "consent_obtained",
    ]
    add_columns = _form + ["confirm_new"]
    edit_columns = _form
    show_columns = [
        "mrn", "first_name", "last_name", "date_of_birth", "age", "sex", "phone", "email",
        "address", "emergency_contact_name", "emergency_contact_phone", "preferred_language",
        "registered_branch", "consent_sms", "consent_email", "consent_whatsapp",
        "consent_marketing",
    ]
    add_form_query_rel_fields = {"registered_branch": [["id", FilterInBranches, None]]}
    add_form_extra_fields = {
        **_consent_fields(),
        "confirm_new": BooleanField(
            _l("This is a new patient"),
            description=_l("Tick after checking the possible duplicates shown above."),
        ),
    }
    edit_form_extra_fields = _consent_fields()
    formatters_columns = {
        "phone": phone,
        "emergency_contact_phone": phone,
        "sex": lambda value: str(dict(SEX_CHOICES).get(value, value)),
        "age": or_dash,
        "date_of_birth": or_dash,
        **{
            name: or_dash
            for name in ("email", "address", "emergency_contact_name", "preferred_language")
        },
        **{
            name: (lambda value: str(_l("Yes")) if value else str(_l("No")))
            for name in ("consent_sms", "consent_email", "consent_whatsapp", "consent_marketing")
        },
    }
    label_columns = {
        "mrn": _l("MRN"),
        "full_name": _l("Name"),
        "first_name": _l("First name"),
        "last_name": _l("Last name"),
        "date_of_birth": _l("Date of birth"),
        "age": _l("Age"),
        "sex": _l("Sex"),
        "phone": _l("Phone"),
        "email": _l("E-mail"),
        "address": _l("Address"),
        "emergency_contact_name": _l("Emergency contact"),
        "emergency_contact_phone": _l("Emergency contact's phone"),
        "preferred_language": _l("Preferred language"),
        "registered_branch": _l("Registered at"),
        "consent_sms": _l("Reminders by SMS"),
        "consent_email": _l("Reminders by e-mail"),
        "consent_whatsapp": _l("Reminders by WhatsApp"),
        "consent_marketing": _l("Marketing messages"),
        "consent_obtained": _l("Consent obtained"),
        "confirm_new": _l("This is a new patient"),
    }
    validators_columns = {
        "phone": [Optional(), dialable_phone("registered_branch")],
        "emergency_contact_phone": [Optional(), dialable_phone("registered_branch")],
        "email": [Optional(), Email(message=_l("Enter a valid e-mail address."))],
    }

    def _add(self):
        """Before a new patient is saved, show possible duplicates; the typed form stays."""
        if request.method == "POST":
            form = self.add_form.refresh()
            if form.validate() and not form.confirm_new.data:
                candidate = Patient()
                for name in ("first_name", "last_name", "date_of_birth", "phone"):
                    setattr(candidate, name, form[name].data)
                branch = form.registered_branch.data
                candidate.registered_branch_id = getattr(branch, "id", None)
                matches = find_possible_duplicates(candidate)
                if matches:
                    log_matched_patients(matches)
                    g.patient_duplicates = matches
                    return self._get_add_widget(form=form)
        return super()._add()

    def pre_add(self, item: Patient) -> None:
        register_patient(item, getattr(item, "consent_obtained", None) or "in_person")

    def pre_update(self, item: Patient) -> None:
        update_patient(item, getattr(item, "consent_obtained", None) or "in_person")

    @expose("/show/<pk>")
    @has_access
    def show(self, pk):
        pk = self._deserialize_pk_if_composite(pk)
        widgets = self._show(pk)
        sm = self.appbuilder.sm
        patient = self.datamodel.get(pk, self._base_filters)  # found: _show answered 404 otherwise
        can_clinical = sm.has_access(READ, PATIENT_CLINICAL)
        return self.render_template(
            self.show_template,
            pk=pk,
            title=self.show_title,
            widgets=widgets,
            patient=patient,
            clinical=db.session.get(PatientClinical, patient.id) if can_clinical else None,
            can_clinical=can_clinical,
            can_edit_clinical=sm.has_access(EDIT, PATIENT_CLINICAL),
            can_edit=sm.has_access(EDIT, PATIENTS),
            can_merge=sm.has_access(MERGE, PATIENTS),
            timeline=patient_timeline(patient),
            viewers=(
                who_viewed("patient", patient.id, limit=20)
                if sm.has_access(SEE_VIEWERS, PATIENTS)
                else None
            ),
            consent_sources=CONSENT_SOURCE_LABELS,
            consent_kinds=CONSENT_KIND_LABELS,
        )

    @expose("/merge/<int:pk>", methods=["GET", "POST"])
    @has_access
    def merge(self, pk: int):
        """Merge this patient (the duplicate) into the one whose MRN is typed (the survivor)."""
        duplicate = self.datamodel.get(pk, self._base_filters)
        if duplicate is None:
            abort(404)
        form = MergeForm(request.form if request.method == "POST" else None)
        if request.method == "POST" and form.validate():
            survivor = db.session.scalar(
                select(Patient).where(
                    Patient.mrn == form.survivor_mrn.data.strip().upper(),
                    Patient.merged_into_id.is_(None),
                )
            )
            if survivor is None:
                form.survivor_mrn.errors = [str(_l("No patient has this MRN."))]
            else:
                try:
                    merge_patients(survivor, duplicate)
                except PatientMergeError:
                    db.session.rollback()
                    form.survivor_mrn.errors = [
                        str(_l("These two records cannot be merged."))
                    ]
                else:
                    db.session.commit()
                    flash(str(_l("The records are merged into %(mrn)s.", mrn=survivor.mrn)), "success")
                    return redirect(url_for("PatientModelView.show", pk=survivor.id))
        return self.render_template(
            "clinic/patients/merge.html", duplicate=duplicate, form=form,
            title=_l("Merge a duplicate record"),
        )


class MergeForm(DynamicForm):
    survivor_mrn = StringField(
        _l("MRN of the record to keep"),
        validators=[DataRequired()],
        description=_l("Every record of this patient moves there; this record is kept, marked merged."),
    )


@timeline_source("consent", READ, PATIENTS)
def consent_items(patient: Patient, branch_ids: list[int]):
    """Consents given and withdrawn (patient-wide: every branch sees them)."""
    changes = db.session.scalars(
        select(ConsentChange)
        .where(ConsentChange.patient_id == patient.id)
        .order_by(ConsentChange.changed_at.desc(), ConsentChange.id.desc())
    )
    return [(change.changed_at, change) for change in changes]


class ClinicalForm(DynamicForm):
    allergies = TextAreaField(_l("Allergies"), widget=BS3TextAreaFieldWidget())
    chronic_conditions = TextAreaField(_l("Chronic conditions"), widget=BS3TextAreaFieldWidget())
    clinical_notes = TextAreaField(_l("Clinical notes"), widget=BS3TextAreaFieldWidget())


class PatientClinicalView(BaseView):
    """A patient's clinical section (allergies, conditions, notes): clinical roles only."""

    route_base = "/patients/clinical"
    #: The records its pages are about (read by tools that walk every view, such as the
    #: authorization matrix); the view itself reads and writes ``PatientClinical``.
    datamodel = ClinicSQLAInterface(Patient)
    class_permission_name = PATIENT_CLINICAL
    method_permission_name = {"edit": "edit"}
    base_permissions = [READ, EDIT]

    @expose("/edit/<int:pk>", methods=["GET", "POST"])
    @has_access
    def edit(self, pk: int):
        patient = db.session.get(Patient, pk)
        if patient is None or patient.merged_into_id is not None:
            abort(404)
        clinical = db.session.get(PatientClinical, pk) or PatientClinical(patient_id=pk)
        form = ClinicalForm(request.form if request.method == "POST" else None, obj=clinical)
        if request.method == "POST" and form.validate():
            form.populate_obj(clinical)
            for field in ("allergies", "chronic_conditions", "clinical_notes"):
                value = getattr(clinical, field)
                setattr(clinical, field, value.replace("\r\n", "\n") if value else None)
            db.session.add(clinical)
            db.session.commit()
            flash(str(_l("The clinical section is saved.")), "success")
            return redirect(url_for("PatientModelView.show", pk=pk))
        record_access("patient", pk, "view", records=[pk], model="PatientClinical")
        return self.render_template(
            "clinic/patients/clinical.html", patient=patient, form=form,
            title=_l("Clinical section"),
        )


class PatientApi(ClinicModelApi):
    """``/api/v1/patients/``: demographics only (the clinical section is never served here)."""

    resource_name = "patients"
    datamodel = ClinicSQLAInterface(Patient)
    class_permission_name = PATIENTS
    # The screen's permissions, merge included: FAB drops a shared name's pairs an API lacks.
    base_permissions = [READ, CREATE, EDIT, MERGE, SEE_VIEWERS]
    base_filters = [["id", FilterActivePatients, None]]
    access_log = "patient"
    _columns = [
        "first_name", "last_name", "date_of_birth", "sex", "phone", "email", "address",
        "emergency_contact_name", "emergency_contact_phone", "preferred_language",
        "consent_sms", "consent_email", "consent_whatsapp", "consent_marketing",
    ]
    list_columns = ["id", "mrn", *_columns, "registered_branch.id", "registered_branch.name"]
    show_columns = list_columns
    add_columns = [*_columns, "registered_branch"]
    edit_columns = add_columns
    order_columns = ["mrn", "last_name", "first_name"]
    search_columns = ["mrn", "last_name", "first_name", "date_of_birth"]

    def pre_add(self, item: Patient) -> None:
        check_registering_branch(item)
        if item.sex is None:
            item.sex = "unknown"
        register_patient(item, "in_person")

    def pre_update(self, item: Patient) -> None:
        update_patient(item, "in_person")
