"""Settings: the organisation's details and its branches, gathered at /settings/."""

from __future__ import annotations

import phonenumbers
from flask import Response, abort, current_app
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import lazy_gettext as _l
from marshmallow import ValidationError as MarshmallowValidationError
from marshmallow.validate import OneOf, Range
from wtforms import BooleanField, FileField, SelectField
from wtforms.validators import DataRequired, Email, Optional, ValidationError

from app.extensions import db
from app.formatting import phone, yes_no
from app.models.org import Branch, Organisation
from app.security.actions import signed_in
from app.security.policy import BRANCHES, CREATE, EDIT, ORGANISATION, READ, SETTINGS
from app.services.org import (
    InvalidSettingError,
    country_choices,
    country_codes,
    currency_codes,
    get_organisation,
    logo_mimetype,
    normalise_branch,
    normalise_phone,
    time_zone_names,
)
from app.views.base import ClinicModelApi, ClinicModelView, ClinicSQLAInterface

MONTHS = [
    (1, _l("January")),
    (2, _l("February")),
    (3, _l("March")),
    (4, _l("April")),
    (5, _l("May")),
    (6, _l("June")),
    (7, _l("July")),
    (8, _l("August")),
    (9, _l("September")),
    (10, _l("October")),
    (11, _l("November")),
    (12, _l("December")),
]


def valid_phone(form, field) -> None:
    """A phone number the branch's country can dial (stored later in international form)."""
    if not field.data:
        return
    country = getattr(form, "country", None)
    try:
        normalise_phone(field.data, country.data if country else "")
    except InvalidSettingError:
        raise ValidationError(
            str(_l("Enter a phone number with its area code, e.g. +44 20 7946 0000."))
        ) from None


def api_phone(value: str | None) -> None:
    """The REST API's phone check (the branch's country is not known to a field validator)."""
    if value and len(phonenumbers.normalize_digits_only(value)) < 6:
        raise MarshmallowValidationError(str(_l("Enter a phone number with its area code.")))


class LogoField(FileField):
    """An optional PNG or JPEG upload; a new file replaces the logo, no file keeps the old one."""

    def pre_validate(self, form) -> None:
        upload = self.data
        self.logo_bytes = None
        if not upload or not getattr(upload, "filename", ""):
            return
        limit = current_app.config["BRANCH_LOGO_MAX_BYTES"]
        data = upload.read(limit + 1)
        if len(data) > limit:
            raise ValidationError(
                str(_l("The logo is too large: use an image under %(kb)s KB.", kb=limit // 1024))
            )
        if logo_mimetype(data) is None:
            raise ValidationError(str(_l("The logo must be a PNG or JPEG image.")))
        self.logo_bytes = data

    def populate_obj(self, obj, name) -> None:
        if getattr(self, "logo_bytes", None):
            obj.logo = self.logo_bytes
            obj.logo_mimetype = logo_mimetype(self.logo_bytes)


def _branch_form_fields() -> dict:
    return {
        "country": SelectField(
            _l("Country"),
            choices=country_choices(),
            validators=[DataRequired()],
            description=_l("Default region for phone numbers and addresses."),
        ),
        "time_zone": SelectField(
            _l("Time zone"),
            choices=[(name, name) for name in sorted(time_zone_names())],
            validators=[DataRequired()],
            description=_l("Appointments and reminders use this branch's local time."),
        ),
        "currency": SelectField(
            _l("Currency"),
            choices=[(code, code) for code in sorted(currency_codes())],
            validators=[DataRequired()],
        ),
        "fy_start_month": SelectField(
            _l("Financial year starts in"),
            choices=MONTHS,
            coerce=int,
            validators=[DataRequired()],
            description=_l("Invoice numbers restart with each financial year."),
        ),
        "is_active": BooleanField(
            _l("Active"),
            default=True,
            description=_l("Inactive branches keep their records but take no new ones."),
        ),
        "logo": LogoField(
            _l("Logo"),
            description=_l("PNG or JPEG, printed on the letterhead. Leave empty to keep the current one."),
        ),
    }


class BranchModelView(ClinicModelView):
    """Branches: where the clinic works, with the details printed on its letterhead."""

    route_base = "/settings/branches"
    datamodel = ClinicSQLAInterface(Branch)
    class_permission_name = BRANCHES
    base_permissions = [READ, CREATE, EDIT]
    list_title = _l("Branches")
    show_title = _l("Branch")
    add_title = _l("Add a branch")
    edit_title = _l("Edit branch")
    list_columns = ["name", "code", "phone", "time_zone", "currency", "is_active"]
    formatters_columns = {"phone": phone, "is_active": yes_no}
    search_columns = ["name", "code", "country", "is_active"]
    order_columns = ["name", "code"]
    base_order = ("name", "asc")
    _form = [
        "name",
        "code",
        "address",
        "phone",
        "email",
        "country",
        "time_zone",
        "currency",
        "tax_id",
        "fy_start_month",
        "letterhead_text",
        "logo",
        "is_active",
    ]
    add_columns = _form
    edit_columns = _form
    show_columns = [col for col in _form if col != "logo"]
    add_form_extra_fields = _branch_form_fields()
    edit_form_extra_fields = _branch_form_fields()
    label_columns = {
        "name": _l("Name"),
        "code": _l("Code"),
        "address": _l("Address"),
        "phone": _l("Phone"),
        "email": _l("E-mail"),
        "country": _l("Country"),
        "time_zone": _l("Time zone"),
        "currency": _l("Currency"),
        "tax_id": _l("Tax id"),
        "fy_start_month": _l("Financial year starts (month)"),
        "letterhead_text": _l("Letterhead text"),
        "logo": _l("Logo"),
        "is_active": _l("Active"),
    }
    description_columns = {
        "code": _l("A short code used in document numbers, e.g. DT."),
        "tax_id": _l("Printed on invoices (e.g. GSTIN, VAT number)."),
        "letterhead_text": _l("Printed under the branch name on prescriptions and invoices."),
        "is_active": _l("Inactive branches keep their records but take no new ones."),
    }
    validators_columns = {
        "phone": [Optional(), valid_phone],
        "email": [Optional(), Email(message=_l("Enter a valid e-mail address."))],
    }

    def pre_add(self, item: Branch) -> None:
        normalise_branch(item)

    def pre_update(self, item: Branch) -> None:
        normalise_branch(item)


class OrganisationModelView(ClinicModelView):
    """The organisation's own details, one record edited in place."""

    route_base = "/settings/organisation"
    datamodel = ClinicSQLAInterface(Organisation)
    class_permission_name = ORGANISATION
    base_permissions = [READ, EDIT]
    show_title = _l("Organisation")
    edit_title = _l("Edit organisation")
    list_columns = ["name", "legal_name", "email", "phone"]
    show_columns = [
        "name", "legal_name", "email", "phone", "website", "default_locale", "require_2fa_for_all",
    ]
    edit_columns = show_columns
    formatters_columns = {"require_2fa_for_all": yes_no}
    label_columns = {
        "name": _l("Name"),
        "legal_name": _l("Legal name"),
        "email": _l("E-mail"),
        "phone": _l("Phone"),
        "website": _l("Website"),
        "default_locale": _l("Default language"),
        "require_2fa_for_all": _l("Require two-factor sign-in for everyone"),
    }
    validators_columns = {
        "email": [Optional(), Email(message=_l("Enter a valid e-mail address."))],
        "phone": [Optional(), valid_phone],
    }
    edit_form_extra_fields = {
        "default_locale": SelectField(
            _l("Default language"),
            choices=[("en", "English"), ("es", "Español")],
            validators=[DataRequired()],
        ),
        # A checkbox: FAB would make a NOT NULL boolean "required", i.e. always ticked.
        "require_2fa_for_all": BooleanField(
            _l("Require two-factor sign-in for everyone"),
            description=_l(
                "Admins and owners always need it. When this is on, everyone else sets it up at "
                "their next sign-in and can do nothing else until they have."
            ),
        ),
    }


class SettingsView(BaseView):
    """/settings/: the organisation and its branches on one page."""

    route_base = "/settings"
    default_view = "index"
    class_permission_name = SETTINGS
    method_permission_name = {"index": "read"}
    base_permissions = [READ]

    @expose("/")
    @has_access
    def index(self):
        self.update_redirect()  # saving a branch or the organisation comes back here
        sm = self.appbuilder.sm
        return self.render_template(
            "clinic/settings.html",
            organisation=get_organisation(),
            branches=db.session.query(Branch).order_by(Branch.name).all(),
            can_edit_organisation=sm.has_access(EDIT, ORGANISATION),
            can_edit_branches=sm.has_access(EDIT, BRANCHES),
            can_add_branches=sm.has_access(CREATE, BRANCHES),
        )


class BrandingView(BaseView):
    """Branch logos for letterheads: any signed-in staff member prints documents."""

    route_base = "/branding"
    base_permissions: list[str] = []

    @expose("/logo/<int:branch_id>")
    @signed_in
    def logo(self, branch_id: int):
        branch = db.session.get(Branch, branch_id)
        if branch is None or not branch.logo:
            abort(404)
        response = Response(branch.logo, mimetype=branch.logo_mimetype)
        response.headers["Cache-Control"] = "private, max-age=300"
        return response


class BranchApi(ClinicModelApi):
    """``/api/v1/branches/``: branch details (the logo is served by /branding/)."""

    resource_name = "branches"
    datamodel = ClinicSQLAInterface(Branch)
    class_permission_name = BRANCHES
    base_permissions = [READ, CREATE, EDIT]
    _columns = [
        "id", "name", "code", "address", "phone", "email", "country", "time_zone",
        "currency", "tax_id", "letterhead_text", "fy_start_month", "is_active",
    ]
    list_columns = _columns
    show_columns = _columns
    add_columns = [col for col in _columns if col != "id"]
    edit_columns = add_columns
    order_columns = ["name", "code"]
    search_columns = ["name", "code", "is_active"]

    def __init__(self, *args, **kwargs) -> None:
        # Built per instance, inside the app: marshmallow tests each message's truth, which
        # would translate a lazy string at import time, before Babel is set up.
        self.validators_columns = {
            "country": OneOf(sorted(country_codes()), error=_l("Not a known country code.")),
            "time_zone": OneOf(sorted(time_zone_names()), error=_l("Not a known time zone.")),
            "currency": OneOf(sorted(currency_codes()), error=_l("Not a known currency code.")),
            "fy_start_month": Range(min=1, max=12, error=_l("A month from 1 to 12.")),
            "phone": api_phone,
        }
        super().__init__(*args, **kwargs)

    def pre_add(self, item: Branch) -> None:
        normalise_branch(item)

    def pre_update(self, item: Branch) -> None:
        normalise_branch(item)
