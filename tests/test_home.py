"""The home page tells each role about today: the desk its branch's diary, a doctor their own
patients, the lab its queue — and nobody what their role may not see."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models.base import utcnow
from app.models.lab import LabOrder
from app.models.org import Branch
from app.models.scheduling import Appointment
from app.services.appointments import day_bounds, local_time
from tests.conftest import login_as

pytestmark = pytest.mark.sqlite_subset


def todays_count(app, branch_code: str, doctor: str | None = None) -> int:
    with app.app_context():
        branch = db.session.scalar(sa.select(Branch).where(Branch.code == branch_code))
        start, end = day_bounds(branch, local_time(branch, utcnow()).date())
        query = sa.select(sa.func.count()).select_from(Appointment).where(
            Appointment.branch_id == branch.id,
            Appointment.starts_at >= start,
            Appointment.starts_at < end,
        )
        if doctor:
            query = query.where(
                Appointment.doctor_id == app.appbuilder.sm.find_user(username=doctor).id
            )
        return db.session.scalar(query)


def shown_total(page: str, branch_name: str) -> int:
    match = re.search(
        rf"<strong>{re.escape(branch_name)}</strong></a>\s*<span[^>]*>· (\d+) appointments?", page
    )
    assert match, f"no diary line for {branch_name}"
    return int(match.group(1))


def test_the_desk_sees_its_branch_diary_for_today(app):
    page = login_as(app, "reception").get("/").get_data(as_text=True)
    assert "Today" in page and "Lab queue" not in page
    assert shown_total(page, "Downtown Clinic") == todays_count(app, "DT")
    assert "Lakeside Dental" not in page  # another branch's diary stays out of sight


def test_a_doctor_sees_their_own_patients_today(app):
    page = login_as(app, "doctor").get("/").get_data(as_text=True)
    assert "Your patients today" in page
    assert shown_total(page, "Downtown Clinic") == todays_count(app, "DT", doctor="doctor")
    assert todays_count(app, "DT", doctor="doctor") > 0  # the demo keeps today busy


def test_the_lab_sees_its_queue_and_no_diary(app):
    with app.app_context():
        waiting = db.session.scalar(
            sa.select(sa.func.count()).select_from(LabOrder).where(LabOrder.status == "ordered")
        )
    page = login_as(app, "labtech").get("/").get_data(as_text=True)
    assert "Lab queue" in page and "Your patients today" not in page
    assert 'id="today-title"' not in page
    if waiting:
        assert re.search(rf"<strong>{waiting}</strong> Ordered", page)


@pytest.mark.parametrize("username", ["pharmacist", "accountant"])
def test_roles_without_diary_or_lab_see_neither(app, username):
    page = login_as(app, username).get("/").get_data(as_text=True)
    assert "Lab queue" not in page and "Your patients today" not in page
    assert 'id="today-title"' not in page
