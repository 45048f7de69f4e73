"""Reads of patient data and personal values in the audit trail, on a test-only patient record.

A screen or API that declares ``access_log = "patient"`` writes one access entry per page view,
print or API call (never one per row); ``who_viewed`` answers "who looked at this patient".
Change entries about a patient keep their values encrypted with the patient's key, shown to the
Admin while the key exists and as ``[erased]`` once erasure has destroyed it — the hash chain
verifies all along.
"""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models.audit import AuditEntry
from app.models.org import Branch
from app.services.audit import who_viewed
from app.services.audit_chain import seal_pending, verify_chain
from app.services.audit_subjects import erase_subject
from tests.audit_support import PatientNote, entries_since, install_patient_notes, last_entry_id
from tests.conftest import Auth, bearer_headers, csrf_token_from, login_as

PATIENT = 42
SECRET_TITLE = "Allergic to penicillin"


def branch_id(app, code):
    with app.app_context():
        return db.session.scalar(sa.select(Branch.id).where(Branch.code == code))


def note_id(app, title):
    with app.app_context():
        return db.session.scalar(sa.select(PatientNote.id).where(PatientNote.title == title))


@pytest.fixture(scope="module")
def notes_app(make_app):
    """Patient notes: two Downtown patients written by the doctor's form, one at Lakeside."""
    app = make_app()
    install_patient_notes(app)
    client = app.test_client()
    Auth(client).login("doctor")
    downtown = str(branch_id(app, "DT"))
    for patient, title in ((PATIENT, SECRET_TITLE), (43, "Knee pain after a fall")):
        page = client.get("/test-patient-notes/add").get_data(as_text=True)
        response = client.post(
            "/test-patient-notes/add",
            data={"patient_id": str(patient), "title": title, "branch": downtown,
                  "csrf_token": csrf_token_from(page)},
        )
        assert response.status_code == 302
    with app.app_context():
        db.session.add(PatientNote(patient_id=44, title="Lakeside crown", branch_id=branch_id(app, "LS")))
        db.session.commit()
    return app


def access_since(app, since):
    return entries_since(app, since, kind="access")


def test_a_list_page_is_one_entry_naming_every_patient_shown(notes_app):
    since = last_entry_id(notes_app)
    body = login_as(notes_app, "doctor").get("/test-patient-notes/list/").get_data(as_text=True)
    assert SECRET_TITLE in body and "Lakeside crown" not in body
    [entry] = access_since(notes_app, since)
    details = json.loads(entry.details)
    assert (entry.action, entry.actor, entry.model) == ("view", "doctor", "PatientNote")
    assert sorted(details["records"]) == sorted(
        [str(note_id(notes_app, SECRET_TITLE)), str(note_id(notes_app, "Knee pain after a fall"))]
    )
    assert details["subjects"] == [PATIENT, 43] and entry.subject_id is None
    assert details["path"] == "/test-patient-notes/list/"
    assert entry.branch_id == branch_id(notes_app, "DT")


def test_a_detail_page_and_a_print_name_the_patient(notes_app):
    client = login_as(notes_app, "doctor")
    note = note_id(notes_app, SECRET_TITLE)
    since = last_entry_id(notes_app)
    assert client.get(f"/test-patient-notes/show/{note}").status_code == 200
    assert SECRET_TITLE in client.get(f"/test-patient-notes/print/{note}").get_data(as_text=True)
    viewed, printed = access_since(notes_app, since)
    for entry, action in ((viewed, "view"), (printed, "print")):
        assert entry.action == action
        assert (entry.subject_type, entry.subject_id, entry.record_id) == ("patient", PATIENT, str(note))
        assert entry.ip == "127.0.0.1"


def test_api_reads_are_one_entry_per_call(notes_app):
    client = notes_app.test_client()
    headers = bearer_headers(notes_app, "doctor")
    note = note_id(notes_app, SECRET_TITLE)
    since = last_entry_id(notes_app)
    assert client.get(f"/api/v1/test-patient-notes/{note}", headers=headers).status_code == 200
    assert client.get("/api/v1/test-patient-notes/", headers=headers).status_code == 200
    one, page = access_since(notes_app, since)
    assert (one.action, one.subject_id, one.record_id) == ("api_read", PATIENT, str(note))
    assert (page.action, len(json.loads(page.details)["records"])) == ("api_read", 2)


def test_refused_reads_leave_no_access_entry(notes_app):
    since = last_entry_id(notes_app)
    lakeside = note_id(notes_app, "Lakeside crown")
    assert login_as(notes_app, "doctor").get(f"/test-patient-notes/show/{lakeside}").status_code == 404
    assert login_as(notes_app, "reception").get("/test-patient-notes/list/").status_code == 403
    assert access_since(notes_app, since) == []


def test_who_viewed_lists_the_reads_of_one_patient_newest_first(notes_app):
    note = note_id(notes_app, SECRET_TITLE)
    headers = bearer_headers(notes_app, "doctor")
    api_read = notes_app.test_client().get(f"/api/v1/test-patient-notes/{note}", headers=headers)
    assert api_read.status_code == 200
    login_as(notes_app, "doctor").get(f"/test-patient-notes/print/{note}")
    login_as(notes_app, "doctor").get(f"/test-patient-notes/show/{note}")
    with notes_app.app_context():
        reads = who_viewed("patient", PATIENT)
        assert reads and reads[0].action == "view" and reads[0].actor == "doctor"
        assert {entry.action for entry in reads} >= {"view", "print", "api_read"}
        assert [e.id for e in reads] == sorted((e.id for e in reads), reverse=True)
        assert all(entry.subject_id == PATIENT for entry in reads)
        assert who_viewed("patient", 43) == []  # seen only on the list page


def test_the_access_log_screen_filters_by_patient(notes_app):
    admin = notes_app.test_client()
    Auth(admin).login("admin")
    with notes_app.app_context():
        mine = [e.id for e in who_viewed("patient", PATIENT)]
        list_page = db.session.scalar(
            sa.select(AuditEntry.id).where(AuditEntry.kind == "access",
                                           AuditEntry.subject_id.is_(None))
        )
    body = admin.get(f"/access-log/list/?_flt_0_subject_id={PATIENT}").get_data(as_text=True)
    assert all(f"/access-log/show/{entry}" in body for entry in mine)
    assert f"/access-log/show/{list_page}" not in body
    audit = admin.get("/audit/list/?_flt_3_model=PatientNote").get_data(as_text=True)
    assert not any(f"/audit/show/{entry}\"" in audit for entry in mine)  # reads stay apart


def _change_entry(app, title_fragment=None):
    with app.app_context():
        entry = db.session.scalar(
            sa.select(AuditEntry).where(AuditEntry.kind == "change", AuditEntry.model == "PatientNote",
                                        AuditEntry.subject_id == PATIENT, AuditEntry.action == "create")
        )
        db.session.expunge(entry)
        return entry


def test_a_patients_values_are_encrypted_and_shown_to_the_admin(notes_app):
    entry = _change_entry(notes_app)
    assert entry.subject_type == "patient" and entry.actor == "doctor"
    assert SECRET_TITLE not in entry.details and "penicillin" not in entry.details
    assert json.loads(entry.details)["fields"] == ["branch_id", "patient_id", "title"]
    admin = notes_app.test_client()
    Auth(admin).login("admin")
    body = admin.get(f"/audit/show/{entry.id}").get_data(as_text=True)
    assert SECRET_TITLE in body
    listing = admin.get("/audit/list/?_flt_3_model=PatientNote").get_data(as_text=True)
    assert "penicillin" not in listing  # lists name the fields, never a patient's values


def test_erasure_hides_the_values_and_keeps_the_chain(notes_app):
    entry = _change_entry(notes_app)
    with notes_app.app_context():
        seal_pending()
        assert verify_chain().ok
        erase_subject("patient", PATIENT)
        db.session.commit()
        note = db.session.scalar(sa.select(PatientNote).where(PatientNote.patient_id == PATIENT))
        note.title = "Allergic to penicillin and latex"
        db.session.commit()
        seal_pending()
        report = verify_chain()
        assert report.ok, report
        later = db.session.scalar(
            sa.select(AuditEntry).where(AuditEntry.model == "PatientNote", AuditEntry.action == "update",
                                        AuditEntry.subject_id == PATIENT).order_by(AuditEntry.id.desc())
        )
        assert json.loads(later.details) == {"erased": True, "fields": ["title"]}
        erasure = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "erase"))
        assert (erasure.subject_type, erasure.subject_id) == ("patient", PATIENT)
    admin = notes_app.test_client()
    Auth(admin).login("admin")
    body = admin.get(f"/audit/show/{entry.id}").get_data(as_text=True)
    assert "[erased]" in body and "penicillin" not in body
