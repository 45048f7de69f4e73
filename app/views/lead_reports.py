"""``/reports/leads``: the pipeline's conversion funnel, time to booking and lost reasons.

The page and its Excel download (``/reports/leads.xlsx``) show the same tables for a date range
(the last 90 days unless chosen) and one or all of the user's branches. Both carry aggregates
only: no lead's or patient's name, phone or e-mail ever appears in them.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from io import BytesIO
from typing import Any
from zoneinfo import ZoneInfo

from flask import request, send_file
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import format_date, format_decimal, format_percent
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy import select

from app.extensions import db
from app.models.org import Branch
from app.security.policy import LEAD_REPORTS, READ
from app.security.scoping import allowed_branch_ids
from app.services.lead_reports import FUNNEL_STAGES, FunnelRow, LeadFunnel, funnel
from app.services.leads import LOST_REASON_LABELS, SOURCE_LABELS
from app.services.leads import STAGE_LABELS as STAGE_NAMES

#: How far back the report looks unless the user picks dates.
DEFAULT_DAYS = 90
XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

#: Column headings: the pipeline's stage names, with "created" read as the requests received.
STAGE_LABELS = {**STAGE_NAMES, "created": _l("Requests"), "booked": _l("Booked")}


def percent(value: float | None) -> str:
    return format_percent(value, "#,##0.#%") if value is not None else "–"


def wait(duration: timedelta | None) -> str:
    """A time to booking as people say it: "40 min", "5.5 h", "3.2 days"."""
    if duration is None:
        return "–"
    hours = duration.total_seconds() / 3600
    if hours < 1:
        return _("%(n)s min", n=format_decimal(round(hours * 60)))
    if hours < 48:
        return _("%(n)s h", n=format_decimal(round(hours, 1)))
    return _("%(n)s days", n=format_decimal(round(hours / 24, 1)))


class ReportQuery:
    """The date range and branches asked for, kept to the user's own branches."""

    def __init__(self) -> None:
        allowed = allowed_branch_ids()
        self.branches = list(
            db.session.scalars(select(Branch).where(Branch.id.in_(allowed)).order_by(Branch.name))
        )
        zone = ZoneInfo(self.branches[0].time_zone) if self.branches else None
        self.today = datetime.now(zone).date()
        self.invalid = False
        self.end = self._date("end", self.today)
        self.start = self._date("start", self.end - timedelta(days=DEFAULT_DAYS - 1))
        if self.start > self.end:
            self.start, self.end = self.end, self.start
        try:
            wanted = int(request.args.get("branch", ""))
        except ValueError:
            wanted = None
        # Another branch's id is ignored, never served: the report falls back to all of mine.
        self.branch = next((b for b in self.branches if b.id == wanted), None)

    def _date(self, name: str, default: date) -> date:
        text = request.args.get(name, "").strip()
        if not text:
            return default
        try:
            return date.fromisoformat(text)
        except ValueError:
            self.invalid = True
            return default

    @property
    def branch_ids(self) -> list[int]:
        return [self.branch.id] if self.branch else [b.id for b in self.branches]

    def args(self) -> dict[str, Any]:
        """The query string that reproduces this report (for the download link)."""
        args = {"start": self.start.isoformat(), "end": self.end.isoformat()}
        if self.branch:
            args["branch"] = self.branch.id
        return args

    def scope_label(self) -> str:
        return self.branch.name if self.branch else _("All my branches")


def table_rows(report: LeadFunnel, branches: dict[int, Branch]) -> dict[str, list]:
    """The report's tables as (label, FunnelRow) lists, shared by the page and the download."""
    return {
        "source": [(str(SOURCE_LABELS.get(row.key, row.key)), row) for row in report.by_source],
        "branch": [(branches[row.key].name, row) for row in report.by_branch],
    }


class LeadReportView(BaseView):
    """The lead funnel: per source and branch over a date range, with its Excel download."""

    route_base = "/reports"
    default_view = "leads"
    class_permission_name = LEAD_REPORTS
    method_permission_name = {"leads": "read", "leads_xlsx": "read"}
    base_permissions = [READ]

    @expose("/leads")
    @has_access
    def leads(self):
        query = ReportQuery()
        report = funnel(query.branch_ids, query.start, query.end)
        branches = {branch.id: branch for branch in query.branches}
        total_lost = sum(count for _reason, count in report.lost_reasons)
        return self.render_template(
            "clinic/reports/leads.html",
            title=_("Lead funnel"),
            query=query,
            report=report,
            tables=table_rows(report, branches),
            stages=FUNNEL_STAGES,
            stage_labels=STAGE_LABELS,
            lost_labels=LOST_REASON_LABELS,
            total_lost=total_lost,
            percent=percent,
            wait=wait,
            format_date=format_date,
        )

    @expose("/leads.xlsx")
    @has_access
    def leads_xlsx(self):
        query = ReportQuery()
        report = funnel(query.branch_ids, query.start, query.end)
        branches = {branch.id: branch for branch in query.branches}
        workbook = funnel_workbook(report, query, table_rows(report, branches))
        buffer = BytesIO()
        workbook.save(buffer)
        buffer.seek(0)
        name = f"lead-funnel-{query.start.isoformat()}-to-{query.end.isoformat()}.xlsx"
        response = send_file(buffer, mimetype=XLSX_MIMETYPE, as_attachment=True, download_name=name)
        response.headers["Cache-Control"] = "no-store"  # figures of the day, never kept by a cache
        return response


# -- the Excel download ---------------------------------------------------------------------------

BOLD = Font(bold=True)


def _put(sheet: Worksheet, values: list[Any], bold: bool = False) -> None:
    """Append a row; text is always stored as text (a name starting with "=" is no formula)."""
    row = sheet.max_row + 1 if sheet["A1"].value is not None else 1
    for column, value in enumerate(values, start=1):
        cell = sheet.cell(row=row, column=column)
        if isinstance(value, tuple):  # (number, Excel number format)
            cell.value, cell.number_format = value
        else:
            cell.value = value
            if isinstance(value, str):
                cell.data_type = "s"
        if bold:
            cell.font = BOLD


def _days(duration: timedelta | None) -> tuple[float, str] | None:
    return (round(duration.total_seconds() / 86400, 2), "0.0") if duration is not None else None


def _share(value: float | None) -> tuple[float, str] | None:
    return (value, "0.0%") if value is not None else None


def _funnel_sheet(
    sheet: Worksheet, first: str, rows: list[tuple[str, FunnelRow]], total: FunnelRow
) -> None:
    header = [first, str(STAGE_LABELS["created"])]
    for stage in FUNNEL_STAGES:
        label = STAGE_LABELS[stage]
        header += [str(label), _("%(stage)s (%% of requests)", stage=label)]
    header += [str(STAGE_LABELS["lost"]), _("Conversion rate"), _("Median days to booking")]
    _put(sheet, header, bold=True)
    for label, row in [*rows, (_("Total"), total)]:
        values: list[Any] = [label, row.created]
        for stage in FUNNEL_STAGES:
            values += [getattr(row, stage), _share(row.share(stage))]
        values += [row.lost, _share(row.conversion_rate), _days(row.median_to_booking)]
        _put(sheet, values, bold=row is total)
    sheet.column_dimensions["A"].width = 28
    sheet.freeze_panes = "B2"


def funnel_workbook(report: LeadFunnel, query: ReportQuery, tables: dict[str, list]) -> Workbook:
    """The report as a workbook: a summary, the funnel by source and by branch, lost reasons."""
    workbook = Workbook()
    summary = workbook.active
    summary.title = _("Summary")[:31]
    _put(summary, [_("Lead funnel")], bold=True)
    _put(summary, [_("From"), report.start.isoformat()])
    _put(summary, [_("To"), report.end.isoformat()])
    _put(summary, [_("Branches"), query.scope_label()])
    _put(summary, [str(STAGE_LABELS["created"]), report.total.created])
    _put(summary, [str(STAGE_LABELS["converted"]), report.total.converted])
    _put(summary, [_("Conversion rate"), _share(report.total.conversion_rate)])
    _put(summary, [_("Median days to booking"), _days(report.total.median_to_booking)])
    _put(summary, [_("Bookings timed"), report.total.bookings_timed])
    summary.column_dimensions["A"].width = 28

    for key, title, first in (("source", _("By source"), _("Source")),
                              ("branch", _("By branch"), _("Branch"))):
        _funnel_sheet(workbook.create_sheet(title[:31]), first, tables[key], report.total)

    lost = workbook.create_sheet(_("Lost reasons")[:31])
    _put(lost, [_("Reason"), _("Leads")], bold=True)
    for reason, count in report.lost_reasons:
        _put(lost, [str(LOST_REASON_LABELS.get(reason, reason)), count])
    lost.column_dimensions["A"].width = 28
    return workbook
