"""ClinicDesk's security manager: FAB's, configured through class attributes only."""

from __future__ import annotations

from flask_appbuilder.security.sqla.manager import SecurityManager

from app.security.api import ClinicSecurityApi
from app.security.password_views import ResetMyPasswordView, ResetPasswordView
from app.security.sessions import bind_token_checks, record_password_change
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
    resetmypasswordview = ResetMyPasswordView
    resetpasswordview = ResetPasswordView
    userstatschartview = None
    # The REST login asks enrolled users for their second factor too.
    security_api = ClinicSecurityApi

    def create_jwt_manager(self, app):
        """FAB's JWT manager; every token carries the session version and is checked against it."""
        return bind_token_checks(super().create_jwt_manager(app))

    def reset_password(self, userid, password):
        """Every password change (forms, CLI) ends the user's sessions and API tokens."""
        record_password_change(int(userid))
        super().reset_password(userid, password)
