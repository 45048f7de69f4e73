"""The demo pipeline: about 150 believable leads at both branches, seeded once."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import phonenumbers
import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models.leads import (
    COMMUNICATION_CHANNELS,
    LEAD_SOURCES,
    LEAD_STAGES,
    Communication,
    FollowUp,
    Lead,
    LeadConsentChange,
    LeadStageChange,
)
from app.models.org import Branch
from app.models.patients import Patient
from app.services.patients import search_key
from tests.conftest import PASSWORD

pytestmark = pytest.mark.sqlite_subset

PIPELINE_TABLES = ("lead", "lead_stage_change", "lead_consent_change", "communication", "follow_up")


def aware(moment: datetime | None) -> datetime | None:
    """SQLite hands timestamps back without their zone; they are stored in UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=timezone.utc)


@pytest.fixture
def session(app):
    with app.app_context():
        yield db.session


def leads_by_branch(session) -> dict[str, list[Lead]]:
    codes = {b.id: b.code for b in session.scalars(sa.select(Branch))}
    found = defaultdict(list)
    for lead in session.scalars(sa.select(Lead)):
        found[codes[lead.branch_id]].append(lead)
    return found


def test_about_150_leads_in_every_stage_and_source_at_both_branches(session):
    found = leads_by_branch(session)
    assert sum(len(leads) for leads in found.values()) >= 140
    for code in ("DT", "LS"):
        assert {lead.stage for lead in found[code]} == set(LEAD_STAGES), code
        assert {lead.source for lead in found[code]} == set(LEAD_SOURCES), code


def test_leads_arrived_over_the_last_90_days(session):
    now = datetime.now(timezone.utc)
    created = [aware(c) for c in session.scalars(sa.select(Lead.created_at))]
    assert min(created) > now - timedelta(days=92)
    assert max(created) < now
    assert max(created) - min(created) > timedelta(days=60)


def test_lost_leads_have_reasons_and_open_ones_none(session):
    for lead in session.scalars(sa.select(Lead)):
        assert (lead.lost_reason is not None) == (lead.stage == "lost"), lead.id


def test_stage_histories_are_in_order_and_end_at_the_stage(session):
    changes = defaultdict(list)
    query = sa.select(LeadStageChange).order_by(LeadStageChange.lead_id, LeadStageChange.id)
    for change in session.scalars(query):
        changes[change.lead_id].append(change)
    for lead in session.scalars(sa.select(Lead)):
        history = changes[lead.id]
        assert history[0].from_stage is None and history[0].to_stage == "new"
        assert aware(history[0].changed_at) == aware(lead.created_at)
        for before, after in zip(history, history[1:]):
            assert after.from_stage == before.to_stage, lead.id
            assert aware(after.changed_at) > aware(before.changed_at), lead.id
        assert history[-1].to_stage == lead.stage
        assert aware(history[-1].changed_at) == aware(lead.stage_changed_at)
        if lead.stage == "lost":
            assert history[-1].note


def test_converted_leads_are_demo_patients(session):
    converted = list(session.scalars(sa.select(Lead).where(Lead.stage == "converted")))
    assert len(converted) >= 20
    for lead in converted:
        patient = session.get(Patient, lead.patient_id)
        assert patient is not None and patient.merged_into_id is None
        assert lead.converted_at is not None and lead.booked_at is not None
        assert aware(lead.booked_at) <= aware(lead.converted_at)
        assert (lead.first_name, lead.phone_digits) == (patient.first_name, patient.phone_digits)
        assert lead.appointment_id is None
    patients = [lead.patient_id for lead in converted]
    assert len(set(patients)) == len(patients)


def test_contact_details_are_normalised_like_the_service_does(session):
    for lead in session.scalars(sa.select(Lead)):
        assert lead.phone or lead.email or lead.patient_id, lead.id
        assert lead.name_search == search_key(f"{lead.first_name} {lead.last_name or ''}")
        if lead.phone:
            number = phonenumbers.parse(lead.phone)
            assert phonenumbers.is_valid_number(number) and phonenumbers.region_code_for_number(number) == "IN"
            assert lead.phone == phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            assert lead.phone_digits == lead.phone.lstrip("+")
        if lead.email:
            assert lead.email_search == lead.email.lower()
    web = session.scalars(sa.select(Lead).where(Lead.utm_campaign.is_not(None), Lead.source == "web_form"))
    assert any(lead.utm_source for lead in web)


def test_communications_on_every_channel_both_ways(session):
    rows = list(session.scalars(sa.select(Communication)))
    assert {row.channel for row in rows} == set(COMMUNICATION_CHANNELS)
    assert {row.direction for row in rows} == {"in", "out"}
    assert {"reached", "no_answer", "sent", "replied"} <= {row.outcome for row in rows}
    leads = {lead.id: lead for lead in session.scalars(sa.select(Lead))}
    now = datetime.now(timezone.utc)
    for row in rows:
        lead = leads[row.lead_id]
        assert row.branch_id == lead.branch_id
        assert aware(lead.created_at) <= aware(row.occurred_at) <= now


def test_follow_ups_done_overdue_and_due_today_for_each_receptionist(app, session):
    sm = app.appbuilder.sm
    zone = ZoneInfo("Asia/Kolkata")
    today = datetime.now(zone).date()
    follow_ups = list(session.scalars(sa.select(FollowUp)))
    assert any(f.done_at is not None for f in follow_ups)
    for username in ("reception", "reception2"):
        user = sm.find_user(username=username)
        open_ones = [f for f in follow_ups if f.assignee_id == user.id and f.done_at is None]
        days = [aware(f.due_at).astimezone(zone).date() for f in open_ones]
        assert sum(day == today for day in days) >= 2, username
        assert sum(day < today for day in days) >= 2, username
        branches = {b.id for b in user.branches}
        assert {f.branch_id for f in open_ones} <= branches
    leads = {lead.id: lead for lead in session.scalars(sa.select(Lead))}
    for follow_up in follow_ups:
        if follow_up.done_at is None:
            lead = leads[follow_up.lead_id]
            assert lead.stage in ("new", "contacted", "qualified")
            assert aware(lead.next_follow_up_at) == aware(follow_up.due_at)


def test_consents_with_a_few_marketing_withdrawals(session):
    withdrawals = list(
        session.scalars(
            sa.select(LeadConsentChange).where(
                LeadConsentChange.kind == "marketing", LeadConsentChange.granted.is_(False)
            )
        )
    )
    assert len(withdrawals) >= 3
    for change in withdrawals:
        lead = session.get(Lead, change.lead_id)
        assert lead.consent_marketing is False
        assert aware(change.changed_at) > aware(lead.created_at)
    web = session.scalar(
        sa.select(sa.func.count()).select_from(LeadConsentChange).where(LeadConsentChange.obtained == "web_form")
    )
    assert web > 0


def test_a_second_seed_adds_no_lead(app):
    def counts() -> dict[str, int]:
        with app.app_context():
            return {t: db.session.scalar(sa.text(f"SELECT count(*) FROM {t}")) for t in PIPELINE_TABLES}

    before = counts()
    result = app.test_cli_runner().invoke(args=["clinic", "seed-demo", "--password", PASSWORD])
    assert result.exit_code == 0, result.output
    assert counts() == before
