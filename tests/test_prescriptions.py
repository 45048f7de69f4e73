"""Prescriptions: the items editor, who may change them and until when, corrections as versions,
the printed page, roles and branch isolation."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models.audit import AuditEntry
from app.models.consultations import Prescription, PrescriptionItem
from app.models.org import Branch
from app.models.patients import Patient
from app.models.scheduling import StaffProfile
from app.security.policy import DOCTOR
from app.services.appointments import register_walk_in
from app.services.consultations import start_consultation
from app.services.prescriptions import (
    ItemInput,
    PrescriptionLockedError,
    PrescriptionNotAllowedError,
    create_prescription,
    update_prescription,
)
from tests.conftest import PASSWORD, bearer_headers, csrf_token_from, login_as

# The rules of the clinical core hold on SQLite too (the subset CI runs there).
pytestmark = pytest.mark.sqlite_subset

_SLOTS = itertools.count()
FAR = datetime(2031, 6, 3, 4, 0, tzinfo=timezone.utc)
EVIL = '<script>alert("rx")</script>Amoxi<b>cillin</b>'
REGISTRATION = "KMC-REG-4471"


@pytest.fixture(scope="module")
def setup(app):
    """A third Downtown doctor, the doctor's registration number, and a patient."""
    with app.app_context():
        sm = app.appbuilder.sm
        downtown = db.session.scalar(sa.select(Branch).where(Branch.code == "DT"))
        user = sm.add_user("doctor3", "Meera", "Iyer", "doctor3@example.org",
                           sm.find_role(DOCTOR), password=PASSWORD)
        user.branches = [downtown]
        doctor = sm.find_user(username="doctor")
        profile = db.session.get(StaffProfile, doctor.id) or StaffProfile(user_id=doctor.id)
        profile.registration_number = REGISTRATION
        profile.qualifications = "MBBS, MD (General Medicine)"
        db.session.add(profile)
        downtown.letterhead_text = "Family medicine & dentistry"
        downtown.logo = b"\x89PNG\r\n\x1a\n" + b"0" * 32
        downtown.logo_mimetype = "image/png"
        db.session.commit()
        return {"patient": db.session.scalar(sa.select(Patient.id).order_by(Patient.id)),
                "downtown": downtown.id}


def visit(app, patient_id: int, doctor: str = "doctor", branch: str = "DT") -> int:
    """A started consultation (walk-in → visit) for ``doctor``; its id."""
    with app.app_context():
        sm = app.appbuilder.sm
        appointment = register_walk_in(
            patient=db.session.get(Patient, patient_id), doctor=sm.find_user(username=doctor),
            branch=db.session.scalar(sa.select(Branch).where(Branch.code == branch)),
            now=FAR + timedelta(minutes=30 * next(_SLOTS)),
        )
        consultation = start_consultation(appointment, doctor=appointment.doctor)
        db.session.commit()
        return consultation.id


def prescribe(app, setup, medicines=("Paracetamol",), doctor: str = "doctor", branch: str = "DT") -> int:
    """A prescription written through the service; its id."""
    with app.app_context():
        sm = app.appbuilder.sm
        prescription = create_prescription(
            patient=db.session.get(Patient, setup["patient"]),
            branch=db.session.scalar(sa.select(Branch).where(Branch.code == branch)),
            doctor=sm.find_user(username=doctor),
            items=[ItemInput(medicine=name, strength="500 mg", dose="1 tablet",
                             frequency="three times a day", route="Oral", duration="5 days",
                             quantity="15", instructions="after food") for name in medicines],
            advice="Drink plenty of water",
        )
        db.session.commit()
        return prescription.id


def age(app, prescription_id: int, hours: int = 25) -> None:
    """Move the prescription's creation back in time, as if written ``hours`` ago."""
    with app.app_context():
        prescription = db.session.get(Prescription, prescription_id)
        prescription.created_at = datetime.now(timezone.utc) - timedelta(hours=hours)
        db.session.commit()


def item_fields(rows: list[dict]) -> dict:
    data = {}
    for index, row in enumerate(rows):
        for name in ("medicine", "strength", "dose", "frequency", "route", "duration", "quantity",
                     "instructions"):
            data[f"items-{index}-{name}"] = row.get(name, "")
    return data


def post(client, url: str, data: dict):
    page = client.get(url)
    token = csrf_token_from(page.get_data(as_text=True))
    return client.post(url, data={**data, "csrf_token": token})


# -- writing one (HTTP) --------------------------------------------------------------------------


def test_prescribing_from_a_visit_with_two_medicines(app, setup):
    consultation_id = visit(app, setup["patient"])
    client = login_as(app, "doctor")
    url = f"/prescriptions/add?consultation={consultation_id}"
    data = item_fields([
        {"medicine": "Amoxicillin", "strength": "500 mg", "dose": "1 capsule",
         "frequency": "three times a day", "route": "Oral", "duration": "7 days", "quantity": "21"},
        {"medicine": "Paracetamol", "strength": "650 mg", "dose": "1 tablet", "frequency": "when needed",
         "quantity": "10", "instructions": "not more than 4 a day"},
    ])
    response = post(client, url, {**data, "advice": "Rest", "follow_up_on": "2031-07-01", "save": "1"})
    assert response.status_code == 302, response.get_data(as_text=True)
    with app.app_context():
        prescription = db.session.scalars(
            sa.select(Prescription).where(Prescription.consultation_id == consultation_id)
        ).one()
        assert [item.medicine for item in prescription.items] == ["Amoxicillin", "Paracetamol"]
        assert {item.patient_id for item in prescription.items} == {prescription.patient_id}
        assert prescription.patient_id == setup["patient"]
        assert prescription.branch_id == setup["downtown"]
        assert (prescription.version, prescription.status) == (1, "active")
        assert str(prescription.follow_up_on) == "2031-07-01"
    body = client.get(f"/consultations/show/{consultation_id}").get_data(as_text=True)
    assert f"/prescriptions/show/{prescription.id}" in body


def test_add_and_remove_rows_keep_what_was_typed(app, setup):
    consultation_id = visit(app, setup["patient"])
    client = login_as(app, "doctor")
    url = f"/prescriptions/add?consultation={consultation_id}"
    typed = item_fields([{"medicine": "Cetirizine-Kq", "dose": "1 tablet"}])
    response = post(client, url, {**typed, "advice": "Advice-Kq", "add_item": "1"})
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'value="Cetirizine-Kq"' in body and "Advice-Kq" in body
    assert 'name="items-1-medicine"' in body and "Medicine 2" in body
    assert "name the medicine" not in body  # no errors for a form still being written

    two = item_fields([{"medicine": "Keep-Me"}, {"medicine": "Drop-Me"}])
    body = post(client, url, {**two, "remove_item": "1"}).get_data(as_text=True)
    assert 'value="Keep-Me"' in body and "Drop-Me" not in body
    with app.app_context():
        assert db.session.scalar(
            sa.select(sa.func.count()).select_from(Prescription)
            .where(Prescription.consultation_id == consultation_id)
        ) == 0


def test_rows_need_a_medicine_and_a_positive_quantity(app, setup):
    consultation_id = visit(app, setup["patient"])
    client = login_as(app, "doctor")
    url = f"/prescriptions/add?consultation={consultation_id}"
    body = post(client, url, {**item_fields([{"dose": "2 puffs"}]), "save": "1"}).get_data(as_text=True)
    assert "Row 1: name the medicine." in body and 'value="2 puffs"' in body
    body = post(client, url, {**item_fields([{}]), "save": "1"}).get_data(as_text=True)
    assert "Add at least one medicine." in body
    body = post(client, url, {**item_fields([{"medicine": "Zinc", "quantity": "-3"}]), "save": "1"}).get_data(as_text=True)
    assert "Row 1: the quantity must be more than 0." in body


def test_prescribing_directly_by_mrn(app, setup):
    client = login_as(app, "doctor")
    with app.app_context():
        mrn = db.session.get(Patient, setup["patient"]).mrn
    response = post(client, "/prescriptions/add", {
        **item_fields([{"medicine": "Vitamin D3", "dose": "60000 IU", "frequency": "weekly"}]),
        "patient_mrn": mrn.lower(), "save": "1",
    })
    assert response.status_code == 302
    body = post(client, "/prescriptions/add", {
        **item_fields([{"medicine": "Vitamin D3"}]), "patient_mrn": "MRN-999999", "save": "1",
    }).get_data(as_text=True)
    assert "No patient has this MRN." in body


def test_only_doctors_write_prescriptions(app, setup):
    client = login_as(app, "admin")
    response = client.get("/prescriptions/add")
    assert response.status_code == 302
    assert "Only a doctor can write a prescription." in client.get(response.headers["Location"]).get_data(as_text=True)


# -- who may change it, and until when -----------------------------------------------------------


def test_the_prescribing_doctor_edits_within_a_day(app, setup):
    prescription_id = prescribe(app, setup, ("Ibuprofen", "Omeprazole"))
    client = login_as(app, "doctor")
    url = f"/prescriptions/edit/{prescription_id}"
    form = client.get(url).get_data(as_text=True)
    assert 'value="Ibuprofen"' in form and 'value="15"' in form
    response = post(client, url, {**item_fields([{"medicine": "Ibuprofen", "dose": "1 tablet"}]),
                                  "advice": "Edited advice", "save": "1"})
    assert response.status_code == 302
    with app.app_context():
        prescription = db.session.get(Prescription, prescription_id)
        assert [item.medicine for item in prescription.items] == ["Ibuprofen"]
        assert prescription.advice == "Edited advice"
        assert db.session.scalar(sa.select(sa.func.count()).select_from(PrescriptionItem)
                                 .where(PrescriptionItem.prescription_id == prescription_id)) == 1


@pytest.mark.parametrize("username", ["doctor3", "admin"])
def test_another_doctor_or_admin_is_refused(app, setup, username):
    prescription_id = prescribe(app, setup)
    client = login_as(app, username)
    response = client.get(f"/prescriptions/edit/{prescription_id}")
    assert response.status_code == 302
    body = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Only Priya Nair, who wrote this prescription, can change it." in body
    assert client.get(f"/prescriptions/{prescription_id}/correct").status_code == 302
    with app.app_context():
        prescription = db.session.get(Prescription, prescription_id)
        with pytest.raises(PrescriptionNotAllowedError):
            update_prescription(prescription, items=[ItemInput(medicine="X")], advice=None,
                                follow_up_on=None, user=app.appbuilder.sm.find_user(username=username))


def test_after_24_hours_or_once_dispensed_it_is_locked(app, setup):
    old = prescribe(app, setup)
    age(app, old)
    dispensed = prescribe(app, setup)
    with app.app_context():
        db.session.get(Prescription, dispensed).status = "dispensed"
        db.session.get(Prescription, dispensed).dispensed_at = datetime.now(timezone.utc)
        db.session.commit()
    client = login_as(app, "doctor")
    for pk, reason in ((old, "more than 24 hours old"), (dispensed, "was dispensed")):
        response = client.get(f"/prescriptions/edit/{pk}")
        assert response.status_code == 302
        assert reason in client.get(response.headers["Location"]).get_data(as_text=True)
        with app.app_context():
            with pytest.raises(PrescriptionLockedError):
                update_prescription(db.session.get(Prescription, pk), items=[ItemInput(medicine="X")],
                                    advice=None, follow_up_on=None,
                                    user=app.appbuilder.sm.find_user(username="doctor"))
    # 23 hours is still within the day.
    fresh = prescribe(app, setup)
    age(app, fresh, hours=23)
    assert client.get(f"/prescriptions/edit/{fresh}").status_code == 200


def test_a_correction_is_a_new_version_and_the_old_stays_readable(app, setup):
    v1 = prescribe(app, setup, ("Metformin", "Glimepiride"))
    age(app, v1)
    client = login_as(app, "doctor")
    show = client.get(f"/prescriptions/show/{v1}").get_data(as_text=True)
    assert f"/prescriptions/{v1}/correct" in show and f"/prescriptions/edit/{v1}" not in show
    url = f"/prescriptions/{v1}/correct"
    form = client.get(url).get_data(as_text=True)
    assert 'value="Metformin"' in form and 'value="Glimepiride"' in form  # copied for editing
    response = post(client, url, {**item_fields([{"medicine": "Metformin", "strength": "1000 mg"}]),
                                  "save": "1"})
    assert response.status_code == 302
    with app.app_context():
        first = db.session.get(Prescription, v1)
        second = db.session.scalars(sa.select(Prescription).where(Prescription.supersedes_id == v1)).one()
        assert (first.status, second.status, second.version) == ("superseded", "active", 2)
        assert [i.medicine for i in first.items] == ["Metformin", "Glimepiride"]
        assert [(i.medicine, i.strength) for i in second.items] == [("Metformin", "1000 mg")]
        v2 = second.id
    old_page = client.get(f"/prescriptions/show/{v1}").get_data(as_text=True)
    assert f"/prescriptions/show/{v2}" in old_page and "Glimepiride" in old_page
    assert f"/prescriptions/{v1}/correct" not in old_page
    assert f"/prescriptions/show/{v1}" in client.get(f"/prescriptions/show/{v2}").get_data(as_text=True)
    printed = client.get(f"/prescriptions/{v1}/print").get_data(as_text=True)
    assert "Superseded by version 2" in printed
    # A superseded version cannot be corrected again.
    again = client.get(url)
    assert again.status_code == 302


# -- the printed page ----------------------------------------------------------------------------


def test_the_printed_prescription(app, setup):
    prescription_id = prescribe(app, setup, (EVIL, "Cetirizine"))
    client = login_as(app, "doctor")
    response = client.get(f"/prescriptions/{prescription_id}/print")
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Downtown Clinic" in body and "Family medicine &amp; dentistry" in body
    assert f'/branding/logo/{setup["downtown"]}' in body
    assert "Dr Priya Nair" in body and REGISTRATION in body and "MBBS, MD (General Medicine)" in body
    with app.app_context():
        patient = db.session.get(Patient, setup["patient"])
        assert patient.full_name in body and patient.mrn in body
    assert "Cetirizine" in body and "three times a day" in body and "Drink plenty of water" in body
    assert "Signature" in body
    assert "&lt;script&gt;alert(&#34;rx&#34;)&lt;/script&gt;Amoxi&lt;b&gt;cillin&lt;/b&gt;" in body
    assert "<script>alert" not in body and "<b>cillin" not in body
    assert "css/prescription-print.css" in body and "cd-sidebar" not in body  # its own document
    assert "rx-print--a4" in body and "?size=a5" in body

    a5 = client.get(f"/prescriptions/{prescription_id}/print?size=a5").get_data(as_text=True)
    assert "rx-print--a5" in a5
    assert client.get(f"/prescriptions/{prescription_id}/print?size=letter").status_code == 200


def test_show_and_print_are_access_logged(app, setup):
    prescription_id = prescribe(app, setup)
    client = login_as(app, "pharmacist")
    client.get(f"/prescriptions/show/{prescription_id}")
    client.get(f"/prescriptions/{prescription_id}/print")
    with app.app_context():
        entries = db.session.scalars(
            sa.select(AuditEntry).where(
                AuditEntry.kind == "access", AuditEntry.model == "Prescription",
                AuditEntry.record_id == str(prescription_id),
            )
        ).all()
    assert sorted(entry.action for entry in entries) == ["print", "view"]
    assert all(entry.subject_id == setup["patient"] for entry in entries)


# -- roles and branches --------------------------------------------------------------------------


def test_the_pharmacist_reads_but_never_edits(app, setup):
    prescription_id = prescribe(app, setup)
    client = login_as(app, "pharmacist")
    for url in ("/prescriptions/list/", f"/prescriptions/show/{prescription_id}",
                f"/prescriptions/{prescription_id}/print"):
        assert client.get(url).status_code == 200, url
    for url in ("/prescriptions/add", f"/prescriptions/edit/{prescription_id}",
                f"/prescriptions/{prescription_id}/correct"):
        assert client.get(url).status_code == 403, url
    page = client.get(f"/prescriptions/show/{prescription_id}").get_data(as_text=True)
    assert f"/prescriptions/edit/{prescription_id}" not in page
    api = app.test_client().get(f"/api/v1/prescriptions/{prescription_id}",
                                headers=bearer_headers(app, "pharmacist"))
    assert api.status_code == 200
    assert [item["medicine"] for item in api.get_json()["result"]["items"]] == ["Paracetamol"]


@pytest.mark.parametrize("username", ["reception", "labtech", "accountant", "owner"])
def test_non_clinical_roles_never_read_prescriptions(app, setup, username):
    prescription_id = prescribe(app, setup)
    client = login_as(app, username)
    for url in ("/prescriptions/list/", f"/prescriptions/show/{prescription_id}",
                f"/prescriptions/{prescription_id}/print"):
        assert client.get(url).status_code == 403, url
    api = app.test_client().get(f"/api/v1/prescriptions/{prescription_id}",
                                headers=bearer_headers(app, username))
    assert api.status_code == 403
    assert f"/prescriptions/show/{prescription_id}" not in client.get(
        f"/patients/show/{setup['patient']}").get_data(as_text=True)


def test_another_branch_sees_nothing(app, setup):
    prescription_id = prescribe(app, setup)
    client = login_as(app, "doctor2")  # Lakeside only
    for url in (f"/prescriptions/show/{prescription_id}", f"/prescriptions/{prescription_id}/print",
                f"/prescriptions/edit/{prescription_id}", f"/prescriptions/{prescription_id}/correct"):
        assert client.get(url).status_code == 404, url
    consultation_id = visit(app, setup["patient"])
    assert client.get(f"/prescriptions/add?consultation={consultation_id}").status_code == 404
    api = app.test_client().get(f"/api/v1/prescriptions/{prescription_id}",
                                headers=bearer_headers(app, "doctor2"))
    assert api.status_code == 404
    listed = app.test_client().get("/api/v1/prescriptions/", headers=bearer_headers(app, "doctor2"))
    assert prescription_id not in [row["id"] for row in listed.get_json()["result"]]


def test_the_api_info_lists_no_other_branchs_medicines(app, setup):
    """FAB's ``_info`` lists the choices of the add/edit columns' relationships; prescription
    items are not branch-owned, so they must not be among them (nor the patient register)."""
    prescribe(app, setup, medicines=("Lakesidezolam Qi",), doctor="doctor2", branch="LS")
    client, headers = app.test_client(), bearer_headers(app, "pharmacist")  # Downtown only
    for page in range(5):
        query = f"(add_columns:(items:(page:{page},page_size:100)),edit_columns:(items:(page:{page},page_size:100)))"
        response = client.get("/api/v1/prescriptions/_info", query_string={"q": query},
                               headers=headers)
        assert response.status_code == 200
        body = response.get_data(as_text=True)
        assert "Lakesidezolam" not in body
        assert "MRN-" not in body


def test_the_patient_timeline_lists_prescriptions_for_doctors(app, setup):
    prescription_id = prescribe(app, setup)
    page = login_as(app, "doctor").get(f"/patients/show/{setup['patient']}").get_data(as_text=True)
    assert f"/prescriptions/show/{prescription_id}" in page
