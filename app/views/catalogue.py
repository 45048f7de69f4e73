"""Catalogues: the services the clinic books time for (organisation-wide, no branch)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from marshmallow.validate import Range
from wtforms.validators import InputRequired, NumberRange

from app.formatting import or_dash, yes_no
from app.models.scheduling import Service
from app.security.policy import CREATE, EDIT, READ, SERVICES
from app.views.base import ClinicModelApi, ClinicModelView, ClinicSQLAInterface

DURATION_MESSAGE = _l("Enter a duration between 5 and 480 minutes.")
DURATION_VALIDATORS = [
    InputRequired(message=DURATION_MESSAGE),
    NumberRange(min=5, max=480, message=DURATION_MESSAGE),
]
_LABELS = {
    "name": _l("Name"),
    "category": _l("Category"),
    "default_duration_min": _l("Default duration (minutes)"),
    "description": _l("Description"),
    "is_active": _l("Offered"),
}


class ServiceModelView(ClinicModelView):
    """The service catalogue: what can be booked, and for how long by default."""

    route_base = "/services"
    datamodel = ClinicSQLAInterface(Service)
    class_permission_name = SERVICES
    base_permissions = [READ, CREATE, EDIT]
    list_title = _l("Services")
    show_title = _l("Service")
    add_title = _l("Add a service")
    edit_title = _l("Edit service")
    list_columns = ["name", "category", "default_duration_min", "is_active"]
    show_columns = ["name", "category", "default_duration_min", "description", "is_active"]
    add_columns = show_columns
    edit_columns = show_columns
    search_columns = ["name", "category", "is_active"]
    order_columns = ["name", "category", "default_duration_min"]
    base_order = ("name", "asc")
    label_columns = _LABELS
    description_columns = {
        "default_duration_min": _l("Appointments for this service last this long unless the "
                                   "booking says otherwise."),
        "is_active": _l("Services no longer offered stay on past appointments but cannot be "
                        "booked."),
    }
    validators_columns = {"default_duration_min": DURATION_VALIDATORS}
    formatters_columns = {
        "is_active": yes_no,
        "category": or_dash,
        "description": or_dash,
    }


class ServiceApi(ClinicModelApi):
    """``/api/v1/services/``: the catalogue for other systems (billing, booking widgets)."""

    resource_name = "services"
    datamodel = ClinicSQLAInterface(Service)
    class_permission_name = SERVICES
    base_permissions = [READ, CREATE, EDIT]
    list_columns = ["id", "name", "category", "default_duration_min", "description", "is_active"]
    show_columns = list_columns
    add_columns = ["name", "category", "default_duration_min", "description", "is_active"]
    edit_columns = add_columns
    order_columns = ["name", "category"]
    search_columns = ["name", "category", "is_active"]
    validators_columns = {
        "default_duration_min": Range(min=5, max=480, error=DURATION_MESSAGE),
    }
