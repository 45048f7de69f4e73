"""Lab orders: the queue, ordering tests, sample and status moves, the report, the API and the
patient's timeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from flask import (
    abort,
    current_app,
    flash,
    g,
    has_request_context,
    redirect,
    request,
    url_for,
)
from flask_appbuilder import expose, has_access
from flask_appbuilder.fieldwidgets import BS3TextAreaFieldWidget
from flask_appbuilder.forms import DynamicForm
from flask_appbuilder.models.filters import BaseFilter
from flask_babel import lazy_gettext as _l
from markupsafe import Markup
from sqlalchemy import select
from wtforms import (
    HiddenField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from app.extensions import db
from app.models.base import utcnow
from app.models.consultations import Consultation
from app.models.lab import LAB_ORDER_STATUSES, LabOrder, LabResult, LabTest
from app.models.org import Branch
from app.models.patients import Patient
from app.security.policy import (
    AMEND,
    CANCEL,
    CREATE,
    ENTER,
    LAB_ORDERS,
    LAB_RESULTS,
    PROGRESS,
    READ,
    VERIFY,
    VIEW_METHOD_PERMISSIONS,
)
from app.security.scoping import allowed_branch_ids
from app.services.errors import ClinicError
from app.services.lab import (
    CANCELLABLE,
    ENTERABLE,
    FLAG_LABELS,
    ORDER_STATUS_LABELS,
    PRIORITY_LABELS,
    active_tests,
    cancel_order,
    collect_sample,
    create_order,
    range_text,
    result_value_text,
    start_processing,
)
from app.views.base import (
    BranchScopedMixin,
    ClinicModelApi,
    ClinicModelView,
    ClinicSQLAInterface,
    logs_access,
)
from app.views.timeline import timeline_source

STATUS_BADGES = {
    "ordered": "cd-badge",
    "collected": "cd-badge cd-badge--accent",
    "in_progress": "cd-badge cd-badge--accent",
    "resulted": "cd-badge cd-badge--warning",
    "verified": "cd-badge cd-badge--ok",
    "cancelled": "cd-badge cd-badge--muted",
}
PRIORITY_BADGES = {
    "routine": "cd-badge",
    "urgent": "cd-badge cd-badge--warning",
    "stat": "cd-badge cd-badge--danger",
}


def status_badge(status: str) -> Markup:
    label = ORDER_STATUS_LABELS.get(status, status)
    return Markup('<span class="{}">{}</span>').format(STATUS_BADGES.get(status, "cd-badge"), label)


def priority_badge(priority: str) -> Markup:
    label = PRIORITY_LABELS.get(priority, priority)
    return Markup('<span class="{}">{}</span>').format(
        PRIORITY_BADGES.get(priority, "cd-badge"), label
    )


def local_time(when: datetime | None, time_zone: str | None) -> str:
    """A stored UTC time as the branch's clock reads it, e.g. ``2025-03-04 09:30``."""
    if when is None:
        return "—"
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    try:
        return when.astimezone(ZoneInfo(time_zone)).strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError, KeyError):  # no zone, or one this system does not know
        return when.strftime("%Y-%m-%d %H:%M UTC")


def my_local_time(when: datetime | None) -> str:
    """A time on a list of several orders: the clock of the user's branches when they share one."""
    if "lab_time_zone" not in g:
        zones = set(db.session.scalars(
            select(Branch.time_zone).where(Branch.id.in_(allowed_branch_ids()))
        ))
        g.lab_time_zone = zones.pop() if len(zones) == 1 else None
    return local_time(when, g.lab_time_zone)


def person(user: Any) -> str:
    if user is None:
        return "—"
    return f"{user.first_name} {user.last_name}".strip() or user.username


# -- orders --------------------------------------------------------------------------------------


class FilterOrderQueue(BaseFilter):
    """On the list page, the status and priority chosen above the table (``?status=&priority=``)."""

    name = "Order queue"
    arg_name = "labqueue"

    def apply(self, query, value):
        if not (has_request_context() and request.endpoint == "LabOrderModelView.list"):
            return query
        status = request.args.get("status", "")
        priority = request.args.get("priority", "")
        if status == "open":
            query = query.where(LabOrder.status.in_(("ordered", "collected", "in_progress", "resulted")))
        elif status in LAB_ORDER_STATUSES:
            query = query.where(LabOrder.status == status)
        if priority in PRIORITY_LABELS:
            query = query.where(LabOrder.priority == priority)
        return query


def _test_codes(results: list[LabResult]) -> str:
    return ", ".join(result.test.name for result in results or [])


class LabOrderForm(DynamicForm):
    patient_mrn = StringField(
        _l("Patient's MRN"), description=_l("As on the patient's page, e.g. MRN-000123."),
    )
    patient = HiddenField()
    consultation = HiddenField()
    branch = SelectField(_l("Branch"), coerce=int, validate_choice=False)
    tests = SelectMultipleField(
        _l("Tests"), coerce=int, widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
        validators=[DataRequired(message=_l("Choose at least one test."))],
    )
    priority = RadioField(
        _l("Priority"), choices=list(PRIORITY_LABELS.items()), default="routine",
    )
    clinical_notes = TextAreaField(
        _l("Clinical notes"), widget=BS3TextAreaFieldWidget(),
        validators=[Optional(), Length(max=2000)],
        description=_l("What the lab should know: suspected condition, fasting, medication."),
    )


class ReasonForm(DynamicForm):
    reason = StringField(
        _l("Reason"), validators=[DataRequired(message=_l("Say why.")), Length(max=200)],
    )


class LabOrderModelView(BranchScopedMixin, ClinicModelView):
    """Lab orders of the user's branches: the queue, each order with its results, the report."""

    route_base = "/lab-orders"
    datamodel = ClinicSQLAInterface(LabOrder)
    class_permission_name = LAB_ORDERS
    method_permission_name = {
        **VIEW_METHOD_PERMISSIONS,
        "collect": "progress",
        "start": "progress",
        "cancel": "cancel",
        "print_report": "read",
    }
    base_permissions = [READ, CREATE, PROGRESS, CANCEL]
    exclude_route_methods = {"edit", "delete", "download"}
    base_filters = [["id", FilterOrderQueue, None]]
    access_log = "patient"
    list_template = "clinic/lab/order_list.html"
    show_template = "clinic/lab/order_show.html"
    list_title = _l("Lab orders")
    show_title = _l("Lab order")
    add_title = _l("Order lab tests")
    list_columns = ["created_at", "patient", "results", "priority", "status", "clinical_notes"]
    show_columns = ["patient", "status", "priority", "clinical_notes"]
    search_columns: list[str] = []
    order_columns = ["created_at"]
    base_order = ("created_at", "desc")
    label_columns = {
        "created_at": _l("Ordered"),
        "patient": _l("Patient"),
        "results": _l("Tests"),
        "priority": _l("Priority"),
        "status": _l("Status"),
        "clinical_notes": _l("Clinical notes"),
    }
    formatters_columns = {
        "created_at": my_local_time,
        "results": _test_codes,
        "priority": priority_badge,
        "status": status_badge,
        "clinical_notes": lambda value: (value[:80] + "…" if len(value) > 80 else value)
        if value else "—",
    }

    def _order(self, pk: Any) -> LabOrder:
        """The order, if it is one of the user's branches' (else 404)."""
        order = self.datamodel.get(pk, self._base_filters)
        if order is None:
            abort(404)
        return order

    def _list(self, **kwargs: Any):
        widgets = super()._list(**kwargs)
        g.lab_status_labels = ORDER_STATUS_LABELS
        g.lab_priority_labels = PRIORITY_LABELS
        return widgets

    @expose("/show/<pk>")
    @has_access
    def show(self, pk):
        pk = self._deserialize_pk_if_composite(pk)
        widgets = self._show(pk)  # 404 outside the user's branches; logs the read
        order = self._order(pk)
        return self.render_template(
            self.show_template, pk=pk, title=self.show_title, widgets=widgets,
            **order_page_context(order),
        )

    # -- ordering ------------------------------------------------------------------------------

    def _prefill(self, form: LabOrderForm) -> tuple[Patient | None, Consultation | None]:
        consultation_id = request.values.get("consultation", type=int)
        patient_id = request.values.get("patient", type=int)
        consultation = patient = None
        if consultation_id:
            consultation = db.session.get(Consultation, consultation_id)
            if consultation is None or consultation.branch_id not in allowed_branch_ids():
                abort(404)
            patient = consultation.patient
        elif patient_id:
            patient = db.session.get(Patient, patient_id)
            if patient is None or patient.merged_into_id is not None:
                abort(404)
        elif request.method == "POST" and (form.patient_mrn.data or "").strip():
            patient = db.session.scalar(
                select(Patient).where(
                    Patient.mrn == form.patient_mrn.data.strip().upper(),
                    Patient.merged_into_id.is_(None),
                )
            )
            if patient is None:
                form.patient_mrn.errors = [str(_l("No patient has this MRN."))]
        return patient, consultation

    @expose("/add", methods=["GET", "POST"])
    @has_access
    def add(self):
        """Order tests for a patient: from a consultation, a patient's page, or by MRN."""
        form = LabOrderForm(request.form if request.method == "POST" else None)
        tests = active_tests()
        form.tests.choices = [(test.id, f"{test.name} ({test.code})") for test in tests]
        branches = db.session.scalars(
            select(Branch).where(Branch.id.in_(allowed_branch_ids())).order_by(Branch.name)
        ).all()
        form.branch.choices = [(branch.id, branch.name) for branch in branches]
        patient, consultation = self._prefill(form)
        if request.method == "POST":
            valid = form.validate() and not form.patient_mrn.errors
            if patient is None and not form.patient_mrn.errors:
                form.patient_mrn.errors = [str(_l("Enter the patient's MRN."))]
                valid = False
            if valid:
                branch = next((b for b in branches if b.id == form.branch.data), None)
                if consultation is None and branch is None:
                    form.branch.errors = [str(_l("Choose one of your branches."))]
                else:
                    chosen = [test for test in tests if test.id in set(form.tests.data)]
                    try:
                        order = create_order(
                            tests=chosen, patient=patient, branch=branch,
                            consultation=consultation, priority=form.priority.data,
                            clinical_notes=form.clinical_notes.data,
                        )
                    except ClinicError as exc:
                        db.session.rollback()
                        flash(str(exc), "danger")
                    else:
                        db.session.commit()
                        flash(str(_l("Lab tests ordered.")), "success")
                        return redirect(url_for(".show", pk=order.id))
        return self.render_template(
            "clinic/lab/order_add.html", title=self.add_title, form=form, patient=patient,
            consultation=consultation, has_tests=bool(tests), one_branch=len(branches) == 1,
        )

    # -- status moves --------------------------------------------------------------------------

    def _move(self, pk: int, move) -> Any:
        order = self._order(pk)
        try:
            move(order)
        except ClinicError as exc:
            db.session.rollback()
            flash(str(exc), "danger")
        else:
            db.session.commit()
            flash(str(_l("The order is now “%(status)s”.",
                         status=ORDER_STATUS_LABELS[order.status])), "success")
        return redirect(url_for(".show", pk=pk))

    @expose("/<int:pk>/collect", methods=["POST"])
    @has_access
    def collect(self, pk: int):
        return self._move(pk, collect_sample)

    @expose("/<int:pk>/start", methods=["POST"])
    @has_access
    def start(self, pk: int):
        return self._move(pk, start_processing)

    @expose("/<int:pk>/cancel", methods=["GET", "POST"])
    @has_access
    def cancel(self, pk: int):
        order = self._order(pk)
        form = ReasonForm(request.form if request.method == "POST" else None)
        if request.method == "POST" and form.validate():
            try:
                cancel_order(order, form.reason.data)
            except ClinicError as exc:
                db.session.rollback()
                form.reason.errors = [str(exc)]
            else:
                db.session.commit()
                flash(str(_l("The order is cancelled.")), "success")
                return redirect(url_for(".show", pk=pk))
        return self.render_template(
            "clinic/lab/reason.html", title=_l("Cancel lab order"), order=order, form=form,
            action=url_for(".cancel", pk=pk), submit=_l("Cancel the order"),
            lead=_l("The order is kept, marked cancelled, with your reason."),
        )

    @expose("/<int:pk>/print")
    @has_access
    @logs_access("print")
    def print_report(self, pk: int):
        """The lab report as a printable A4 page (results need the results permission too)."""
        order = self._order(pk)
        if not self.appbuilder.sm.has_access(READ, LAB_RESULTS):
            abort(403)
        return self.render_template(
            "clinic/lab/print.html", now=utcnow(), **order_page_context(order),
        )


def order_page_context(order: LabOrder) -> dict[str, Any]:
    """What the order page and the report show, and which actions the user may take."""
    sm = current_app.appbuilder.sm
    user = g.get("user")
    can_results = sm.has_access(READ, LAB_RESULTS)
    entered_by_me = user is not None and order.resulted_by_id == getattr(user, "id", None)
    return {
        "order": order,
        "patient": order.patient,
        "branch": order.branch,
        "results": order.results,
        "can_see_results": can_results,
        "can_collect": order.status == "ordered" and sm.has_access(PROGRESS, LAB_ORDERS),
        "can_start": order.status == "collected" and sm.has_access(PROGRESS, LAB_ORDERS),
        "can_cancel": order.status in CANCELLABLE and sm.has_access(CANCEL, LAB_ORDERS),
        "can_enter": order.status in ENTERABLE and sm.has_access(ENTER, LAB_RESULTS),
        "may_verify": order.status == "resulted" and sm.has_access(VERIFY, LAB_RESULTS),
        "entered_by_me": entered_by_me,
        "can_amend": order.status == "verified" and sm.has_access(AMEND, LAB_RESULTS),
        "can_print": can_results and order.status != "cancelled",
        "status_badge": status_badge,
        "priority_badge": priority_badge,
        "status_labels": ORDER_STATUS_LABELS,
        "priority_labels": PRIORITY_LABELS,
        "flag_labels": FLAG_LABELS,
        "range_text": range_text,
        "value_text": result_value_text,
        "local_time": lambda when: local_time(when, order.branch.time_zone),
        "person": person,
    }


# -- the API -------------------------------------------------------------------------------------


class LabOrderApi(BranchScopedMixin, ClinicModelApi):
    """``/api/v1/lab-orders/``: orders of the user's branches; results for those who may read them."""

    resource_name = "lab-orders"
    datamodel = ClinicSQLAInterface(LabOrder)
    class_permission_name = LAB_ORDERS
    # The screen's permissions: FAB drops a shared name's pairs an API lacks.
    base_permissions = [READ, CREATE, PROGRESS, CANCEL]
    include_route_methods = {"get", "get_list", "info", "post"}
    access_log = "patient"
    list_columns = [
        "id", "status", "priority", "created_at", "patient.id", "patient.mrn", "branch.id",
        "consultation.id", "clinical_notes", "cancel_reason", "collected_at", "resulted_at",
        "verified_at",
    ]
    show_columns = list_columns
    # Orders are placed by ``post_headless`` through the service; these only shape FAB's schema.
    add_columns = ["priority", "clinical_notes"]
    edit_columns = add_columns
    order_columns = ["created_at", "status", "priority"]
    search_columns = ["status", "priority"]

    def pre_get(self, data: dict[str, Any]) -> None:
        super().pre_get(data)
        if not self.appbuilder.sm.has_access(READ, LAB_RESULTS):
            return
        order = db.session.get(LabOrder, data["id"])
        data["result"]["results"] = [
            {
                "id": result.id,
                "test_code": result.test.code,
                "test_name": result.test.name,
                "value": result_value_text(result) or None,
                "unit": result.unit,
                "reference_low": _float(result.reference_low),
                "reference_high": _float(result.reference_high),
                "flag": result.flag,
                "comment": result.comment,
            }
            for result in order.results
        ]

    def post_headless(self):
        """Order tests: ``{"patient_id", "test_ids": [...], "priority", "clinical_notes",
        "branch_id"}`` or ``{"consultation_id", "test_ids", ...}``."""
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self.response_400(message=str(_l("Send the order as a JSON object.")))
        try:
            test_ids = [int(value) for value in body.get("test_ids") or []]
            consultation_id = _optional_int(body.get("consultation_id"))
            patient_id = _optional_int(body.get("patient_id"))
            branch_id = _optional_int(body.get("branch_id"))
        except (TypeError, ValueError):
            return self.response_400(message=str(_l("Ids must be numbers.")))
        allowed = allowed_branch_ids()
        consultation = patient = branch = None
        if consultation_id is not None:
            consultation = db.session.get(Consultation, consultation_id)
            if consultation is None or consultation.branch_id not in allowed:
                return self.response_422(message=str(_l("No such consultation.")))
        else:
            patient = db.session.get(Patient, patient_id) if patient_id else None
            if patient is None or patient.merged_into_id is not None:
                return self.response_422(message=str(_l("No such patient.")))
            if branch_id is None and len(allowed) == 1:
                branch_id = allowed[0]
            if branch_id not in allowed:
                return self.response_422(
                    message=str(_l("Choose one of your own branches for this record."))
                )
            branch = db.session.get(Branch, branch_id)
        tests = list(db.session.scalars(select(LabTest).where(LabTest.id.in_(test_ids))))
        if len(tests) != len(set(test_ids)):
            return self.response_422(message=str(_l("No such test.")))
        try:
            order = create_order(
                tests=tests, patient=patient, branch=branch, consultation=consultation,
                priority=body.get("priority") or "routine",
                clinical_notes=body.get("clinical_notes"),
            )
        except ClinicError as exc:
            db.session.rollback()
            return self.response_422(message=str(exc))
        db.session.commit()
        return self.response(201, id=order.id, result={"status": order.status})


def _optional_int(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


def _float(value: Decimal | None) -> float | None:
    return float(value) if value is not None else None


# -- the patient's timeline ----------------------------------------------------------------------


@dataclass(frozen=True)
class LabTimelineItem:
    order: LabOrder
    status: Markup
    tests: str


@timeline_source("lab", READ, LAB_ORDERS)
def lab_items(patient: Patient, branch_ids: list[int]):
    """The patient's lab orders at the user's branches."""
    orders = db.session.scalars(
        select(LabOrder)
        .where(LabOrder.patient_id == patient.id, LabOrder.branch_id.in_(branch_ids))
        .order_by(LabOrder.created_at.desc())
    )
    return [
        (order.created_at, LabTimelineItem(order, status_badge(order.status), _test_codes(order.results)))
        for order in orders
    ]
