"""Patients: registration with MRN and duplicate check, search, consents, clinical privacy, merge."""

from __future__ import annotations

import json
import threading
from datetime import date

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models.audit import AuditEntry
from app.models.org import Branch
from app.models.patients import ConsentChange, Patient, PatientClinical
from app.services.audit import acting_as
from app.services.patients import register_patient, search_key, search_patients
from tests.conftest import bearer_headers, csrf_token_from, login_as

# The rules of the clinical core hold on SQLite too (the subset CI runs there).
pytestmark = pytest.mark.sqlite_subset

ALLERGY = "Sulfonamide rash Qzx"


def branch_id(app, code: str) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(Branch.id).where(Branch.code == code))


def patient_form(app, **overrides) -> dict:
    return {
        "first_name": "Lalitha",
        "last_name": "Subramaniam",
        "date_of_birth": "1984-03-09",
        "sex": "female",
        "phone": "098450 77001",
        "email": "",
        "address": "7 Temple Street",
        "emergency_contact_name": "",
        "emergency_contact_phone": "",
        "preferred_language": "Tamil",
        "registered_branch": str(branch_id(app, "DT")),
        "consent_sms": "y",
        "consent_obtained": "in_person",
        **overrides,
    }


def post_form(client, path: str, data: dict):
    page = client.get(path).get_data(as_text=True)
    return client.post(path, data={**data, "csrf_token": csrf_token_from(page)})


def find(app, **where) -> Patient | None:
    with app.app_context():
        patient = db.session.scalars(sa.select(Patient).filter_by(**where)).first()
        if patient is not None:
            db.session.expunge(patient)
        return patient


@pytest.fixture(scope="module")
def jose(app):
    """José Pérez, registered through the service at Lakeside, with a clinical section."""
    with app.app_context():
        patient = Patient(
            first_name="José", last_name="Pérez García", date_of_birth=date(1990, 7, 14),
            sex="male", phone="080 4999 1234", registered_branch_id=branch_id(app, "LS"),
            consent_email=True,
        )
        register_patient(patient, "written")
        db.session.add(PatientClinical(patient_id=patient.id, allergies=ALLERGY))
        db.session.commit()
        return patient.id


def test_registering_gives_an_mrn_and_an_international_phone(app):
    client = login_as(app, "reception")
    response = post_form(client, "/patients/add", patient_form(app, confirm_new="y"))
    assert response.status_code == 302
    patient = find(app, last_name="Subramaniam")
    assert patient.mrn == f"MRN-{patient.id:06d}"
    assert patient.phone == "+919845077001"
    assert patient.name_search == "lalitha subramaniam"
    with app.app_context():
        mrns = db.session.scalars(sa.select(Patient.mrn)).all()
    assert len(mrns) == len(set(mrns)) and None not in mrns


def test_a_bad_phone_is_refused_with_the_typed_values_kept(app):
    client = login_as(app, "reception")
    response = post_form(client, "/patients/add", patient_form(app, phone="12", last_name="Unsaved-Kq"))
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Enter a phone number with its area code" in body
    assert "Unsaved-Kq" in body
    assert find(app, last_name="Unsaved-Kq") is None


def test_possible_duplicates_are_shown_before_saving_and_can_be_confirmed(app):
    client = login_as(app, "reception")
    # Demo patient MRN-000001 has +91 98450 00000; the form types it the local way.
    data = patient_form(app, first_name="Aarav", last_name="Sharma-Typed", phone="98450 00000")
    response = post_form(client, "/patients/add", data)
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "This patient may already be registered" in body
    assert "MRN-000001" in body
    assert "Sharma-Typed" in body and "7 Temple Street" in body  # nothing typed is lost
    assert find(app, last_name="Sharma-Typed") is None

    response = post_form(client, "/patients/add", {**data, "confirm_new": "y"})
    assert response.status_code == 302
    assert find(app, last_name="Sharma-Typed").phone == "+919845000000"


def test_same_name_and_birth_date_is_a_possible_duplicate(app, jose):
    client = login_as(app, "reception")
    data = patient_form(
        app, first_name="jose", last_name="PEREZ GARCIA", date_of_birth="1990-07-14",
        phone="098450 66666",
    )
    body = post_form(client, "/patients/add", data).get_data(as_text=True)
    assert "This patient may already be registered" in body and "Pérez García" in body
    # Showing the possible duplicate is a read of that patient's record: it is access-logged.
    with app.app_context():
        entry = db.session.scalars(
            sa.select(AuditEntry).where(AuditEntry.kind == "access")
            .order_by(AuditEntry.id.desc()).limit(1)
        ).one()
        assert entry.actor == "reception" and entry.model == "Patient"
        assert json.loads(entry.details)["subjects"] == [jose]


@pytest.mark.parametrize(
    "text",
    ["jose", "PÉREZ", "garcia", "jose garcia", "080 4999 1234", "+91 80 4999 1234", "804-999-1234",
     "1990-07-14", "14/07/1990"],
)
def test_search_finds_by_name_part_phone_and_birth_date(app, jose, text):
    client = login_as(app, "reception")
    body = client.get("/patients/list/", query_string={"search": text}).get_data(as_text=True)
    assert "Pérez García" in body, text
    assert "Aarav" not in body


@pytest.mark.parametrize(
    "stored, typed", [("Yılmaz", "yilmaz"), ("Søren", "SOREN"), ("Łukasz", "lukasz"),
                      ("Æsa", "aesa"), ("Zoë", "zoe"), ("Thảo Nguyễn", "thao nguyen")],
)
def test_search_keys_fold_letters_a_plain_keyboard_cannot_type(stored, typed):
    assert search_key(stored) == search_key(typed)


def test_search_by_mrn(app, jose):
    with app.app_context():
        mrn = db.session.get(Patient, jose).mrn
        assert [p.id for p in search_patients(mrn.lower())] == [jose]
    body = login_as(app, "doctor").get(f"/patients/list/?search={mrn}").get_data(as_text=True)
    assert "Pérez García" in body


def test_consent_changes_are_kept_with_who_when_and_how(app, jose):
    client = login_as(app, "reception")
    with app.app_context():
        patient = db.session.get(Patient, jose)
        form = {
            "first_name": patient.first_name, "last_name": patient.last_name,
            "date_of_birth": "1990-07-14", "sex": "male", "phone": patient.phone,
            "registered_branch": str(patient.registered_branch_id),
            "consent_sms": "y", "consent_obtained": "phone",  # e-mail withdrawn, SMS given
        }
    response = post_form(client, f"/patients/edit/{jose}", form)
    assert response.status_code == 302
    with app.app_context():
        changes = db.session.scalars(
            sa.select(ConsentChange).where(ConsentChange.patient_id == jose).order_by(ConsentChange.id)
        ).all()
        summary = [(c.kind, c.granted, c.obtained, c.changed_by.username if c.changed_by else None) for c in changes]
        assert all(c.changed_at is not None for c in changes)
    assert summary == [
        ("email", True, "written", None),  # registered by a script: no user
        ("sms", True, "phone", "reception"),
        ("email", False, "phone", "reception"),
    ]
    page = client.get(f"/patients/show/{jose}").get_data(as_text=True)
    assert "Consent withdrawn: Reminders by e-mail" in page and "By phone" in page


@pytest.mark.parametrize("username", ["reception", "owner", "pharmacist", "labtech", "accountant"])
def test_non_clinical_roles_never_see_the_clinical_section(app, jose, username):
    client = login_as(app, username)
    page = client.get(f"/patients/show/{jose}")
    assert page.status_code == 200
    assert "Pérez García" in page.get_data(as_text=True)
    assert ALLERGY not in page.get_data(as_text=True)
    assert client.get(f"/patients/clinical/edit/{jose}").status_code == 403
    api = app.test_client().get(f"/api/v1/patients/{jose}", headers=bearer_headers(app, username))
    assert api.status_code == 200
    assert ALLERGY not in api.get_data(as_text=True)
    assert "allergies" not in api.get_json()["result"]


def test_doctor_sees_and_edits_the_clinical_section(app, jose):
    client = login_as(app, "doctor")
    assert ALLERGY in client.get(f"/patients/show/{jose}").get_data(as_text=True)
    response = post_form(
        client, f"/patients/clinical/edit/{jose}",
        {"allergies": ALLERGY + "\r\nLatex", "chronic_conditions": "Asthma", "clinical_notes": ""},
    )
    assert response.status_code == 302
    with app.app_context():
        clinical = db.session.get(PatientClinical, jose)
        assert clinical.allergies == ALLERGY + "\nLatex"
        assert clinical.chronic_conditions == "Asthma"


def test_api_registers_patients_and_only_for_roles_that_may(app):
    body = {
        "first_name": "Api", "last_name": "Registered", "sex": "male", "phone": "098450 55555",
        "registered_branch": branch_id(app, "DT"),
    }
    denied = app.test_client().post("/api/v1/patients/", json=body, headers=bearer_headers(app, "pharmacist"))
    assert denied.status_code == 403
    made = app.test_client().post("/api/v1/patients/", json=body, headers=bearer_headers(app, "reception"))
    assert made.status_code == 201, made.get_data(as_text=True)
    patient = find(app, last_name="Registered")
    assert patient.phone == "+919845055555" and patient.mrn.startswith("MRN-")
    elsewhere = app.test_client().post(
        "/api/v1/patients/", json={**body, "last_name": "Elsewhere", "registered_branch": branch_id(app, "LS")},
        headers=bearer_headers(app, "reception"),
    )
    assert elsewhere.status_code == 422  # the Downtown receptionist registers at Downtown only
    assert find(app, last_name="Elsewhere") is None


def test_every_patient_page_view_is_logged_and_shown_to_admin_and_owner(app, jose):
    def reads():
        with app.app_context():
            return db.session.scalar(
                sa.select(sa.func.count()).select_from(AuditEntry).where(
                    AuditEntry.kind == "access", AuditEntry.subject_type == "patient",
                    AuditEntry.subject_id == jose,
                )
            )

    before = reads()
    login_as(app, "labtech").get(f"/patients/show/{jose}")
    app.test_client().get(f"/api/v1/patients/{jose}", headers=bearer_headers(app, "accountant"))
    assert reads() == before + 2
    panel = login_as(app, "admin").get(f"/patients/show/{jose}").get_data(as_text=True)
    assert "Who viewed this record" in panel and "labtech" in panel and "accountant" in panel
    owners = login_as(app, "owner").get(f"/patients/show/{jose}").get_data(as_text=True)
    assert "Who viewed this record" in owners and "labtech" in owners
    for staff in ("reception", "doctor"):
        page = login_as(app, staff).get(f"/patients/show/{jose}").get_data(as_text=True)
        assert "Who viewed this record" not in page


def test_owner_merges_a_duplicate_which_stays_marked_merged(app):
    with app.app_context():
        # The demo's near-duplicate: "ANANYA Hegde", registered again at Lakeside.
        survivor, duplicate = db.session.scalars(
            sa.select(Patient).where(Patient.name_search == "ananya hegde").order_by(Patient.id)
        ).all()[:2]
        survivor_id, duplicate_id, survivor_mrn = survivor.id, duplicate.id, survivor.mrn
        db.session.add(PatientClinical(patient_id=duplicate_id, allergies="Aspirin"))
        db.session.commit()
        moved_consents = db.session.scalar(
            sa.select(sa.func.count()).select_from(ConsentChange).where(ConsentChange.patient_id == duplicate_id)
        )
    assert moved_consents > 0
    assert login_as(app, "reception").get(f"/patients/merge/{duplicate_id}").status_code == 403

    client = login_as(app, "owner")
    response = post_form(client, f"/patients/merge/{duplicate_id}", {"survivor_mrn": survivor_mrn.lower()})
    assert response.status_code == 302
    with app.app_context():
        duplicate = db.session.get(Patient, duplicate_id)
        assert duplicate is not None and duplicate.merged_into_id == survivor_id
        assert db.session.scalar(
            sa.select(sa.func.count()).select_from(ConsentChange).where(ConsentChange.patient_id == duplicate_id)
        ) == 0
        assert "Aspirin" in db.session.get(PatientClinical, survivor_id).allergies
        entry = db.session.scalars(
            sa.select(AuditEntry).where(AuditEntry.action == "merge").order_by(AuditEntry.id.desc())
        ).first()
        assert entry.actor == "owner"
        assert json.loads(entry.details)["survivor"] == survivor_mrn
    assert client.get(f"/patients/show/{duplicate_id}").status_code == 404
    listed = client.get("/patients/list/?search=ananya hegde").get_data(as_text=True)
    assert survivor_mrn in listed and f"MRN-{duplicate_id:06d}" not in listed


def test_simultaneous_registrations_never_share_an_mrn(app):
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("SQLite has one writer at a time: concurrency is proven on PostgreSQL")
    writers, downtown = 6, branch_id(app, "DT")
    start, errors, made = threading.Barrier(writers), [], []

    def register(number: int) -> None:
        try:
            with app.app_context(), acting_as(f"test:registrar-{number}"):
                patient = Patient(
                    first_name="Concurrent", last_name=f"Registrant {number}", sex="unknown",
                    registered_branch_id=downtown,
                )
                start.wait()
                register_patient(patient)
                db.session.commit()
                made.append((patient.id, patient.mrn))
        except BaseException as exc:  # reported below, with the others
            errors.append(exc)

    threads = [threading.Thread(target=register, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    assert len(made) == writers
    assert len({mrn for _, mrn in made}) == writers
    assert all(mrn == f"MRN-{pk:06d}" for pk, mrn in made)


def test_search_terms_stay_out_of_the_session_cookie(app, jose):
    client = login_as(app, "reception")
    assert "Pérez García" in client.get("/patients/list/?search=perez").get_data(as_text=True)
    with client.session_transaction() as session:
        history = str(session.get("page_history"))
    assert "/patients/list/" in history
    assert "perez" not in history.lower()
