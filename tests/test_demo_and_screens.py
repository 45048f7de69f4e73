"""Demo data for a fresh installation, and a smoke of every screen on it."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import phonenumbers
import pytest
import sqlalchemy as sa
from flask import url_for

from app.extensions import db
from app.models.consultations import Consultation, Prescription
from app.models.lab import LabOrder, LabTest
from app.models.org import Branch
from app.models.patients import Patient
from app.models.scheduling import (
    APPOINTMENT_STATUSES,
    RELEASED_STATUSES,
    Appointment,
    DoctorLeave,
    Holiday,
    Service,
    StaffProfile,
    WorkingHours,
)
from app.security import policy
from tests.conftest import PASSWORD, Auth, login_as, required_permission

pytestmark = pytest.mark.sqlite_subset

DEMO_USERNAMES = [
    "admin", "owner", "doctor", "reception", "pharmacist", "labtech", "accountant",
    "doctor2", "reception2", "labtech_b",
]
#: Tables the demo fills, counted before and after a second run.
DEMO_TABLES = (
    "ab_user", "branch", "ab_user_branch", "patient", "patient_clinical", "consent_change",
    "service", "staff_profile", "working_hours", "holiday", "doctor_leave", "appointment",
    "appointment_change", "consultation", "prescription", "prescription_item", "lab_test",
    "lab_reference_range", "lab_order", "lab_result", "lab_result_amendment",
)


def counts(app) -> dict[str, int]:
    with app.app_context():
        return {
            table: db.session.scalar(sa.text(f"SELECT count(*) FROM {table}")) for table in DEMO_TABLES
        }


def aware(moment: datetime | None) -> datetime | None:
    """SQLite hands timestamps back without their zone; they are stored in UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=timezone.utc)


@pytest.mark.parametrize("username", DEMO_USERNAMES)
def test_every_demo_user_can_sign_in(app, username):
    client = app.test_client()
    response = Auth(client).login(username)
    assert response.status_code == 302
    home = client.get("/")
    assert home.status_code == 200
    assert "Sign out" in home.get_data(as_text=True)


def test_demo_users_have_their_roles_and_branches(app):
    with app.app_context():
        sm = app.appbuilder.sm
        doctor2 = sm.find_user(username="doctor2")
        assert [r.name for r in doctor2.roles] == [policy.DOCTOR]
        assert [b.code for b in doctor2.branches] == ["LS"]
        assert [b.code for b in sm.find_user(username="reception").branches] == ["DT"]


def test_seed_demo_is_idempotent(app):
    before = counts(app)
    result = app.test_cli_runner().invoke(args=["clinic", "seed-demo", "--password", PASSWORD])
    assert result.exit_code == 0, result.output
    assert counts(app) == before
    assert Auth(app.test_client()).login("doctor").status_code == 302


def test_seed_demo_without_password_keeps_a_random_one(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["clinic", "seed-demo"])
    assert result.exit_code == 0, result.output
    password_file = app.instance_path + "/demo_password"
    with open(password_file) as handle:
        password = handle.read().strip()
    assert len(password) >= 12
    assert password in result.output
    assert password in runner.invoke(args=["clinic", "demo-logins"]).output
    assert Auth(app.test_client()).login("owner", password).status_code == 302
    # running again keeps the same password
    runner.invoke(args=["clinic", "seed-demo"])
    assert Auth(app.test_client()).login("owner", password).status_code == 302
    runner.invoke(args=["clinic", "seed-demo", "--password", PASSWORD])


def test_seed_demo_refuses_production(make_app):
    app = make_app(ENV_NAME="production")
    result = app.test_cli_runner().invoke(args=["clinic", "seed-demo", "--password", "x" * 16])
    assert result.exit_code != 0
    assert "never loaded into a production installation" in result.output


#: Screens that also need a query argument, worked out from their record.
QUERY_ARGUMENTS = {
    "LabResultsView.amend": lambda order: {"result": order.results[0].id},
}


def screen_urls(app) -> list[str]:
    """Every GET screen (not API, not static), with a real record for <pk>."""
    urls = []
    views = {view.endpoint: view for view in app.appbuilder.baseviews}
    with app.app_context(), app.test_request_context():
        for rule in app.url_map.iter_rules():
            if "GET" not in rule.methods or rule.rule.startswith(("/api/", "/static", "/swagger")):
                continue
            endpoint_view, _, method = rule.endpoint.partition(".")
            if method in {"action", "download", "delete", "logo"} or rule.endpoint == "LocaleView.index":
                continue
            view = views.get(endpoint_view)
            pair = required_permission(view, method) if view else None
            if pair and pair[0] not in view.base_permissions:
                continue  # a door this view keeps shut for everyone (e.g. no "add" on Staff)
            values = {}
            if "pk" in rule.arguments:
                record = db.session.query(view.datamodel.obj).first()
                if record is None:
                    continue
                values["pk"] = view.datamodel.get_pk_value(record)
                if rule.endpoint in QUERY_ARGUMENTS:
                    values.update(QUERY_ARGUMENTS[rule.endpoint](record))
            if set(rule.arguments) - set(values):
                continue
            urls.append(url_for(rule.endpoint, **values))
    return sorted(set(urls))


def test_every_screen_renders_for_admin(app):
    client = login_as(app, "admin")
    urls = screen_urls(app)
    assert "/settings/" in urls and "/staff/list/" in urls
    failures = []
    for url in urls:
        response = client.get(url)
        if response.status_code not in (200, 302):
            failures.append(f"{url}: {response.status_code}")
        # Downloads (the lead funnel's Excel file) are binary: only pages are read as text.
        elif response.mimetype == "text/html" and "Traceback" in response.get_data(as_text=True):
            failures.append(f"{url}: traceback in page")
    assert not failures, failures


def test_health_and_login_are_public(client):
    assert client.get("/health").status_code == 200
    assert client.get("/login/").status_code == 200
    assert client.get("/").headers["Location"].startswith("/login/")


def test_demo_branches_are_believable(app):
    with app.app_context():
        branches = db.session.scalars(sa.select(Branch).order_by(Branch.code)).all()
        assert [(b.code, b.currency, b.time_zone) for b in branches] == [
            ("DT", "INR", "Asia/Kolkata"),
            ("LS", "INR", "Asia/Kolkata"),
        ]


# -- the demo's clinical data ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(app):
    """The seeded demo's clinical rows, read once (the module's tests only read them)."""
    with app.app_context():
        session = db.session
        data = {
            "branches": {b.id: b.code for b in session.scalars(sa.select(Branch))},
            "zones": {b.id: ZoneInfo(b.time_zone) for b in session.scalars(sa.select(Branch))},
            "users": {u.username: u.id for u in app.appbuilder.sm.get_all_users()},
            "patients": {p.id: p for p in session.scalars(sa.select(Patient))},
            "appointments": session.scalars(sa.select(Appointment).order_by(Appointment.id)).all(),
            "hours": session.scalars(sa.select(WorkingHours)).all(),
            "holidays": session.scalars(sa.select(Holiday)).all(),
            "leave": session.scalars(sa.select(DoctorLeave)).all(),
            "consultations": session.scalars(sa.select(Consultation)).all(),
            "prescriptions": session.scalars(sa.select(Prescription)).all(),
            "orders": session.scalars(sa.select(LabOrder)).all(),
            "tests": session.scalars(sa.select(LabTest)).all(),
        }
        for appointment in data["appointments"]:
            appointment.changes  # noqa: B018 - loaded before the session closes
        for prescription in data["prescriptions"]:
            prescription.items  # noqa: B018
        for order in data["orders"]:
            for result in order.results:
                result.test.ranges  # noqa: B018
        for test in data["tests"]:
            test.ranges  # noqa: B018
        session.expunge_all()
    return data


def test_about_two_hundred_believable_patients_at_both_branches(demo):
    patients = list(demo["patients"].values())
    assert len(patients) >= 190
    by_branch = Counter(demo["branches"][p.registered_branch_id] for p in patients)
    assert by_branch["DT"] >= 60 and by_branch["LS"] >= 60
    names = {p.full_name for p in patients}
    assert {"Zoë Laurent", "José Fernandes", "Søren Nørgaard"} <= names
    assert {p.sex for p in patients} >= {"female", "male"}
    for patient in patients:
        if patient.phone:
            number = phonenumbers.parse(patient.phone)
            assert patient.phone.startswith("+91") and phonenumbers.is_valid_number(number), patient.phone
    assert all(p.merged_into_id is None for p in patients), "the demo merges nobody"


def test_catalogue_and_doctor_profiles(app):
    with app.app_context():
        services = {s.name: s for s in db.session.scalars(sa.select(Service))}
        assert len(services) >= 12
        assert services["General consultation"].default_duration_min == 15
        assert services["Root canal"].default_duration_min == 60
        assert services["Root canal"].category == "Dental"
        tests = {t.code: t for t in db.session.scalars(sa.select(LabTest))}
        assert len(tests) >= 15
        haemoglobin = {(r.sex, r.age_min_years): (r.low, r.high) for r in tests["HB"].ranges}
        assert [float(v) for v in haemoglobin[("female", 12)]] == [12.0, 15.5]
        assert [float(v) for v in haemoglobin[("male", 12)]] == [13.5, 17.5]
        assert tests["BGRP"].unit is None and not tests["BGRP"].ranges
        sm = app.appbuilder.sm
        for username in ("doctor", "doctor2"):
            profile = db.session.get(StaffProfile, sm.find_user(username=username).id)
            assert profile.registration_number and profile.qualifications and profile.speciality
            assert profile.calendar_colour.startswith("#") and len(profile.calendar_colour) == 7


def test_appointments_in_every_status_at_both_branches(demo):
    seen = defaultdict(set)
    for appointment in demo["appointments"]:
        seen[demo["branches"][appointment.branch_id]].add(appointment.status)
    for code in ("DT", "LS"):
        assert seen[code] == set(APPOINTMENT_STATUSES), code
    assert sum(a.is_walk_in for a in demo["appointments"]) >= 4
    assert all(a.cancel_reason for a in demo["appointments"] if a.status == "cancelled")


def test_appointments_span_a_month_around_today(demo):
    today = datetime.now(timezone.utc).date()
    days = {aware(a.starts_at).date() for a in demo["appointments"]}
    assert min(days) <= today - timedelta(days=10)
    assert max(days) >= today + timedelta(days=10)
    statuses_ahead = {a.status for a in demo["appointments"] if aware(a.starts_at).date() > today + timedelta(days=1)}
    assert statuses_ahead <= {"booked", "confirmed", "cancelled"}


def test_no_doctor_has_two_live_appointments_at_once(demo):
    by_doctor = defaultdict(list)
    for appointment in demo["appointments"]:
        assert aware(appointment.ends_at) == aware(appointment.starts_at) + timedelta(
            minutes=appointment.duration_min
        )
        if appointment.status not in RELEASED_STATUSES:
            by_doctor[appointment.doctor_id].append((aware(appointment.starts_at), aware(appointment.ends_at)))
    assert len(by_doctor) == 2
    for intervals in by_doctor.values():
        intervals.sort()
        for (_, end), (start, _) in zip(intervals, intervals[1:]):
            assert start >= end


def test_booked_appointments_keep_to_the_roster(demo):
    hours = {(h.doctor_id, h.branch_id, h.weekday): h for h in demo["hours"]}
    closed = {(h.branch_id, h.day) for h in demo["holidays"]}
    away = defaultdict(set)
    for leave in demo["leave"]:
        day = leave.starts_on
        while day <= leave.ends_on:
            away[leave.doctor_id].add(day)
            day += timedelta(days=1)
    booked = [a for a in demo["appointments"] if not a.is_walk_in]
    assert len(booked) > 300
    for appointment in booked:
        zone = demo["zones"][appointment.branch_id]
        start = aware(appointment.starts_at).astimezone(zone)
        end = aware(appointment.ends_at).astimezone(zone)
        day = start.date()
        assert start.minute % 5 == 0 and end.date() == day
        shift = hours.get((appointment.doctor_id, appointment.branch_id, day.weekday()))
        assert shift is not None, f"#{appointment.id} on a day off"
        assert shift.start_time <= start.time() and end.time() <= shift.end_time, appointment.id
        assert end.time() <= shift.break_start or start.time() >= shift.break_end, appointment.id
        assert (appointment.branch_id, day) not in closed
        assert day not in away[appointment.doctor_id]
    doctor, doctor2 = demo["users"]["doctor"], demo["users"]["doctor2"]
    assert {h.weekday for h in demo["hours"] if h.doctor_id == doctor} == {0, 1, 2, 3, 4, 5}
    assert {h.weekday for h in demo["hours"] if h.doctor_id == doctor2} == {0, 1, 2, 3, 4}
    assert [leave.doctor_id for leave in demo["leave"]] == [doctor2]
    assert demo["leave"][0].starts_on > datetime.now(timezone.utc).date()
    assert len({h.branch_id for h in demo["holidays"]}) == 2


def test_every_appointment_has_its_history(demo):
    rescheduled = 0
    for appointment in demo["appointments"]:
        changes = appointment.changes
        assert changes[0].kind == "booked" and changes[0].to_status == "booked"
        statuses = [c for c in changes if c.kind == "status"]
        path = ["booked"] + [c.to_status for c in statuses]
        assert path[-1] == appointment.status, appointment.id
        assert all(c.from_status == before for c, before in zip(statuses, path)), appointment.id
        # (changes come ordered by time, so "booked" above is also the earliest)
        assert max(aware(c.changed_at) for c in changes) <= datetime.now(timezone.utc)
        assert aware(appointment.created_at) == aware(changes[0].changed_at)
        rescheduled += any(c.kind == "rescheduled" for c in changes)
        if appointment.status in ("arrived", "in_consultation", "completed"):
            assert appointment.checked_in_at is not None
    assert rescheduled >= 2


def test_visits_have_consultations_with_vitals_in_their_units(demo):
    consultations = {c.appointment_id: c for c in demo["consultations"]}
    for appointment in demo["appointments"]:
        has_visit = appointment.status in ("completed", "in_consultation")
        assert (appointment.id in consultations) is has_visit, appointment.id
        if has_visit:
            consultation = consultations[appointment.id]
            assert consultation.patient_id == appointment.patient_id
            assert consultation.doctor_id == appointment.doctor_id
            assert consultation.branch_id == appointment.branch_id
            assert (consultation.completed_at is not None) is (appointment.status == "completed")
    done = [c for c in demo["consultations"] if c.completed_at]
    assert all(c.diagnosis for c in done)
    assert sum(bool(c.diagnosis_code) for c in done) > len(done) // 2
    units = Counter((c.temperature_unit, c.weight_unit, c.height_unit) for c in demo["consultations"])
    assert {u[0] for u in units} == {"C", "F"} and {u[1] for u in units} == {"kg", "lb"}
    for consultation in demo["consultations"]:
        if consultation.temperature_c is not None:
            assert 35 <= consultation.temperature_c <= 41  # stored in °C whatever was typed
        if consultation.weight_kg is not None:
            assert 2 < consultation.weight_kg < 150


def test_most_visits_end_with_a_prescription(demo):
    prescriptions = demo["prescriptions"]
    done = [c for c in demo["consultations"] if c.completed_at]
    with_rx = {p.consultation_id for p in prescriptions}
    assert len(with_rx) > len(done) // 2
    for prescription in prescriptions:
        assert 1 <= len(prescription.items) <= 4
        assert all(item.patient_id == prescription.patient_id for item in prescription.items)
        assert all(item.quantity > 0 for item in prescription.items)
    corrections = [p for p in prescriptions if p.supersedes_id]
    assert len(corrections) >= 2
    by_id = {p.id: p for p in prescriptions}
    for correction in corrections:
        earlier = by_id[correction.supersedes_id]
        assert correction.version == earlier.version + 1 and earlier.status == "superseded"
        assert aware(correction.created_at) - aware(earlier.created_at) > timedelta(hours=24)
    medicines = {item.medicine for p in prescriptions for item in p.items}
    assert {"Paracetamol", "Amoxicillin", "Chlorhexidine mouthwash"} <= medicines


def expected_range(test: LabTest, patient: Patient, day) -> tuple:
    """What a lab applies, worked out afresh: the patient's sex wins, then the narrowest age band."""
    born = patient.date_of_birth
    age = day.year - born.year - ((day.month, day.day) < (born.month, born.day))
    fitting = [
        r for r in test.ranges
        if r.sex in ("any", patient.sex)
        and r.age_min_years <= age
        and (r.age_max_years is None or age < r.age_max_years)
    ]
    if not fitting:
        return None, None
    best = sorted(fitting, key=lambda r: (r.sex == "any", (r.age_max_years or 200) - r.age_min_years))[0]
    return best.low, best.high


def test_lab_orders_in_every_status_with_flags_from_the_ranges(demo):
    orders = demo["orders"]
    assert {o.status for o in orders} == {
        "ordered", "collected", "in_progress", "resulted", "verified", "cancelled"
    }
    technicians = {demo["users"]["labtech"], demo["users"]["labtech_b"]}
    flags = Counter()
    for order in orders:
        assert order.results, order.id
        assert (order.cancel_reason is not None) is (order.status == "cancelled")
        assert (order.collected_at is not None) is (order.status not in ("ordered", "cancelled"))
        reported = order.status in ("resulted", "verified")
        assert (order.resulted_by_id is not None) is reported
        if order.status == "verified":
            assert order.verified_by_id not in (None, order.resulted_by_id)
            assert {order.resulted_by_id, order.verified_by_id} <= technicians
        patient = demo["patients"][order.patient_id]
        day = aware(order.collected_at or order.created_at).date()
        for result in order.results:
            assert result.patient_id == order.patient_id
            assert (result.reference_low, result.reference_high) == expected_range(result.test, patient, day)
            if not reported:
                assert result.value_numeric is None and result.value_text is None and result.flag is None
            elif result.test.unit:
                value, low, high = result.value_numeric, result.reference_low, result.reference_high
                expected = "low" if low is not None and value < low else (
                    "high" if high is not None and value > high else "normal"
                )
                assert result.flag == expected, (result.test.code, value, low, high)
                flags[result.flag] += 1
            else:
                assert result.value_text and result.flag in (None, "abnormal")
    assert flags["normal"] and flags["high"] and flags["low"]
    assert any(o.consultation_id is None for o in orders), "orders made directly, without a visit"


def test_a_second_seed_run_adds_nothing(app):
    before = counts(app)
    assert before["appointment"] > 300 and before["lab_result"] > 50
    result = app.test_cli_runner().invoke(args=["clinic", "seed-demo", "--password", PASSWORD])
    assert result.exit_code == 0, result.output
    assert counts(app) == before
