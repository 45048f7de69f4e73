"""In-app notifications: who is told about a new lead, the /notifications/ page, marking read,
and the unread badge in the top bar."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models.leads import Lead, Notification
from app.models.org import Branch
from app.services.audit import acting_as
from app.services.leads import create_lead
from app.services.notifications import notify_new_lead, unread_count
from tests.conftest import csrf_token_from, login_as

pytestmark = pytest.mark.sqlite_subset

BADGE_RE = re.compile(r"data-cd-unread>(\d+)")


def new_lead(app, branch_code: str = "DT", first_name: str = "Zelda") -> int:
    """A lead from the public form at ``branch_code``, with its notifications; returns its id."""
    with app.test_request_context():
        branch = db.session.scalars(select(Branch).filter_by(code=branch_code)).one()
        with acting_as("public form"):
            lead = Lead(
                branch=branch, first_name=first_name, last_name="Quarrington",
                email="zelda@example.org", source="web_form", consent_contact=True,
            )
            create_lead(lead, obtained="web_form")
            notify_new_lead(lead)
            db.session.commit()
        return lead.id


def user_id(app, username: str) -> int:
    with app.app_context():
        return app.appbuilder.sm.find_user(username=username).id


def badge(html: str) -> int:
    match = BADGE_RE.search(html)
    return int(match.group(1)) if match else 0


def test_only_active_receptionists_of_the_branch_are_notified(app):
    with app.app_context():
        sm = app.appbuilder.sm
        downtown = db.session.scalars(select(Branch).filter_by(code="DT")).one()
        away = sm.add_user(
            "reception.away", "Ria", "Away", "away@example.org",
            sm.find_role("Receptionist"), password="away-password-12345", commit=False,
        )
        away.branches = [downtown]
        away.active = False
        db.session.commit()
    lead_id = new_lead(app)
    with app.app_context():
        notes = db.session.scalars(select(Notification).filter_by(lead_id=lead_id)).all()
        assert {n.recipient.username for n in notes} == {"reception"}
        note = notes[0]
        assert note.kind == "new_lead" and note.link == f"/leads/show/{lead_id}"
        assert note.read_at is None
    lead_id = new_lead(app, "LS")
    with app.app_context():
        notes = db.session.scalars(select(Notification).filter_by(lead_id=lead_id)).all()
        assert {n.recipient.username for n in notes} == {"reception2"}


def test_the_page_lists_my_notifications_without_personal_data(app):
    lead_id = new_lead(app, first_name="Xanthippe")
    client = login_as(app, "reception")
    response = client.get("/notifications/")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "A new appointment request arrived at Downtown Clinic." in html
    assert "Xanthippe" not in html and "Quarrington" not in html and "zelda@" not in html
    other = login_as(app, "reception2").get("/notifications/").get_data(as_text=True)
    assert "Downtown Clinic." not in other
    with app.app_context():
        mine = db.session.scalars(
            select(Notification).filter_by(lead_id=lead_id, recipient_id=user_id(app, "reception"))
        ).one()
    assert f"/notifications/{mine.id}/read" in html


def test_badge_counts_unread_and_marking_read_clears_it(app):
    client = login_as(app, "reception")
    with app.app_context():
        before = unread_count(user_id(app, "reception"))
    lead_id = new_lead(app)
    home = client.get("/").get_data(as_text=True)
    assert badge(home) == before + 1
    with app.app_context():
        note = db.session.scalars(
            select(Notification).filter_by(lead_id=lead_id, recipient_id=user_id(app, "reception"))
        ).one()
        note_id = note.id
    page = client.get("/notifications/").get_data(as_text=True)
    token = csrf_token_from(page)

    # Someone else cannot mark it read; a missing one is 404 too.
    stranger = login_as(app, "reception2")
    stranger_token = csrf_token_from(stranger.get("/notifications/").get_data(as_text=True))
    assert stranger.post(f"/notifications/{note_id}/read",
                         data={"csrf_token": stranger_token}).status_code == 404

    response = client.post(f"/notifications/{note_id}/read", data={"csrf_token": token})
    assert response.status_code == 302
    assert badge(client.get("/").get_data(as_text=True)) == before
    with app.app_context():
        assert db.session.get(Notification, note_id).read_at is not None

    # "Open" marks it read and goes to the lead's page.
    second = new_lead(app)
    with app.app_context():
        note2 = db.session.scalars(
            select(Notification).filter_by(lead_id=second, recipient_id=user_id(app, "reception"))
        ).one().id
    response = client.post(f"/notifications/{note2}/read", data={"csrf_token": token, "open": "1"})
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/leads/show/{second}")


def test_mark_all_read(app):
    new_lead(app)
    new_lead(app)
    client = login_as(app, "reception")
    page = client.get("/notifications/").get_data(as_text=True)
    assert badge(page) >= 2
    assert "Mark all as read" in page
    response = client.post("/notifications/read-all", data={"csrf_token": csrf_token_from(page)})
    assert response.status_code == 302
    page = client.get("/notifications/").get_data(as_text=True)
    assert badge(page) == 0 and "You are all caught up." in page
    with app.app_context():
        assert unread_count(user_id(app, "reception")) == 0


def test_writes_need_a_csrf_token_and_a_signed_in_user(app):
    client = login_as(app, "reception")
    assert client.post("/notifications/read-all").status_code == 400
    visitor = app.test_client()
    response = visitor.get("/notifications/")
    assert response.status_code == 302 and "/login/" in response.headers["Location"]


def test_no_badge_for_a_user_without_unread(app):
    client = login_as(app, "doctor")
    html = client.get("/").get_data(as_text=True)
    assert badge(html) == 0
    assert 'href="/notifications/"' in html
