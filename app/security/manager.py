"""ClinicDesk's security manager: FAB's, configured through class attributes only."""

from __future__ import annotations

from flask_appbuilder.security.sqla.manager import SecurityManager

from app.security.views import (
    ClinicAuthView,
    ClinicGroupModelView,
    ClinicRoleModelView,
    ClinicUserModelView,
)


class ClinicSecurityManager(SecurityManager):
    """Chosen by ``FAB_SECURITY_MANAGER_CLASS``.

    FAB's "User's Statistics" page is removed: it loads Google Charts from the internet, which
    fails offline and would send staff data to a third party.
    """

    authdbview = ClinicAuthView
    userdbmodelview = ClinicUserModelView
    rolemodelview = ClinicRoleModelView
    groupmodelview = ClinicGroupModelView
    userstatschartview = None
