"""The communication log: logging on a lead or a patient through the screen and the API, the
rules' messages, where the log shows (lead page, patient timeline), branches and roles."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models.audit import AuditEntry
from app.models.leads import Communication, Lead, LeadStageChange
from app.models.org import Branch
from app.models.patients import Patient
from app.services.audit import acting_as
from app.services.communications import (
    CommunicationError,
    log_communication,
    marketing_audience,
)
from app.services.leads import create_lead, set_consent
from app.services.patients import update_patient
from tests.conftest import bearer_headers, csrf_token_from, login_as

pytestmark = pytest.mark.sqlite_subset


def branch_id(code: str) -> int:
    return db.session.scalar(sa.select(Branch.id).where(Branch.code == code))


def new_lead(app, code: str = "DT", first_name: str = "Asha", **values) -> int:
    with app.app_context(), acting_as("test"):
        lead = create_lead(Lead(
            first_name=first_name, last_name="Rao", phone="080 4123 4567",
            branch_id=branch_id(code), **values,
        ))
        db.session.commit()
        return lead.id


def a_patient(app) -> tuple[int, str]:
    with app.app_context():
        patient = db.session.scalar(
            sa.select(Patient).where(Patient.merged_into_id.is_(None)).order_by(Patient.id)
        )
        return patient.id, patient.mrn


def post_form(client, url: str, data: dict):
    page = client.get(url)
    assert page.status_code == 200, page.status_code
    data = {"csrf_token": csrf_token_from(page.get_data(as_text=True)), **data}
    return client.post(url, data=data)


def comms_of(app, **where) -> list[Communication]:
    with app.app_context():
        query = sa.select(Communication).order_by(Communication.id)
        for name, value in where.items():
            query = query.where(getattr(Communication, name) == value)
        rows = list(db.session.scalars(query))
        for row in rows:
            db.session.expunge(row)
        return rows


def test_reception_logs_a_call_on_a_lead_which_becomes_contacted(app):
    lead_id = new_lead(app)
    client = login_as(app, "reception")
    response = post_form(client, f"/communications/add?lead={lead_id}", {
        "channel": "call", "direction": "out", "outcome": "reached",
        "summary": "Wants a cleaning next week",
    })
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/leads/show/{lead_id}")
    [comm] = comms_of(app, lead_id=lead_id)
    assert (comm.channel, comm.outcome) == ("call", "reached")
    assert comm.summary == "Wants a cleaning next week"
    with app.app_context():
        lead = db.session.get(Lead, lead_id)
        assert lead.stage == "contacted"
        assert comm.branch_id == lead.branch_id
        assert comm.staff_id == app.appbuilder.sm.find_user(username="reception").id
        moves = db.session.scalars(
            sa.select(LeadStageChange.to_stage).where(LeadStageChange.lead_id == lead_id)
        ).all()
        assert moves == ["new", "contacted"]
    page = client.get(f"/leads/show/{lead_id}").get_data(as_text=True)
    assert "Wants a cleaning next week" in page


def test_an_unanswered_call_leaves_a_new_lead_new(app):
    lead_id = new_lead(app)
    client = login_as(app, "reception")
    post_form(client, f"/communications/add?lead={lead_id}", {
        "channel": "call", "direction": "out", "outcome": "no_answer",
    })
    with app.app_context():
        assert db.session.get(Lead, lead_id).stage == "new"
    assert len(comms_of(app, lead_id=lead_id)) == 1


def test_reception_logs_a_message_with_a_patient_and_the_timeline_shows_it(app):
    patient_id, mrn = a_patient(app)
    client = login_as(app, "reception")
    response = post_form(client, f"/communications/add?patient={patient_id}", {
        "channel": "whatsapp", "direction": "in", "outcome": "replied",
        "summary": "Confirmed the x-ray appointment",
    })
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/patients/show/{patient_id}")
    [comm] = comms_of(app, patient_id=patient_id)
    with app.app_context():
        assert comm.branch_id == branch_id("DT")  # reception's own (only) branch
    page = client.get(f"/patients/show/{patient_id}").get_data(as_text=True)
    assert "Confirmed the x-ray appointment" in page
    assert "WhatsApp · Incoming · Replied" in page


@pytest.mark.parametrize("username", ["doctor", "labtech"])
def test_clinical_roles_do_not_see_communications_on_the_timeline(app, username):
    patient_id, _mrn = a_patient(app)
    with app.app_context(), acting_as("test"):
        log_communication(Communication(
            patient_id=patient_id, branch_id=branch_id("DT"), channel="call", direction="out",
            outcome="reached", summary="Timeline privacy check",
        ))
        db.session.commit()
    page = login_as(app, username).get(f"/patients/show/{patient_id}").get_data(as_text=True)
    assert "Timeline privacy check" not in page
    reception = login_as(app, "reception").get(f"/patients/show/{patient_id}")
    assert "Timeline privacy check" in reception.get_data(as_text=True)


def test_a_patient_found_by_mrn(app):
    patient_id, mrn = a_patient(app)
    client = login_as(app, "reception")
    response = post_form(client, "/communications/add", {
        "patient_mrn": mrn.lower(), "channel": "sms", "direction": "out", "outcome": "sent",
        "summary": "Found by MRN",
    })
    assert response.status_code == 302
    assert [c.summary for c in comms_of(app, patient_id=patient_id)][-1] == "Found by MRN"


@pytest.mark.parametrize("data, message", [
    ({"channel": "fax", "direction": "out", "outcome": "reached"}, "Choose how you were in touch"),
    ({"channel": "call", "direction": "up", "outcome": "reached"}, "incoming or outgoing"),
    ({"channel": "call", "direction": "out", "outcome": "great"}, "Choose the outcome"),
    ({"channel": "call", "direction": "out", "outcome": "reached",
      "occurred_at": "2099-01-01T10:00"}, "cannot be logged in the future"),
])
def test_refused_values_are_explained_and_the_form_keeps_them(app, data, message):
    lead_id = new_lead(app)
    client = login_as(app, "reception")
    response = post_form(client, f"/communications/add?lead={lead_id}",
                         {**data, "summary": "Typed text stays"})
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert message in body
    assert "Typed text stays" in body
    assert comms_of(app, lead_id=lead_id) == []


def test_no_one_to_log_for_asks_for_the_mrn(app):
    client = login_as(app, "reception")
    response = post_form(client, "/communications/add", {
        "channel": "call", "direction": "out", "outcome": "reached",
    })
    assert "Enter the patient&#39;s MRN." in response.get_data(as_text=True)
    response = post_form(client, "/communications/add", {
        "patient_mrn": "MRN-999999", "channel": "call", "direction": "out", "outcome": "reached",
    })
    assert "No patient has this MRN." in response.get_data(as_text=True)


def test_service_refuses_a_record_about_nobody(app):
    with app.app_context(), pytest.raises(CommunicationError):
        log_communication(Communication(channel="call", direction="out", outcome="reached",
                                        branch_id=branch_id("DT")))


def test_another_branchs_lead_is_out_of_reach(app):
    lakeside = new_lead(app, "LS", first_name="Lakeside")
    client = login_as(app, "reception")
    assert client.get(f"/communications/add?lead={lakeside}").status_code == 404
    with app.app_context(), acting_as("test"):
        comm = log_communication(Communication(
            lead_id=lakeside, channel="call", direction="out", outcome="busy",
            summary="Lakeside only",
        ))
        db.session.commit()
        comm_id = comm.id
    assert client.get(f"/communications/show/{comm_id}").status_code == 404
    assert "Lakeside only" not in client.get("/communications/list/").get_data(as_text=True)
    api = client.application.test_client()
    answer = api.get(f"/api/v1/communications/{comm_id}", headers=bearer_headers(app, "reception"))
    assert answer.status_code == 404
    assert "Lakeside only" in login_as(app, "reception2").get(
        "/communications/list/").get_data(as_text=True)
    # Through the API, a lead of another branch is refused too.
    answer = api.post("/api/v1/communications/", headers=bearer_headers(app, "reception"), json={
        "lead": lakeside, "channel": "call", "direction": "out", "outcome": "reached",
    })
    assert answer.status_code == 422


def test_list_filters_by_channel_and_outcome(app):
    lead_id = new_lead(app, first_name="Filter")
    with app.app_context(), acting_as("test"):
        for channel, outcome, summary in (("email", "sent", "Quote e-mailed"),
                                          ("call", "wrong_number", "Wrong number call")):
            log_communication(Communication(lead_id=lead_id, channel=channel, direction="out",
                                            outcome=outcome, summary=summary))
        db.session.commit()
    client = login_as(app, "reception")
    page = client.get("/communications/list/?channel=email").get_data(as_text=True)
    assert "Quote e-mailed" in page and "Wrong number call" not in page
    page = client.get("/communications/list/?outcome=wrong_number").get_data(as_text=True)
    assert "Wrong number call" in page and "Quote e-mailed" not in page


def test_api_logs_a_communication_with_the_same_rules(app):
    lead_id = new_lead(app, first_name="Api")
    client = app.test_client()
    headers = bearer_headers(app, "reception")
    answer = client.post("/api/v1/communications/", headers=headers, json={
        "lead": lead_id, "channel": "sms", "direction": "out", "outcome": "sent",
        "summary": "Sent the address",
    })
    assert answer.status_code == 201, answer.get_json()
    answer = client.post("/api/v1/communications/", headers=headers, json={
        "lead": lead_id, "channel": "pigeon", "direction": "out", "outcome": "sent",
    })
    assert answer.status_code == 422
    assert "Choose how you were in touch" in str(answer.get_json())


def test_reading_the_log_is_access_logged(app):
    lead_id = new_lead(app, first_name="Logged")
    with app.app_context(), acting_as("test"):
        comm = log_communication(Communication(lead_id=lead_id, channel="call", direction="out",
                                               outcome="reached"))
        patient_id, _mrn = a_patient(app)
        other = log_communication(Communication(patient_id=patient_id, branch_id=branch_id("DT"),
                                                channel="call", direction="in", outcome="reached"))
        db.session.commit()
        ids = comm.id, other.id
    client = login_as(app, "reception")
    assert client.get(f"/communications/show/{ids[0]}").status_code == 200
    assert client.get(f"/communications/show/{ids[1]}").status_code == 200
    with app.app_context():
        entries = db.session.scalars(
            sa.select(AuditEntry).where(AuditEntry.kind == "access",
                                        AuditEntry.model == "Communication")
        ).all()
        subjects = {(e.subject_type, e.subject_id) for e in entries}
    assert ("lead", lead_id) in subjects
    assert ("patient", patient_id) in subjects


def test_marketing_audience_leaves_out_withdrawn_consents(app):
    keep = new_lead(app, first_name="Keeps", consent_marketing=True)
    withdraws = new_lead(app, first_name="Withdraws", consent_marketing=True)
    never = new_lead(app, first_name="Never")
    with app.app_context(), acting_as("test"):
        set_consent(db.session.get(Lead, withdraws), "marketing", False, obtained="phone")
        patient = db.session.scalar(
            sa.select(Patient).where(Patient.merged_into_id.is_(None),
                                     Patient.registered_branch_id == branch_id("DT"))
            .order_by(Patient.id.desc())
        )
        patient.consent_marketing = True
        update_patient(patient, "in_person")
        db.session.commit()
        leads, patients = marketing_audience([branch_id("DT")])
        assert keep in [lead.id for lead in leads]
        assert withdraws not in [lead.id for lead in leads]
        assert never not in [lead.id for lead in leads]
        assert patient.id in [p.id for p in patients]
        patient.consent_marketing = False
        update_patient(patient, "phone")
        db.session.commit()
        _leads, patients = marketing_audience([branch_id("DT")])
        assert patient.id not in [p.id for p in patients]
        # The withdrawal is on record, with its time and how it was given.
        from app.models.patients import ConsentChange

        last = db.session.scalars(
            sa.select(ConsentChange).where(ConsentChange.patient_id == patient.id,
                                           ConsentChange.kind == "marketing")
            .order_by(ConsentChange.id.desc())
        ).first()
        assert (last.granted, last.obtained) == (False, "phone") and last.changed_at
        # A flag set back without a recorded consent does not bring the lead back.
        lead = db.session.get(Lead, withdraws)
        lead.consent_marketing = True
        db.session.commit()
        leads, _patients = marketing_audience([branch_id("DT")])
        assert lead.id not in [item.id for item in leads]


@pytest.mark.parametrize("username", ["doctor", "labtech", "pharmacist", "accountant"])
def test_roles_without_the_log_are_refused(app, username):
    client = login_as(app, username)
    assert client.get("/communications/list/").status_code == 403
    assert client.get("/communications/add").status_code == 403
    answer = app.test_client().get("/api/v1/communications/",
                                   headers=bearer_headers(app, username))
    assert answer.status_code in (401, 403)


def test_owner_reads_but_does_not_log(app):
    client = login_as(app, "owner")
    assert client.get("/communications/list/").status_code == 200
    assert client.get("/communications/add").status_code == 403


def test_reception_corrects_a_logged_communication(app):
    lead_id = new_lead(app, first_name="Edited")
    with app.app_context(), acting_as("test"):
        comm = log_communication(Communication(lead_id=lead_id, channel="call", direction="out",
                                               outcome="no_answer", summary="Typo hre"))
        db.session.commit()
        comm_id = comm.id
    client = login_as(app, "reception")
    page = client.get(f"/communications/edit/{comm_id}").get_data(as_text=True)
    assert "Typo hre" in page
    response = client.post(f"/communications/edit/{comm_id}", data={
        "csrf_token": csrf_token_from(page), "channel": "call", "direction": "out",
        "outcome": "busy", "summary": "Typo here", "occurred_at": "",
    })
    assert response.status_code == 302
    [comm] = comms_of(app, id=comm_id)
    assert (comm.outcome, comm.summary) == ("busy", "Typo here")
    assert login_as(app, "owner").get(f"/communications/edit/{comm_id}").status_code == 403


def test_api_reads_of_a_patients_log_are_access_logged_as_patient_reads(app):
    """Security review: the API logged only lead reads; a patient-only record read through
    /api/v1/communications/ (or /follow-ups/) must show in the patient's access log too."""
    patient_id, _mrn = a_patient(app)
    with app.app_context(), acting_as("test"):
        comm = log_communication(Communication(patient_id=patient_id, branch_id=branch_id("DT"),
                                               channel="sms", direction="in", outcome="reached"))
        db.session.commit()
        comm_id = comm.id
    api = app.test_client()
    headers = bearer_headers(app, "reception")

    def patient_reads() -> int:
        with app.app_context():
            return len(db.session.scalars(
                sa.select(AuditEntry).where(
                    AuditEntry.kind == "access", AuditEntry.model == "Communication",
                    AuditEntry.subject_type == "patient", AuditEntry.action == "api_read",
                )
            ).all())

    before = patient_reads()
    assert api.get(f"/api/v1/communications/{comm_id}", headers=headers).status_code == 200
    assert patient_reads() == before + 1
    assert api.get("/api/v1/communications/", headers=headers).status_code == 200
    assert patient_reads() == before + 2
