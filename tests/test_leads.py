"""Leads: normalisation, matching, stages, consents, conversion, screens, API, branches, roles."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from flask_appbuilder.security.sqla.models import User

from app.extensions import db
from app.models.leads import Lead, LeadConsentChange, LeadStageChange
from app.models.org import Branch
from app.models.patients import ConsentChange, Patient
from app.models.scheduling import Appointment, Service, WorkingHours
from app.services.appointments import SlotUnavailableError, book_appointment
from app.services.audit import acting_as
from app.services.leads import (
    LeadStageError,
    convert_lead,
    create_lead,
    find_matches,
    link_patient,
    may_contact_for_marketing,
    may_follow_up,
    move_stage,
    set_consent,
)
from app.services.patients import register_patient
from tests.conftest import bearer_headers, csrf_token_from, login_as
from tests.scheduling_support import Team, make_team

pytestmark = pytest.mark.sqlite_subset

ZONE = ZoneInfo("Asia/Kolkata")
BASE = datetime.now(ZONE).date() + timedelta(days=12)


def day(offset: int) -> date:
    return BASE + timedelta(days=offset)


def at(on: date, hhmm: str) -> datetime:
    hour, minute = map(int, hhmm.split(":"))
    return datetime.combine(on, time(hour, minute), tzinfo=ZONE)


def branch_id(code: str) -> int:
    return db.session.scalar(sa.select(Branch.id).where(Branch.code == code))


@pytest.fixture(scope="module")
def team(app) -> Team:
    team = make_team(app)
    with app.app_context(), acting_as("test:setup"):
        for weekday in range(7):
            db.session.add(WorkingHours(doctor_id=team.doc_a, branch_id=team.alder,
                                        weekday=weekday, start_time=time(9),
                                        end_time=time(17)))
        db.session.add(Service(name="Lead test service", default_duration_min=30))
        db.session.commit()
    return team


def new_lead(branch: int, first="Meera", last="Lead", phone="098450 11001", email=None,
             **values) -> Lead:
    obtained = values.pop("obtained", "phone")
    lead = Lead(first_name=first, last_name=last, phone=phone, email=email, branch_id=branch,
                source=values.pop("source", "phone"), **values)
    return create_lead(lead, obtained=obtained)


def test_create_normalises_and_records_the_start(app, team):
    with app.app_context(), acting_as("test"):
        lead = new_lead(team.alder, first="  Ánanya ", last=" Rao ", phone="098450 22002",
                        email=" Ananya.Rao@Example.ORG ", consent_contact=True,
                        consent_marketing=True, stage="converted", lost_reason="price")
        db.session.commit()
        assert lead.stage == "new" and lead.lost_reason is None
        assert lead.phone == "+919845022002" and lead.phone_digits == "919845022002"
        assert lead.email_search == "ananya.rao@example.org"
        assert lead.name_search == "ananya rao"
        assert [(c.from_stage, c.to_stage) for c in lead.stage_changes] == [(None, "new")]
        consents = db.session.scalars(sa.select(LeadConsentChange).where(
            LeadConsentChange.lead_id == lead.id)).all()
        assert sorted((c.kind, c.granted, c.obtained) for c in consents) == [
            ("contact", True, "phone"), ("marketing", True, "phone")]


def test_matching_by_phone_email_and_folded_name(app, team):
    with app.app_context(), acting_as("test"):
        patient = Patient(first_name="Kavya", last_name="Ñunez", sex="female",
                          phone="098450 33003", email="Kavya@Example.org",
                          registered_branch_id=team.alder)
        register_patient(patient)
        open_lead = new_lead(team.alder, first="Kavya", last="Nunez", phone="098450 33999")
        lost = new_lead(team.alder, first="Kavya", last="Nunez", phone="098450 33998")
        move_stage(lost, "lost", lost_reason="price")
        db.session.commit()

        by_phone = Lead(first_name="X", last_name="Y", phone="+91 98450-33003",
                        branch_id=team.alder)
        patients, leads = find_matches(by_phone)
        assert [p.id for p in patients] == [patient.id] and leads == []

        by_email = Lead(first_name="Z", email="KAVYA@example.ORG", branch_id=team.alder)
        assert [p.id for p in find_matches(by_email)[0]] == [patient.id]

        by_name = Lead(first_name="kavya", last_name="NUÑEZ", branch_id=team.alder)
        patients, leads = find_matches(by_name)
        assert [p.id for p in patients] == [patient.id]
        assert [lead.id for lead in leads] == [open_lead.id]  # the lost one is closed
        # A lead never matches itself.
        assert open_lead.id not in [lead.id for lead in find_matches(open_lead)[1]]


def test_stage_moves_lost_needs_a_reason_and_converted_is_final(app, team):
    with app.app_context(), acting_as("test"):
        lead = new_lead(team.alder, first="Stage", phone="098450 44004")
        move_stage(lead, "contacted")
        move_stage(lead, "qualified", note="wants a cleaning")
        with pytest.raises(LeadStageError):
            move_stage(lead, "lost")
        with pytest.raises(LeadStageError):
            move_stage(lead, "lost", lost_reason="bogus")
        with pytest.raises(LeadStageError):
            move_stage(lead, "converted")
        move_stage(lead, "lost", lost_reason="timing")
        with pytest.raises(LeadStageError):
            move_stage(lead, "booked")
        move_stage(lead, "contacted")
        assert lead.lost_reason is None
        db.session.commit()
        moves = [(c.from_stage, c.to_stage) for c in db.session.scalars(
            sa.select(LeadStageChange).where(LeadStageChange.lead_id == lead.id)
            .order_by(LeadStageChange.id))]
        assert moves == [(None, "new"), ("new", "contacted"), ("contacted", "qualified"),
                         ("qualified", "lost"), ("lost", "contacted")]


def test_consents_history_and_enforcement(app, team):
    with app.app_context(), acting_as("test"):
        lead = new_lead(team.alder, first="Consent", phone="098450 55005",
                        consent_contact=True, consent_marketing=True, obtained="web_form")
        assert may_contact_for_marketing(lead) and may_follow_up(lead)
        assert set_consent(lead, "marketing", False, obtained="phone") is True
        assert set_consent(lead, "marketing", False, obtained="phone") is False
        assert not may_contact_for_marketing(lead)
        move_stage(lead, "lost", lost_reason="not_interested")
        assert not may_follow_up(lead)
        db.session.commit()
        rows = [(c.kind, c.granted, c.obtained) for c in db.session.scalars(
            sa.select(LeadConsentChange).where(LeadConsentChange.lead_id == lead.id)
            .order_by(LeadConsentChange.id))]
        assert rows == [("contact", True, "web_form"), ("marketing", True, "web_form"),
                        ("marketing", False, "phone")]


def test_conversion_registers_books_and_keeps_the_history(app, team):
    with app.app_context(), acting_as("test"):
        lead = new_lead(team.alder, first="Convert", last="Newperson", phone="098450 66006",
                        source="web_form", consent_contact=True, consent_reminders=True,
                        consent_marketing=True, obtained="web_form", reason="Tooth ache")
        move_stage(lead, "contacted")
        patient, appointment = convert_lead(
            lead, doctor=db.session.get(User, team.doc_a),
            branch=db.session.get(Branch, team.alder), starts_at=at(day(0), "10:00"),
        )
        db.session.commit()
        assert patient.mrn and patient.phone == "+919845066006"
        assert patient.consent_sms and patient.consent_marketing
        assert {c.obtained for c in db.session.scalars(sa.select(ConsentChange).where(
            ConsentChange.patient_id == patient.id))} == {"web_form"}
        assert appointment.patient_id == patient.id and appointment.reason == "Tooth ache"
        assert lead.stage == "converted" and lead.source == "web_form"
        assert lead.patient_id == patient.id and lead.appointment_id == appointment.id
        assert lead.converted_at and lead.booked_at
        assert [c.to_stage for c in lead.stage_changes] == [
            "new", "contacted", "booked", "converted"]
        with pytest.raises(LeadStageError):
            move_stage(lead, "new")
        db.session.rollback()


def test_conversion_with_an_existing_patient_links_it(app, team):
    with app.app_context(), acting_as("test"):
        existing = db.session.get(Patient, team.patients[0])
        lead = new_lead(team.alder, first="Asha", last="Qwertyson", phone="098450 77007")
        assert existing.id in [p.id for p in find_matches(lead)[0]]
        link_patient(lead, existing)
        count = db.session.scalar(sa.select(sa.func.count()).select_from(Patient))
        patient, appointment = convert_lead(
            lead, doctor=db.session.get(User, team.doc_a),
            branch=db.session.get(Branch, team.alder), starts_at=at(day(0), "11:00"),
        )
        db.session.commit()
        assert patient.id == existing.id and appointment.patient_id == existing.id
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Patient)) == count


def test_conversion_refused_when_the_slot_is_taken_saves_nothing(app, team):
    with app.app_context(), acting_as("test"):
        doctor = db.session.get(User, team.doc_a)
        alder = db.session.get(Branch, team.alder)
        book_appointment(patient=db.session.get(Patient, team.patients[1]), doctor=doctor,
                         branch=alder, starts_at=at(day(1), "10:00"), duration_min=30)
        lead = new_lead(team.alder, first="Slot", last="Taken", phone="098450 88008")
        move_stage(lead, "qualified")
        db.session.commit()
        lead_id = lead.id
        patients = db.session.scalar(sa.select(sa.func.count()).select_from(Patient))
        appointments = db.session.scalar(sa.select(sa.func.count()).select_from(Appointment))
        with pytest.raises(SlotUnavailableError) as caught:
            convert_lead(lead, doctor=doctor, branch=alder, starts_at=at(day(1), "10:15"))
        assert str(caught.value)
        db.session.rollback()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Patient)) == patients
        assert db.session.scalar(
            sa.select(sa.func.count()).select_from(Appointment)) == appointments
        lead = db.session.get(Lead, lead_id)
        assert lead.stage == "qualified" and lead.patient_id is None


def post_form(client, path: str, data: dict, page_path: str | None = None):
    page = client.get(page_path or path).get_data(as_text=True)
    return client.post(path, data={**data, "csrf_token": csrf_token_from(page)})


def lead_form(branch: int, **overrides) -> dict:
    return {
        "first_name": "Farah", "last_name": "Webform", "phone": "098450 91001", "email": "",
        "branch": str(branch), "source": "phone", "heard_about": "", "requested_service": "",
        "preferred_times": "mornings", "reason": "Check-up", "owner": "",
        "next_follow_up_at": "", "consent_contact": "y", "consent_obtained": "phone",
        "notes": "call after 5", **overrides,
    }


def test_the_screens_add_show_move_and_convert(app, team):
    client = login_as(app, "desk_a")
    response = post_form(client, "/leads/add", lead_form(team.alder, confirm_new="y"))
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    with app.app_context():
        lead = db.session.scalars(sa.select(Lead).where(Lead.last_name == "Webform")).one()
        lead_id = lead.id
        assert lead.stage == "new" and lead.notes == "call after 5"
    # A second one with the same phone: the matches are shown, nothing saved yet.
    response = post_form(client, "/leads/add", lead_form(team.alder, first_name="Other"))
    assert response.status_code == 200
    assert "may already be known" in response.get_data(as_text=True)
    # Editing keeps the stage and records a consent change.
    response = post_form(client, f"/leads/edit/{lead_id}",
                         lead_form(team.alder, consent_marketing="y", consent_obtained="written",
                                   next_follow_up_at=f"{day(3).isoformat()}T09:30"))
    assert response.status_code == 302
    with app.app_context():
        lead = db.session.get(Lead, lead_id)
        assert lead.consent_marketing and lead.stage == "new"
        assert lead.next_follow_up_at.replace(tzinfo=None) == datetime.combine(
            day(3), time(4, 0))  # 09:30 in Kolkata is 04:00 UTC
        assert [(c.kind, c.obtained) for c in db.session.scalars(
            sa.select(LeadConsentChange).where(LeadConsentChange.lead_id == lead_id)
            .order_by(LeadConsentChange.id))] == [("contact", "phone"), ("marketing", "written")]
    assert f'value="{day(3).isoformat()}T09:30"' in client.get(
        f"/leads/edit/{lead_id}").get_data(as_text=True)
    page = client.get(f"/leads/show/{lead_id}")
    assert page.status_code == 200 and "Farah" in page.get_data(as_text=True)
    assert client.get("/leads/list/?stage=new").status_code == 200
    # Lost without a reason is refused; "next" must be local.
    token = csrf_token_from(page.get_data(as_text=True))
    response = client.post(f"/leads/{lead_id}/stage",
                           data={"stage": "lost", "csrf_token": token,
                                 "next": "https://evil.example/"})
    assert response.headers["Location"].endswith(f"/leads/show/{lead_id}")
    with app.app_context():
        assert db.session.get(Lead, lead_id).stage == "new"
    response = client.post(f"/leads/{lead_id}/stage",
                           data={"stage": "contacted", "csrf_token": token,
                                 "next": "/leads/list/"})
    assert response.headers["Location"].endswith("/leads/list/")
    # Conversion through the screen: a refused slot keeps the input.
    convert = f"/leads/{lead_id}/convert"
    form = {"patient": "new", "doctor": str(team.doc_a), "branch": str(team.alder),
            "starts_at": f"{day(2).isoformat()}T06:00", "service": "", "duration_min": ""}
    response = post_form(client, convert, form)
    assert response.status_code == 200
    assert f"{day(2).isoformat()}T06:00" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Lead, lead_id).stage == "contacted"
    form["starts_at"] = f"{day(2).isoformat()}T10:00"
    response = post_form(client, convert, form)
    assert response.status_code == 302 and "/appointments/show/" in response.headers["Location"]
    with app.app_context():
        lead = db.session.get(Lead, lead_id)
        assert lead.stage == "converted" and lead.patient_id
        patient_id = lead.patient_id
    # The patient's page shows where the patient came from.
    page = client.get(f"/patients/show/{patient_id}").get_data(as_text=True)
    assert f"/leads/show/{lead_id}" in page


def test_the_api_goes_through_the_service_and_ignores_pipeline_fields(app, team):
    headers = bearer_headers(app, "desk_a")
    client = app.test_client()
    body = {"first_name": "Api", "last_name": "Person", "phone": "098450 92002",
            "source": "referral", "branch": team.alder, "consent_marketing": True}
    response = client.post("/api/v1/leads/", json={**body, "stage": "converted"},
                           headers=headers)
    assert response.status_code in (400, 422)
    with app.app_context():
        assert db.session.scalar(sa.select(Lead).where(Lead.last_name == "Person")) is None
    response = client.post("/api/v1/leads/", json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    lead_id = response.get_json()["id"]
    shown = client.get(f"/api/v1/leads/{lead_id}", headers=headers).get_json()["result"]
    assert shown["stage"] == "new" and shown["phone"] == "+919845092002"
    response = client.post("/api/v1/leads/", json={**body, "phone": None, "email": None},
                           headers=headers)
    assert response.status_code == 422
    response = client.put(f"/api/v1/leads/{lead_id}", json={"stage": "lost"}, headers=headers)
    assert response.status_code in (400, 422)
    # Another branch's receptionist sees nothing of it.
    other = bearer_headers(app, "desk_b")
    assert client.get(f"/api/v1/leads/{lead_id}", headers=other).status_code == 404
    assert client.put(f"/api/v1/leads/{lead_id}", json={"notes": "x"},
                      headers=other).status_code == 404
    ids = [row["id"] for row in client.get("/api/v1/leads/", headers=other).get_json()["result"]]
    assert lead_id not in ids
    # A lead may not be placed in a branch the user does not work at.
    response = client.post("/api/v1/leads/", json={**body, "branch": team.birch,
                                                   "phone": "098450 92003"}, headers=headers)
    assert response.status_code in (403, 422)


@pytest.fixture(scope="module")
def downtown_lead(app) -> int:
    with app.app_context(), acting_as("test:setup"):
        lead = new_lead(branch_id("DT"), first="Downtown", last="Only", phone="098450 93003")
        db.session.commit()
        return lead.id


def test_another_branchs_leads_stay_out_of_reach(app, downtown_lead):
    client = login_as(app, "reception2")
    assert client.get(f"/leads/show/{downtown_lead}").status_code == 404
    assert client.get(f"/leads/edit/{downtown_lead}").status_code == 404
    assert client.get(f"/leads/{downtown_lead}/convert").status_code == 404
    assert "Downtown" not in client.get("/leads/list/").get_data(as_text=True)
    headers = bearer_headers(app, "reception2")
    assert app.test_client().get(f"/api/v1/leads/{downtown_lead}",
                                 headers=headers).status_code == 404
    own = login_as(app, "reception")
    assert own.get(f"/leads/show/{downtown_lead}").status_code == 200
    assert "Downtown" in own.get("/leads/list/").get_data(as_text=True)


def test_the_owner_reads_but_does_not_change(app, downtown_lead):
    client = login_as(app, "owner")
    assert client.get(f"/leads/show/{downtown_lead}").status_code == 200
    assert client.get("/leads/add").status_code in (302, 403)
    assert client.get(f"/leads/{downtown_lead}/convert").status_code in (302, 403)


@pytest.mark.parametrize("username", ["doctor", "labtech", "pharmacist", "accountant"])
def test_roles_without_leads_are_refused(app, downtown_lead, username):
    client = login_as(app, username)
    for path in ("/leads/list/", f"/leads/show/{downtown_lead}", "/leads/add",
                 f"/leads/{downtown_lead}/convert"):
        assert client.get(path).status_code in (302, 403), (username, path)
    headers = bearer_headers(app, username)
    assert app.test_client().get("/api/v1/leads/", headers=headers).status_code == 403
