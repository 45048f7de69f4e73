"""Prescriptions: written from a visit or directly, changed by their doctor for a day, corrected
as new versions afterwards, and printed on the branch's letterhead."""

from __future__ import annotations

from datetime import date
from typing import Any, Callable

from flask import abort, flash, g, redirect, request, url_for
from flask_appbuilder import expose, has_access
from flask_appbuilder.forms import DynamicForm
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from wtforms import DateField, FieldList, Form, FormField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional
from wtforms.widgets import DateInput

from app.extensions import db
from app.models.consultations import Consultation, Prescription
from app.models.org import Branch
from app.models.patients import Patient
from app.models.scheduling import StaffProfile
from app.security.policy import (
    CONSULTATIONS,
    CREATE,
    EDIT,
    PATIENTS,
    PRESCRIPTIONS,
    READ,
    VIEW_METHOD_PERMISSIONS,
)
from app.security.scoping import allowed_branch_ids, default_branch_id
from app.services.consultations import name_of
from app.services.errors import ClinicError
from app.services.prescriptions import (
    STATUS_LABELS,
    ItemInput,
    PrescriptionItemsError,
    correct_prescription,
    correct_refusal,
    create_prescription,
    edit_refusal,
    is_doctor,
    newer_version,
    quantity_text,
    update_prescription,
)
from app.views.base import (
    BranchScopedMixin,
    ClinicModelApi,
    ClinicModelView,
    ClinicSQLAInterface,
    logs_access,
    record_reads,
)
from app.views.timeline import timeline_source

#: Routes offered in the item editor's route box (the doctor may type any other).
COMMON_ROUTES = (
    _l("Oral"), _l("Sublingual"), _l("Topical"), _l("Inhaled"), _l("Eye drops"),
    _l("Ear drops"), _l("Nasal"), _l("Rectal"), _l("Intramuscular"), _l("Intravenous"),
    _l("Subcutaneous"),
)
PAPER_SIZES = ("a4", "a5")


class ItemForm(Form):
    """One medicine row (a sub-form: the CSRF token is the whole form's)."""

    medicine = StringField(_l("Medicine"), validators=[Optional(), Length(max=200)],
                           render_kw={"autocomplete": "off"})
    strength = StringField(_l("Strength"), validators=[Optional(), Length(max=60)],
                           render_kw={"placeholder": _l("e.g. 500 mg")})
    dose = StringField(_l("Dose"), validators=[Optional(), Length(max=60)],
                       render_kw={"placeholder": _l("e.g. 1 tablet")})
    frequency = StringField(_l("Frequency"), validators=[Optional(), Length(max=60)],
                            render_kw={"placeholder": _l("e.g. twice a day")})
    route = StringField(_l("Route"), validators=[Optional(), Length(max=40)],
                        render_kw={"list": "rx-routes", "autocomplete": "off"})
    duration = StringField(_l("Duration"), validators=[Optional(), Length(max=60)],
                           render_kw={"placeholder": _l("e.g. 5 days")})
    quantity = StringField(_l("Quantity"), render_kw={"inputmode": "decimal", "autocomplete": "off"})
    instructions = StringField(_l("Instructions"), validators=[Optional(), Length(max=300)],
                               render_kw={"placeholder": _l("e.g. after food")})


class PrescriptionForm(DynamicForm):
    items = FieldList(FormField(ItemForm), min_entries=1)
    advice = TextAreaField(_l("Advice"), render_kw={"rows": 3})
    follow_up_on = DateField(_l("Follow-up date"), widget=DateInput(), validators=[Optional()])


class NewPrescriptionForm(PrescriptionForm):
    """Writing one directly for a patient: the doctor names the patient (and branch if several)."""

    patient_mrn = StringField(_l("Patient's MRN"), validators=[DataRequired()],
                              render_kw={"autocomplete": "off", "placeholder": "MRN-000123"})
    branch = SelectField(_l("Branch"), coerce=int, validate_choice=False)


def form_data(prescription: Prescription) -> dict[str, Any]:
    """A prescription as the editor's starting values (also the copy a correction starts from)."""
    items = []
    for item in prescription.items:
        row = ItemInput.of(item).__dict__
        row = {key: ("" if value is None else value) for key, value in row.items()}
        row["quantity"] = quantity_text(item.quantity)
        items.append(row)
    return {"items": items or [{}], "advice": prescription.advice or "",
            "follow_up_on": prescription.follow_up_on}


def rows_changed(form: PrescriptionForm) -> bool:
    """Handle the editor's row buttons: "Add another medicine" and each row's "Remove".

    True when one was pressed: the form is shown again with what was typed, nothing saved.
    """
    if "add_item" in request.form:
        form.items.append_entry()
        return True
    remove = request.form.get("remove_item")
    if remove is not None:
        form.items.entries = [e for e in form.items.entries if e.name != f"items-{remove}"]
        if not form.items.entries:
            form.items.append_entry()
        return True
    return False


def typed_items(form: PrescriptionForm) -> list[ItemInput]:
    return [ItemInput(**entry.form.data) for entry in form.items.entries]


def show_item_errors(form: PrescriptionForm, exc: PrescriptionItemsError) -> dict[int, str]:
    """Put the service's complaints on the form; returns the per-row messages by row index."""
    row_errors = {}
    for key, message in exc.errors.items():
        if key == "follow_up_on":
            form.follow_up_on.errors = [*form.follow_up_on.errors, message]
        elif key == "items":
            row_errors[0] = message
        else:
            row_errors[int(key)] = message
    return row_errors


def save_prescription(form: PrescriptionForm, write: Callable[..., Prescription], *args,
                      **kwargs) -> tuple[Prescription | None, dict[int, str]]:
    """Call ``write`` (a prescriptions service) with what the editor holds and commit.

    Returns the saved prescription, or None and the per-row messages when the service refused.
    """
    try:
        saved = write(*args, items=typed_items(form), advice=form.advice.data,
                      follow_up_on=form.follow_up_on.data, **kwargs)
    except PrescriptionItemsError as exc:
        db.session.rollback()
        return None, show_item_errors(form, exc)
    except ClinicError as exc:
        db.session.rollback()
        flash(str(exc), "danger")
        return None, {}
    db.session.commit()
    return saved, {}


def _short(text: str | None, limit: int) -> str:
    if not text:
        return "—"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def age_on(born: date | None, day: date) -> int | None:
    if born is None:
        return None
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


class PrescriptionModelView(BranchScopedMixin, ClinicModelView):
    """Prescriptions: list, page, the items editor, corrections as versions, the printed page."""

    route_base = "/prescriptions"
    datamodel = ClinicSQLAInterface(Prescription)
    class_permission_name = PRESCRIPTIONS
    method_permission_name = {
        **VIEW_METHOD_PERMISSIONS, "delete": "delete", "print_view": "read", "correct": "edit",
    }
    base_permissions = [READ, CREATE, EDIT]
    exclude_route_methods = {"delete"}
    access_log = "patient"
    list_title = _l("Prescriptions")
    show_title = _l("Prescription")
    list_columns = ["prescribed_on", "patient", "doctor", "items", "advice", "status"]
    order_columns = ["prescribed_on"]
    base_order = ("id", "desc")
    search_columns = ["prescribed_on", "doctor"]
    show_columns = ["prescribed_on", "patient", "doctor", "status"]
    add_columns = edit_columns = ["advice"]
    label_columns = {
        "prescribed_on": _l("Date"),
        "patient": _l("Patient"),
        "doctor": _l("Doctor"),
        "version": _l("Version"),
        "items": _l("Medicines"),
        "advice": _l("Advice"),
        "status": _l("Status"),
    }
    formatters_columns = {
        "status": lambda value: str(STATUS_LABELS.get(value, value)),
        "doctor": lambda user: name_of(user) if user else "—",
        "items": lambda items: _short(", ".join(item.medicine for item in items or []), 70),
        "advice": lambda advice: _short(advice, 60),
    }

    def _prescription(self, pk: Any) -> Prescription:
        prescription = self.datamodel.get(pk, self._base_filters)
        if prescription is None:
            abort(404)
        return prescription

    def _editor(self, form, prescription: Prescription | None, row_errors=None, **context):
        return self.render_template(
            "clinic/prescriptions/edit.html", form=form, prescription=prescription,
            row_errors=row_errors or {}, routes=COMMON_ROUTES, **context,
        )

    # -- pages --------------------------------------------------------------------------------

    @expose("/show/<pk>")
    @has_access
    def show(self, pk):
        pk = self._deserialize_pk_if_composite(pk)
        self._show(pk)  # 404 outside the user's branches; logs the read
        prescription = self._prescription(pk)
        sm = self.appbuilder.sm
        may_edit = sm.has_access(EDIT, PRESCRIPTIONS)
        refusal = edit_refusal(prescription)
        return self.render_template(
            "clinic/prescriptions/show.html",
            title=self.show_title,
            quantity=quantity_text,
            prescription=prescription,
            newer=newer_version(prescription),
            status_labels=STATUS_LABELS,
            can_edit=may_edit and refusal is None,
            can_correct=may_edit and refusal is not None and correct_refusal(prescription) is None,
            can_see_consultation=sm.has_access(READ, CONSULTATIONS),
            can_see_patient=sm.has_access(READ, PATIENTS),
        )

    @expose("/add", methods=["GET", "POST"])
    @has_access
    def add(self):
        """Write a prescription: from a visit (``?consultation=``), for a patient (``?patient=``)
        or by MRN."""
        consultation = patient = None
        if request.args.get("consultation"):
            consultation = db.session.get(Consultation, request.args.get("consultation", type=int) or 0)
            if consultation is None or consultation.branch_id not in allowed_branch_ids():
                abort(404)
            patient = consultation.patient
        elif request.args.get("patient"):
            patient = db.session.get(Patient, request.args.get("patient", type=int) or 0)
            if patient is None or patient.merged_into_id is not None:
                abort(404)
        if not is_doctor(g.user):
            flash(str(_l("Only a doctor can write a prescription.")), "warning")
            return redirect(url_for(".list"))
        form = NewPrescriptionForm(request.form if request.method == "POST" else None)
        branches = [db.session.get(Branch, branch_id) for branch_id in allowed_branch_ids()]
        form.branch.choices = [(branch.id, branch.name) for branch in branches]
        if patient is not None:
            del form.patient_mrn
        if consultation is not None or len(branches) == 1:
            del form.branch
        row_errors: dict[int, str] = {}
        if request.method == "POST" and not rows_changed(form) and form.validate():
            chosen = patient or self._patient_by_mrn(form)
            branch = None
            if consultation is None:
                branch_id = form.branch.data if "branch" in form else default_branch_id()
                branch = db.session.get(Branch, branch_id) if branch_id in allowed_branch_ids() else None
                if branch is None and "branch" in form:
                    form.branch.errors = [str(_l("Choose one of your branches."))]
            if chosen is not None and (branch is not None or consultation is not None):
                prescription, row_errors = save_prescription(
                    form, create_prescription, patient=chosen, branch=branch,
                    consultation=consultation,
                )
                if prescription is not None:
                    flash(str(_l("The prescription is saved.")), "success")
                    return redirect(url_for(".show", pk=prescription.id))
        return self._editor(
            form, None, row_errors, title=_l("New prescription"), patient=patient,
            consultation=consultation,
        )

    def _patient_by_mrn(self, form: NewPrescriptionForm) -> Patient | None:
        mrn = (form.patient_mrn.data or "").strip().upper()
        patient = db.session.scalar(
            select(Patient).where(Patient.mrn == mrn, Patient.merged_into_id.is_(None))
        )
        if patient is None:
            form.patient_mrn.errors = [str(_l("No patient has this MRN."))]
        return patient

    @expose("/edit/<pk>", methods=["GET", "POST"])
    @has_access
    def edit(self, pk):
        """Change it in place: its doctor, while active and under 24 hours old."""
        prescription = self._prescription(self._deserialize_pk_if_composite(pk))
        return self._rewrite(
            prescription, edit_refusal(prescription), update_prescription,
            lambda saved: _l("Your changes are saved."),
            title=_l("Edit prescription"),
        )

    @expose("/<int:pk>/correct", methods=["GET", "POST"])
    @has_access
    def correct(self, pk: int):
        """Write a corrected version; the old one is kept, marked superseded."""
        prescription = self._prescription(pk)
        return self._rewrite(
            prescription, correct_refusal(prescription), correct_prescription,
            lambda newer: _l("Version %(new)s is saved; version %(old)s is kept, marked superseded.",
                             new=newer.version, old=prescription.version),
            correcting=True, title=_l("Correct prescription"),
        )

    def _rewrite(self, prescription: Prescription, refusal: str | None,
                 write: Callable[..., Prescription], saved_message: Callable[[Prescription], Any],
                 **page: Any):
        """The editor over an existing prescription, saving through ``write`` (in place, or as a
        corrected version); ``refusal`` sends the user back to its page instead."""
        if refusal:
            flash(refusal, "warning")
            return redirect(url_for(".show", pk=prescription.id))
        form = PrescriptionForm(request.form if request.method == "POST" else None,
                                data=form_data(prescription))
        row_errors: dict[int, str] = {}
        if request.method == "POST" and not rows_changed(form) and form.validate():
            saved, row_errors = save_prescription(form, write, prescription)
            if saved is not None:
                flash(str(saved_message(saved)), "success")
                return redirect(url_for(".show", pk=saved.id))
        if request.method == "GET":
            record_reads(self, "view", [prescription.id])
        return self._editor(form, prescription, row_errors, patient=prescription.patient,
                            consultation=prescription.consultation, **page)

    @expose("/<int:pk>/print")
    @has_access
    @logs_access("print")
    def print_view(self, pk: int):
        """The printable prescription on the branch's letterhead (A4, or A5 with ``?size=a5``)."""
        prescription = self._prescription(pk)
        size = request.args.get("size", "a4")
        size = size if size in PAPER_SIZES else "a4"
        patient = prescription.patient
        return self.render_template(
            "clinic/prescriptions/print.html",
            prescription=prescription,
            quantity=quantity_text,
            branch=prescription.branch,
            patient=patient,
            age=age_on(patient.date_of_birth, prescription.prescribed_on),
            doctor=prescription.doctor,
            profile=db.session.get(StaffProfile, prescription.doctor_id),
            newer=newer_version(prescription),
            size=size,
            other_size="a5" if size == "a4" else "a4",
            sexes={"female": _l("Female"), "male": _l("Male"), "other": _l("Other"),
                   "unknown": _l("Not stated")},
        )


@timeline_source("prescription", READ, PRESCRIPTIONS)
def prescription_items(patient: Patient, branch_ids: list[int]):
    """The patient's prescriptions at the user's branches, every version."""
    prescriptions = db.session.scalars(
        select(Prescription)
        .where(Prescription.patient_id == patient.id, Prescription.branch_id.in_(branch_ids))
        .order_by(Prescription.id.desc())
    )
    return [(prescription.created_at, prescription) for prescription in prescriptions]


_API_COLUMNS = [
    "id", "patient.id", "patient.mrn", "doctor.id", "branch.id", "consultation.id",
    "prescribed_on", "advice", "follow_up_on", "status", "version", "supersedes.id",
    "dispensed_at", "created_at",
    "items.medicine", "items.strength", "items.dose", "items.frequency", "items.route",
    "items.duration", "items.quantity", "items.instructions",
]


class PrescriptionApi(BranchScopedMixin, ClinicModelApi):
    """``/api/v1/prescriptions/``: read-only (prescriptions are written on their screen)."""

    resource_name = "prescriptions"
    datamodel = ClinicSQLAInterface(Prescription)
    class_permission_name = PRESCRIPTIONS
    base_permissions = [READ, CREATE, EDIT]
    include_route_methods = {"get", "get_list", "info"}
    access_log = "patient"
    list_columns = [c for c in _API_COLUMNS if not c.startswith("items.")]
    show_columns = _API_COLUMNS
    # No writes here, but FAB's ``_info`` lists every relationship of the add/edit columns (all
    # columns by default): items are not branch-owned, so it would list other branches' medicines.
    add_columns = edit_columns = ["advice"]
    order_columns = ["prescribed_on", "id"]
    search_columns = ["patient", "doctor", "prescribed_on", "status"]
