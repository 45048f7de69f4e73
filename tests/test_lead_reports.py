"""The lead funnel report: its numbers on a known set of leads, who may open it, its Excel file.

The known leads arrive in January 2025, long before the demo's leads (the last 90 days), so a
report on that month counts exactly them.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from io import BytesIO
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from openpyxl import load_workbook

from app.extensions import db
from app.models.leads import Lead, LeadStageChange
from app.models.org import Branch
from app.services.audit import acting_as
from app.services.lead_reports import funnel
from tests.conftest import login_as

pytestmark = pytest.mark.sqlite_subset

IST = ZoneInfo("Asia/Kolkata")
JANUARY = {"start": "2025-01-01", "end": "2025-01-31"}
#: (branch, source, local creation time, [(stage, hours after creation)], lost reason).
KNOWN_LEADS = {
    "Quillonia": ("DT", "web_form", datetime(2025, 1, 6, 10, 0),
                  [("contacted", 1), ("qualified", 20), ("booked", 48), ("converted", 50)], None),
    "Brastavon": ("DT", "web_form", datetime(2025, 1, 7, 9, 0),
                  [("contacted", 2), ("lost", 30)], "price"),
    # Booked straight away: it counts as contacted and qualified too.
    "Zephyrine": ("DT", "phone", datetime(2025, 1, 8, 11, 0), [("booked", 5)], None),
    "Morvenna": ("DT", "phone", datetime(2025, 1, 9, 12, 0), [], None),
    # Booked, then lost: it reached "booked" and is lost.
    "Tindrell": ("DT", "phone", datetime(2025, 1, 10, 9, 0),
                 [("contacted", 3), ("qualified", 6), ("booked", 24), ("lost", 100)], "timing"),
    "Ysoldara": ("LS", "referral", datetime(2025, 1, 12, 15, 0),
                 [("contacted", 4), ("qualified", 30), ("booked", 72), ("converted", 73)], None),
    "Kestrava": ("LS", "web_form", datetime(2025, 1, 13, 8, 0), [("lost", 200)], "not_reachable"),
    # The month's first and last local minutes are in; the minutes either side are not.
    "Ombrisel": ("LS", "web_form", datetime(2025, 1, 1, 0, 30), [], None),
    "Velquora": ("LS", "web_form", datetime(2025, 1, 31, 23, 0), [], None),
    "Harrowyn": ("LS", "web_form", datetime(2024, 12, 31, 23, 30),
                 [("contacted", 1), ("booked", 2), ("converted", 3)], None),
    "Fenmarch": ("LS", "phone", datetime(2025, 2, 1, 0, 10), [("booked", 1)], None),
}


@pytest.fixture(scope="module")
def known(app):
    """The known leads, written as the pipeline would have left them; returns branch ids."""
    with app.app_context(), acting_as("test"):
        branches = {b.code: b for b in db.session.scalars(sa.select(Branch))}
        for name, (code, source, local, moves, reason) in KNOWN_LEADS.items():
            created = local.replace(tzinfo=IST).astimezone(timezone.utc)
            lead = Lead(first_name=name, last_name="Testlead", name_search=name.lower(),
                        branch_id=branches[code].id, source=source, created_at=created,
                        stage="new", stage_changed_at=created, lost_reason=reason)
            changes = [LeadStageChange(lead=lead, from_stage=None, to_stage="new", changed_at=created)]
            before = "new"
            for stage, hours in moves:
                at = created + timedelta(hours=hours)
                changes.append(LeadStageChange(lead=lead, from_stage=before, to_stage=stage, changed_at=at))
                lead.stage, lead.stage_changed_at, before = stage, at, stage
                if stage == "booked":
                    lead.booked_at = at
                if stage == "converted":
                    lead.converted_at = at
            db.session.add_all([lead, *changes])
        db.session.commit()
        return {code: branch.id for code, branch in branches.items()}


def january(app, branch_ids):
    with app.app_context():
        return funnel(branch_ids, date(2025, 1, 1), date(2025, 1, 31))


def counts(row) -> tuple[int, ...]:
    return (row.created, row.contacted, row.qualified, row.booked, row.converted, row.lost)


def test_funnel_counts_the_stages_each_lead_reached(app, known):
    report = january(app, [known["DT"], known["LS"]])
    assert counts(report.total) == (9, 5, 4, 4, 2, 3)
    by_source = {row.key: counts(row) for row in report.by_source}
    assert by_source["web_form"] == (5, 2, 1, 1, 1, 2)
    assert by_source["phone"] == (3, 2, 2, 2, 0, 1)
    assert by_source["referral"] == (1, 1, 1, 1, 1, 0)
    assert by_source["walk_in"] == by_source["campaign"] == by_source["other"] == (0,) * 6
    by_branch = {row.key: counts(row) for row in report.by_branch}
    assert by_branch == {known["DT"]: (5, 4, 3, 3, 1, 2), known["LS"]: (4, 1, 1, 1, 1, 1)}
    assert report.total.conversion_rate == pytest.approx(2 / 9)
    assert report.lost_reasons == [("not_reachable", 1), ("price", 1), ("timing", 1)]


def test_median_time_from_request_to_booking(app, known):
    report = january(app, [known["DT"], known["LS"]])
    # Bookings after 48, 5, 24 and 72 hours: the median of four is the mean of the middle two.
    assert report.total.median_to_booking == timedelta(hours=36)
    assert report.total.bookings_timed == 4
    medians = {row.key: row.median_to_booking for row in report.by_source}
    assert medians["web_form"] == timedelta(hours=48)
    assert medians["phone"] == timedelta(hours=14.5)
    assert medians["referral"] == timedelta(hours=72)
    assert medians["walk_in"] is None
    branches = {row.key: row.median_to_booking for row in report.by_branch}
    assert branches == {known["DT"]: timedelta(hours=24), known["LS"]: timedelta(hours=72)}


def test_branch_and_date_range_filter(app, known):
    lakeside = january(app, [known["LS"]])
    assert counts(lakeside.total) == (4, 1, 1, 1, 1, 1)
    assert [row.key for row in lakeside.by_branch] == [known["LS"]]
    with app.app_context():
        # The first local day alone, and a range given back to front.
        first_day = funnel([known["LS"]], date(2025, 1, 1), date(2025, 1, 1))
        december = funnel([known["LS"]], date(2024, 12, 31), date(2024, 12, 1))
        nobody = funnel([], date(2025, 1, 1), date(2025, 1, 31))
    assert first_day.total.created == 1
    assert counts(december.total) == (1, 1, 1, 1, 1, 0)
    assert december.start == date(2024, 12, 1)
    assert nobody.total.created == 0 and nobody.total.median_to_booking is None


def test_funnel_takes_the_same_few_queries_however_many_leads(app, known):
    statements = []

    def count(*_args):
        statements.append(1)

    with app.app_context():
        sa.event.listen(db.engine, "before_cursor_execute", count)
        try:
            funnel([known["DT"], known["LS"]], date(2024, 1, 1), date(2026, 12, 31))
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", count)
    # Branches, the counts, the booking times, the lost reasons: not one query per lead.
    assert len(statements) <= 4


@pytest.mark.parametrize(
    "username", ["reception", "reception2", "doctor", "doctor2", "pharmacist", "labtech", "accountant"]
)
def test_only_owner_and_admin_open_the_report(app, known, username):
    client = login_as(app, username)
    assert client.get("/reports/leads").status_code == 403
    assert client.get("/reports/leads.xlsx").status_code == 403


def test_anonymous_visitors_are_sent_to_sign_in(client):
    response = client.get("/reports/leads")
    assert response.status_code == 302 and "/login/" in response.headers["Location"]


def section(html: str, title_id: str) -> str:
    start = html.index(f'id="{title_id}"')
    end = html.index("</section>", start)
    return html[start:end]


def test_owner_sees_both_branches_and_the_funnel(app, known):
    client = login_as(app, "owner")
    html = client.get("/reports/leads", query_string=JANUARY).get_data(as_text=True)
    branches = section(html, "by-branch-title")
    assert "Downtown Clinic" in branches and "Lakeside Dental" in branches
    sources = section(html, "by-source-title")
    web_form = re.search(r"<th scope=\"row\">Web form</th>\s*<td[^>]*>(\d+)</td>", sources)
    assert web_form and web_form.group(1) == "5"
    assert "Price" in section(html, "lost-title")
    assert "36 h" in html  # the median time to booking
    assert "Quillonia" not in html  # aggregates only
    # The bars are meters beside their numbers.
    assert '<meter class="cd-report__meter cd-report__meter--booked" min="0" max="9" value="4"' in html


def test_owner_filters_one_branch_and_forged_ids_fall_back(app, known):
    client = login_as(app, "owner")
    html = client.get(
        "/reports/leads", query_string={**JANUARY, "branch": known["LS"]}
    ).get_data(as_text=True)
    branches = section(html, "by-branch-title")
    assert "Lakeside Dental" in branches and "Downtown Clinic" not in branches
    forged = client.get("/reports/leads", query_string={**JANUARY, "branch": 987654})
    assert forged.status_code == 200
    assert "Downtown Clinic" in section(forged.get_data(as_text=True), "by-branch-title")


def test_default_period_is_the_last_90_days_and_bad_dates_are_said(app, known):
    client = login_as(app, "owner")
    html = client.get("/reports/leads").get_data(as_text=True)
    today = datetime.now(IST).date()
    assert f'value="{(today - timedelta(days=89)).isoformat()}"' in html
    assert f'value="{today.isoformat()}"' in html
    bad = client.get("/reports/leads", query_string={"start": "31/01/2025"})
    assert bad.status_code == 200
    assert "could not be read" in bad.get_data(as_text=True)


def test_excel_download_has_the_funnel_and_no_personal_data(app, known):
    client = login_as(app, "owner")
    response = client.get("/reports/leads.xlsx", query_string=JANUARY)
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert "lead-funnel-2025-01-01-to-2025-01-31.xlsx" in response.headers["Content-Disposition"]
    assert response.headers["Cache-Control"] == "no-store"
    workbook = load_workbook(BytesIO(response.data))
    assert workbook.sheetnames == ["Summary", "By source", "By branch", "Lost reasons"]
    by_source = {row[0]: row for row in workbook["By source"].iter_rows(values_only=True)}
    assert by_source["Web form"][1:4] == (5, 2, pytest.approx(2 / 5))
    assert by_source["Total"][1] == 9
    assert by_source["Total"][-1] == pytest.approx(1.5)  # median days to booking
    by_branch = {row[0] for row in workbook["By branch"].iter_rows(values_only=True)}
    assert {"Downtown Clinic", "Lakeside Dental"} <= by_branch
    lost = dict(workbook["Lost reasons"].iter_rows(min_row=2, values_only=True))
    assert lost == {"Price": 1, "No suitable time": 1, "Could not be reached": 1}
    cells = " ".join(
        str(value)
        for sheet in workbook
        for row in sheet.iter_rows(values_only=True)
        for value in row
        if value is not None
    )
    assert not any(name in cells for name in KNOWN_LEADS) and "Testlead" not in cells
