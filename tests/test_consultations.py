"""Consultations: starting a visit from its appointment, vitals in any unit, completing the visit,
who may see and change them, and branch isolation."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models.audit import AuditEntry
from app.models.consultations import Consultation
from app.models.org import Branch
from app.models.patients import Patient
from app.models.scheduling import Appointment, AppointmentChange
from app.security.policy import DOCTOR
from app.services.appointments import change_status, register_walk_in
from app.services.consultations import (
    ConsultationNotAllowedError,
    ConsultationStatusError,
    VitalsError,
    read_vitals,
    shown_value,
    si_value,
    start_consultation,
    update_consultation,
)
from tests.conftest import PASSWORD, bearer_headers, csrf_token_from, login_as

# The rules of the clinical core hold on SQLite too (the subset CI runs there).
pytestmark = pytest.mark.sqlite_subset

#: Walk-ins far in the future, each half an hour after the last: never near the demo's diary.
_SLOTS = itertools.count()
FAR = datetime(2031, 3, 4, 4, 0, tzinfo=timezone.utc)


def user_id(app, username: str) -> int:
    with app.app_context():
        return app.appbuilder.sm.find_user(username=username).id


def branch_id(app, code: str) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(Branch.id).where(Branch.code == code))


@pytest.fixture(scope="module")
def doctor3(app):
    """A second doctor at Downtown, for "only the appointment's doctor" rules."""
    with app.app_context():
        sm = app.appbuilder.sm
        user = sm.add_user(
            "doctor3", "Meera", "Iyer", "doctor3@example.org", sm.find_role(DOCTOR),
            password=PASSWORD,
        )
        user.branches = [db.session.scalar(sa.select(Branch).where(Branch.code == "DT"))]
        db.session.commit()
        return user.id


@pytest.fixture(scope="module")
def patient_id(app):
    with app.app_context():
        return db.session.scalar(sa.select(Patient.id).order_by(Patient.id))


def walk_in(app, patient_id: int, doctor: str = "doctor", branch: str = "DT") -> int:
    """A checked-in (arrived) appointment through the appointments service; its id."""
    with app.app_context():
        sm = app.appbuilder.sm
        appointment = register_walk_in(
            patient=db.session.get(Patient, patient_id),
            doctor=sm.find_user(username=doctor),
            branch=db.session.scalar(sa.select(Branch).where(Branch.code == branch)),
            reason="Fever and cough",
            now=FAR + timedelta(minutes=30 * next(_SLOTS)),
        )
        db.session.commit()
        return appointment.id


def started_visit(app, patient_id: int, doctor: str = "doctor", branch: str = "DT") -> int:
    appointment_id = walk_in(app, patient_id, doctor, branch)
    with app.app_context():
        appointment = db.session.get(Appointment, appointment_id)
        consultation = start_consultation(appointment, doctor=appointment.doctor)
        db.session.commit()
        return consultation.id


def post(client, page_url: str, url: str, data: dict):
    """POST ``data`` to ``url`` with the CSRF token of the form on ``page_url``."""
    token = csrf_token_from(client.get(page_url).get_data(as_text=True))
    return client.post(url, data={**data, "csrf_token": token})


def visit_form(**overrides) -> dict:
    return {
        "complaints": "Fever for three days", "temperature": "", "temperature_unit": "C",
        "weight": "", "weight_unit": "kg", "height": "", "height_unit": "cm",
        "bp_systolic": "", "bp_diastolic": "", "pulse_bpm": "", "spo2_percent": "",
        "examination": "", "diagnosis": "", "diagnosis_code": "", "plan": "", **overrides,
    }


# -- vitals: units and plausibility (service) ----------------------------------------------------


def test_vitals_are_converted_to_si_and_remember_their_unit():
    columns = read_vitals({
        "temperature": "101.3", "temperature_unit": "F", "weight": "154", "weight_unit": "lb",
        "height": "65", "height_unit": "in", "bp_systolic": "128", "bp_diastolic": "84",
        "pulse_bpm": "88", "spo2_percent": "97",
    })
    assert columns["temperature_c"] == Decimal("38.5") and columns["temperature_unit"] == "F"
    assert columns["weight_kg"] == Decimal("69.85") and columns["weight_unit"] == "lb"
    assert columns["height_cm"] == Decimal("165.1") and columns["height_unit"] == "in"
    assert (columns["bp_systolic"], columns["bp_diastolic"], columns["pulse_bpm"]) == (128, 84, 88)
    assert read_vitals({"temperature": "38,2", "temperature_unit": "C"})["temperature_c"] == Decimal("38.2")


@pytest.mark.parametrize(
    "name, typed, unit",
    [("temperature", "98.7", "F"), ("temperature", "100.1", "F"), ("weight", "150", "lb"),
     ("weight", "187.3", "lb"), ("height", "69.5", "in"), ("temperature", "37.4", "C")],
)
def test_a_vital_reads_back_exactly_as_typed_in_its_unit(name, typed, unit):
    stored = si_value(name, typed, unit)
    assert shown_value(name, stored, unit) == Decimal(typed)


@pytest.mark.parametrize(
    "values, field, message",
    [
        ({"temperature": "50", "temperature_unit": "C"}, "temperature", "between 30 and 45 °C"),
        ({"temperature": "38", "temperature_unit": "F"}, "temperature", "between 86 and 113 °F"),
        ({"temperature": "warm", "temperature_unit": "C"}, "temperature", "between 30 and 45 °C"),
        ({"weight": "700", "weight_unit": "kg"}, "weight", "between 0.2 and 500 kg"),
        ({"weight": "1200", "weight_unit": "lb"}, "weight", "between 0.5 and 1100 lb"),
        ({"height": "300", "height_unit": "cm"}, "height", "between 20 and 280 cm"),
        ({"height": "170", "height_unit": "in"}, "height", "between 8 and 110 in"),
        ({"height": "170", "height_unit": "ft"}, "height", "Choose a unit"),
        ({"pulse_bpm": "300"}, "pulse_bpm", "between 20 and 250 beats per minute"),
        ({"pulse_bpm": "72.5"}, "pulse_bpm", "between 20 and 250"),
        ({"spo2_percent": "101"}, "spo2_percent", "between 50 and 100 %"),
        ({"bp_systolic": "400"}, "bp_systolic", "between 50 and 300 mmHg"),
    ],
)
def test_implausible_vitals_are_refused_in_the_unit_typed(values, field, message):
    with pytest.raises(VitalsError) as refused:
        read_vitals(values)
    assert message in refused.value.errors[field]


def test_every_bad_vital_is_reported_at_once():
    with pytest.raises(VitalsError) as refused:
        read_vitals({"temperature": "10", "temperature_unit": "C", "pulse_bpm": "0", "weight": "70"})
    assert set(refused.value.errors) == {"temperature", "pulse_bpm"}


def test_blood_pressure_needs_both_values_systolic_higher(app, patient_id):
    consultation_id = started_visit(app, patient_id)
    with app.app_context():
        consultation = db.session.get(Consultation, consultation_id)
        with pytest.raises(VitalsError) as refused:
            update_consultation(consultation, {"bp_systolic": "80", "bp_diastolic": "120"},
                                user=consultation.doctor)
        assert "higher than the diastolic" in refused.value.errors["bp_systolic"]
        with pytest.raises(VitalsError) as refused:
            update_consultation(consultation, {"bp_systolic": "120", "bp_diastolic": ""},
                                user=consultation.doctor)
        assert "Enter both blood pressure values" in refused.value.errors["bp_diastolic"]
        db.session.rollback()
        assert db.session.get(Consultation, consultation_id).bp_systolic is None


# -- starting and completing a visit -------------------------------------------------------------


def test_the_doctor_starts_the_visit_from_the_appointment(app, patient_id):
    appointment_id = walk_in(app, patient_id)
    client = login_as(app, "doctor")
    page = client.get(f"/consultations/start/{appointment_id}")
    assert page.status_code == 200 and "Start visit" in page.get_data(as_text=True)
    response = post(client, f"/consultations/start/{appointment_id}",
                    f"/consultations/start/{appointment_id}", {})
    assert response.status_code == 302 and "/consultations/edit/" in response.headers["Location"]
    with app.app_context():
        appointment = db.session.get(Appointment, appointment_id)
        consultation = db.session.scalar(
            sa.select(Consultation).where(Consultation.appointment_id == appointment_id)
        )
        assert appointment.status == "in_consultation"
        assert (consultation.patient_id, consultation.doctor_id, consultation.branch_id) == (
            appointment.patient_id, appointment.doctor_id, appointment.branch_id
        )
        consultation_id = consultation.id
    # Opening it again leads to the same visit; nothing new is created.
    again = client.get(f"/consultations/start/{appointment_id}")
    assert again.status_code == 302 and again.headers["Location"].endswith(f"/consultations/show/{consultation_id}")
    with app.app_context():
        assert db.session.scalar(
            sa.select(sa.func.count()).select_from(Consultation).where(Consultation.appointment_id == appointment_id)
        ) == 1


def test_the_start_link_of_the_contract_builds_the_route(app):
    from flask import url_for

    with app.test_request_context():
        assert url_for("ConsultationModelView.start", appointment_id=7) == "/consultations/start/7"


def test_a_booked_appointment_is_checked_in_on_the_way(app, patient_id):
    appointment_id = walk_in(app, patient_id)
    with app.app_context():
        appointment = db.session.get(Appointment, appointment_id)
        appointment.status = "booked"  # as if booked, not yet at the desk
        db.session.commit()
        start_consultation(appointment, doctor=appointment.doctor)
        db.session.commit()
        steps = db.session.scalars(
            sa.select(AppointmentChange.to_status)
            .where(AppointmentChange.appointment_id == appointment_id, AppointmentChange.kind == "status")
            .order_by(AppointmentChange.id)
        ).all()
        assert steps[-2:] == ["arrived", "in_consultation"]


def test_only_the_appointments_doctor_starts_the_visit(app, patient_id, doctor3):
    appointment_id = walk_in(app, patient_id)
    with app.app_context():
        appointment = db.session.get(Appointment, appointment_id)
        with pytest.raises(ConsultationNotAllowedError, match="Priya Nair"):
            start_consultation(appointment, doctor=db.session.get(type(appointment.doctor), doctor3))
    for username in ("doctor3", "admin"):
        client = login_as(app, username)
        page = client.get(f"/consultations/start/{appointment_id}").get_data(as_text=True)
        assert "the appointment&#39;s doctor, can start this visit" in page
        assert "Start visit</button>" not in page
    client = login_as(app, "doctor3")
    response = post(client, "/patients/add", f"/consultations/start/{appointment_id}", {})
    assert response.status_code == 200
    assert "can start this visit" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(
            sa.select(Consultation).where(Consultation.appointment_id == appointment_id)
        ) is None


def test_a_cancelled_appointment_cannot_start_a_visit(app, patient_id):
    appointment_id = walk_in(app, patient_id)
    with app.app_context():
        appointment = db.session.get(Appointment, appointment_id)
        change_status(appointment, "cancelled", reason="Patient left")
        db.session.commit()
        with pytest.raises(ConsultationStatusError):
            start_consultation(appointment, doctor=appointment.doctor)


def test_completing_the_visit_completes_the_appointment(app, patient_id):
    consultation_id = started_visit(app, patient_id)
    client = login_as(app, "doctor")
    show = f"/consultations/show/{consultation_id}"
    response = post(client, show, f"/consultations/{consultation_id}/complete", {})
    assert response.status_code == 302
    with app.app_context():
        consultation = db.session.get(Consultation, consultation_id)
        assert consultation.completed_at is not None
        assert consultation.appointment.status == "completed"
    body = client.get(show).get_data(as_text=True)
    assert "The visit is completed." in body and "Complete visit" not in body


# -- the doctor's form (HTTP) --------------------------------------------------------------------


def test_the_form_saves_vitals_in_their_units_and_shows_both(app, patient_id):
    consultation_id = started_visit(app, patient_id)
    client = login_as(app, "doctor")
    edit = f"/consultations/edit/{consultation_id}"
    response = post(client, edit, edit, visit_form(
        temperature="101.3", temperature_unit="F", weight="70", weight_unit="kg",
        bp_systolic="130", bp_diastolic="85", pulse_bpm="92", spo2_percent="96",
        diagnosis="Acute bronchitis", diagnosis_code="J20.9", plan="Rest, fluids",
    ))
    assert response.status_code == 302
    with app.app_context():
        consultation = db.session.get(Consultation, consultation_id)
        assert consultation.temperature_c == Decimal("38.5")
        assert consultation.temperature_unit == "F"
        assert consultation.diagnosis_code == "J20.9"
    body = client.get(f"/consultations/show/{consultation_id}").get_data(as_text=True)
    assert "101.3 °F" in body and "(38.5 °C)" in body
    assert "130/85 mmHg" in body and "J20.9" in body
    form = client.get(edit).get_data(as_text=True)
    assert 'value="101.3"' in form and '<option selected value="F">' in form


def test_a_bad_vital_keeps_what_was_typed_and_saves_nothing(app, patient_id):
    consultation_id = started_visit(app, patient_id)
    client = login_as(app, "doctor")
    edit = f"/consultations/edit/{consultation_id}"
    response = post(client, edit, edit, visit_form(
        temperature="120", temperature_unit="F", weight="180", weight_unit="lb",
        diagnosis="Typed-diagnosis-Kx",
    ))
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Enter a temperature between 86 and 113 °F." in body
    assert 'value="120"' in body and 'value="180"' in body and "Typed-diagnosis-Kx" in body
    assert '<option selected value="F">' in body and '<option selected value="lb">' in body
    assert 'aria-invalid="true"' in body
    with app.app_context():
        consultation = db.session.get(Consultation, consultation_id)
        assert consultation.diagnosis is None and consultation.weight_kg is None


def test_another_doctor_cannot_change_the_visit(app, patient_id, doctor3):
    consultation_id = started_visit(app, patient_id)
    for username in ("doctor3", "admin"):
        client = login_as(app, username)
        response = client.get(f"/consultations/edit/{consultation_id}")
        assert response.status_code == 302
        body = client.get(response.headers["Location"]).get_data(as_text=True)
        assert "Only Priya Nair, the doctor of this visit, can change it." in body
        assert f"/consultations/edit/{consultation_id}" not in body


def test_the_visit_page_offers_the_next_steps(app, patient_id):
    consultation_id = started_visit(app, patient_id)
    body = login_as(app, "doctor").get(f"/consultations/show/{consultation_id}").get_data(as_text=True)
    assert f'/prescriptions/add?consultation={consultation_id}' in body
    assert "Complete visit" in body
    lab = app.url_map.bind("").test("/lab-orders/add", method="GET")
    assert (f"/lab-orders/add?consultation={consultation_id}" in body) == lab


def test_there_is_no_blank_add_form_and_no_delete(app):
    client = login_as(app, "doctor")
    assert client.get("/consultations/add").status_code == 404
    assert client.get("/consultations/delete/1").status_code == 404
    assert "/consultations/add" not in client.get("/consultations/list/").get_data(as_text=True)


# -- the REST API --------------------------------------------------------------------------------


def test_api_reads_and_edits_through_the_same_checks(app, patient_id, doctor3):
    consultation_id = started_visit(app, patient_id)
    client, url = app.test_client(), f"/api/v1/consultations/{consultation_id}"
    headers = bearer_headers(app, "doctor")
    response = client.put(url, headers=headers, json={"temperature": 99.5, "temperature_unit": "F",
                                                       "diagnosis": "Viral fever"})
    assert response.status_code == 200, response.get_json()
    result = client.get(url, headers=headers).get_json()["result"]
    assert float(result["temperature_c"]) == 37.5 and result["temperature_unit"] == "F"
    assert result["diagnosis"] == "Viral fever"

    refused = client.put(url, headers=headers, json={"spo2_percent": 120})
    assert refused.status_code == 422
    assert "between 50 and 100" in refused.get_json()["message"]["spo2_percent"][0]
    assert client.put(url, headers=headers, json={"nonsense": 1}).status_code == 400
    other = client.put(url, headers=bearer_headers(app, "doctor3"), json={"plan": "x"})
    assert other.status_code == 403
    with app.app_context():
        assert db.session.get(Consultation, consultation_id).plan is None


# -- access log, roles, branches -----------------------------------------------------------------


def test_reading_a_visit_is_access_logged(app, patient_id):
    consultation_id = started_visit(app, patient_id)
    login_as(app, "doctor").get(f"/consultations/show/{consultation_id}")
    with app.app_context():
        entry = db.session.scalars(
            sa.select(AuditEntry)
            .where(AuditEntry.kind == "access", AuditEntry.model == "Consultation")
            .order_by(AuditEntry.id.desc())
        ).first()
        assert entry is not None and entry.action == "view"
        assert entry.subject_id == patient_id
        assert entry.record_id == str(consultation_id)


@pytest.mark.parametrize("username", ["reception", "labtech", "accountant", "owner", "pharmacist"])
def test_non_clinical_roles_never_read_visits(app, patient_id, username):
    consultation_id = started_visit(app, patient_id)
    client = login_as(app, username)
    for url in ("/consultations/list/", f"/consultations/show/{consultation_id}",
                f"/consultations/edit/{consultation_id}"):
        assert client.get(url).status_code == 403, url
    api = app.test_client().get(f"/api/v1/consultations/{consultation_id}",
                                headers=bearer_headers(app, username))
    assert api.status_code == 403
    page = client.get(f"/patients/show/{patient_id}").get_data(as_text=True)
    assert f"/consultations/show/{consultation_id}" not in page


def test_the_patient_timeline_shows_visits_to_doctors(app, patient_id):
    consultation_id = started_visit(app, patient_id)
    page = login_as(app, "doctor").get(f"/patients/show/{patient_id}").get_data(as_text=True)
    assert f"/consultations/show/{consultation_id}" in page


def test_another_branch_sees_nothing(app, patient_id):
    consultation_id = started_visit(app, patient_id)
    appointment_id = walk_in(app, patient_id)
    client = login_as(app, "doctor2")  # Lakeside only
    for url in (f"/consultations/show/{consultation_id}", f"/consultations/edit/{consultation_id}",
                f"/consultations/start/{appointment_id}"):
        assert client.get(url).status_code == 404, url
    assert f"/consultations/show/{consultation_id}\"" not in client.get("/consultations/list/").get_data(as_text=True)
    api = app.test_client()
    headers = bearer_headers(app, "doctor2")
    assert api.get(f"/api/v1/consultations/{consultation_id}", headers=headers).status_code == 404
    assert api.put(f"/api/v1/consultations/{consultation_id}", headers=headers,
                   json={"plan": "x"}).status_code == 404


def test_the_api_info_lists_no_patients(app, patient_id):
    """FAB's ``_info`` would list every patient as the choices of the add columns' ``patient``:
    an unlogged read of the register (this API adds nothing)."""
    response = app.test_client().get("/api/v1/consultations/_info",
                                     headers=bearer_headers(app, "doctor"))
    assert response.status_code == 200
    assert "MRN-" not in response.get_data(as_text=True)
