"""The lab's test catalogue: the tests a branch can order and their reference ranges."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, request, url_for
from flask_appbuilder import expose, has_access
from flask_appbuilder.forms import DynamicForm
from flask_babel import lazy_gettext as _l
from wtforms import IntegerField, SelectField, StringField
from wtforms.validators import (
    DataRequired,
    InputRequired,
    NumberRange,
    Optional,
    Regexp,
    ValidationError,
)

from app.extensions import db
from app.models.lab import LabTest
from app.security.policy import CREATE, EDIT, LAB_TESTS, READ, VIEW_METHOD_PERMISSIONS
from app.services.errors import ClinicError
from app.services.lab import (
    SEX_LABELS,
    LabValueError,
    add_reference_range,
    parse_number,
    range_text,
)
from app.views.base import ClinicModelView, ClinicSQLAInterface


def _yes_no(value: Any) -> str:
    return str(_l("Yes")) if value else str(_l("No"))


def _number_field(form, field) -> None:
    if field.data in (None, ""):
        field.data = None
        return
    try:
        field.data = parse_number(str(field.data), str(field.label.text))
    except LabValueError as exc:
        raise ValidationError(str(exc)) from None


class ReferenceRangeForm(DynamicForm):
    sex = SelectField(_l("Applies to"), choices=list(SEX_LABELS.items()), default="any")
    age_min_years = IntegerField(
        _l("From age (years)"), default=0,
        validators=[Optional(), NumberRange(min=0, max=150, message=_l("Enter an age from 0 to 150."))],
    )
    age_max_years = IntegerField(
        _l("Up to age (years, not included)"),
        validators=[Optional(), NumberRange(min=1, max=200, message=_l("Enter an age from 1 to 200."))],
        description=_l("Leave empty for no upper age."),
    )
    low = StringField(_l("Low limit"), validators=[_number_field])
    high = StringField(_l("High limit"), validators=[_number_field])


class LabTestModelView(ClinicModelView):
    """The organisation's test catalogue; reference ranges are kept on each test's page."""

    route_base = "/lab-tests"
    datamodel = ClinicSQLAInterface(LabTest)
    class_permission_name = LAB_TESTS
    method_permission_name = {
        **VIEW_METHOD_PERMISSIONS, "add_range": "edit", "remove_range": "edit",
    }
    base_permissions = [READ, CREATE, EDIT]
    exclude_route_methods = {"delete", "download"}
    show_template = "clinic/lab/test_show.html"
    list_title = _l("Lab tests")
    show_title = _l("Lab test")
    add_title = _l("Add a lab test")
    edit_title = _l("Edit lab test")
    add_row_message = _l("Lab test added. Add its reference ranges below.")
    _columns = ["code", "name", "sample_type", "unit", "turnaround_hours", "is_active"]
    list_columns = _columns
    show_columns = _columns
    add_columns = _columns
    edit_columns = _columns
    search_columns = ["code", "name", "sample_type", "is_active"]
    order_columns = ["code", "name", "sample_type", "turnaround_hours"]
    base_order = ("name", "asc")
    label_columns = {
        "code": _l("Code"),
        "name": _l("Name"),
        "sample_type": _l("Sample type"),
        "unit": _l("Unit"),
        "turnaround_hours": _l("Turnaround (hours)"),
        "is_active": _l("Can be ordered"),
    }
    description_columns = {
        "code": _l("Short code printed on reports, e.g. HB or FBS."),
        "unit": _l("Leave empty for tests reported as text (e.g. blood group)."),
        "is_active": _l("Untick to retire the test: past orders keep it."),
    }
    validators_columns = {
        "code": [
            DataRequired(),
            Regexp(r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                   message=_l("Use letters, digits, dots, dashes or underscores only.")),
        ],
        "name": [DataRequired()],
        "turnaround_hours": [
            InputRequired(message=_l("Enter the turnaround in hours.")),
            NumberRange(min=1, max=2160, message=_l("Enter a turnaround from 1 to 2160 hours.")),
        ],
    }
    formatters_columns = {
        "is_active": _yes_no,
        "sample_type": lambda value: value or "—",
        "unit": lambda value: value or "—",
    }

    def _tidy(self, item: LabTest) -> None:
        item.code = (item.code or "").strip().upper()
        item.name = (item.name or "").strip()
        item.sample_type = (item.sample_type or "").strip() or None
        item.unit = (item.unit or "").strip() or None

    def pre_add(self, item: LabTest) -> None:
        self._tidy(item)

    def pre_update(self, item: LabTest) -> None:
        self._tidy(item)

    def _test_page(self, test: LabTest, form: ReferenceRangeForm | None = None, error: str = ""):
        widgets = self._get_show_widget(test.id, test)
        return self.render_template(
            self.show_template,
            pk=test.id,
            title=self.show_title,
            widgets=widgets,
            test=test,
            range_form=form or ReferenceRangeForm(),
            range_error=error,
            range_text=range_text,
            sex_labels=SEX_LABELS,
            can_edit=self.appbuilder.sm.has_access(EDIT, LAB_TESTS),
        )

    def _get_test(self, pk: Any) -> LabTest:
        test = self.datamodel.get(pk, self._base_filters)
        if test is None:
            abort(404)
        return test

    @expose("/show/<pk>")
    @has_access
    def show(self, pk):
        return self._test_page(self._get_test(self._deserialize_pk_if_composite(pk)))

    @expose("/<int:pk>/ranges", methods=["POST"])
    @has_access
    def add_range(self, pk: int):
        """Add a reference range; a refused one shows the page again with what was typed."""
        test = self._get_test(pk)
        form = ReferenceRangeForm(request.form)
        if not form.validate():
            return self._test_page(test, form)
        try:
            add_reference_range(
                test, sex=form.sex.data, age_min_years=form.age_min_years.data,
                age_max_years=form.age_max_years.data, low=form.low.data, high=form.high.data,
            )
        except ClinicError as exc:
            db.session.rollback()
            return self._test_page(self._get_test(pk), form, str(exc))
        db.session.commit()
        flash(str(_l("Reference range added.")), "success")
        return redirect(url_for(".show", pk=pk) + "#ranges")

    @expose("/<int:pk>/ranges/remove", methods=["POST"])
    @has_access
    def remove_range(self, pk: int):
        test = self._get_test(pk)
        range_id = request.form.get("range_id", type=int)
        reference = next((r for r in test.ranges if r.id == range_id), None)
        if reference is None:
            abort(404)
        test.ranges.remove(reference)
        db.session.commit()
        flash(str(_l("Reference range removed.")), "success")
        return redirect(url_for(".show", pk=pk) + "#ranges")
