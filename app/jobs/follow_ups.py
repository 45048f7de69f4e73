"""Jobs of the lead pipeline's follow-ups: automatic follow-ups for leads gone quiet."""

from __future__ import annotations

from flask import current_app

from app.extensions import db
from app.services.communications import create_automatic_follow_ups as create_for_quiet_leads

#: Hours without a communication after which an open lead gets an automatic follow-up.
DEFAULT_QUIET_HOURS = 24


def create_automatic_follow_ups() -> dict:
    """Give every open lead that agreed to be contacted and has gone quiet a follow-up due now.

    Quiet means no open follow-up and no communication for ``FOLLOW_UP_QUIET_HOURS`` (default
    24). Safe to run again: a lead with an open follow-up gets no second one. Commits its work;
    an error fails the job (RQ records it) after the transaction is rolled back.
    """
    hours = int(current_app.config.get("FOLLOW_UP_QUIET_HOURS") or DEFAULT_QUIET_HOURS)
    try:
        created = create_for_quiet_leads(hours)
        lead_ids = [follow_up.lead_id for follow_up in created]
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return {"created": len(lead_ids), "lead_ids": lead_ids, "quiet_hours": hours}
