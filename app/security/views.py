"""ClinicDesk's sign-in screen and the Admin's user screens (users with their branches)."""

from __future__ import annotations

from flask import current_app, flash, g, redirect, request
from flask_appbuilder import expose
from flask_appbuilder.security.decorators import no_cache
from flask_appbuilder.security.forms import LoginForm_db
from flask_appbuilder.security.views import (
    AuthDBView,
    RoleModelView,
    UserDBModelView,
    UserGroupModelView,
)
from flask_babel import lazy_gettext as _l
from flask_login import logout_user
from wtforms.validators import ValidationError

from app.formatting import names, yes_no
from app.security.actions import SafeModelViewMixin
from app.security.policy import ALL_BRANCH_ROLES, GROUPS_VIEW, ROLES_VIEW, USER_VIEW
from app.security.sessions import start_session


class ClinicAuthView(AuthDBView):
    """Username and password sign-in; a failed attempt keeps the username the person typed."""

    login_template = "clinic/security/login.html"
    invalid_login_message = _l("That username and password do not match. Please try again.")

    @expose("/login/", methods=["GET", "POST"])
    @no_cache
    def login(self):
        if g.user is not None and g.user.is_authenticated:
            return redirect(self._get_safe_next_url())
        form = LoginForm_db()
        if form.validate_on_submit():
            user = self.appbuilder.sm.auth_user_db(form.username.data, form.password.data)
            if user:
                start_session(user)
                return redirect(self._get_safe_next_url())
            flash(str(self.invalid_login_message), "danger")
            form.password.data = ""
        return self.render_template(
            self.login_template, title=self.title, form=form, appbuilder=self.appbuilder
        )

    @expose("/logout/", methods=["POST"])
    def logout(self):
        """Sign out. POST only, with the form's CSRF token: a link or an image cannot sign anyone out."""
        user = self._get_authenticated_user()
        logout_user()
        if user is not None:
            self.appbuilder.sm.on_user_logout(user)
        flash(str(_l("You have signed out.")), "info")
        return redirect(
            current_app.config.get("LOGOUT_REDIRECT_URL", self.appbuilder.get_url_for_login)
        )


def roles_required(form, field) -> None:
    """Every account needs a role: it is what the policy grants permissions to."""
    if not field.data:
        raise ValidationError(str(_l("Choose at least one role.")))


def branches_required_for_scoped_roles(form, field) -> None:
    """A user whose roles work per branch must be assigned at least one branch."""
    roles = {role.name for role in (form.roles.data or [])}
    if roles and not roles & ALL_BRANCH_ROLES and not field.data:
        raise ValidationError(
            str(_l("Choose at least one branch: this user's roles only see their own branches."))
        )


class ClinicUserModelView(SafeModelViewMixin, UserDBModelView):
    """The Admin's user list: staff accounts with their roles and branches."""

    route_base = "/users"
    class_permission_name = USER_VIEW
    list_title = _l("Users")
    show_title = _l("User")
    add_title = _l("Add a user")
    edit_title = _l("Edit user")
    list_columns = ["username", "first_name", "last_name", "roles", "branches", "active"]
    formatters_columns = {"roles": names, "branches": names, "active": yes_no}
    add_columns = [
        "first_name",
        "last_name",
        "username",
        "active",
        "email",
        "roles",
        "branches",
        "password",
        "conf_password",
    ]
    edit_columns = ["first_name", "last_name", "username", "active", "email", "roles", "branches"]
    search_columns = ["first_name", "last_name", "username", "email", "active", "roles", "branches"]
    show_fieldsets = [
        (_l("User info"), {"fields": ["username", "active", "roles", "branches", "login_count"]}),
        (_l("Personal info"), {"fields": ["first_name", "last_name", "email"], "expanded": True}),
        (
            _l("Audit info"),
            {
                "fields": ["last_login", "fail_login_count", "created_on", "changed_on"],
                "expanded": False,
            },
        ),
    ]
    label_columns = {
        **UserDBModelView.label_columns,
        "username": _l("Username"),
        "first_name": _l("First name"),
        "last_name": _l("Last name"),
        "active": _l("Active"),
        "roles": _l("Roles"),
        "branches": _l("Branches"),
    }
    description_columns = {
        **UserDBModelView.description_columns,
        "branches": _l("Where this person works. Owners, accountants and admins see every branch."),
    }
    validators_columns = {
        "roles": [roles_required],
        "branches": [branches_required_for_scoped_roles],
    }



class ClinicRoleModelView(SafeModelViewMixin, RoleModelView):
    """FAB's role screen (Admin only), with safe actions."""

    class_permission_name = ROLES_VIEW
    list_title = _l("Roles")
    list_columns = ["name"]


class ClinicGroupModelView(SafeModelViewMixin, UserGroupModelView):
    """FAB's group screen (Admin only), with safe actions."""

    class_permission_name = GROUPS_VIEW
    list_title = _l("Groups")
