"""The front desk's screens: calendar (day and week), the day list with one-click status, walk-ins."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from markupsafe import escape

import app.services.appointments as appointments_service
from app.extensions import db
from app.models.audit import AuditEntry
from app.models.org import Branch
from app.models.patients import Patient
from app.models.scheduling import (
    Appointment,
    AppointmentChange,
    DoctorLeave,
    Holiday,
    Service,
    WorkingHours,
)
from app.services.appointments import book_appointment, change_status
from app.services.patients import register_patient
from tests.conftest import PASSWORD, csrf_token_from, login_as

# The rules of the clinical core hold on SQLite too (the subset CI runs there).
pytestmark = pytest.mark.sqlite_subset

TZ = ZoneInfo("Asia/Kolkata")  # both demo branches
TODAY = datetime.now(TZ).date()
#: A Monday far enough ahead that the demo's appointments, leave and holidays are not on it.
MONDAY = TODAY + timedelta(days=91 - TODAY.weekday())
TUESDAY, WEDNESDAY = MONDAY + timedelta(days=1), MONDAY + timedelta(days=2)
HOLIDAY = "Founders Day Qx"
XSS_NAME = "<script>alert('cal')</script>"
ESCAPED_NAME = str(escape(XSS_NAME))


def at(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=TZ)


# A small reader of the calendar table --------------------------------------------------------------


VOID = {"input", "br", "img", "meta", "link", "hr", "col", "source", "wbr"}


@dataclass
class GridCell:
    time: str
    column: str
    rowspan: int
    classes: set[str]
    text: str = ""
    links: list[tuple[str, str]] = field(default_factory=list)


class CalendarReader(HTMLParser):
    """Reads ``table.cd-cal`` into column headings and cells (each with its row's time)."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[str] = []
        self.cells: list[GridCell] = []
        self._in_table = self._in_head = False
        self._heading: list[str] | None = None
        self._row_time: list[str] | None = None
        self._time = ""
        self._busy: list[int] = []  # per column: rows still covered by a rowspan above
        self._col = 0
        self._cell: GridCell | None = None
        self._link: list | None = None
        self._hidden: list[bool] = []  # per open element: hidden from assistive technology

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag not in VOID:
            self._hidden.append(attrs.get("aria-hidden") == "true")
        classes = set((attrs.get("class") or "").split())
        if tag == "table" and "cd-cal" in classes:
            self._in_table = True
        if not self._in_table:
            return
        if tag == "thead":
            self._in_head = True
        elif tag == "th" and self._in_head and "cd-cal__corner" not in classes:
            self._heading = []
        elif tag == "tr" and not self._in_head:
            self._busy = self._busy or [0] * len(self.headings)
            self._col = 0
        elif tag == "th" and not self._in_head:
            self._row_time = []
        elif tag == "td":
            while self._col < len(self._busy) and self._busy[self._col] > 0:
                self._col += 1
            span = int(attrs.get("rowspan", 1))
            self._busy[self._col] = span
            self._cell = GridCell(self._time, self.headings[self._col], span, classes)
            self._col += 1
        elif tag == "a" and self._cell is not None:
            self._link = [attrs.get("href"), []]

    def handle_endtag(self, tag):
        if tag not in VOID and self._hidden:
            self._hidden.pop()
        if not self._in_table:
            return
        if tag == "table":
            self._in_table = False
        elif tag == "thead":
            self._in_head = False
        elif tag == "th" and self._heading is not None:
            self.headings.append(" ".join("".join(self._heading).split()))
            self._heading = None
        elif tag == "th" and self._row_time is not None:
            self._time = "".join(self._row_time).strip()
            self._row_time = None
        elif tag == "td" and self._cell is not None:
            self._cell.text = " ".join(self._cell.text.split())
            self.cells.append(self._cell)
            self._cell = None
        elif tag == "a" and self._link is not None and self._cell is not None:
            self._cell.links.append((self._link[0], " ".join("".join(self._link[1]).split())))
            self._link = None
        elif tag == "tr" and not self._in_head and self._busy:
            self._busy = [max(0, n - 1) for n in self._busy]

    def handle_data(self, data):
        if self._heading is not None:
            self._heading.append(data)
        if self._row_time is not None:
            self._row_time.append(data)
        if self._cell is not None:
            self._cell.text += data
        if self._link is not None and not any(self._hidden):
            self._link[1].append(data)  # the link's accessible name


def read_calendar(html: str) -> CalendarReader:
    reader = CalendarReader()
    reader.feed(html)
    return reader


def doctors_in(reader: CalendarReader) -> list[str]:
    """The day view's column headings, without the speciality under each name."""
    return [re.match(r"Dr \S+ \S+", heading).group(0) for heading in reader.headings]


def cells_in(reader: CalendarReader, column_part: str) -> list[GridCell]:
    return [cell for cell in reader.cells if column_part in cell.column]


# The clinic's week ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(app):
    """Rosters, leave, a holiday, patients and appointments on a Monday three months ahead."""
    with app.app_context():
        sm = app.appbuilder.sm
        dt = db.session.scalar(sa.select(Branch).where(Branch.code == "DT"))
        ls = db.session.scalar(sa.select(Branch).where(Branch.code == "LS"))
        priya = sm.find_user(username="doctor")
        sanjay = sm.find_user(username="doctor2")
        kiran = sm.add_user(
            "cal.doctor", "Kiran", "Rao", "kiran.cal@example.org", sm.find_role("Doctor"),
            password=PASSWORD,
        )
        kiran.branches = [dt]
        doctors = [priya.id, sanjay.id, kiran.id]
        db.session.execute(sa.delete(WorkingHours).where(WorkingHours.doctor_id.in_(doctors)))
        db.session.execute(
            sa.delete(Holiday).where(Holiday.day.in_([MONDAY, TUESDAY, WEDNESDAY]))
        )
        db.session.execute(
            sa.delete(DoctorLeave).where(
                DoctorLeave.doctor_id.in_(doctors), DoctorLeave.ends_on >= MONDAY,
                DoctorLeave.starts_on <= MONDAY + timedelta(days=6),
            )
        )
        for weekday in range(6):
            db.session.add(WorkingHours(
                doctor_id=priya.id, branch_id=dt.id, weekday=weekday, start_time=time(9),
                end_time=time(13), break_start=time(11), break_end=time(11, 30),
            ))
            db.session.add(WorkingHours(
                doctor_id=kiran.id, branch_id=dt.id, weekday=weekday, start_time=time(14),
                end_time=time(18),
            ))
            db.session.add(WorkingHours(
                doctor_id=sanjay.id, branch_id=ls.id, weekday=weekday, start_time=time(9),
                end_time=time(17),
            ))
        db.session.add(Holiday(branch_id=dt.id, day=TUESDAY, name=HOLIDAY))
        db.session.add(DoctorLeave(doctor_id=kiran.id, starts_on=WEDNESDAY, ends_on=WEDNESDAY))
        service = Service(name="Calendar consult Qx", default_duration_min=30)
        db.session.add(service)
        db.session.flush()

        def patient(first, last, branch, phone):
            p = Patient(first_name=first, last_name=last, sex="female", phone=phone,
                        registered_branch_id=branch.id, date_of_birth=date(1980, 1, 2))
            return register_patient(p)

        lalitha = patient("Lalitha", "Subramaniam", dt, "098450 11001")
        xss = patient(XSS_NAME, "Qx", dt, "098450 11002")
        farah = patient("Farah", "Lakeside", ls, "098450 11003")
        gone = patient("Gopal", "Cancelledqx", dt, "098450 11004")
        booked = book_appointment(patient=lalitha, doctor=priya, branch=dt,
                                  starts_at=at(MONDAY, 10, 30), service=service)
        scripted = book_appointment(patient=xss, doctor=kiran, branch=dt,
                                    starts_at=at(MONDAY, 14, 15), duration_min=15)
        lakeside = book_appointment(patient=farah, doctor=sanjay, branch=ls,
                                    starts_at=at(MONDAY, 9), duration_min=15)
        cancelled = book_appointment(patient=gone, doctor=priya, branch=dt,
                                     starts_at=at(MONDAY, 12), duration_min=15)
        change_status(cancelled, "cancelled", reason="Travelling")
        db.session.commit()
        return {
            "dt": dt.id, "ls": ls.id, "priya": priya.id, "kiran": kiran.id, "sanjay": sanjay.id,
            "service": service.id, "lalitha": lalitha.id, "farah": farah.id,
            "booked": booked.id, "scripted": scripted.id, "lakeside": lakeside.id,
            "cancelled": cancelled.id,
        }


def calendar(client, **args):
    response = client.get("/appointments/calendar", query_string=args)
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def status_of(app, appointment_id: int) -> str:
    with app.app_context():
        return db.session.get(Appointment, appointment_id).status


# Calendar -------------------------------------------------------------------------------------------


def test_day_view_has_a_column_per_doctor_and_appointments_in_their_local_slot(app, world):
    client = login_as(app, "reception")
    html = calendar(client, date=MONDAY.isoformat())
    grid = read_calendar(html)
    assert doctors_in(grid) == ["Dr Kiran Rao", "Dr Priya Nair"]
    block = next(c for c in cells_in(grid, "Priya") if "cd-slot--booked" in c.classes)
    # 10:30 in Kolkata is 05:00 UTC: the block starts on the 10:30 row and spans 30 minutes.
    assert block.time == "10:30"
    assert block.rowspan == 2
    assert block.links[0][0] == f"/appointments/show/{world['booked']}"
    assert "Lalitha Subramaniam" in block.text and "Calendar consult Qx" in block.text
    assert "10:30–11:00" in block.text and "Booked" in block.text
    assert f'class="cd-cal-appt cd-appt--booked" href="/appointments/show/{world["booked"]}"' in html
    with app.app_context():
        stored = db.session.get(Appointment, world["booked"]).starts_at
    stored = stored if stored.tzinfo else stored.replace(tzinfo=timezone.utc)
    assert stored == datetime.combine(MONDAY, time(5, 0), tzinfo=timezone.utc)  # stored in UTC


def test_free_slots_link_to_the_booking_form_prefilled(app, world):
    client = login_as(app, "reception")
    grid = read_calendar(calendar(client, date=MONDAY.isoformat()))
    free = [c for c in cells_in(grid, "Priya") if "cd-slot--free" in c.classes]
    first = free[0]
    assert first.time == "09:00"
    href, name = first.links[0]
    assert name == "Book 09:00 with Dr Priya Nair"
    assert href == (
        f"/appointments/add?doctor={world['priya']}&branch={world['dt']}"
        f"&starts_at={MONDAY.isoformat()}T09:00"
    )
    times = [c.time for c in free]
    assert "10:30" not in times and "10:45" not in times  # booked
    assert "11:00" not in times and "11:15" not in times  # the break
    assert "12:00" in times  # a cancelled appointment frees its time...
    cancelled = next(c for c in cells_in(grid, "Priya") if c.time == "12:00")
    assert "Gopal Cancelledqx" in cancelled.text and "Cancelled" in cancelled.text  # ...and shows
    # The booking form accepts what the link carries.
    page = client.get(href)
    assert page.status_code == 200
    assert f'value="{MONDAY.isoformat()}T09:00' in page.get_data(as_text=True) or \
        f"{MONDAY.isoformat()} 09:00" in page.get_data(as_text=True)


def test_breaks_and_hours_off_are_shaded_and_labelled(app, world):
    client = login_as(app, "reception")
    grid = read_calendar(calendar(client, date=MONDAY.isoformat()))
    priya = cells_in(grid, "Priya")
    brk = next(c for c in priya if "cd-slot--break" in c.classes)
    assert (brk.time, brk.rowspan, brk.text) == ("11:00", 2, "Break")
    assert not brk.links
    after = next(c for c in priya if c.time == "13:00")
    assert "cd-slot--off" in after.classes and after.text == "Not working"
    kiran_morning = next(c for c in cells_in(grid, "Kiran") if c.time == "09:00")
    assert "cd-slot--off" in kiran_morning.classes and kiran_morning.rowspan == 20  # 09:00-14:00


def test_leave_and_holidays_are_shaded_with_no_booking_links(app, world):
    client = login_as(app, "reception")
    holiday = read_calendar(calendar(client, date=TUESDAY.isoformat()))
    assert all("cd-slot--closed" in c.classes for c in holiday.cells)
    assert any(f"Closed: {HOLIDAY}" in c.text for c in holiday.cells)
    assert not any(link for c in holiday.cells for link in c.links)
    leave = read_calendar(calendar(client, date=WEDNESDAY.isoformat()))
    kiran = cells_in(leave, "Kiran")
    assert len(kiran) == 1 and "cd-slot--leave" in kiran[0].classes and kiran[0].text == "On leave"
    assert any("cd-slot--free" in c.classes for c in cells_in(leave, "Priya"))


def test_week_view_shows_one_doctor_day_by_day(app, world):
    client = login_as(app, "reception")
    html = calendar(client, date=WEDNESDAY.isoformat(), view="week", doctor=world["priya"])
    grid = read_calendar(html)
    assert len(grid.headings) == 7
    assert grid.headings[0].startswith("Mon") and grid.headings[6].startswith("Sun")
    monday, tuesday = grid.headings[0], grid.headings[1]
    block = next(c for c in cells_in(grid, monday) if "cd-slot--booked" in c.classes)
    assert (block.time, block.rowspan) == ("10:30", 2)
    assert all("cd-slot--closed" in c.classes for c in cells_in(grid, tuesday))
    assert all("cd-slot--off" in c.classes for c in cells_in(grid, grid.headings[6]))  # Sunday
    free = next(c for c in cells_in(grid, monday) if "cd-slot--free" in c.classes)
    assert free.links[0][1].startswith("Book ") and "09:00 with Dr Priya Nair" in free.links[0][1]
    assert "Week of" in html


def test_status_classes_follow_the_appointment(app, world):
    client = login_as(app, "reception")
    with app.app_context():
        appointment = db.session.get(Appointment, world["scripted"])
        change_status(appointment, "confirmed")
        db.session.commit()
    html = calendar(client, date=MONDAY.isoformat())
    assert re.search(rf'cd-appt--confirmed[^"]*" href="/appointments/show/{world["scripted"]}"', html)
    assert "cd-appt--cancelled" in html
    for label in ("Booked", "Confirmed", "Arrived", "In consultation", "Completed", "Cancelled",
                  "No-show"):
        assert label in html  # the legend names every status in words


def test_past_working_hours_offer_no_booking(app, world):
    client = login_as(app, "reception")
    past_monday = TODAY - timedelta(days=TODAY.weekday() or 7)
    grid = read_calendar(calendar(client, date=past_monday.isoformat(), doctor=world["priya"]))
    assert not any(c.links and c.links[0][1].startswith("Book") for c in grid.cells)
    assert any("cd-slot--unavailable" in c.classes for c in grid.cells)


def test_times_follow_the_branch_time_zone(app, world):
    """Moving a branch to another zone moves the same stored appointment to another row."""
    client = login_as(app, "reception2")
    with app.app_context():
        branch = db.session.get(Branch, world["ls"])
        branch.time_zone = "Asia/Dubai"  # 1 h 30 behind Kolkata
        db.session.commit()
    try:
        grid = read_calendar(calendar(client, date=MONDAY.isoformat()))
        block = next(c for c in grid.cells if "cd-slot--booked" in c.classes)
        assert block.time == "07:30" and "Farah Lakeside" in block.text
    finally:
        with app.app_context():
            db.session.get(Branch, world["ls"]).time_zone = "Asia/Kolkata"
            db.session.commit()


# Isolation and access --------------------------------------------------------------------------------


def test_another_branch_is_never_shown(app, world):
    client = login_as(app, "reception2")
    for args in ({}, {"branch": world["dt"]}, {"branch": world["dt"], "doctor": world["priya"]}):
        html = calendar(client, date=MONDAY.isoformat(), **args)
        grid = read_calendar(html)
        assert doctors_in(grid) == ["Dr Sanjay Gupta"]
        assert "Farah Lakeside" in html
        assert "Lalitha" not in html and "Priya" not in html and "Downtown" not in html
    week = calendar(client, date=MONDAY.isoformat(), view="week", doctor=world["priya"])
    assert "Priya" not in week and "Lalitha" not in week
    day = client.get("/appointments/day", query_string={"date": MONDAY.isoformat(),
                                                        "branch": world["dt"]})
    text = day.get_data(as_text=True)
    assert day.status_code == 200 and "Farah Lakeside" in text and "Lalitha" not in text


def test_all_branch_roles_choose_the_branch(app, world):
    client = login_as(app, "admin")
    html = calendar(client, date=MONDAY.isoformat(), branch=world["ls"])
    assert doctors_in(read_calendar(html)) == ["Dr Sanjay Gupta"]
    assert 'id="cal-branch"' in html


@pytest.mark.parametrize("path", ["/appointments/calendar", "/appointments/day",
                                  "/appointments/walk-in"])
def test_roles_without_appointments_are_refused(app, world, path):
    assert login_as(app, "pharmacist").get(path).status_code == 403
    assert login_as(app, "labtech").get(path).status_code == 403
    anonymous = app.test_client().get(path)
    assert anonymous.status_code == 302 and "/login/" in anonymous.headers["Location"]


def test_owner_reads_but_cannot_book(app, world):
    client = login_as(app, "owner")
    html = calendar(client, date=MONDAY.isoformat())
    assert "Lalitha Subramaniam" in html
    assert "/appointments/add?" not in html and "Walk-in" not in html
    assert client.get("/appointments/walk-in").status_code == 403
    day = client.get("/appointments/day", query_string={"date": MONDAY.isoformat()})
    assert day.status_code == 200 and "Check in" not in day.get_data(as_text=True)


def test_calendar_reads_are_access_logged(app, world):
    client = login_as(app, "reception")
    calendar(client, date=MONDAY.isoformat())
    with app.app_context():
        entry = db.session.scalars(
            sa.select(AuditEntry).where(AuditEntry.kind == "access")
            .order_by(AuditEntry.id.desc())
        ).first()
        assert entry.model == "Appointment"
        assert str(world["booked"]) in entry.details


# Day list ----------------------------------------------------------------------------------------------


def day_list(client, **args):
    response = client.get("/appointments/day", query_string=args)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_day_list_checks_a_patient_in_with_one_click_and_comes_back(app, world):
    client = login_as(app, "reception")
    html = day_list(client, date=MONDAY.isoformat())
    assert html.index("Lalitha Subramaniam") < html.index(ESCAPED_NAME)  # 10:30, then 14:15
    forms = re.findall(
        r'<form method="post" action="(/appointments/(\d+)/status)">(.*?)</form>', html, re.S
    )
    check_in = next(
        (action, body) for action, pk, body in forms
        if int(pk) == world["booked"] and 'value="arrived"' in body
    )
    assert "Check in" in check_in[1]
    back = re.search(r'name="next" value="([^"]+)"', check_in[1]).group(1).replace("&amp;", "&")
    response = client.post(check_in[0], data={
        "csrf_token": csrf_token_from(html), "status": "arrived", "next": back,
    })
    assert response.status_code == 302
    assert response.headers["Location"].endswith(back)
    assert status_of(app, world["booked"]) == "arrived"
    with app.app_context():
        change = db.session.scalars(
            sa.select(AppointmentChange).where(
                AppointmentChange.appointment_id == world["booked"],
                AppointmentChange.kind == "status",
            )
        ).one()
        assert (change.from_status, change.to_status) == ("booked", "arrived")
        assert change.changed_by.username == "reception"
        assert change.appointment.checked_in_at is not None
    after = client.get(response.headers["Location"], follow_redirects=True).get_data(as_text=True)
    assert "Lalitha Subramaniam: Arrived." in after
    assert re.search(r'<strong>1</strong> Arrived', after)


def test_day_list_counts_statuses_and_offers_the_next_steps(app, world):
    client = login_as(app, "reception")
    html = day_list(client, date=MONDAY.isoformat())
    assert re.search(r"<strong>1</strong> Cancelled", html)
    row = html[html.index("Gopal Cancelledqx"):]
    row = row[: row.index("</tr>")]
    assert "<form" not in row  # nothing follows a cancellation
    assert "/appointments/walk-in" in html


def test_a_doctor_sees_their_own_day_unless_they_ask_for_the_branch(app, world):
    client = login_as(app, "doctor")
    mine = day_list(client, date=MONDAY.isoformat())
    assert "Lalitha Subramaniam" in mine and ESCAPED_NAME not in mine
    everyone = day_list(client, date=MONDAY.isoformat(), all="1")
    assert "Lalitha Subramaniam" in everyone and ESCAPED_NAME in everyone


def test_patient_names_are_escaped(app, world):
    client = login_as(app, "reception")
    escaped = "&lt;script&gt;alert(&#39;cal&#39;)&lt;/script&gt;"
    assert ESCAPED_NAME == escaped
    for html in (calendar(client, date=MONDAY.isoformat()), day_list(client, date=MONDAY.isoformat())):
        assert XSS_NAME not in html
        assert escaped in html


# Walk-ins ------------------------------------------------------------------------------------------------


@pytest.fixture
def desk_clock(monkeypatch):
    """The service's clock at 09:40 on the test Monday (a walk-in is booked from "now")."""
    now = at(MONDAY, 9, 40).astimezone(timezone.utc)
    monkeypatch.setattr(appointments_service, "utcnow", lambda: now)
    return now


def walk_in_page(client, **args):
    response = client.get("/appointments/walk-in", query_string=args)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def post_walk_in(client, data: dict, **args):
    html = walk_in_page(client, **args)
    return client.post("/appointments/walk-in", data={"csrf_token": csrf_token_from(html), **data})


def test_walk_in_registers_a_new_patient_and_checks_them_in(app, world, desk_clock):
    client = login_as(app, "reception")
    response = post_walk_in(client, {
        "branch": world["dt"], "patient": "new", "first_name": "Ishaan", "last_name": "Walkerqx",
        "phone": "098450 22001", "date_of_birth": "1999-09-09", "sex": "male",
        "doctor": world["priya"], "service": "0", "reason": "Toothache",
    })
    assert response.status_code == 302
    assert response.headers["Location"].endswith(
        f"/appointments/day?branch={world['dt']}&date={MONDAY.isoformat()}"
    )
    with app.app_context():
        patient = db.session.scalars(sa.select(Patient).filter_by(last_name="Walkerqx")).one()
        assert patient.mrn == f"MRN-{patient.id:06d}" and patient.phone == "+919845022001"
        assert patient.registered_branch_id == world["dt"]
        visit = db.session.scalars(sa.select(Appointment).filter_by(patient_id=patient.id)).one()
        assert (visit.status, visit.is_walk_in, visit.reason) == ("arrived", True, "Toothache")
        start = visit.starts_at if visit.starts_at.tzinfo else visit.starts_at.replace(
            tzinfo=timezone.utc)
        assert start == desk_clock
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Ishaan Walkerqx is checked in to see Dr Priya Nair at 09:40." in page
    assert "Ishaan Walkerqx" in page


def test_walk_in_of_a_patient_found_by_search(app, world, desk_clock):
    client = login_as(app, "reception")
    found = walk_in_page(client, q="Farah Lakeside")
    assert f'name="patient" value="{world["farah"]}"' in found
    assert "checked" in found.split(f'value="{world["farah"]}"', 1)[1][:40]  # the only match
    response = post_walk_in(client, {
        "branch": world["dt"], "patient": str(world["farah"]), "doctor": world["kiran"],
        "service": str(world["service"]), "q": "Farah Lakeside",
    })
    assert response.status_code == 302
    with app.app_context():
        visit = db.session.scalars(
            sa.select(Appointment).filter_by(patient_id=world["farah"], branch_id=world["dt"])
        ).one()
        assert visit.doctor_id == world["kiran"] and visit.duration_min == 30
        assert visit.status == "arrived" and visit.checked_in_at is not None


def test_walk_in_mistakes_keep_what_was_typed(app, world):
    client = login_as(app, "reception")
    response = post_walk_in(client, {
        "branch": world["dt"], "patient": "new", "first_name": "Meenakshi", "last_name": "",
        "phone": "12", "sex": "female", "doctor": world["priya"], "reason": "Check-up Qz",
    })
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Type the new patient&#39;s last name." in html
    assert 'value="Meenakshi"' in html and 'value="Check-up Qz"' in html
    assert 'id="patient-new" name="patient" value="new" checked' in html
    assert 'aria-invalid="true"' in html
    response = post_walk_in(client, {
        "branch": world["dt"], "patient": "new", "first_name": "Meenakshi", "last_name": "Qz",
        "phone": "12", "sex": "female", "doctor": world["priya"],
    })
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "Enter a phone number with its area code" in html
    nobody = post_walk_in(client, {"branch": world["dt"], "doctor": world["priya"]})
    assert "Choose a patient, or register a new one." in nobody.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalars(
            sa.select(Patient).filter_by(first_name="Meenakshi", last_name="Qz")
        ).first() is None


def test_walk_in_warns_of_a_possible_duplicate_before_registering(app, world, desk_clock):
    client = login_as(app, "reception")
    typed = {
        "branch": world["dt"], "patient": "new", "first_name": "Lalita", "last_name": "S",
        "phone": "+91 98450 11001", "sex": "female", "doctor": world["priya"],
    }
    response = post_walk_in(client, typed)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "This patient may already be registered." in html
    assert f'name="patient" value="{world["lalitha"]}"' in html
    assert 'value="Lalita"' in html
    response = post_walk_in(client, {**typed, "confirm_new": "y"})
    assert response.status_code == 302
    with app.app_context():
        assert db.session.scalars(sa.select(Patient).filter_by(first_name="Lalita")).one()


def test_walk_in_refuses_another_branch_and_its_doctors(app, world, desk_clock):
    client = login_as(app, "reception2")
    html = walk_in_page(client)
    assert "Priya" not in html and "Sanjay" in html
    response = post_walk_in(client, {
        "branch": world["dt"], "patient": str(world["farah"]), "doctor": world["priya"],
    })
    assert response.status_code == 200
    with app.app_context():
        assert db.session.scalars(
            sa.select(Appointment).filter_by(patient_id=world["farah"], doctor_id=world["priya"])
        ).first() is None


def test_walk_in_search_results_are_access_logged_and_say_nobody_only_when_nobody(app, world):
    """The search lists names, birth dates and phones: one access entry names who it showed;
    "Nobody found" appears only when nobody was found."""
    client = login_as(app, "reception")
    html = walk_in_page(client, q="Lalitha Subramaniam")
    assert "Lalitha Subramaniam" in html and "Nobody found" not in html
    with app.app_context():
        entry = db.session.scalars(
            sa.select(AuditEntry).where(AuditEntry.kind == "access")
            .order_by(AuditEntry.id.desc())
        ).first()
        assert entry.model == "Patient" and entry.action == "view"
        assert str(world["lalitha"]) in entry.details
        assert "Subramaniam" not in (entry.details or "")  # ids, never the search typed
    assert "Nobody found" in walk_in_page(client, q="Zzqxnobodyqx")
