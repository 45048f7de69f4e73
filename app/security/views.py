"""ClinicDesk's sign-in screen and the Admin's user screens (users with their branches)."""

from __future__ import annotations

from flask import abort, current_app, flash, g, redirect, session, url_for
from flask_appbuilder import expose, has_access
from flask_appbuilder.actions import action
from flask_appbuilder.security.decorators import no_cache
from flask_appbuilder.security.forms import LoginForm_db
from flask_appbuilder.security.views import (
    AuthDBView,
    RoleModelView,
    UserDBModelView,
    UserGroupModelView,
)
from flask_babel import format_datetime
from flask_babel import lazy_gettext as _l
from wtforms.validators import ValidationError

from app.extensions import db
from app.formatting import names, yes_no
from app.security.actions import SafeModelViewMixin
from app.security.policy import ALL_BRANCH_ROLES, GROUPS_VIEW, ROLES_VIEW, USER_VIEW
from app.security.passwords import new_password_field
from app.security.sessions import end_session, start_session
from app.security.lockout import unlock_account
from app.security.signin import (
    MUST_ENROLL_KEY,
    AccountLockedError,
    InvalidCredentialsError,
    account_security,
    begin_pending_sign_in,
    check_password,
    complete_sign_in,
)
from app.security.totp import is_enrolled, reset_two_factor, two_factor_required


class ClinicAuthView(AuthDBView):
    """Username and password sign-in; a failed attempt keeps the username the person typed.

    Users with two-factor sign-in continue to the code step (``/totp/``) before they are signed
    in; users who must have it but have not set it up are signed in and sent to enrolment.
    """

    login_template = "clinic/security/login.html"
    invalid_login_message = _l("That username and password do not match. Please try again.")

    @expose("/login/", methods=["GET", "POST"])
    @no_cache
    def login(self):
        if g.user is not None and g.user.is_authenticated:
            return redirect(self._get_safe_next_url())
        form = LoginForm_db()
        if form.validate_on_submit():
            try:
                user = check_password(form.username.data, form.password.data)
            except AccountLockedError as error:
                return self.render_template("clinic/security/locked.html", message=str(error)), 423
            except InvalidCredentialsError:
                flash(str(self.invalid_login_message), "danger")
                form.password.data = ""
            else:
                return redirect(self._after_password(user))
        return self.render_template(
            self.login_template, title=self.title, form=form, appbuilder=self.appbuilder
        )

    def _after_password(self, user) -> str:
        """Where a right password leads: the code step, enrolment, or the page asked for."""
        next_url = self._get_safe_next_url()
        if is_enrolled(user.id):
            begin_pending_sign_in(user, next_url)
            return url_for("TotpView.verify")
        complete_sign_in(user, "password")
        start_session(user)
        if two_factor_required(user):
            session[MUST_ENROLL_KEY] = True
            return url_for("TotpView.enroll")
        return next_url

    @expose("/logout/", methods=["POST"])
    def logout(self):
        """Sign out. POST only, with the form's CSRF token: a link or an image cannot sign anyone out."""
        user = self._get_authenticated_user()
        if user is not None:
            self.appbuilder.sm.on_user_logout(user)
        # Raises the user's session version: a copy of this cookie (or an API token) taken
        # before is refused afterwards, on every device (app/security/sessions.py).
        end_session(user)
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
    add_form_extra_fields = {
        **UserDBModelView.add_form_extra_fields,
        "password": new_password_field(
            lambda form: (form.first_name.data, form.last_name.data, form.username.data,
                          form.email.data)
        ),
    }
    # Also the profile page (FAB's userinfo), which links to two-factor sign-in.
    show_template = "clinic/security/user_show.html"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Accounts are deactivated ("Active" unticked), never deleted: every audit entry and
        # record keeps naming a person who existed.
        self.base_permissions = [perm for perm in self.base_permissions if perm != "can_delete"]

    @expose("/show/<pk>", methods=["GET"])
    @has_access
    def show(self, pk):
        """A user's details, with their sign-in security (two-factor, lockout) and its actions."""
        item = self.datamodel.get(pk, self._base_filters)
        if not item:
            abort(404)
        security = account_security(item)
        widgets = self._get_show_widget(
            pk, item, actions={"resetpasswords": self.actions.get("resetpasswords")}
        )
        self.update_redirect()
        return self.render_template(
            self.show_template,
            pk=pk,
            title=self.show_title,
            widgets=widgets,
            related_views=self._related_views,
            security=security,
            enrolled_at=format_datetime(security.enrolled_at) if security.enrolled_at else "",
            locked_until=format_datetime(security.locked_until) if security.locked_until else "",
        )

    @expose("/userinfo/")
    @has_access
    def userinfo(self):
        """One's own profile, with whether two-factor sign-in is on and a link to it."""
        actions = {name: self.actions.get(name) for name in ("resetmypassword", "userinfoedit")}
        item = self.datamodel.get(g.user.id, self._base_filters)
        widgets = self._get_show_widget(
            g.user.id, item, actions=actions, show_fieldsets=self.user_show_fieldsets
        )
        self.update_redirect()
        return self.render_template(
            self.show_template,
            title=self.user_info_title,
            widgets=widgets,
            two_factor_on=is_enrolled(g.user.id),
        )

    # Run from the buttons on the user screen (POST with a CSRF token; app/security/actions.py
    # checks the ("unlock" / "totp_reset", "Users") permission, which only Admin holds).
    @action("unlock", _l("Unlock sign-in"), multiple=False, single=False)
    def unlock(self, user):
        """Lift a lockout now (audited as ``unlock``)."""
        unlock_account(user, g.user)
        db.session.commit()
        flash(str(_l("%(username)s can sign in again.", username=user.username)), "success")
        return redirect(url_for(".show", pk=user.id))

    @action("totp_reset", _l("Reset two-factor sign-in"), multiple=False, single=False)
    def totp_reset(self, user):
        """Turn the user's two-factor sign-in off and end their sessions (audited as ``totp_reset``)."""
        reset_two_factor(user, g.user)
        db.session.commit()
        flash(
            str(
                _l(
                    "Two-factor sign-in is off for %(username)s and their sessions have ended. "
                    "They set it up again at their next sign-in if their role requires it.",
                    username=user.username,
                )
            ),
            "success",
        )
        return redirect(url_for(".show", pk=user.id))



class ClinicRoleModelView(SafeModelViewMixin, RoleModelView):
    """FAB's role screen (Admin only), with safe actions."""

    class_permission_name = ROLES_VIEW
    list_title = _l("Roles")
    list_columns = ["name"]


class ClinicGroupModelView(SafeModelViewMixin, UserGroupModelView):
    """FAB's group screen (Admin only), with safe actions."""

    class_permission_name = GROUPS_VIEW
    list_title = _l("Groups")
