"""The change audit: every write path leaves one entry with who, when, where from and what.

Forms, the REST API, an action, a job run by the real worker and a CLI command each write
through the ORM; the session events record each insert, update and delete in the same
transaction. Secrets never reach an entry, many-to-many changes land on the owning row, bulk
statements are recorded (or refused on patient records), and nothing in the app can change or
delete an entry.
"""

from __future__ import annotations

import json
import re

import pytest
import sqlalchemy as sa
from flask_appbuilder.security.sqla.models import User

from app.demo import DEMO_USERS
from app.extensions import db, get_queue
from app.jobs import enqueue
from app.jobs.audit import seal_audit_chain
from app.jobs.worker import make_worker
from app.models.audit import AuditEntry
from app.models.org import Branch
from app.security import policy
from app.security.audit_events import AuditEntryImmutableError, BulkWriteRefusedError
from app.services.audit import acting_as, record_auth_event
from tests.audit_support import (
    PatientNote,
    entries_since,
    install_patient_notes,
    last_entry_id,
)
from tests.conftest import PASSWORD, TOTP_SECRETS, Auth, bearer_headers, csrf_token_from

BRANCH_FORM = {
    "name": "Audit Hill Clinic",
    "code": "ah",
    "address": "1 Audit Road",
    "phone": "080 4123 4567",
    "email": "audit-hill@example.org",
    "country": "IN",
    "time_zone": "Asia/Kolkata",
    "currency": "INR",
    "tax_id": "",
    "fy_start_month": "4",
    "letterhead_text": "General practice",
    "is_active": "y",
}


def rename_branch(branch_id: int, name: str) -> str:
    """A job that writes: renames a branch (run by the real worker in tests)."""
    branch = db.session.get(Branch, branch_id)
    branch.name = name
    db.session.commit()
    return name


@pytest.fixture(scope="module")
def audit_app(make_app):
    app = make_app()
    install_patient_notes(app)
    return app


def signed_in(app, username):
    client = app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = "ClinicDesk audit tests"
    response = Auth(client).login(username)
    assert response.status_code == 302 and "/login/" not in response.headers["Location"]
    return client


def post_form(client, path, data, form_page=None, **kwargs):
    page = client.get(form_page or path).get_data(as_text=True)
    return client.post(path, data={**data, "csrf_token": csrf_token_from(page)}, **kwargs)


def changes(entry: AuditEntry) -> dict:
    return json.loads(entry.details)["changes"]


def branch_id(app, code):
    with app.app_context():
        return db.session.scalar(sa.select(Branch.id).where(Branch.code == code))


def test_form_create_and_edit_of_a_branch_are_audited(audit_app):
    client = signed_in(audit_app, "owner")
    since = last_entry_id(audit_app)
    assert post_form(client, "/settings/branches/add", BRANCH_FORM).status_code == 302
    hill = branch_id(audit_app, "AH")
    [created] = entries_since(audit_app, since, model="Branch")
    assert (created.kind, created.action, created.actor) == ("change", "create", "owner")
    assert created.actor_id is not None
    assert created.record_id == str(hill) and created.branch_id == hill
    assert (created.ip, created.user_agent) == ("127.0.0.1", "ClinicDesk audit tests")
    assert created.occurred_at is not None and created.seq is None  # sealed later
    assert changes(created)["name"] == {"old": None, "new": "Audit Hill Clinic"}
    assert changes(created)["phone"]["new"] == "+918041234567"

    since = last_entry_id(audit_app)
    edited = {**BRANCH_FORM, "code": "AH", "letterhead_text": "General practice · Dentistry"}
    assert post_form(client, f"/settings/branches/edit/{hill}", edited).status_code == 302
    [updated] = entries_since(audit_app, since, model="Branch")
    assert updated.action == "update" and updated.record_id == str(hill)
    assert changes(updated) == {  # only what changed
        "letterhead_text": {"old": "General practice", "new": "General practice · Dentistry"}
    }


def test_form_delete_is_audited_with_the_last_values(audit_app):
    with audit_app.app_context(), acting_as("test:setup"):
        role_id = audit_app.appbuilder.sm.add_role("Temporary locum").id
        db.session.commit()
    admin = signed_in(audit_app, "admin")
    since = last_entry_id(audit_app)
    response = post_form(admin, f"/roles/delete/{role_id}", {}, form_page="/roles/list/")
    assert response.status_code == 302
    [deleted] = entries_since(audit_app, since, model="Role", action="delete")
    assert deleted.actor == "admin" and deleted.record_id == str(role_id)
    assert changes(deleted)["name"] == {"old": "Temporary locum", "new": None}


def test_accounts_are_deactivated_never_deleted(audit_app):
    """A sealed entry names its actor forever: the user screen offers no delete, even to Admin."""
    with audit_app.app_context():
        user_id = audit_app.appbuilder.sm.find_user(username="labtech").id
    admin = signed_in(audit_app, "admin")
    response = post_form(admin, f"/users/delete/{user_id}", {}, form_page="/users/list/")
    assert response.status_code == 403
    with audit_app.app_context():
        assert audit_app.appbuilder.sm.get_user_by_id(user_id) is not None
        assert "Delete" not in admin.get("/users/list/").get_data(as_text=True)


def test_rest_api_writes_are_audited(audit_app):
    client = audit_app.test_client()
    headers = bearer_headers(audit_app, "owner")
    since = last_entry_id(audit_app)
    data = {"name": "Audit River Clinic", "code": "ar", "country": "IN",
            "time_zone": "Asia/Kolkata", "currency": "INR", "fy_start_month": 4}
    response = client.post("/api/v1/branches/", json=data, headers=headers)
    assert response.status_code == 201, response.json
    river = response.json["id"]
    response = client.put(f"/api/v1/branches/{river}", json={"tax_id": "29AUDIT0000X1Z1"},
                          headers=headers)
    assert response.status_code == 200, response.json
    created, updated = entries_since(audit_app, since, model="Branch")
    assert (created.action, created.actor, created.record_id) == ("create", "owner", str(river))
    assert created.ip == "127.0.0.1"
    assert (updated.action, updated.branch_id) == ("update", river)
    assert changes(updated) == {"tax_id": {"old": None, "new": "29AUDIT0000X1Z1"}}


def test_an_action_is_audited(audit_app):
    with audit_app.app_context(), acting_as("test:setup"):
        note = PatientNote(patient_id=7, title="Follow-up in two weeks",
                           branch_id=branch_id(audit_app, "DT"))
        db.session.add(note)
        db.session.commit()
        note_id = note.id
    client = signed_in(audit_app, "doctor")
    page = client.get("/test-patient-notes/list/").get_data(as_text=True)
    since = last_entry_id(audit_app)
    response = client.post(
        "/test-patient-notes/action_post",
        data={"action": "archive", "rowid": [str(note_id)], "csrf_token": csrf_token_from(page)},
    )
    assert response.status_code == 302
    [entry] = entries_since(audit_app, since, kind="change")
    assert (entry.model, entry.action, entry.actor) == ("PatientNote", "update", "doctor")
    assert (entry.subject_type, entry.subject_id) == ("patient", 7)
    assert json.loads(entry.details)["fields"] == ["title"]  # the values are encrypted


def test_a_job_run_by_the_worker_acts_as_the_job(audit_app):
    lakeside = branch_id(audit_app, "LS")
    since = last_entry_id(audit_app)
    with audit_app.app_context():
        get_queue("default").empty()
        enqueue(rename_branch, lakeside, "Lakeside Dental & Implants", queue="default")
    make_worker(audit_app, ["default"]).work(burst=True)
    [entry] = entries_since(audit_app, since, model="Branch")
    assert entry.actor == "job:rename_branch" and entry.actor_id is None
    assert entry.ip is None and entry.branch_id == lakeside
    assert changes(entry) == {"name": {"old": "Lakeside Dental", "new": "Lakeside Dental & Implants"}}


def test_the_sealing_job_runs_on_the_worker(audit_app):
    with audit_app.app_context():
        get_queue("maintenance").empty()
        enqueue(seal_audit_chain, queue="maintenance")
    make_worker(audit_app, ["maintenance"]).work(burst=True)
    with audit_app.app_context():
        waiting = db.session.scalar(
            sa.select(sa.func.count()).select_from(AuditEntry).where(AuditEntry.seq.is_(None))
        )
    assert waiting == 0


def test_a_cli_command_names_itself(audit_app):
    runner = audit_app.test_cli_runner()
    since = last_entry_id(audit_app)
    try:
        result = runner.invoke(args=["clinic", "seed-demo", "--password", "another-demo-pass-42"])
        assert result.exit_code == 0, result.output
    finally:
        assert runner.invoke(args=["clinic", "seed-demo", "--password", PASSWORD]).exit_code == 0
    written = entries_since(audit_app, since)
    assert written and {entry.actor for entry in written} == {"cli:seed-demo"}
    password_changes = [e for e in written if e.model == "User" and "password" in changes(e)]
    assert len(password_changes) == 2 * len(DEMO_USERS)  # every demo user's password, twice
    for entry in password_changes:
        assert changes(entry)["password"] == {"old": "[redacted]", "new": "[redacted]"}


def test_an_admin_password_reset_is_redacted(audit_app):
    with audit_app.app_context():
        reception = audit_app.appbuilder.sm.find_user(username="reception").id
    admin = signed_in(audit_app, "admin")
    since = last_entry_id(audit_app)
    new_password = "a-fresh-long-passphrase-for-rahul"
    response = post_form(admin, f"/resetpassword/form?pk={reception}",
                         {"password": new_password, "conf_password": new_password})
    assert response.status_code == 302
    [entry] = entries_since(audit_app, since, model="User", record_id=str(reception))
    assert (entry.actor, entry.action) == ("admin", "update")
    assert changes(entry)["password"] == {"old": "[redacted]", "new": "[redacted]"}


def test_no_secret_ever_reaches_an_entry(audit_app):
    with audit_app.app_context():
        hashes = list(db.session.scalars(sa.select(User.password)))
        plain = list(db.session.scalars(
            sa.select(AuditEntry.details).where(AuditEntry.subject_type.is_(None))
        ))
    text = "\n".join(detail or "" for detail in plain)
    assert "[redacted]" in text
    for secret in [*hashes, *TOTP_SECRETS.values(), PASSWORD]:
        assert secret not in text
    assert "gAAAA" not in text  # no encrypted TOTP secret (Fernet token) either


def test_role_and_branch_changes_are_recorded_on_the_user(audit_app):
    with audit_app.app_context():
        sm = audit_app.appbuilder.sm
        pharmacist = sm.find_user(username="pharmacist")
        form = {
            "first_name": pharmacist.first_name, "last_name": pharmacist.last_name,
            "username": "pharmacist", "active": "y", "email": pharmacist.email,
            "roles": [str(sm.find_role(policy.LAB_TECHNICIAN).id)],
            "branches": [str(branch_id(audit_app, "DT")), str(branch_id(audit_app, "LS"))],
        }
        user_id = pharmacist.id
    admin = signed_in(audit_app, "admin")
    since = last_entry_id(audit_app)
    assert post_form(admin, f"/users/edit/{user_id}", form).status_code == 302
    written = entries_since(audit_app, since, kind="change")
    assert [(e.model, e.action, e.record_id) for e in written] == [("User", "update", str(user_id))]
    recorded = changes(written[0])
    assert recorded["roles"] == {"old": ["Pharmacist"], "new": ["Lab technician"]}
    assert recorded["branches"]["old"] == ["Downtown Clinic"]
    with audit_app.app_context():
        lakeside = db.session.get(Branch, branch_id(audit_app, "LS")).name
    assert set(recorded["branches"]["new"]) == {"Downtown Clinic", lakeside}


def test_a_link_made_from_the_other_side_is_recorded_once(audit_app):
    with audit_app.app_context(), acting_as("test:links"):
        since = last_entry_id(audit_app)
        labtech = audit_app.appbuilder.sm.find_user(username="labtech")
        labtech.branches  # both sides loaded: each shows the new link in its history
        lakeside = db.session.get(Branch, branch_id(audit_app, "LS"))
        lakeside.staff.append(labtech)
        db.session.commit()
        labtech_id = labtech.id
    written = entries_since(audit_app, since, kind="change")
    assert [(e.model, e.record_id) for e in written] == [("User", str(labtech_id))]
    assert changes(written[0])["branches"]["new"][-1].startswith("Lakeside")


def test_a_new_role_and_its_grants_are_recorded_on_the_role(audit_app):
    with audit_app.app_context():
        sm = audit_app.appbuilder.sm
        grant = sm.find_permission_view_menu(policy.READ, policy.STAFF)
        grant_id, grant_label = grant.id, str(grant)
    admin = signed_in(audit_app, "admin")
    since = last_entry_id(audit_app)
    response = post_form(admin, "/roles/add", {"name": "Auditor", "permissions": [str(grant_id)]})
    assert response.status_code == 302
    [entry] = entries_since(audit_app, since, kind="change")
    assert (entry.model, entry.action, entry.actor) == ("Role", "create", "admin")
    assert changes(entry) == {
        "name": {"old": None, "new": "Auditor"},
        "permissions": {"old": [], "new": [grant_label]},
    }


def test_sign_in_events_appear_in_the_audit_log(audit_app):
    with audit_app.app_context():
        doctor = audit_app.appbuilder.sm.find_user(username="doctor")
        entry = record_auth_event("login_failure", doctor,
                                  details={"reason": "bad password", "password": "guess-1"})
        db.session.commit()
        entry_id = entry.id
        assert json.loads(entry.details) == {"password": "[redacted]", "reason": "bad password"}
        assert entry.actor == "doctor" and entry.record_id == str(doctor.id)
        assert doctor is not None
    admin = signed_in(audit_app, "admin")
    body = admin.get("/audit/list/?_flt_3_action=login_failure").get_data(as_text=True)
    assert f"/audit/show/{entry_id}" in body
    assert "guess-1" not in admin.get(f"/audit/show/{entry_id}").get_data(as_text=True)


def test_bulk_statements_are_recorded_with_their_criteria(audit_app):
    with audit_app.app_context(), acting_as("test:bulk"):
        since = last_entry_id(audit_app)
        result = db.session.execute(
            sa.update(Branch).where(Branch.code == "DT").values(letterhead_text="Bulk letterhead")
        )
        assert result.rowcount == 1
        db.session.commit()
    [entry] = entries_since(audit_app, since)
    details = json.loads(entry.details)
    assert (entry.action, entry.model, entry.actor) == ("bulk_update", "Branch", "test:bulk")
    assert "WHERE branch.code = " in details["statement"]
    assert "DT" in details["params"].values() and details["rows"] == 1


def test_bulk_statements_on_patient_records_are_refused(audit_app):
    with audit_app.app_context(), pytest.raises(BulkWriteRefusedError):
        db.session.execute(sa.delete(PatientNote).where(PatientNote.patient_id == 7))
    with audit_app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(PatientNote)) >= 1


def test_an_entry_rolls_back_with_its_change(audit_app):
    since = last_entry_id(audit_app)
    with audit_app.app_context():
        db.session.get(Branch, branch_id(audit_app, "DT")).tax_id = "ROLLED-BACK"
        db.session.flush()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEntry)
                                 .where(AuditEntry.id > since)) == 1
        db.session.rollback()
    assert entries_since(audit_app, since) == []


def test_entries_cannot_be_changed_or_deleted_through_the_orm(audit_app):
    with audit_app.app_context():
        entry = db.session.scalar(sa.select(AuditEntry).order_by(AuditEntry.id).limit(1))
        entry.actor = "mallory"
        with pytest.raises(AuditEntryImmutableError):
            db.session.commit()
        db.session.rollback()
        db.session.delete(db.session.scalar(sa.select(AuditEntry).limit(1)))
        with pytest.raises(AuditEntryImmutableError):
            db.session.flush()
        db.session.rollback()
        for statement in (sa.update(AuditEntry).values(actor="mallory"), sa.delete(AuditEntry)):
            with pytest.raises(AuditEntryImmutableError):
                db.session.execute(statement)
            db.session.rollback()
        assert db.session.scalar(
            sa.select(sa.func.count()).select_from(AuditEntry).where(AuditEntry.actor == "mallory")
        ) == 0


def test_the_audit_screens_have_no_write_routes(audit_app):
    rules = {rule.rule for rule in audit_app.url_map.iter_rules()}
    for base in ("/audit", "/access-log"):
        assert f"{base}/list/" in rules and f"{base}/show/<pk>" in rules
        assert not [rule for rule in rules if rule.startswith(base + "/")
                    and not rule.startswith((f"{base}/list/", f"{base}/show/"))]
    admin = signed_in(audit_app, "admin")
    for path in ("/audit/edit/1", "/audit/delete/1", "/audit/add", "/access-log/delete/1"):
        assert admin.post(path).status_code in (404, 405)


def owner_changes_a_branch(app, code: str, **values) -> AuditEntry:
    """The owner edits a branch through the REST API; returns the entry it left."""
    since = last_entry_id(app)
    response = app.test_client().put(
        f"/api/v1/branches/{branch_id(app, code)}", json=values,
        headers=bearer_headers(app, "owner"),
    )
    assert response.status_code == 200, response.json
    [entry] = entries_since(app, since, model="Branch")
    return entry


def test_the_audit_list_filters_by_user_model_action_branch_and_date(audit_app):
    entry = owner_changes_a_branch(audit_app, "LS", tax_id="29FILTER0000X1Z1")
    lakeside = branch_id(audit_app, "LS")
    with audit_app.app_context():
        seeded = db.session.scalar(
            sa.select(AuditEntry.id).where(AuditEntry.actor == "cli:seed-demo",
                                           AuditEntry.model == "User", AuditEntry.action == "create")
            .limit(1)
        )
        seeded_at = db.session.get(AuditEntry, seeded).occurred_at
    admin = signed_in(audit_app, "admin")

    def shown(query: str) -> set[int]:
        body = admin.get(f"/audit/list/?{query}").get_data(as_text=True)
        return {int(found) for found in re.findall(r'href="/audit/show/(\d+)"', body)}

    by_owner_at_lakeside = shown(f"_flt_2_actor=owner&_flt_3_model=Branch&_flt_0_branch={lakeside}")
    assert entry.id in by_owner_at_lakeside
    assert entry.id not in shown(f"_flt_0_branch={branch_id(audit_app, 'DT')}")
    assert seeded not in by_owner_at_lakeside and seeded not in shown("_flt_2_actor=owner")
    assert seeded in shown("_flt_3_actor=cli:seed-demo&_flt_3_action=create&_flt_3_model=User")
    assert entry.id in shown("_flt_3_action=update&_flt_3_model=Branch")
    assert entry.id not in shown("_flt_3_action=create")
    assert entry.id in shown("_flt_1_occurred_at=2000-01-01 00:00:00")  # after 2000
    assert not shown("_flt_2_occurred_at=2000-01-01 00:00:00")  # before 2000: nothing
    just_before = seeded_at.strftime("%Y-%m-%d %H:%M:%S")
    assert entry.id not in shown(f"_flt_2_occurred_at={just_before}")


def test_an_entry_page_shows_the_full_diff(audit_app):
    entry = owner_changes_a_branch(audit_app, "DT", letterhead_text="Family medicine · X-ray")
    body = signed_in(audit_app, "admin").get(f"/audit/show/{entry.id}").get_data(as_text=True)
    assert "What changed" in body
    assert "letterhead_text" in body and "Family medicine · X-ray" in body


def test_an_entry_opens_on_its_own_log(audit_app):
    with audit_app.app_context():
        change = db.session.scalar(sa.select(sa.func.min(AuditEntry.id)).where(AuditEntry.kind == "change"))
    admin = signed_in(audit_app, "admin")
    response = admin.get(f"/access-log/show/{change}")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/audit/show/{change}")
    assert admin.get("/access-log/show/987654").status_code == 404


def test_reading_a_patients_values_in_an_entry_is_itself_logged(audit_app):
    with audit_app.app_context(), acting_as("test:setup"):
        note = PatientNote(patient_id=11, title="Allergic to penicillin",
                           branch_id=branch_id(audit_app, "DT"))
        db.session.add(note)
        db.session.commit()
        entry_id = db.session.scalar(
            sa.select(AuditEntry.id).where(AuditEntry.subject_id == 11, AuditEntry.kind == "change")
        )
    admin = signed_in(audit_app, "admin")
    since = last_entry_id(audit_app)
    assert admin.get(f"/audit/show/{entry_id}").status_code == 200
    [read] = entries_since(audit_app, since, kind="access")
    assert (read.actor, read.subject_type, read.subject_id) == ("admin", "patient", 11)
