"""Entering, verifying and amending a lab order's results (the lab technician's work)."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.forms import DynamicForm
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from wtforms import BooleanField, StringField
from wtforms.validators import DataRequired, Length, Optional

from app.extensions import db
from app.models.lab import LabOrder, LabResult
from app.security.policy import AMEND, ENTER, LAB_RESULTS, READ, VERIFY
from app.security.scoping import allowed_branch_ids
from app.services.errors import ClinicError
from app.services.lab import (
    ENTERABLE,
    ORDER_STATUS_LABELS,
    LabResultValuesError,
    ResultEntry,
    amend_result,
    enter_results,
    is_numeric,
    range_text,
    result_value_text,
    select_range,
    verify_results,
)
from app.views.base import ClinicSQLAInterface, logs_access


class AmendForm(DynamicForm):
    value = StringField(_l("Corrected result"), validators=[DataRequired(message=_l("Enter the corrected result."))])
    comment = StringField(_l("Comment"), validators=[Optional(), Length(max=300)])
    abnormal = BooleanField(_l("Mark as abnormal"))
    reason = StringField(
        _l("Reason for the amendment"),
        validators=[DataRequired(message=_l("Say why the result is amended.")), Length(max=300)],
    )


class LabResultsView(BaseView):
    """Entering, verifying and amending an order's results (the lab technician's work)."""

    route_base = "/lab-results"
    #: The records its pages are about (for tools that walk every view, and the access log).
    datamodel = ClinicSQLAInterface(LabOrder)
    class_permission_name = LAB_RESULTS
    method_permission_name = {"enter": "enter", "verify": "verify", "amend": "amend"}
    base_permissions = [READ, ENTER, VERIFY, AMEND]
    access_log = "patient"
    default_view = "enter"

    def _deserialize_pk_if_composite(self, pk: Any) -> Any:
        return pk

    def _order(self, pk: int) -> LabOrder:
        order = db.session.scalar(
            select(LabOrder).where(LabOrder.id == pk, LabOrder.branch_id.in_(allowed_branch_ids()))
        )
        if order is None:
            abort(404)
        return order

    @expose("/enter/<int:pk>", methods=["GET", "POST"])
    @has_access
    @logs_access("view")
    def enter(self, pk: int):
        """One row per test of the order; all are saved together, or none with each problem shown."""
        order = self._order(pk)
        if order.status not in ENTERABLE:
            flash(str(_l("Results cannot be entered for an order that is “%(status)s”.",
                         status=ORDER_STATUS_LABELS[order.status])), "warning")
            return redirect(url_for("LabOrderModelView.show", pk=pk))
        errors: dict[int, str] = {}
        typed: dict[int, ResultEntry] = {}
        if request.method == "POST":
            for result in order.results:
                typed[result.id] = ResultEntry(
                    value=request.form.get(f"value-{result.id}", ""),
                    comment=request.form.get(f"comment-{result.id}", ""),
                    abnormal=bool(request.form.get(f"abnormal-{result.id}")),
                )
            try:
                enter_results(order, typed)
            except LabResultValuesError as exc:
                db.session.rollback()
                errors = exc.errors
                order = self._order(pk)
            except ClinicError as exc:
                db.session.rollback()
                flash(str(exc), "danger")
                return redirect(url_for("LabOrderModelView.show", pk=pk))
            else:
                db.session.commit()
                flash(str(_l("Results saved. Another person verifies them.")), "success")
                return redirect(url_for("LabOrderModelView.show", pk=pk))
        else:
            for result in order.results:
                typed[result.id] = ResultEntry(
                    value=result_value_text(result), comment=result.comment or "",
                    abnormal=result.flag == "abnormal",
                )
        rows = [
            {
                "result": result,
                "entry": typed[result.id],
                "error": errors.get(result.id),
                "numeric": is_numeric(result.test),
                "range": _expected_range(result, order),
            }
            for result in order.results
        ]
        return self.render_template(
            "clinic/lab/enter.html", title=_l("Enter results"), order=order, rows=rows,
            errors=errors, patient=order.patient,
        )

    @expose("/verify/<int:pk>", methods=["POST"])
    @has_access
    def verify(self, pk: int):
        order = self._order(pk)
        try:
            verify_results(order)
        except ClinicError as exc:
            db.session.rollback()
            flash(str(exc), "danger")
        else:
            db.session.commit()
            flash(str(_l("Results verified.")), "success")
        return redirect(url_for("LabOrderModelView.show", pk=pk))

    @expose("/amend/<int:pk>", methods=["GET", "POST"])
    @has_access
    @logs_access("view")
    def amend(self, pk: int):
        """Correct one verified result of order ``pk`` (``?result=<id>``), with a reason."""
        order = self._order(pk)
        result_id = request.values.get("result", type=int)
        result = next((r for r in order.results if r.id == result_id), None)
        if result is None:
            abort(404)
        form = AmendForm(request.form if request.method == "POST" else None)
        if request.method == "GET":
            form.value.data = result_value_text(result)
            form.comment.data = result.comment or ""
            form.abnormal.data = result.flag == "abnormal"
        error = ""
        if request.method == "POST" and form.validate():
            try:
                amend_result(
                    result,
                    ResultEntry(form.value.data, form.comment.data, form.abnormal.data),
                    form.reason.data,
                )
            except ClinicError as exc:
                db.session.rollback()
                error = str(exc)
                order = self._order(pk)
                result = next(r for r in order.results if r.id == result_id)
            else:
                db.session.commit()
                flash(str(_l("The result is amended.")), "success")
                return redirect(url_for("LabOrderModelView.show", pk=pk))
        return self.render_template(
            "clinic/lab/amend.html", title=_l("Amend a result"), order=order, result=result,
            form=form, error=error, value_text=result_value_text, range_text=range_text,
            patient=order.patient,
        )


def _expected_range(result: LabResult, order: LabOrder) -> str:
    """The range the result will be judged against (already copied once entered)."""
    if result.reference_low is not None or result.reference_high is not None:
        return range_text(result.reference_low, result.reference_high)
    reference = select_range(result.test, order.patient)
    return range_text(reference.low, reference.high) if reference is not None else ""
