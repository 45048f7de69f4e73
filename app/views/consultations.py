"""Consultations: the visit record a doctor writes, started from its appointment."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import abort, current_app, flash, g, redirect, request, url_for
from flask_appbuilder import expose, has_access
from flask_appbuilder.api import safe
from flask_appbuilder.forms import DynamicForm
from flask_appbuilder.security.decorators import protect
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from werkzeug.exceptions import HTTPException
from wtforms import SelectField, StringField, TextAreaField
from wtforms.validators import Length, Optional

from app.extensions import db
from app.formatting import or_dash
from app.models.consultations import Consultation, Prescription
from app.models.org import Branch
from app.models.patients import Patient
from app.models.scheduling import Appointment
from app.security.policy import (
    CONSULTATIONS,
    CREATE,
    EDIT,
    LAB_ORDERS,
    PATIENTS,
    PRESCRIPTIONS,
    READ,
    VIEW_METHOD_PERMISSIONS,
)
from app.security.scoping import allowed_branch_ids, default_branch_id
from app.services.audit import record_access
from app.services.consultations import (
    COUNTS,
    MEASURES,
    TEXT_FIELDS,
    UNIT_LABELS,
    VITAL_INPUTS,
    ConsultationError,
    ConsultationNotAllowedError,
    VitalsError,
    complete_consultation,
    consultation_for,
    edit_refusal,
    name_of,
    shown_value,
    start_consultation,
    update_consultation,
)
from app.services.errors import ClinicError
from app.views.base import (
    BranchScopedMixin,
    ClinicModelApi,
    ClinicModelView,
    ClinicSQLAInterface,
    record_reads,
)
from app.views.timeline import timeline_source

#: The lab's order form, which takes ``?consultation=<id>`` (another module's screen: looked up
#: by address, so this screen never imports it).
LAB_ORDER_ADD_PATH = "/lab-orders/add"


def local(when: datetime | None, branch: Branch) -> datetime | None:
    """A stored time (aware, or naive UTC from SQLite) as the branch's wall-clock time."""
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo("UTC"))
    return when.astimezone(ZoneInfo(branch.time_zone))


def _my_zone() -> ZoneInfo:
    """The signed-in user's branch's time zone (their first branch's when they have several)."""
    if "clinic_zone" not in g:
        branch_id = default_branch_id() or next(iter(allowed_branch_ids()), None)
        branch = db.session.get(Branch, branch_id) if branch_id else None
        g.clinic_zone = ZoneInfo(branch.time_zone if branch else "UTC")
    return g.clinic_zone


def local_date(when: datetime | date | None) -> str:
    """List cells: a stored time as a date where the user works."""
    if when is None:
        return "—"
    if isinstance(when, datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=ZoneInfo("UTC"))
        when = when.astimezone(_my_zone()).date()
    return when.isoformat()


def _unit_field(measure: str) -> SelectField:
    return SelectField(
        _l("Unit"),
        choices=[(unit, UNIT_LABELS[unit]) for unit in MEASURES[measure].ranges],
        default=MEASURES[measure].si_unit,
    )


def _number_field(label, mode: str = "decimal") -> StringField:
    return StringField(label, render_kw={"inputmode": mode, "autocomplete": "off"})


class ConsultationForm(DynamicForm):
    """What the doctor writes during a visit; numbers are checked by the service, in their unit."""

    complaints = TextAreaField(_l("Complaints"), render_kw={"rows": 3})
    temperature = _number_field(_l("Temperature"))
    temperature_unit = _unit_field("temperature")
    weight = _number_field(_l("Weight"))
    weight_unit = _unit_field("weight")
    height = _number_field(_l("Height"))
    height_unit = _unit_field("height")
    bp_systolic = _number_field(_l("Systolic (mmHg)"), "numeric")
    bp_diastolic = _number_field(_l("Diastolic (mmHg)"), "numeric")
    pulse_bpm = _number_field(_l("Pulse (beats per minute)"), "numeric")
    spo2_percent = _number_field(_l("SpO₂ (%)"), "numeric")
    examination = TextAreaField(_l("Examination"), render_kw={"rows": 4})
    diagnosis = TextAreaField(_l("Diagnosis"), render_kw={"rows": 2})
    diagnosis_code = StringField(
        _l("Diagnosis code"), validators=[Optional(), Length(max=20)],
        description=_l("Optional: ICD-10, ICD-11 or the code your clinic uses."),
        render_kw={"autocomplete": "off"},
    )
    plan = TextAreaField(_l("Plan"), render_kw={"rows": 4})


def form_data(consultation: Consultation) -> dict[str, Any]:
    """The form's starting values: vitals in the units they were entered in."""
    data: dict[str, Any] = {name: getattr(consultation, name) or "" for name in TEXT_FIELDS}
    for name, measure in MEASURES.items():
        unit = getattr(consultation, measure.unit_column) or measure.si_unit
        value = shown_value(name, getattr(consultation, measure.column), unit)
        data[name] = "" if value is None else f"{value.normalize():f}"
        data[f"{name}_unit"] = unit
    for name, count in COUNTS.items():
        value = getattr(consultation, count.column)
        data[name] = "" if value is None else str(value)
    return data


def vitals_rows(consultation: Consultation) -> list[dict[str, str]]:
    """The vitals as the show page lists them: as entered, and in SI when that differs."""
    labels = {"temperature": _l("Temperature"), "weight": _l("Weight"), "height": _l("Height")}
    rows = []
    if consultation.bp_systolic is not None:
        rows.append({"label": _l("Blood pressure"),
                     "value": f"{consultation.bp_systolic}/{consultation.bp_diastolic} mmHg"})
    if consultation.pulse_bpm is not None:
        rows.append({"label": _l("Pulse"), "value": str(_l("%(n)s beats per minute", n=consultation.pulse_bpm))})
    for name, measure in MEASURES.items():
        si = getattr(consultation, measure.column)
        if si is None:
            continue
        unit = getattr(consultation, measure.unit_column) or measure.si_unit
        unit = unit if unit in measure.ranges else measure.si_unit
        entered = f"{shown_value(name, si, unit).normalize():f} {UNIT_LABELS[unit]}"
        row = {"label": labels[name], "value": entered}
        if unit != measure.si_unit:
            row["si"] = f"{shown_value(name, si, measure.si_unit).normalize():f} {UNIT_LABELS[measure.si_unit]}"
        rows.append(row)
    if consultation.weight_kg and consultation.height_cm:
        metres = float(consultation.height_cm) / 100
        rows.append({"label": _l("Body mass index"),
                     "value": f"{float(consultation.weight_kg) / (metres * metres):.1f} kg/m²"})
    if consultation.spo2_percent is not None:
        rows.append({"label": _l("SpO₂"), "value": f"{consultation.spo2_percent} %"})
    return rows


def lab_order_url(consultation: Consultation) -> str | None:
    """The lab's order form for this visit, when the lab module is there and the user may order."""
    if not current_app.appbuilder.sm.has_access(CREATE, LAB_ORDERS):
        return None
    try:
        current_app.url_map.bind("").match(LAB_ORDER_ADD_PATH, method="GET")
    except HTTPException:
        return None
    return f"{LAB_ORDER_ADD_PATH}?consultation={consultation.id}"


def _start_takes_appointment_id(endpoint: str, values: dict[str, Any]) -> None:
    """``url_for("ConsultationModelView.start", appointment_id=…)`` (the helpers' contract)
    builds the start route, whose argument is named ``pk`` like every record route."""
    if endpoint.endswith(".start") and "appointment_id" in values:
        values.setdefault("pk", values.pop("appointment_id"))


class ConsultationModelView(BranchScopedMixin, ClinicModelView):
    """Visits: the list, a page per visit, the doctor's form; a visit starts from its appointment."""

    route_base = "/consultations"
    datamodel = ClinicSQLAInterface(Consultation)
    class_permission_name = CONSULTATIONS
    # No add-from-scratch form and no delete: "add"/"delete" map to permissions nobody holds,
    # so FAB's list shows no buttons for them, and their routes are not registered at all.
    method_permission_name = {
        **VIEW_METHOD_PERMISSIONS, "add": "add", "delete": "delete",
        "start": "create", "complete": "edit",
    }
    base_permissions = [READ, CREATE, EDIT]
    exclude_route_methods = {"add", "delete"}
    access_log = "patient"
    list_title = _l("Consultations")
    show_title = _l("Consultation")
    edit_title = _l("Consultation")
    list_columns = ["created_at", "patient", "doctor", "diagnosis"]
    order_columns = ["created_at"]
    # The visits worked on most recently first: today's open ones, then the rest.
    base_order = ("updated_at", "desc")
    search_columns = ["doctor", "created_at"]
    show_columns = ["patient", "doctor", "created_at", "diagnosis"]
    edit_columns = ["complaints"]
    label_columns = {
        "created_at": _l("Date"),
        "patient": _l("Patient"),
        "doctor": _l("Doctor"),
        "diagnosis": _l("Diagnosis"),
        "completed_at": _l("Completed"),
    }
    formatters_columns = {
        "created_at": local_date,
        "diagnosis": lambda value: or_dash(value if not value or len(value) <= 80 else value[:79] + "…"),
        "doctor": lambda user: name_of(user) if user else "—",
    }

    def create_blueprint(self, appbuilder, endpoint=None, static_folder=None):
        blueprint = super().create_blueprint(appbuilder, endpoint, static_folder)
        blueprint.url_defaults(_start_takes_appointment_id)
        return blueprint

    def _consultation(self, pk: Any) -> Consultation:
        consultation = self.datamodel.get(pk, self._base_filters)
        if consultation is None:
            abort(404)
        return consultation

    @expose("/show/<pk>")
    @has_access
    def show(self, pk):
        pk = self._deserialize_pk_if_composite(pk)
        self._show(pk)  # 404 outside the user's branches; logs the read
        consultation = self._consultation(pk)
        sm = self.appbuilder.sm
        branch = consultation.branch
        prescriptions = []
        if sm.has_access(READ, PRESCRIPTIONS):
            prescriptions = list(db.session.scalars(
                select(Prescription)
                .where(Prescription.consultation_id == consultation.id)
                .order_by(Prescription.id)
            ))
        can_edit = sm.has_access(EDIT, CONSULTATIONS) and edit_refusal(consultation) is None
        return self.render_template(
            "clinic/consultations/show.html",
            title=self.show_title,
            consultation=consultation,
            started=local(consultation.created_at, branch),
            completed=local(consultation.completed_at, branch),
            vitals=vitals_rows(consultation),
            prescriptions=prescriptions,
            can_edit=can_edit,
            can_complete=can_edit and consultation.completed_at is None,
            can_prescribe=sm.has_access(CREATE, PRESCRIPTIONS),
            lab_url=lab_order_url(consultation),
            can_see_patient=sm.has_access(READ, PATIENTS),
        )

    @expose("/edit/<pk>", methods=["GET", "POST"])
    @has_access
    def edit(self, pk):
        """The doctor's form: complaints, vitals (value and unit), examination, diagnosis, plan."""
        consultation = self._consultation(self._deserialize_pk_if_composite(pk))
        refusal = edit_refusal(consultation)
        if refusal:
            flash(refusal, "warning")
            return redirect(url_for(".show", pk=consultation.id))
        form = ConsultationForm(request.form if request.method == "POST" else None,
                                data=form_data(consultation))
        if request.method == "POST" and form.validate():
            values = {name: form[name].data for name in (*TEXT_FIELDS, *VITAL_INPUTS)}
            try:
                update_consultation(consultation, values)
            except VitalsError as exc:
                db.session.rollback()
                for name, message in exc.errors.items():
                    form[name].errors = [*form[name].errors, message]
                flash(str(_l("Some values need checking: see the marked fields.")), "danger")
            except ClinicError as exc:
                db.session.rollback()
                flash(str(exc), "danger")
            else:
                db.session.commit()
                flash(str(_l("The consultation is saved.")), "success")
                return redirect(url_for(".show", pk=consultation.id))
        if request.method == "GET":
            record_reads(self, "view", [consultation.id])
        return self.render_template(
            "clinic/consultations/edit.html", title=self.edit_title, form=form,
            consultation=consultation, started=local(consultation.created_at, consultation.branch),
        )

    @expose("/start/<int:pk>", methods=["GET", "POST"])
    @has_access
    def start(self, pk: int):
        """Open the appointment ``pk``'s visit; a POST by its doctor creates it when there is none."""
        appointment = db.session.get(Appointment, pk)
        if appointment is None or appointment.branch_id not in allowed_branch_ids():
            abort(404)
        existing = consultation_for(appointment)
        if existing is not None:
            return redirect(url_for(".show", pk=existing.id))
        if request.method == "POST":
            try:
                consultation = start_consultation(appointment)
            except ClinicError as exc:
                db.session.rollback()
                flash(str(exc), "danger")
            else:
                db.session.commit()
                flash(str(_l("The visit has started.")), "success")
                return redirect(url_for(".edit", pk=consultation.id))
        user = g.user
        refusal = None
        if user is None or user.id != appointment.doctor_id:
            # str(): a lazy string counts as safe markup, and this one holds a name.
            refusal = str(_l("Only %(doctor)s, the appointment's doctor, can start this visit.",
                             doctor=name_of(appointment.doctor)))
        elif appointment.status in ("cancelled", "no_show"):
            refusal = str(_l("This appointment was cancelled or missed: a visit cannot start from it."))
        record_access("patient", appointment.patient_id, "view", records=[appointment.id],
                      model="Appointment", branch_id=appointment.branch_id)
        return self.render_template(
            "clinic/consultations/start.html", title=_l("Start the visit"),
            appointment=appointment, starts=local(appointment.starts_at, appointment.branch),
            refusal=refusal,
        )

    @expose("/<int:pk>/complete", methods=["POST"])
    @has_access
    def complete(self, pk: int):
        """The visit is over: the consultation and its appointment become completed."""
        consultation = self._consultation(pk)
        try:
            complete_consultation(consultation)
        except ClinicError as exc:
            db.session.rollback()
            flash(str(exc), "danger")
        else:
            db.session.commit()
            flash(str(_l("The visit is completed.")), "success")
        return redirect(url_for(".show", pk=pk))


@timeline_source("consultation", READ, CONSULTATIONS)
def consultation_items(patient: Patient, branch_ids: list[int]):
    """The patient's visits at the user's branches."""
    consultations = db.session.scalars(
        select(Consultation)
        .where(Consultation.patient_id == patient.id, Consultation.branch_id.in_(branch_ids))
        .order_by(Consultation.created_at.desc())
    )
    return [(consultation.created_at, consultation) for consultation in consultations]


#: What the API shows of a visit (vitals in SI, with the unit they were entered in).
API_COLUMNS = [
    "id", "appointment.id", "patient.id", "patient.mrn", "doctor.id", "branch.id", "created_at",
    "completed_at",
    "complaints", "bp_systolic", "bp_diastolic", "pulse_bpm", "temperature_c", "temperature_unit",
    "weight_kg", "weight_unit", "height_cm", "height_unit", "spo2_percent", "examination",
    "diagnosis", "diagnosis_code", "plan",
]


class ConsultationApi(BranchScopedMixin, ClinicModelApi):
    """``/api/v1/consultations/``: read visits; PUT changes one through the same checks as the form.

    A PUT takes any of ``complaints``, ``examination``, ``diagnosis``, ``diagnosis_code``,
    ``plan``, ``bp_systolic``, ``bp_diastolic``, ``pulse_bpm``, ``spo2_percent`` and the pairs
    ``temperature``/``temperature_unit`` ("C" or "F"), ``weight``/``weight_unit`` ("kg" or "lb"),
    ``height``/``height_unit`` ("cm" or "in"); a value without its unit is in the SI unit.
    """

    resource_name = "consultations"
    datamodel = ClinicSQLAInterface(Consultation)
    class_permission_name = CONSULTATIONS
    base_permissions = [READ, CREATE, EDIT]
    include_route_methods = {"get", "get_list", "info", "put"}
    access_log = "patient"
    list_columns = API_COLUMNS
    show_columns = API_COLUMNS
    # FAB's ``_info`` lists the choices of every relationship among the add columns (all columns
    # by default, every patient included): this API adds nothing, so it names no relationship.
    add_columns = edit_columns = ["complaints"]
    order_columns = ["created_at", "completed_at"]
    search_columns = ["patient", "doctor", "created_at"]

    @expose("/<int:pk>", methods=["PUT"])
    @protect()
    @safe
    def put(self, pk: int):
        """Change a visit's record (its doctor only).
        ---
        put:
          parameters:
          - in: path
            schema:
              type: integer
            name: pk
          responses:
            200:
              description: The visit as saved
            403:
              $ref: '#/components/responses/401'
            404:
              $ref: '#/components/responses/404'
            422:
              $ref: '#/components/responses/422'
        """
        consultation = self.datamodel.get(pk, self._base_filters)
        if consultation is None:
            return self.response_404()
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            return self.response_400(message=str(_l("Send a JSON object.")))
        unknown = sorted(set(data) - set(TEXT_FIELDS) - set(VITAL_INPUTS))
        if unknown:
            return self.response_400(message={name: [str(_l("Unknown field."))] for name in unknown})
        try:
            update_consultation(consultation, data)
        except VitalsError as exc:
            db.session.rollback()
            return self.response_422(message={name: [msg] for name, msg in exc.errors.items()})
        except ConsultationNotAllowedError as exc:
            db.session.rollback()
            return self.response(403, message=str(exc))
        except ConsultationError as exc:
            db.session.rollback()
            return self.response_422(message=str(exc))
        db.session.commit()
        return self.response(200, id=consultation.id,
                             result=self.show_model_schema.dump(consultation))
