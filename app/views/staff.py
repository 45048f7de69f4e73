"""The staff directory: colleagues at the signed-in user's branches (users, scoped by branch)."""

from __future__ import annotations

from flask_appbuilder.security.sqla.models import User
from flask_appbuilder.models.sqla.filters import FilterEqual
from flask_babel import lazy_gettext as _l

from app.formatting import names
from app.security.policy import READ, STAFF
from app.security.scoping import FilterInBranches, FilterWorksInMyBranches
from app.views.base import ClinicModelView, ClinicSQLAInterface


class StaffModelView(ClinicModelView):
    """Who works where: read-only, and only for the branches the viewer works at."""

    route_base = "/staff"
    datamodel = ClinicSQLAInterface(User)
    class_permission_name = STAFF
    base_permissions = [READ]
    base_filters = [["branches", FilterWorksInMyBranches, None], ["active", FilterEqual, True]]
    search_form_query_rel_fields = {"branches": [["id", FilterInBranches, None]]}
    list_title = _l("Staff")
    show_title = _l("Staff member")
    list_columns = ["first_name", "last_name", "roles", "branches", "email"]
    show_columns = ["first_name", "last_name", "username", "roles", "branches", "email"]
    search_columns = ["first_name", "last_name", "username", "roles", "branches"]
    order_columns = ["first_name", "last_name"]
    base_order = ("first_name", "asc")
    formatters_columns = {"roles": names, "branches": names}
    label_columns = {
        "first_name": _l("First name"),
        "last_name": _l("Last name"),
        "username": _l("Username"),
        "roles": _l("Roles"),
        "branches": _l("Branches"),
        "email": _l("E-mail"),
    }
