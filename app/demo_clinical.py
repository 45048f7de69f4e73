"""Demo data for the clinical core: catalogues, doctors' rosters and a month of clinic life.

``seed_clinical`` is called by ``app.demo.seed_demo``. Catalogues, profiles, rosters and
holidays are found again by their natural keys and added only when missing. The activity (about
two weeks of past and two weeks of coming appointments with their history, consultations,
prescriptions and lab orders) is seeded once, when the demo doctors have no appointment yet: a
second run adds nothing.

Rows are written directly with the models (the booking, consultation and lab services check
what people type; the demo is built to satisfy every rule by construction): appointments sit on
a non-overlapping grid inside working hours, lab flags come from the reference range a lab
would pick. Everything is drawn from generators seeded with the day and the doctor, so the same
day gives the same clinic.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from flask_appbuilder.security.sqla.models import User
from sqlalchemy import select

from app.demo_clinical_data import (
    AMOXICILLIN,
    AZITHROMYCIN,
    BLOOD_GROUPS,
    BY_SERVICE,
    CANCEL_REASONS,
    DEMO_LAB_TESTS,
    DEMO_PROFILES,
    DEMO_ROSTERS,
    DEMO_SERVICES,
    DEMO_TESTS_BY_CODE,
    DENTAL,
    FOLLOW_UP_DENTAL,
    HEALTH_CHECK,
    INACTIVE_SERVICES,
    LAB_CANCEL_REASONS,
    MEDICAL,
    PARACETAMOL,
    URINE_ABNORMAL,
    URINE_NORMAL,
    Condition,
    DemoRoster,
    Item,
)
from app.extensions import db
from app.models.base import utcnow
from app.models.consultations import Consultation, Prescription, PrescriptionItem
from app.models.lab import LabOrder, LabReferenceRange, LabResult, LabResultAmendment, LabTest
from app.models.org import Branch
from app.models.patients import Patient, PatientClinical
from app.models.scheduling import (
    Appointment,
    AppointmentChange,
    DoctorLeave,
    Holiday,
    Service,
    StaffProfile,
    WorkingHours,
)
from app.services.lab import age_on, flag_for, select_range

#: The demo users who collect samples, enter and verify results (a second one verifies).
LAB_TECHNICIANS = ("labtech", "labtech_b")
#: Days of past and coming appointments around today.
DAYS_BACK = 14
DAYS_AHEAD = 14


# -- small helpers --------------------------------------------------------------------------------


def _places(value: float, places: int) -> Decimal:
    return Decimal(str(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def _local(day: date, at: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=zone)


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc)


# -- catalogue, profiles, rosters -----------------------------------------------------------------


def seed_catalogue() -> tuple[dict[str, Service], dict[str, LabTest]]:
    """The services and lab tests not there yet (found by name and by code)."""
    services = {s.name: s for s in db.session.scalars(select(Service))}
    for name, category, minutes, description in DEMO_SERVICES:
        if name not in services:
            services[name] = Service(
                name=name, category=category, default_duration_min=minutes,
                description=description, is_active=name not in INACTIVE_SERVICES,
            )
            db.session.add(services[name])
    tests = {t.code: t for t in db.session.scalars(select(LabTest))}
    for demo in DEMO_LAB_TESTS:
        if demo.code in tests:
            continue
        test = LabTest(
            code=demo.code, name=demo.name, sample_type=demo.sample_type, unit=demo.unit,
            turnaround_hours=demo.turnaround_hours,
        )
        test.ranges = [
            LabReferenceRange(
                sex=sex, age_min_years=age_min, age_max_years=age_max,
                low=Decimal(low) if low else None, high=Decimal(high) if high else None,
            )
            for sex, age_min, age_max, low, high in demo.ranges
        ]
        tests[demo.code] = test
        db.session.add(test)
    db.session.flush()
    return services, tests


def next_date(today: date, month: int, day: int) -> date:
    """The next ``month``/``day`` on or after today."""
    this_year = date(today.year, month, day)
    return this_year if this_year >= today else date(today.year + 1, month, day)


def demo_holidays(today: date) -> dict[str, list[tuple[date, str]]]:
    return {
        "DT": [(next_date(today, 12, 25), "Christmas Day"), (next_date(today, 1, 26), "Republic Day")],
        "LS": [(next_date(today, 12, 25), "Christmas Day"), (next_date(today, 8, 15), "Independence Day")],
    }


def demo_leave(today: date) -> tuple[date, date]:
    """doctor2's short leave: the Thursday and Friday of the second week ahead."""
    start = today + timedelta(days=8)
    start += timedelta(days=(3 - start.weekday()) % 7)
    return start, start + timedelta(days=1)


def seed_staff(users: dict[str, User], branches: dict[str, Branch], today: date) -> None:
    """Doctors' profiles, working hours, branch holidays and doctor2's coming leave."""
    for username, profile in DEMO_PROFILES.items():
        user = users[username]
        if db.session.get(StaffProfile, user.id) is None:
            db.session.add(StaffProfile(user_id=user.id, **profile))
    for roster in DEMO_ROSTERS:
        doctor, branch = users[roster.doctor], branches[roster.branch]
        have = set(db.session.scalars(
            select(WorkingHours.weekday).where(
                WorkingHours.doctor_id == doctor.id, WorkingHours.branch_id == branch.id
            )
        ))
        for weekday in roster.weekdays:
            if weekday not in have:
                db.session.add(WorkingHours(
                    doctor_id=doctor.id, branch_id=branch.id, weekday=weekday,
                    start_time=roster.start, end_time=roster.end,
                    break_start=roster.break_start, break_end=roster.break_end,
                ))
    for code, holidays in demo_holidays(today).items():
        branch = branches[code]
        have = set(db.session.scalars(select(Holiday.day).where(Holiday.branch_id == branch.id)))
        for day, name in holidays:
            if day not in have:
                db.session.add(Holiday(branch_id=branch.id, day=day, name=name))
    doctor2 = users["doctor2"]
    coming = db.session.scalar(
        select(DoctorLeave.id).where(DoctorLeave.doctor_id == doctor2.id, DoctorLeave.ends_on >= today)
    )
    if coming is None:
        starts_on, ends_on = demo_leave(today)
        db.session.add(DoctorLeave(
            doctor_id=doctor2.id, starts_on=starts_on, ends_on=ends_on, note="Dental conference, Chennai",
        ))
    db.session.flush()


# -- a month of clinic life -----------------------------------------------------------------------


@dataclass
class Visit:
    """One planned appointment before it becomes rows."""

    roster: DemoRoster
    day: date
    start: datetime  # branch-local
    minutes: int
    service: Service
    status: str = "booked"
    walk_in: bool = False
    patient: Patient | None = None
    appointment: Appointment | None = None

    @property
    def end(self) -> datetime:
        return self.start + timedelta(minutes=self.minutes)


class ClinicMonth:
    """Builds the demo doctors' appointments around ``now`` and what came of them."""

    def __init__(
        self, now: datetime, users: dict[str, User], branches: dict[str, Branch],
        services: dict[str, Service], tests: dict[str, LabTest],
    ) -> None:
        self.now = now
        self.users = users
        self.branches = branches
        self.services = services
        self.tests = tests
        self.visits: list[Visit] = []
        self.booked_days: set[tuple[int, date]] = set()
        self.last_condition: dict[tuple[str, int], Condition] = {}
        self.consultations: list[tuple[Visit, Consultation, Condition]] = []
        self.prescriptions: list[Prescription] = []
        self.orders: list[tuple[LabOrder, Condition, Patient]] = []
        patients = db.session.scalars(
            select(Patient).where(Patient.merged_into_id.is_(None)).order_by(Patient.id)
        ).all()
        self.pools = {code: [] for code in branches}
        codes = {branch.id: code for code, branch in branches.items()}
        seen = set()
        for patient in patients:
            # A record that looks like a second registration of someone gets no visits: merging
            # it stays a clean demonstration.
            keys = {("phone", patient.phone_digits), ("name", patient.name_search, patient.date_of_birth)}
            if keys & seen:
                continue
            seen |= {key for key in keys if key[1]}
            code = codes.get(patient.registered_branch_id)
            if code is not None:  # patients of branches the demo did not make stay out of it
                self.pools[code].append(patient)
        self.allergies = {
            c.patient_id: (c.allergies or "").lower() for c in db.session.scalars(select(PatientClinical))
        }

    # planning ---------------------------------------------------------------

    def zone(self, roster: DemoRoster) -> ZoneInfo:
        return ZoneInfo(self.branches[roster.branch].time_zone)

    def works_on(self, roster: DemoRoster, day: date, closed: set[date]) -> bool:
        return day.weekday() in roster.weekdays and day not in closed

    def grid(self, roster: DemoRoster, day: date, rng: random.Random, until: time) -> list[Visit]:
        """Back-to-back appointments (with small gaps) through the working day, around the break."""
        zone = self.zone(roster)
        t = _local(day, roster.start, zone) + timedelta(minutes=5 * rng.choice((0, 0, 1, 2)))
        pause, resume = _local(day, roster.break_start, zone), _local(day, roster.break_end, zone)
        closing = _local(day, min(until, roster.end), zone)
        visits = []
        while t < closing:
            service = self.services[rng.choice(roster.services)]
            minutes = service.default_duration_min
            finish = t + timedelta(minutes=minutes)
            if t < resume and finish > pause:
                t = resume + timedelta(minutes=5 * rng.choice((0, 0, 1)))
                continue
            if finish > closing:
                break
            visits.append(Visit(roster, day, t, minutes, service))
            t = finish + timedelta(minutes=5 * rng.choice((0, 0, 0, 1, 1, 2, 3)))
        return visits

    def plan(self, roster: DemoRoster, closed: set[date]) -> None:
        zone = self.zone(roster)
        now_local = self.now.astimezone(zone)
        today = now_local.date()
        for offset in range(-DAYS_BACK, DAYS_AHEAD + 1):
            day = today + timedelta(days=offset)
            rng = random.Random(f"{roster.doctor}:{day.isoformat()}")
            if not self.works_on(roster, day, closed):
                if offset == 0:
                    self.visits.extend(self.walk_ins_today(roster, now_local, rng))
                continue
            until = roster.end if offset < 0 else roster.quiet_from
            fill = 0.85 if offset <= 1 else max(0.3, 0.85 - 0.04 * offset)
            visits = [v for v in self.grid(roster, day, rng, until) if rng.random() < fill]
            if offset < 0:
                for visit in visits:
                    roll = rng.random()
                    visit.status = "no_show" if roll < 0.07 else "cancelled" if roll < 0.15 else "completed"
                    visit.walk_in = visit.status == "completed" and rng.random() < 0.07
            elif offset == 0:
                self.today(visits, now_local)
            else:
                for visit in visits:
                    roll = rng.random()
                    confirmed = 0.6 if offset <= 2 else 0.2
                    visit.status = "cancelled" if roll < 0.05 else "confirmed" if roll < 0.05 + confirmed else "booked"
            self.visits.extend(visits)

    def today(self, visits: list[Visit], now_local: datetime) -> None:
        """Finished before now, one patient with the doctor, two waiting, the rest to come."""
        if not visits:
            return
        current = next((i for i, v in enumerate(visits) if v.end > now_local), len(visits) - 1)
        # Outside clinic hours the day still shows every stage of a visit.
        current = max(min(current, len(visits) - 3), min(2, len(visits) - 1))
        for i, visit in enumerate(visits):
            if i < current:
                visit.status = "no_show" if i == 1 else "completed"
                visit.walk_in = visit.status == "completed" and i == current - 1
            elif i == current:
                visit.status = "in_consultation"
            elif i <= current + 2:
                visit.status = "arrived"
                visit.walk_in = i == current + 2
            elif i == current + 4:
                visit.status = "cancelled"
            else:
                visit.status = "confirmed" if i % 2 else "booked"

    def walk_ins_today(self, roster: DemoRoster, now_local: datetime, rng: random.Random) -> list[Visit]:
        """A day off the roster still sees patients who walk in (outside working hours is allowed)."""
        day = now_local.date()
        base = now_local.replace(minute=now_local.minute - now_local.minute % 5, second=0, microsecond=0)
        base = min(max(base, _local(day, time(10, 30), base.tzinfo)), _local(day, time(19, 0), base.tzinfo))
        service = self.services[roster.services[0]]
        step = timedelta(minutes=service.default_duration_min)
        starts = (base - 2 * step, base - step, base + timedelta(minutes=5))
        return [
            Visit(roster, day, start, service.default_duration_min, service, status, walk_in=True)
            for start, status in zip(starts, ("completed", "in_consultation", "arrived"))
        ]

    def choose_patients(self) -> None:
        busy: dict[int, list[tuple[datetime, datetime]]] = {}
        seen_by: dict[str, list[Patient]] = {}
        for visit in sorted(self.visits, key=lambda v: v.start):
            rng = random.Random(f"patient:{visit.roster.doctor}:{visit.start.isoformat()}")
            other = next(code for code in self.pools if code != visit.roster.branch)
            for _attempt in range(40):
                earlier = seen_by.get(visit.roster.doctor, [])
                if visit.service.name == "Follow-up" and earlier and rng.random() < 0.9:
                    patient = rng.choice(earlier)
                else:
                    pool = self.pools[visit.roster.branch if rng.random() < 0.85 else other]
                    patient = rng.choice(pool)
                overlap = any(s < visit.end and visit.start < e for s, e in busy.get(patient.id, ()))
                if (patient.id, visit.day) not in self.booked_days and not overlap:
                    break
            visit.patient = patient
            self.booked_days.add((patient.id, visit.day))
            busy.setdefault(patient.id, []).append((visit.start, visit.end))
            if visit.status == "completed":
                seen_by.setdefault(visit.roster.doctor, []).append(patient)

    # rows -------------------------------------------------------------------

    def at(self, moment: datetime) -> datetime:
        """A history time, never later than now (events of a day seeded before it happened)."""
        return min(_utc(moment), self.now)

    def write_appointments(self) -> None:
        for visit in sorted(self.visits, key=lambda v: v.start):
            self.write_appointment(visit)
        db.session.flush()

    def write_appointment(self, visit: Visit) -> None:
        rng = random.Random(f"history:{visit.roster.doctor}:{visit.start.isoformat()}")
        doctor, desk = self.users[visit.roster.doctor], self.users[visit.roster.desk]
        branch = self.branches[visit.roster.branch]
        start = _utc(visit.start)
        if visit.walk_in:
            booked_at = start - timedelta(minutes=rng.choice((3, 5, 10)))
        else:
            lead = timedelta(days=rng.choice((1, 1, 2, 3, 5, 7, 10, 14)), hours=rng.randint(-3, 3))
            booked_at = min(start - lead, self.now - timedelta(minutes=rng.randint(30, 600)))
        booked_by = doctor if visit.service.name == "Follow-up" and rng.random() < 0.4 else desk
        appointment = Appointment(
            patient=visit.patient, doctor_id=doctor.id, branch_id=branch.id, service_id=visit.service.id,
            starts_at=start, duration_min=visit.minutes, ends_at=_utc(visit.end), status=visit.status,
            reason=visit.service.name if rng.random() < 0.5 else None, is_walk_in=visit.walk_in,
            booked_by_id=booked_by.id, created_at=self.at(booked_at),
            notes="Prefers Kannada-speaking staff" if rng.random() < 0.03 else None,
        )
        visit.appointment = appointment
        changes = [AppointmentChange(
            kind="booked", to_status="booked", to_starts_at=start, to_doctor_id=doctor.id,
            changed_by_id=booked_by.id, changed_at=self.at(booked_at),
        )]
        if not visit.walk_in and start - booked_at > timedelta(days=2) and rng.random() < 0.06:
            moved_at = booked_at + timedelta(days=1)
            changes.append(AppointmentChange(
                kind="rescheduled", from_starts_at=start + timedelta(days=2), to_starts_at=start,
                from_doctor_id=doctor.id, to_doctor_id=doctor.id, changed_by_id=desk.id,
                changed_at=self.at(moved_at), note="Patient asked for an earlier day",
            ))
        status = "booked"

        def step(to_status: str, when: datetime, by: User = desk, note: str | None = None) -> None:
            nonlocal status
            changes.append(AppointmentChange(
                kind="status", from_status=status, to_status=to_status, changed_by_id=by.id,
                changed_at=self.at(when), note=note,
            ))
            status = to_status

        confirm = not visit.walk_in and visit.status != "booked" and rng.random() < 0.6
        if visit.status == "confirmed" or confirm:
            step("confirmed", max(booked_at, start - timedelta(days=1, hours=rng.randint(0, 5))))
        if visit.status == "cancelled":
            appointment.cancel_reason = rng.choice(CANCEL_REASONS)
            step("cancelled", start - timedelta(hours=rng.randint(2, 20)), note=appointment.cancel_reason)
        elif visit.status == "no_show":
            step("no_show", start + timedelta(minutes=30))
        elif visit.status in ("arrived", "in_consultation", "completed"):
            arrived = booked_at if visit.walk_in else start - timedelta(minutes=rng.randint(2, 15))
            appointment.checked_in_at = self.at(arrived)
            step("arrived", arrived)
            if visit.status in ("in_consultation", "completed"):
                step("in_consultation", start + timedelta(minutes=rng.randint(0, 3)), by=doctor)
            if visit.status == "completed":
                step("completed", visit.end, by=doctor)
        appointment.changes = changes
        appointment.updated_at = max(change.changed_at for change in changes)
        db.session.add(appointment)


    # visits -----------------------------------------------------------------

    def condition_for(self, visit: Visit, rng: random.Random) -> Condition:
        key = (visit.roster.doctor, visit.patient.id)
        dental = visit.service.name in DENTAL or visit.roster.branch == "LS"
        name = visit.service.name
        previous = self.last_condition.get(key)
        if name == "Follow-up":
            if previous is not None:
                return follow_up(previous)
            condition = FOLLOW_UP_DENTAL if dental else rng.choice(MEDICAL)
        elif name in DENTAL:
            condition = rng.choice(DENTAL[name])
        else:
            condition = rng.choice(BY_SERVICE.get(name, MEDICAL))
        self.last_condition[key] = condition
        return condition

    def vitals(self, visit: Visit, condition: Condition, rng: random.Random) -> dict:
        patient = visit.patient
        age = age_on(patient, visit.day)
        age = 35 if age is None else age
        body = random.Random(f"body:{patient.id}")
        female = patient.sex == "female"
        values: dict = {}
        if age >= 12:
            systolic = rng.randint(142, 168) if condition.hypertensive else rng.randint(104, 136)
            values["bp_systolic"] = systolic
            values["bp_diastolic"] = int(systolic * 0.62) + rng.randint(-3, 8)
        values["pulse_bpm"] = (rng.randint(84, 118) if age < 12 else rng.randint(62, 94)) + (
            12 if condition.fever else 0
        )
        if visit.roster.branch == "LS":
            return values  # the dentist takes BP and pulse before local anaesthesia
        values["spo2_percent"] = rng.randint(91, 94) if condition.low_spo2 else rng.randint(96, 99)
        celsius = rng.uniform(37.8, 39.2) if condition.fever else rng.uniform(36.4, 37.2)
        if rng.random() < 0.15:
            fahrenheit = round(celsius * 9 / 5 + 32, 1)
            values["temperature_c"] = _places((fahrenheit - 32) * 5 / 9, 1)
            values["temperature_unit"] = "F"
        else:
            values["temperature_c"] = _places(celsius, 1)
        if age < 12:
            kilograms = 3.5 + 2.6 * age + body.uniform(-1.5, 1.5)
            centimetres = 52 + 6.4 * age + body.uniform(-3, 3)
        else:
            kilograms = body.uniform(46, 82) if female else body.uniform(56, 96)
            centimetres = body.uniform(148, 170) if female else body.uniform(160, 186)
        kilograms += rng.uniform(-0.6, 0.6)
        if rng.random() < 0.12:
            pounds = round(kilograms * 2.20462)
            values["weight_kg"], values["weight_unit"] = _places(pounds * 0.45359237, 1), "lb"
        else:
            values["weight_kg"] = _places(kilograms, 1)
        if rng.random() < 0.6:
            if rng.random() < 0.1:
                inches = round(centimetres / 2.54)
                values["height_cm"], values["height_unit"] = _places(inches * 2.54, 1), "in"
            else:
                values["height_cm"] = _places(centimetres, 1)
        return values

    def write_consultations(self) -> None:
        for visit in sorted(self.visits, key=lambda v: v.start):
            if visit.status not in ("completed", "in_consultation"):
                continue
            rng = random.Random(f"visit:{visit.roster.doctor}:{visit.start.isoformat()}")
            condition = self.condition_for(visit, rng)
            appointment, patient = visit.appointment, visit.patient
            done = visit.status == "completed"
            consultation = Consultation(
                appointment=appointment, patient_id=patient.id, doctor_id=appointment.doctor_id,
                branch_id=appointment.branch_id, complaints=condition.complaints,
                examination=condition.examination if done else None,
                diagnosis=condition.diagnosis if done else None,
                diagnosis_code=condition.code if done and rng.random() < 0.8 else None,
                plan=condition.plan if done else None,
                completed_at=self.at(visit.end) if done else None,
                created_at=self.at(visit.start + timedelta(minutes=2)),
                **self.vitals(visit, condition, rng),
            )
            consultation.updated_at = consultation.completed_at or consultation.created_at
            db.session.add(consultation)
            self.consultations.append((visit, consultation, condition))
            if done and condition.items and rng.random() < 0.9:
                self.prescribe(visit, consultation, condition, rng)
            if visit.roster.branch == "DT" and condition.tests and (
                condition is HEALTH_CHECK or rng.random() < 0.7
            ):
                self.order_tests(visit, consultation, condition, rng)
        db.session.flush()

    def prescribe(self, visit: Visit, consultation: Consultation, condition: Condition, rng: random.Random) -> None:
        items = list(condition.items)
        if "penicillin" in self.allergies.get(visit.patient.id, ""):
            items = [AZITHROMYCIN if item is AMOXICILLIN else item for item in items]
        if condition.fever and PARACETAMOL not in items and len(items) < 4:
            items.append(PARACETAMOL)
        when = self.at(visit.end)
        prescription = Prescription(
            patient_id=visit.patient.id, doctor_id=consultation.doctor_id, branch_id=consultation.branch_id,
            consultation=consultation, prescribed_on=visit.day, advice=condition.advice,
            follow_up_on=visit.day + timedelta(days=condition.follow_up_days) if condition.follow_up_days else None,
            status="active", version=1, created_at=when, updated_at=when,
        )
        prescription.items = [prescription_item(visit.patient.id, position, item) for position, item in enumerate(items)]
        db.session.add(prescription)
        self.prescriptions.append(prescription)

    def supersede_some(self) -> None:
        """A couple of prescriptions corrected after the 24-hour edit window: version 2 of each."""
        cutoff = self.now.date() - timedelta(days=3)
        for doctor in ("doctor", "doctor2"):
            doctor_id = self.users[doctor].id
            candidates = [
                p for p in self.prescriptions
                if p.doctor_id == doctor_id and p.prescribed_on <= cutoff and p.items
            ]
            if not candidates:
                continue
            first = candidates[len(candidates) // 3]
            first.status = "superseded"
            when = first.created_at + timedelta(days=1, hours=2)
            second = Prescription(
                patient_id=first.patient_id, doctor_id=first.doctor_id, branch_id=first.branch_id,
                consultation=first.consultation, prescribed_on=when.date(), advice=first.advice,
                follow_up_on=first.follow_up_on, status="active", version=2, supersedes=first,
                created_at=when, updated_at=when,
            )
            items = []
            for position, item in enumerate(first.items):
                copy = PrescriptionItem(
                    patient_id=item.patient_id, position=position, medicine=item.medicine,
                    strength=item.strength, dose=item.dose, frequency=item.frequency, route=item.route,
                    duration=item.duration, quantity=item.quantity, instructions=item.instructions,
                )
                if position == 0:
                    copy.duration = "7 days" if copy.duration != "7 days" else "10 days"
                    copy.instructions = "Course lengthened after review by phone"
                items.append(copy)
            second.items = items
            first.updated_at = when
            db.session.add(second)
        db.session.flush()

    # lab --------------------------------------------------------------------

    def order_tests(self, visit: Visit, consultation: Consultation, condition: Condition, rng: random.Random) -> None:
        roll = rng.random()
        order = LabOrder(
            patient_id=visit.patient.id, consultation=consultation, ordered_by_id=consultation.doctor_id,
            branch_id=consultation.branch_id,
            priority="stat" if roll < 0.04 else "urgent" if condition.fever and roll < 0.4 else "routine",
            clinical_notes=f"? {condition.diagnosis}" if condition is not HEALTH_CHECK else "Yearly check-up",
            created_at=self.at(visit.end - timedelta(minutes=2)),
        )
        db.session.add(order)
        self.orders.append((order, condition, visit.patient))

    def direct_orders(self) -> None:
        """Orders without a visit: a doctor's request over the phone for two known patients."""
        doctor, branch = self.users["doctor"], self.branches["DT"]
        zone = ZoneInfo(branch.time_zone)
        today = self.now.astimezone(zone).date()
        requests = (
            (5, HEALTH_CHECK, "Pre-employment health check", ("HB", "FBS", "URINE", "BGRP")),
            (1, MEDICAL[3], "Three-monthly diabetes review", ("HBA1C", "FBS", "CREAT")),
        )
        for (days_ago, condition, note, codes), patient in zip(requests, self.pools["DT"][5::40]):
            condition = Condition(**{**condition.__dict__, "tests": codes})
            order = LabOrder(
                patient_id=patient.id, ordered_by_id=doctor.id, branch_id=branch.id, priority="routine",
                clinical_notes=note,
                created_at=self.at(_local(today - timedelta(days=days_ago), time(9, 20), zone)),
            )
            db.session.add(order)
            self.orders.append((order, condition, patient))

    def progress_orders(self) -> None:
        """The latest orders still in the lab, every stage represented; older ones verified."""
        recent_first = sorted(self.orders, key=lambda entry: entry[0].created_at, reverse=True)
        stages = ("ordered", "ordered", "collected", "collected", "in_progress", "in_progress",
                  "resulted", "resulted", "resulted")
        amended = False
        for rank, (order, condition, patient) in enumerate(recent_first):
            if rank < len(stages):
                status = stages[rank]
            elif rank in (12, 31):
                status = "cancelled"
            else:
                status = "resulted" if rank % 11 == 0 else "verified"
            rng = random.Random(f"lab:{patient.id}:{order.created_at.isoformat()}")
            self.progress(order, condition, patient, status, rng)
            if status == "verified" and not amended:
                amended = self.amend(order)
        db.session.flush()

    def progress(self, order: LabOrder, condition: Condition, patient: Patient, status: str, rng: random.Random) -> None:
        technicians = [self.users[name] for name in LAB_TECHNICIANS if name in self.users]
        collector = rng.choice(technicians)
        order.status = status
        if status == "cancelled":
            order.cancel_reason = rng.choice(LAB_CANCEL_REASONS)
        if status not in ("ordered", "cancelled"):
            order.collected_at = self.at(order.created_at + timedelta(minutes=rng.randint(10, 40)))
            order.collected_by_id = collector.id
        order_day = (order.collected_at or order.created_at).date()
        results = []
        for code in condition.tests:
            test = self.tests[code]
            reference = select_range(test, patient, order_day)
            results.append(LabResult(
                patient_id=patient.id, test=test, unit=test.unit,
                reference_low=reference.low if reference else None,
                reference_high=reference.high if reference else None,
            ))
        order.results = results
        if status in ("resulted", "verified"):
            hours = max(self.tests[code].turnaround_hours for code in condition.tests)
            resulter = rng.choice(technicians)
            order.resulted_at = self.at(order.collected_at + timedelta(hours=hours * rng.uniform(0.3, 0.9)))
            order.resulted_by_id = resulter.id
            for result in results:
                self.enter_value(result, condition, rng)
            if status == "verified":
                others = [user for user in technicians if user is not resulter] or [self.users["admin"]]
                order.verified_by_id = others[0].id
                order.verified_at = self.at(order.resulted_at + timedelta(minutes=rng.randint(20, 120)))
        order.updated_at = order.verified_at or order.resulted_at or order.collected_at or order.created_at

    def enter_value(self, result: LabResult, condition: Condition, rng: random.Random) -> None:
        demo = DEMO_TESTS_BY_CODE[result.test.code]
        direction = condition.abnormal.get(demo.code) if rng.random() < 0.85 else None
        if demo.unit is None:
            if demo.code == "URINE":
                result.value_text = URINE_ABNORMAL if direction else rng.choice(URINE_NORMAL)
                result.flag = "abnormal" if direction else None
            else:
                result.value_text = rng.choice(BLOOD_GROUPS)
            return
        if direction is None and rng.random() < 0.08:
            direction = "high"  # an incidental finding
        low = float(result.reference_low) if result.reference_low is not None else None
        high = float(result.reference_high) if result.reference_high is not None else None
        if low is None and high is None:
            first = demo.ranges[0]
            low, high = (float(first[3]) if first[3] else None), (float(first[4]) if first[4] else None)
        if direction == "high" and high is not None:
            value = rng.uniform(high * 1.08, high * 1.6)
        elif direction == "low" and low is not None:
            value = rng.uniform(low * 0.55, low * 0.9)
        elif low is not None and high is not None:
            span = high - low
            value = rng.uniform(low + 0.1 * span, high - 0.1 * span)
        else:
            value = rng.uniform((high or 10) * 0.4, (high or 10) * 0.95)
        result.value_numeric = _places(value, demo.places)
        result.flag = flag_for(result.value_numeric, result.reference_low, result.reference_high)
        if result.flag in ("high", "low") and rng.random() < 0.3:
            result.comment = "Repeat in 3 months" if rng.random() < 0.5 else "Informed the doctor"

    def amend(self, order: LabOrder) -> bool:
        """One verified result corrected after verification (a transcription slip)."""
        result = next((r for r in order.results if r.value_numeric is not None), None)
        if result is None:
            return False
        slip = result.value_numeric + Decimal(1) if result.value_numeric < 50 else result.value_numeric + 10
        db.session.add(LabResultAmendment(
            result=result, patient_id=result.patient_id, old_value=plain(slip),
            new_value=plain(result.value_numeric),
            reason="Transcription slip: value re-read from the analyser printout",
            amended_by_id=order.verified_by_id,
            amended_at=self.at(order.verified_at + timedelta(hours=3)),
        ))
        return True


def follow_up(previous: Condition) -> Condition:
    """The review visit of an earlier illness: chronic treatment goes on, acute is done."""
    chronic = (previous.follow_up_days or 0) >= 30
    return Condition(
        complaints=f"Review: {previous.diagnosis.lower()}. Feeling better.",
        examination="Improving since the last visit.",
        diagnosis=previous.diagnosis, code=previous.code,
        plan="Continue the same treatment." if chronic else "Treatment complete; no further medicines.",
        items=previous.items if chronic else (),
        advice=previous.advice,
        follow_up_days=previous.follow_up_days if chronic else None,
        hypertensive=previous.hypertensive,
    )


def prescription_item(patient_id: int, position: int, item: Item) -> PrescriptionItem:
    medicine, strength, dose, frequency, route, duration, quantity, instructions = item
    return PrescriptionItem(
        patient_id=patient_id, position=position, medicine=medicine, strength=strength, dose=dose,
        frequency=frequency, route=route, duration=duration, quantity=Decimal(quantity),
        instructions=instructions,
    )


def plain(value: Decimal) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def check_no_overlap(visits: list[Visit]) -> None:
    """The grid promises no two live appointments of a doctor overlap; hold it to that."""
    live = sorted(
        (v for v in visits if v.status not in ("cancelled", "no_show")),
        key=lambda v: (v.roster.doctor, v.start),
    )
    for before, after in zip(live, live[1:]):
        if before.roster.doctor == after.roster.doctor and after.start < before.end:
            raise AssertionError(f"demo appointments overlap: {before.start} and {after.start}")


def seed_clinical(
    users: dict[str, User], branches: dict[str, Branch], now: datetime | None = None
) -> bool:
    """Catalogues, doctors' profiles and rosters; then, once, a month of visits around ``now``.

    Returns whether the month of visits was added (False when the demo doctors already had
    appointments).
    """
    now = now or utcnow()
    zone = ZoneInfo(branches["DT"].time_zone)
    today = now.astimezone(zone).date()
    services, tests = seed_catalogue()
    seed_staff(users, branches, today)
    doctor_ids = [users[roster.doctor].id for roster in DEMO_ROSTERS]
    if db.session.scalar(select(Appointment.id).where(Appointment.doctor_id.in_(doctor_ids)).limit(1)):
        return False
    month = ClinicMonth(now, users, branches, services, tests)
    for roster in DEMO_ROSTERS:
        branch = branches[roster.branch]
        closed = set(db.session.scalars(select(Holiday.day).where(Holiday.branch_id == branch.id)))
        leave = db.session.scalars(
            select(DoctorLeave).where(DoctorLeave.doctor_id == users[roster.doctor].id)
        )
        for period in leave:
            closed |= {
                period.starts_on + timedelta(days=n)
                for n in range((period.ends_on - period.starts_on).days + 1)
            }
        month.plan(roster, closed)
    check_no_overlap(month.visits)
    month.choose_patients()
    month.write_appointments()
    month.write_consultations()
    month.supersede_some()
    month.direct_orders()
    month.progress_orders()
    return True
