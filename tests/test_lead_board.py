"""The pipeline board (/leads/board): columns and counts, filters, overdue follow-ups, moves,
branch isolation, roles, escaping and the access log."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from markupsafe import escape

from app.extensions import db
from app.models.audit import AuditEntry
from app.models.leads import LEAD_STAGES, Lead
from app.models.org import Branch
from app.models.scheduling import Service
from app.services.leads import create_lead
from tests.audit_support import entries_since, last_entry_id
from tests.conftest import PASSWORD, csrf_token_from, login_as

pytestmark = pytest.mark.sqlite_subset

XSS_NAME = "<script>alert('board')</script>"
NOW = datetime.now(timezone.utc)


@pytest.fixture(scope="module")
def world(app):
    """A dedicated owner's leads at Downtown in every stage, and two Lakeside leads."""
    with app.app_context():
        sm = app.appbuilder.sm
        dt = db.session.scalar(sa.select(Branch).where(Branch.code == "DT"))
        ls = db.session.scalar(sa.select(Branch).where(Branch.code == "LS"))
        bea = sm.add_user(
            "board.owner", "Bea", "Boardqb", "bea.board@example.org",
            sm.find_role("Receptionist"), password=PASSWORD,
        )
        bea.branches = [dt]
        service = Service(name="Whitening Qb", default_duration_min=30)
        db.session.add(service)
        db.session.flush()
        phones = iter(range(100, 200))

        def lead(first, *, branch=dt, stage="new", source="phone", owner=bea, follow_up=None,
                 changed_days=0, lost_reason=None):
            made = create_lead(Lead(
                first_name=first, last_name="Qb", branch_id=branch.id,
                phone=f"098450 21{next(phones)}", source=source,
                owner_id=owner.id if owner else None, requested_service_id=service.id,
                next_follow_up_at=follow_up, consent_contact=True,
            ))
            made.stage = stage
            made.lost_reason = lost_reason
            made.stage_changed_at = NOW - timedelta(days=changed_days, minutes=5)
            made.created_at = NOW - timedelta(days=changed_days + 2, minutes=5)
            return made

        leads = {
            "anita": lead("Anita", follow_up=NOW - timedelta(days=1)),  # overdue
            "bala": lead("Bala", source="web_form", follow_up=NOW + timedelta(days=2)),
            "chitra": lead("Chitra", stage="contacted", changed_days=3),
            "dev": lead("Dev", stage="qualified", source="referral"),
            "esha": lead("Esha", stage="booked"),
            "farid": lead("Farid", stage="converted", changed_days=5),
            "old_win": lead("Oldwin", stage="converted", changed_days=45),
            "gita": lead("Gita", stage="lost", lost_reason="price", changed_days=1),
            "old_loss": lead("Oldloss", stage="lost", lost_reason="timing", changed_days=40),
            "xss": lead(XSS_NAME, stage="contacted"),
            "nobody": lead("Nobody", owner=None, source="campaign"),
            "lake": lead("Lakshmi", branch=ls, owner=None, source="walk_in"),
            "lake2": lead("Leela", branch=ls, stage="qualified", owner=None),
        }
        db.session.commit()
        return {
            "dt": dt.id, "ls": ls.id, "bea": bea.id, "service": service.id,
            **{name: made.id for name, made in leads.items()},
        }


# A small reader of the board ---------------------------------------------------------------------

COLUMN_RE = re.compile(r'<section class="cd-board__col cd-board__col--(\w+)"')
COUNT_RE = re.compile(r'data-testid="count">(\d+)<')
CARD_RE = re.compile(r'<li class="cd-lead-card[^"]*" data-lead="(\d+)"')


def read_board(html: str) -> dict[str, dict]:
    """{stage: {"count": n, "cards": [ids], "html": column html}} in page order."""
    parts = COLUMN_RE.split(html)
    board = {}
    for stage, chunk in zip(parts[1::2], parts[2::2]):
        board[stage] = {
            "count": int(COUNT_RE.search(chunk).group(1)),
            "cards": [int(i) for i in CARD_RE.findall(chunk)],
            "html": chunk,
        }
    return board


def card_html(html: str, lead_id: int) -> str:
    start = html.index(f'data-lead="{lead_id}"')
    return html[start:html.index("</li>", start)]


def board(client, **args) -> str:
    response = client.get("/leads/board", query_string=args)
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def stage_of(app, lead_id: int) -> str:
    with app.app_context():
        return db.session.get(Lead, lead_id).stage


# Columns, counts, filters ------------------------------------------------------------------------


def test_one_column_per_stage_with_counts(app, world):
    html = board(login_as(app, "reception"), owner=world["bea"])
    columns = read_board(html)
    assert list(columns) == list(LEAD_STAGES)
    counts = {stage: column["count"] for stage, column in columns.items()}
    assert counts == {"new": 2, "contacted": 2, "qualified": 1, "booked": 1, "converted": 1,
                      "lost": 1}
    assert columns["new"]["cards"] == [world["anita"], world["bala"]]  # overdue first
    assert set(columns["contacted"]["cards"]) == {world["chitra"], world["xss"]}
    assert columns["converted"]["cards"] == [world["farid"]]
    assert columns["lost"]["cards"] == [world["gita"]]
    # Converted and lost: only the last 30 days, and the page says so.
    assert world["old_win"] not in columns["converted"]["cards"]
    assert world["old_loss"] not in columns["lost"]["cards"]
    assert "Last 30 days" in columns["converted"]["html"]
    assert "Last 30 days" in columns["lost"]["html"]


def test_cards_show_name_link_source_service_age_and_owner(app, world):
    html = board(login_as(app, "reception"), owner=world["bea"])
    chitra = card_html(html, world["chitra"])
    assert f'href="/leads/show/{world["chitra"]}"' in chitra and "Chitra Qb" in chitra
    assert "Phone" in chitra and "Whitening Qb" in chitra
    assert "5 d" in chitra and "3 d" in chitra  # created 5 days ago, in the stage for 3
    assert "Bea Boardqb" in chitra
    gita = card_html(html, world["gita"])
    assert "Price" in gita or "price" in gita.lower()


def test_counts_without_filters_match_the_branch(app, world):
    html = board(login_as(app, "reception"))
    columns = read_board(html)
    since = NOW - timedelta(days=30)
    with app.app_context():
        for stage in LEAD_STAGES:
            query = sa.select(sa.func.count()).select_from(Lead).where(
                Lead.branch_id == world["dt"], Lead.stage == stage
            )
            if stage in ("converted", "lost"):
                query = query.where(Lead.stage_changed_at >= since)
            assert columns[stage]["count"] == db.session.scalar(query), stage


def test_filter_by_source_and_owner(app, world):
    client = login_as(app, "reception")
    columns = read_board(board(client, owner=world["bea"], source="web_form"))
    assert [c for column in columns.values() for c in column["cards"]] == [world["bala"]]
    assert columns["new"]["count"] == 1 and columns["contacted"]["count"] == 0
    unowned = read_board(board(client, owner="none", source="campaign"))
    assert world["nobody"] in unowned["new"]["cards"]
    with app.app_context():
        shown = [db.session.get(Lead, c) for column in unowned.values() for c in column["cards"]]
        assert all(lead.owner_id is None and lead.source == "campaign" for lead in shown)
    everyone = read_board(board(client, source="campaign"))
    assert world["nobody"] in everyone["new"]["cards"]
    # Unknown values are ignored, not errors.
    assert read_board(board(client, source="nonsense", owner="x"))["new"]["count"] >= 2


def test_the_filter_form_is_a_plain_get_form_with_labels(app, world):
    html = board(login_as(app, "owner"))
    assert re.search(r'<form class="cd-board-filters" method="get" action="/leads/board"', html)
    for name in ("board-branch", "board-owner", "board-source"):
        assert f'<label for="{name}">' in html
    # All-branch roles choose between branches; one branch narrows the board.
    lakeside = read_board(board(login_as(app, "owner"), branch=world["ls"]))
    shown = {c for column in lakeside.values() for c in column["cards"]}
    assert {world["lake"], world["lake2"]} <= shown and world["anita"] not in shown


def test_overdue_follow_ups_are_marked_with_a_badge_and_words(app, world):
    html = board(login_as(app, "reception"), owner=world["bea"])
    anita = card_html(html, world["anita"])
    assert f'<li class="cd-lead-card cd-lead-card--overdue" data-lead="{world["anita"]}"' in html
    assert f'<li class="cd-lead-card" data-lead="{world["bala"]}"' in html
    assert "Overdue" in anita and "cd-badge--danger" in anita
    bala = card_html(html, world["bala"])
    assert "Overdue" not in bala and "Follow up" in bala


# Isolation and roles -----------------------------------------------------------------------------


def test_another_branch_is_never_shown(app, world):
    client = login_as(app, "reception2")
    for args in ({}, {"branch": world["dt"]}, {"branch": world["dt"], "owner": world["bea"]}):
        html = board(client, **args)
        shown = {c for column in read_board(html).values() for c in column["cards"]}
        assert "Anita Qb" not in html and "Bea Boardqb" not in html
        assert world["anita"] not in shown and world["chitra"] not in shown
        if "owner" not in args:
            assert {world["lake"], world["lake2"]} <= shown
        with app.app_context():
            branches = {db.session.get(Lead, lead_id).branch_id for lead_id in shown}
        assert branches <= {world["ls"]}
    # Reception at one branch gets no branch choice at all.
    assert 'id="board-branch"' not in board(client)


@pytest.mark.parametrize("username", ["doctor", "labtech"])
def test_roles_without_leads_are_refused(app, world, username):
    assert login_as(app, username).get("/leads/board").status_code == 403


def test_anonymous_visitors_are_sent_to_sign_in(app, world):
    response = app.test_client().get("/leads/board")
    assert response.status_code == 302 and "/login/" in response.headers["Location"]


def test_names_are_escaped(app, world):
    html = board(login_as(app, "reception"), owner=world["bea"])
    assert XSS_NAME not in html
    assert str(escape(XSS_NAME)) in html


# Moving cards ------------------------------------------------------------------------------------


def move_form(html: str, lead_id: int) -> dict:
    card = card_html(html, lead_id)
    action = re.search(r'<form class="cd-lead-card__move" method="post" action="([^"]+)"', card)
    nxt = re.search(r'name="next" value="([^"]+)"', card)
    return {"action": action.group(1), "next": nxt.group(1).replace("&amp;", "&"),
            "csrf_token": csrf_token_from(card)}


def test_each_card_has_a_labelled_move_form_with_the_filters_in_next(app, world):
    html = board(login_as(app, "reception"), owner=world["bea"], source="phone")
    form = move_form(html, world["chitra"])
    assert form["action"] == f"/leads/{world['chitra']}/stage"
    parts = urlsplit(form["next"])
    assert parts.path == "/leads/board" and not parts.netloc
    assert parse_qs(parts.query) == {"owner": [str(world["bea"])], "source": ["phone"]}
    card = card_html(html, world["chitra"])
    assert f'<label for="move-{world["chitra"]}">' in card
    assert f'<label for="reason-{world["chitra"]}">' in card
    options = re.findall(r'<option value="(\w+)"', card.split('name="lost_reason"')[0])
    assert "converted" not in options and "contacted" not in options and "lost" in options


def test_converted_cards_have_no_move_form(app, world):
    html = board(login_as(app, "reception"), owner=world["bea"])
    assert "cd-lead-card__move" not in card_html(html, world["farid"])


def test_moving_a_card_changes_its_stage_and_comes_back_to_the_board(app, world):
    client = login_as(app, "reception")
    html = board(client, owner=world["bea"])
    form = move_form(html, world["dev"])
    response = client.post(form["action"], data={
        "csrf_token": form["csrf_token"], "stage": "booked", "lost_reason": "",
        "next": form["next"],
    })
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/leads/board"
    assert parse_qs(location.query) == {"owner": [str(world["bea"])]}
    assert stage_of(app, world["dev"]) == "booked"
    after = read_board(client.get(response.headers["Location"]).get_data(as_text=True))
    assert world["dev"] in after["booked"]["cards"]
    assert world["dev"] not in after["qualified"]["cards"]


def test_lost_without_a_reason_is_refused_with_a_message(app, world):
    client = login_as(app, "reception")
    html = board(client, owner=world["bea"])
    form = move_form(html, world["bala"])
    response = client.post(form["action"], data={
        "csrf_token": form["csrf_token"], "stage": "lost", "lost_reason": "",
        "next": form["next"],
    }, follow_redirects=True)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "why the lead was lost" in page
    assert urlsplit(response.request.url).path == "/leads/board"  # the board, filters kept
    assert stage_of(app, world["bala"]) == "new"
    assert world["bala"] in read_board(page)["new"]["cards"]
    # With a reason it goes.
    form = move_form(page, world["bala"])
    client.post(form["action"], data={
        "csrf_token": form["csrf_token"], "stage": "lost", "lost_reason": "not_interested",
        "next": form["next"],
    })
    assert stage_of(app, world["bala"]) == "lost"


def test_a_move_without_the_csrf_token_is_refused(app, world):
    client = login_as(app, "reception")
    response = client.post(f"/leads/{world['esha']}/stage",
                           data={"stage": "qualified", "next": "/leads/board"})
    assert response.status_code in (302, 400)
    assert stage_of(app, world["esha"]) == "booked"


def test_another_branchs_lead_cannot_be_moved(app, world):
    client = login_as(app, "reception2")
    html = board(client)
    token = csrf_token_from(html)
    response = client.post(f"/leads/{world['esha']}/stage", data={
        "csrf_token": token, "stage": "qualified", "next": "/leads/board"})
    assert response.status_code == 404
    assert stage_of(app, world["esha"]) == "booked"


# Access log --------------------------------------------------------------------------------------


def test_one_access_entry_names_the_leads_shown(app, world):
    since = last_entry_id(app)
    html = board(login_as(app, "reception"), owner=world["bea"])
    shown = sorted(c for column in read_board(html).values() for c in column["cards"])
    [entry] = entries_since(app, since, kind="access")
    details = json.loads(entry.details)
    assert (entry.action, entry.actor, entry.model, entry.subject_type) == (
        "view", "reception", "Lead", "lead")
    assert sorted(int(r) for r in details["records"]) == shown
    assert details["path"] == "/leads/board"
    assert entry.branch_id == world["dt"]
    with app.app_context():
        assert db.session.get(AuditEntry, entry.id) is not None


def test_the_owner_reads_the_board_without_moving_cards(app, world):
    html = board(login_as(app, "owner"), owner=world["bea"])
    columns = read_board(html)
    assert world["chitra"] in columns["contacted"]["cards"]
    assert "cd-lead-card__move" not in html and "js/board.js" not in html


def test_the_suggested_move_is_the_next_stage_forward(app, world):
    html = board(login_as(app, "reception"), owner=world["bea"])
    card = card_html(html, world["chitra"])  # contacted
    assert re.search(r'<option value="qualified" selected>', card)
    lost = card_html(html, world["gita"])  # a lost lead only reopens, with no reason box
    assert re.findall(r'<option value="(\w+)"', lost) == ["new", "contacted"]
    assert 'name="lost_reason"' not in lost
