"""Follow-ups: adding them from a lead or a patient, done and undone in one click, "my
follow-ups" on the home screen, and the automatic follow-ups job with its consent rules."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from rq.job import Job

from app.extensions import db, get_queue, get_redis
from app.jobs import enqueue
from app.jobs.follow_ups import create_automatic_follow_ups
from app.jobs.schedule import PERIODIC_JOBS
from app.jobs.worker import make_worker
from app.models.base import utcnow
from app.models.leads import Communication, FollowUp, Lead
from app.models.org import Branch
from app.models.patients import Patient
from app.services.audit import acting_as
from app.services.communications import (
    FollowUpError,
    add_follow_up,
    log_communication,
    my_follow_ups,
)
from app.services.leads import create_lead, move_stage, set_consent
from tests.conftest import bearer_headers, csrf_token_from, login_as

pytestmark = pytest.mark.sqlite_subset


def branch_id(code: str) -> int:
    return db.session.scalar(sa.select(Branch.id).where(Branch.code == code))


def user_id(app, username: str) -> int:
    with app.app_context():
        return app.appbuilder.sm.find_user(username=username).id


def new_lead(app, code: str = "DT", first_name: str = "Ravi", **values) -> int:
    with app.app_context(), acting_as("test"):
        lead = create_lead(Lead(first_name=first_name, last_name="Kumar", phone="080 4123 4567",
                                branch_id=branch_id(code), **values))
        db.session.commit()
        return lead.id


def follow_up_for(app, username: str, due_in: timedelta, note: str, lead_id: int | None = None,
                  code: str = "DT") -> int:
    with app.app_context(), acting_as("test"):
        lead_id = lead_id or new_lead(app, code, first_name=note.split()[0])
        follow_up = add_follow_up(FollowUp(
            lead_id=lead_id, due_at=utcnow() + due_in, note=note,
            assignee_id=user_id(app, username),
        ))
        db.session.commit()
        return follow_up.id


def close_every_open_follow_up(app) -> None:
    """Earlier tests' and the demo's follow-ups are not this test's business."""
    with app.app_context(), acting_as("test"):
        for follow_up in db.session.scalars(sa.select(FollowUp).where(FollowUp.done_at.is_(None))):
            follow_up.done_at = utcnow()
        db.session.commit()


def open_follow_ups(app, lead_id: int) -> list[FollowUp]:
    with app.app_context():
        return list(db.session.scalars(
            sa.select(FollowUp).where(FollowUp.lead_id == lead_id, FollowUp.done_at.is_(None))
        ))


def test_reception_adds_a_follow_up_to_a_lead(app):
    lead_id = new_lead(app)
    client = login_as(app, "reception")
    page = client.get(f"/follow-ups/add?lead={lead_id}")
    assert page.status_code == 200
    response = client.post(f"/follow-ups/add?lead={lead_id}", data={
        "csrf_token": csrf_token_from(page.get_data(as_text=True)),
        "due_at": "2030-05-04T10:30", "assignee": str(user_id(app, "reception")),
        "note": "Send the price list",
    })
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/leads/show/{lead_id}")
    [follow_up] = open_follow_ups(app, lead_id)
    assert follow_up.note == "Send the price list" and not follow_up.is_automatic
    with app.app_context():
        lead = db.session.get(Lead, lead_id)
        # 10:30 on the branch's clock, stored in UTC; the lead's next follow-up follows it.
        assert lead.next_follow_up_at is not None
        assert follow_up.due_at.replace(tzinfo=None) == lead.next_follow_up_at.replace(tzinfo=None)
    page = client.get(f"/leads/show/{lead_id}").get_data(as_text=True)
    assert "Send the price list" in page


def test_a_follow_up_needs_a_due_time_and_an_assignee_of_the_branch(app):
    lead_id = new_lead(app)
    client = login_as(app, "reception")
    page = client.get(f"/follow-ups/add?lead={lead_id}").get_data(as_text=True)
    response = client.post(f"/follow-ups/add?lead={lead_id}", data={
        "csrf_token": csrf_token_from(page), "due_at": "", "note": "No time given",
    })
    body = response.get_data(as_text=True)
    assert "Enter the date and time." in body and "No time given" in body
    with app.app_context(), pytest.raises(FollowUpError, match="works at its branch"):
        add_follow_up(FollowUp(lead_id=lead_id, due_at=utcnow(),
                               assignee_id=user_id(app, "reception2")))
    with app.app_context(), acting_as("test"):
        lost = db.session.get(Lead, lead_id)
        move_stage(lost, "lost", lost_reason="price")
        with pytest.raises(FollowUpError, match="closed"):
            add_follow_up(FollowUp(lead=lost, due_at=utcnow()))
        db.session.rollback()


def test_a_follow_up_for_a_patient(app):
    with app.app_context():
        patient = db.session.scalar(sa.select(Patient).where(Patient.merged_into_id.is_(None)))
        patient_id = patient.id
    client = login_as(app, "reception")
    page = client.get(f"/follow-ups/add?patient={patient_id}").get_data(as_text=True)
    response = client.post(f"/follow-ups/add?patient={patient_id}", data={
        "csrf_token": csrf_token_from(page), "due_at": "2030-01-02T09:00", "assignee": "0",
        "note": "Check the lab results arrived",
    })
    assert response.headers["Location"].endswith(f"/patients/show/{patient_id}")
    with app.app_context():
        follow_up = db.session.scalar(sa.select(FollowUp).where(FollowUp.patient_id == patient_id))
        assert follow_up.assignee_id is None and follow_up.branch_id == branch_id("DT")


def test_done_and_undone_in_one_click_back_to_a_local_page(app):
    follow_up_id = follow_up_for(app, "reception", timedelta(hours=-2), "Clicky call back")
    client = login_as(app, "reception")
    page = client.get("/follow-ups/list/").get_data(as_text=True)
    assert "Clicky call back" in page and "Overdue" in page
    token = csrf_token_from(page)
    response = client.post(f"/follow-ups/{follow_up_id}/done",
                           data={"csrf_token": token, "done": "1", "next": "/"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/")
    with app.app_context():
        follow_up = db.session.get(FollowUp, follow_up_id)
        assert follow_up.done_at is not None
        assert follow_up.done_by_id == user_id(app, "reception")
        assert follow_up.lead.next_follow_up_at is None
    response = client.post(f"/follow-ups/{follow_up_id}/done",
                           data={"csrf_token": token, "next": "https://evil.example/"})
    assert response.headers["Location"].endswith("/follow-ups/list/")  # never another site
    with app.app_context():
        assert db.session.get(FollowUp, follow_up_id).done_at is None  # toggled back open
    # Without the CSRF token nothing changes.
    assert client.post(f"/follow-ups/{follow_up_id}/done", data={"done": "1"}).status_code == 400


def test_my_follow_ups_on_the_home_screen(app):
    close_every_open_follow_up(app)
    overdue = follow_up_for(app, "reception", timedelta(hours=-3), "Overdue Olga")
    today = follow_up_for(app, "reception", timedelta(minutes=1), "Today Tara")
    follow_up_for(app, "reception", timedelta(days=3), "Later Lena")
    follow_up_for(app, "doctor", timedelta(hours=-3), "Doctors Dan")
    with app.app_context():
        user = app.appbuilder.sm.find_user(username="reception")
        late, due = my_follow_ups(user, utcnow())
        assert overdue in [f.id for f in late]
        # (due later today unless the branch's day ends within a minute)
        assert today in [f.id for f in late + due]
    client = login_as(app, "reception")
    page = client.get("/").get_data(as_text=True)
    assert "My follow-ups" in page
    assert "Overdue Olga" in page and "Overdue" in page
    assert "1 overdue, " in page
    assert "Later Lena" not in page and "Doctors Dan" not in page
    assert f"/follow-ups/{overdue}/done" in page  # the one-click Done button
    # Done from the home screen: gone from the card.
    client.post(f"/follow-ups/{overdue}/done",
                data={"csrf_token": csrf_token_from(page), "done": "1", "next": "/"})
    assert "Overdue Olga" not in client.get("/").get_data(as_text=True)


@pytest.mark.parametrize("username", ["doctor", "labtech", "pharmacist", "accountant"])
def test_roles_without_follow_ups(app, username):
    client = login_as(app, username)
    assert "My follow-ups" not in client.get("/").get_data(as_text=True)
    assert client.get("/follow-ups/list/").status_code == 403
    assert client.get("/follow-ups/add").status_code == 403
    answer = app.test_client().get("/api/v1/follow-ups/", headers=bearer_headers(app, username))
    assert answer.status_code in (401, 403)


def test_list_is_mine_by_default_and_the_branch_on_request(app):
    follow_up_for(app, "reception", timedelta(hours=1), "Mine Maya")
    with app.app_context(), acting_as("test"):
        lead_id = new_lead(app, first_name="Nobodys")
        add_follow_up(FollowUp(lead_id=lead_id, due_at=utcnow(), note="Unassigned Uma"))
        db.session.commit()
    follow_up_for(app, "reception2", timedelta(hours=1), "Lakeside Lila", code="LS")
    client = login_as(app, "reception")
    mine = client.get("/follow-ups/list/").get_data(as_text=True)
    assert "Mine Maya" in mine and "Unassigned Uma" not in mine
    branch = client.get("/follow-ups/list/?scope=branch").get_data(as_text=True)
    assert "Mine Maya" in branch and "Unassigned Uma" in branch
    assert "Lakeside Lila" not in branch  # another branch's


def test_a_page_number_past_the_end_shows_the_last_page_not_an_error(app):
    """Security review: ?page=<huge> overflowed the database's OFFSET (a 500)."""
    follow_up_for(app, "reception", timedelta(hours=1), "Paged Priya")
    client = login_as(app, "reception")
    for page in ("99999999999999999999", "9999999"):
        answer = client.get(f"/follow-ups/list/?scope=mine&page={page}")
        assert answer.status_code == 200
        assert "Paged Priya" in answer.get_data(as_text=True)


def test_another_branchs_follow_up_is_404(app):
    lakeside = follow_up_for(app, "reception2", timedelta(hours=1), "Far Fiona", code="LS")
    client = login_as(app, "reception")
    page = client.get("/follow-ups/list/").get_data(as_text=True)
    assert client.get(f"/follow-ups/show/{lakeside}").status_code == 404
    assert client.get(f"/follow-ups/edit/{lakeside}").status_code == 404
    response = client.post(f"/follow-ups/{lakeside}/done",
                           data={"csrf_token": csrf_token_from(page), "done": "1"})
    assert response.status_code == 404
    with app.app_context():
        assert db.session.get(FollowUp, lakeside).done_at is None


# -- the automatic follow-ups job ------------------------------------------------------------------

def test_automatic_follow_ups_respect_consent_stage_and_recent_contact(app):
    close_every_open_follow_up(app)
    owner_id = user_id(app, "reception")
    quiet = new_lead(app, first_name="Quiet", consent_contact=True, owner_id=owner_id)
    no_consent = new_lead(app, first_name="Private")
    withdrawn = new_lead(app, first_name="Withdrawn", consent_contact=True)
    lost = new_lead(app, first_name="Lost", consent_contact=True)
    talked = new_lead(app, first_name="Talked", consent_contact=True)
    with app.app_context(), acting_as("test"):
        set_consent(db.session.get(Lead, withdrawn), "contact", False, obtained="phone")
        move_stage(db.session.get(Lead, lost), "lost", lost_reason="not_interested")
        log_communication(Communication(lead_id=talked, channel="call", direction="in",
                                        outcome="reached"))
        db.session.commit()
        first = create_automatic_follow_ups()
        second = create_automatic_follow_ups()
    assert quiet in first["lead_ids"]
    for lead_id in (no_consent, withdrawn, lost, talked):
        assert lead_id not in first["lead_ids"]
    assert second["created"] == 0  # a lead with an open follow-up gets no second one
    [automatic] = open_follow_ups(app, quiet)
    assert automatic.is_automatic and automatic.assignee_id == owner_id
    assert open_follow_ups(app, no_consent) == []


def test_the_job_runs_through_the_worker_and_is_scheduled(app):
    assert any(func is create_automatic_follow_ups for func, *_rest in PERIODIC_JOBS)
    lead_id = new_lead(app, first_name="Worker", consent_contact=True)
    with app.app_context():
        get_queue("default").empty()
        job = enqueue(create_automatic_follow_ups, queue="default")
    make_worker(app, ["default"]).work(burst=True)
    with app.app_context():
        job = Job.fetch(job.id, connection=get_redis())
        assert job.get_status() == "finished", job.latest_result().exc_string
        assert lead_id in job.return_value()["lead_ids"]
    [follow_up] = open_follow_ups(app, lead_id)
    assert follow_up.is_automatic and follow_up.assignee_id is None


def test_api_adds_a_follow_up_with_the_same_rules(app):
    lead_id = new_lead(app, first_name="Apiary")
    client = app.test_client()
    headers = bearer_headers(app, "reception")
    answer = client.post("/api/v1/follow-ups/", headers=headers, json={
        "lead": lead_id, "due_at": "2030-03-01T09:00:00+00:00", "note": "From the API",
    })
    assert answer.status_code == 201, answer.get_json()
    answer = client.post("/api/v1/follow-ups/", headers=headers, json={
        "lead": lead_id, "due_at": "2030-03-01T09:00:00+00:00",
        "assignee": user_id(app, "reception2"),  # works at Lakeside only
    })
    assert answer.status_code == 422
    [follow_up] = open_follow_ups(app, lead_id)
    assert follow_up.note == "From the API"
