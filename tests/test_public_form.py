"""The public appointment request form: validation that keeps what was typed, the bot defences
(CSRF, honeypot, minimum fill time, per-address limits in the real Redis), mass assignment,
UTM capture, the audit trail's "public form" actor and reception's notification."""

from __future__ import annotations

import os
import re
import time

import pytest
import redis
from flask_appbuilder.security.sqla.models import User
from sqlalchemy import func, select

from app.extensions import db
from app.models.audit import AuditEntry
from app.models.leads import Lead, LeadConsentChange, LeadStageChange, Notification
from app.models.org import Branch
from app.views.public import started_token
from tests.conftest import csrf_token_from

URL = "/request-appointment"
VISITOR = {"REMOTE_ADDR": "203.0.113.7"}
HIDDEN_RE = r'name="{name}" type="hidden" value="([^"]*)"'


@pytest.fixture(scope="module")
def app(make_app):
    """Generous limits (the limit has its own test); the default minimum fill time (3 s)."""
    return make_app(PUBLIC_FORM_RATE_LIMIT="1000 per hour")


@pytest.fixture(scope="module")
def ids(app):
    with app.app_context():
        downtown = db.session.scalars(select(Branch).filter_by(code="DT")).one()
        closed = Branch(
            name="Old Town (closed)", code="OT", country=downtown.country,
            time_zone=downtown.time_zone, currency=downtown.currency, is_active=False,
        )
        db.session.add(closed)
        db.session.commit()
        return {"DT": downtown.id, "closed": closed.id}


def hidden(html: str, name: str) -> str:
    match = re.search(HIDDEN_RE.format(name=name), html)
    assert match, f"no hidden field {name}"
    return match.group(1)


def aged_token(app, seconds: float = 60) -> str:
    """The "form opened" token of a form opened ``seconds`` ago (as if the person took that long)."""
    with app.app_context():
        return started_token(time.time() - seconds)


def open_form(client, query: str = "") -> str:
    response = client.get(URL + query, environ_base=VISITOR)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def good_data(ids, **changes) -> dict:
    data = {
        "first_name": "Ana",
        "last_name": "Pereira",
        "phone": "080 4123 4567",
        "email": "Ana.Pereira@example.org",
        "branch": str(ids["DT"]),
        "service": "0",
        "preferred_times": "weekday mornings",
        "reason": "Tooth ache on the left",
        "heard_about": "friend_or_family",
        "consent_contact": "y",
        "consent_reminders": "y",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def submit(app, client, data: dict, query: str = "", age: float = 60, **kwargs):
    html = open_form(client, query)
    form = {
        "csrf_token": csrf_token_from(html),
        "started": aged_token(app, age) if age is not None else hidden(html, "started"),
        **{name: hidden(html, name) for name in ("utm_source", "utm_medium", "utm_campaign")
           if re.search(HIDDEN_RE.format(name=name), html)},
        **data,
    }
    return client.post(URL, data=form, environ_base=kwargs.pop("environ_base", VISITOR), **kwargs)


def lead_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(Lead.id)))


def latest_lead(app) -> Lead:
    return db.session.scalars(select(Lead).order_by(Lead.id.desc()).limit(1)).one()


@pytest.mark.sqlite_subset
def test_the_form_opens_for_a_visitor_with_its_protections(client):
    response = client.get(URL)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'name="csrf_token"' in html
    assert re.search(HIDDEN_RE.format(name="started"), html)
    trap = re.search(r'<div class="cd-public__trap" aria-hidden="true">.*?</div>', html, re.S)
    assert trap and 'name="website"' in trap.group(0)
    assert 'tabindex="-1"' in trap.group(0) and 'autocomplete="off"' in trap.group(0)
    for consent in ("consent_contact", "consent_reminders", "consent_marketing"):
        box = re.search(rf'<input[^>]*name="{consent}"[^>]*>', html).group(0)
        assert "checked" not in box
    assert "Old Town (closed)" not in html  # inactive branches are not offered
    assert 'class="cd-sidebar' not in html and "Sign out" not in html
    assert "<label" in html and 'for="first_name"' in html


@pytest.mark.sqlite_subset
def test_mistakes_are_explained_and_what_was_typed_is_kept(app, client, ids):
    before = lead_count(app)
    response = submit(
        app, client,
        good_data(ids, last_name="", phone="12", email="", consent_contact=None,
                  reason="My <b>tooth</b>"),
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Please tell us your last name." in html
    assert "Please check the phone number" in html
    assert "We can only arrange your appointment if we may contact you about it." in html
    assert 'value="Ana"' in html and 'value="12"' in html and "weekday mornings" in html
    assert "My &lt;b&gt;tooth&lt;/b&gt;" in html
    assert 'aria-invalid="true"' in html
    assert lead_count(app) == before


@pytest.mark.sqlite_subset
def test_a_phone_or_an_email_is_needed(app, client, ids):
    response = submit(app, client, good_data(ids, phone="", email=""))
    assert "Please give a phone number or an e-mail address" in response.get_data(as_text=True)
    response = submit(app, client, good_data(ids, email="not-an-address", phone=""))
    assert "Please check the e-mail address" in response.get_data(as_text=True)


@pytest.mark.sqlite_subset
def test_size_limits_on_every_field(app, client, ids):
    before = lead_count(app)
    response = submit(
        app, client,
        good_data(ids, first_name="A" * 81, preferred_times="x" * 301, reason="y" * 2001),
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert html.count("cd-field__error") >= 3
    assert lead_count(app) == before


@pytest.mark.sqlite_subset
def test_a_request_becomes_a_new_web_lead_whatever_the_post_adds(app, client, ids):
    with app.app_context():
        users_before = db.session.scalar(select(func.count(User.id)))
        owner_id = app.appbuilder.sm.find_user(username="reception").id
    crafted = good_data(
        ids, stage="converted", owner_id=str(owner_id), owner=str(owner_id), notes="VIP, free",
        branch_id=str(ids["closed"]), source="campaign", lost_reason="price", patient_id="1",
        utm_source="crafted-but-fine", id="1", consent_marketing=None,
    )
    response = submit(app, client, crafted)
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/request-appointment/thanks")
    thanks = client.get(response.headers["Location"])
    assert thanks.status_code == 200
    body = thanks.get_data(as_text=True)
    assert "Thank you" in body
    assert "Ana" not in body and "Pereira" not in body and "pereira@" not in body.lower()
    with app.app_context():
        lead = latest_lead(app)
        assert (lead.first_name, lead.last_name) == ("Ana", "Pereira")
        assert lead.stage == "new" and lead.owner_id is None and lead.notes is None
        assert lead.source == "web_form" and lead.lost_reason is None and lead.patient_id is None
        assert lead.branch_id == ids["DT"]
        assert lead.phone.startswith("+") and lead.email == "ana.pereira@example.org"
        assert lead.heard_about == "friend_or_family"
        assert (lead.consent_contact, lead.consent_reminders, lead.consent_marketing) == (
            True, True, False
        )
        consents = db.session.scalars(
            select(LeadConsentChange).filter_by(lead_id=lead.id)
        ).all()
        assert {(c.kind, c.obtained) for c in consents} == {
            ("contact", "web_form"), ("reminders", "web_form")
        }
        assert [s.to_stage for s in db.session.scalars(
            select(LeadStageChange).filter_by(lead_id=lead.id))] == ["new"]
        assert db.session.scalar(select(func.count(User.id))) == users_before
        entries = db.session.scalars(
            select(AuditEntry).where(
                AuditEntry.kind == "change", AuditEntry.model == "Lead",
                AuditEntry.record_id == str(lead.id),
            )
        ).all()
        assert entries, "the lead's creation is audited"
        assert {(e.actor, e.actor_id, e.ip) for e in entries} == {
            ("public form", None, "203.0.113.7")
        }


@pytest.mark.sqlite_subset
def test_reception_of_the_chosen_branch_is_notified(app, client, ids):
    response = submit(app, client, good_data(ids, first_name="Notify"))
    assert response.status_code == 302
    with app.app_context():
        lead = latest_lead(app)
        notes = db.session.scalars(select(Notification).filter_by(lead_id=lead.id)).all()
        recipients = {n.recipient.username for n in notes}
        assert "reception" in recipients and "reception2" not in recipients
        assert all(n.kind == "new_lead" and n.link == f"/leads/show/{lead.id}" for n in notes)


@pytest.mark.sqlite_subset
def test_utm_parameters_are_captured_and_clipped(app, client, ids):
    query = "?utm_source=newsletter&utm_medium=email&utm_campaign=" + "s" * 500
    html = open_form(client, query)
    assert hidden(html, "utm_source") == "newsletter"
    assert len(hidden(html, "utm_campaign")) == 100
    response = submit(app, client, good_data(ids, first_name="Utm"), query=query)
    assert response.status_code == 302
    with app.app_context():
        lead = latest_lead(app)
        assert (lead.utm_source, lead.utm_medium) == ("newsletter", "email")
        assert lead.utm_campaign == "s" * 100 and lead.utm_term is None


@pytest.mark.sqlite_subset
def test_a_filled_honeypot_creates_nothing_and_looks_like_success(app, client, ids):
    before = lead_count(app)
    response = submit(app, client, good_data(ids, website="http://spam.example"))
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/request-appointment/thanks")
    assert lead_count(app) == before


@pytest.mark.sqlite_subset
def test_a_too_fast_or_tampered_submission_is_refused_quietly(app, client, ids):
    before = lead_count(app)
    too_fast = submit(app, client, good_data(ids, first_name="Speedy"), age=None)
    html = too_fast.get_data(as_text=True)
    assert too_fast.status_code == 200
    assert "Please check it and send it again" in html and 'value="Speedy"' in html
    html_form = open_form(client)
    tampered = client.post(URL, data={
        "csrf_token": csrf_token_from(html_form), "started": aged_token(app)[:-2] + "xx",
        **good_data(ids, first_name="Forger"),
    }, environ_base=VISITOR)
    assert "Please check it and send it again" in tampered.get_data(as_text=True)
    stale = submit(app, client, good_data(ids, first_name="Sleeper"), age=13 * 3600)
    assert "Please check it and send it again" in stale.get_data(as_text=True)
    assert lead_count(app) == before


@pytest.mark.sqlite_subset
def test_a_submission_needs_a_valid_csrf_token(app, client, ids):
    before = lead_count(app)
    data = {"started": aged_token(app), **good_data(ids)}
    client.get(URL)
    for token in (None, "not-a-real-token"):
        form = dict(data, **({"csrf_token": token} if token else {}))
        response = client.post(URL, data=form, environ_base=VISITOR)
        assert response.status_code == 400
        body = response.get_data(as_text=True)
        assert "The form expired" in body and "Pereira" not in body
    assert lead_count(app) == before


@pytest.mark.sqlite_subset
def test_an_inactive_branch_cannot_be_chosen(app, client, ids):
    before = lead_count(app)
    response = submit(app, client, good_data(ids, branch=str(ids["closed"])))
    assert response.status_code == 200
    assert "cd-field__error" in response.get_data(as_text=True)
    assert lead_count(app) == before


def test_the_sixth_post_in_an_hour_gets_the_friendly_429_page(make_app, ids, capsys):
    limited = make_app(PUBLIC_FORM_RATE_LIMIT="5 per hour;20 per day")
    client = limited.test_client()
    token = csrf_token_from(client.get(URL).get_data(as_text=True))
    one = {"REMOTE_ADDR": "198.51.100.1"}

    def attempt(environ):
        # An empty (invalid) request: it still counts against the address's limit.
        return client.post(URL, data={"csrf_token": token}, environ_base=environ)

    codes = [attempt(one).status_code for _ in range(5)]
    assert 429 not in codes and all(code < 500 for code in codes), codes
    refused = attempt(one)
    assert refused.status_code == 429
    body = refused.get_data(as_text=True)
    assert refused.mimetype == "text/html"
    assert "Too many requests" in body and "Traceback" not in body
    assert 'class="cd-sidebar' not in body
    # Spoofing X-Forwarded-For changes nothing (no proxy configured); another address is free.
    spoofed = client.post(URL, data={"csrf_token": token},
                          environ_base=dict(one, HTTP_X_FORWARDED_FOR="192.0.2.99"))
    assert spoofed.status_code == 429
    assert attempt({"REMOTE_ADDR": "198.51.100.2"}).status_code != 429
    # The thank-you page is never counted.
    assert client.get(URL + "/thanks", environ_base=one).status_code == 200
    connection = redis.Redis.from_url(os.environ["REDIS_URL"])
    prefix = limited.config["RATELIMIT_KEY_PREFIX"]
    keys = [key.decode() for key in connection.scan_iter(f"*{prefix}*")]
    assert any("PublicRequestView" in key and "198.51.100.1" in key for key in keys), keys
    with capsys.disabled():
        print("\n[rate limit] public form: 5 allowed, 6th refused (429), other address allowed")
