"""Changing passwords: my own (any staff member) and someone else's (Admin).

The classes keep FAB's names, so their routes, endpoints and permissions stay those the policy
names. A new password must pass app/security/passwords.py, including the person's own names;
saving it ends the person's other sessions and API tokens (``sm.reset_password``), and the
browser that changed its own password gets a fresh session so it stays signed in.
"""

from __future__ import annotations

from flask import abort, current_app, flash, g, request
from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget
from flask_appbuilder.forms import DynamicForm
from flask_appbuilder.security import views as fab_views
from flask_appbuilder.security.forms import ResetPasswordForm
from flask_babel import lazy_gettext as _l
from werkzeug.security import check_password_hash
from wtforms import PasswordField
from wtforms.validators import DataRequired, ValidationError

from app.extensions import db
from app.security import lockout
from app.security.passwords import new_password_field
from app.security.sessions import start_session


def _names_of(user) -> tuple[str | None, ...]:
    if user is None:
        return ()
    return user.first_name, user.last_name, user.username, user.email


def _my_names(_form) -> tuple[str | None, ...]:
    return _names_of(g.user)


def _target_user():
    return current_app.appbuilder.sm.get_user_by_id(request.args.get("pk", type=int))


def _target_names(_form) -> tuple[str | None, ...]:
    return _names_of(_target_user())


def is_my_current_password(form, field) -> None:
    """Whoever sits at an unlocked screen must not take the account over: ask for the password.

    A wrong answer counts toward the account's lockout, like a failed sign-in.
    """
    user = current_app.appbuilder.sm.get_user_by_id(g.user.id)
    if not check_password_hash(user.password or "", field.data or ""):
        lockout.record_failure(user, "password")
        db.session.commit()
        raise ValidationError(str(_l("That is not your current password.")))


class MyPasswordForm(DynamicForm):
    """My current password, then the new one twice (not based on my own names)."""

    current_password = PasswordField(
        _l("Current password"),
        validators=[DataRequired(), is_my_current_password],
        widget=BS3PasswordFieldWidget(),
    )
    password = new_password_field(_my_names)
    conf_password = ResetPasswordForm.conf_password


class UserPasswordForm(ResetPasswordForm):
    """Someone's new password, twice; not based on their names."""

    password = new_password_field(_target_names)
    conf_password = ResetPasswordForm.conf_password


class ResetMyPasswordView(fab_views.ResetMyPasswordView):
    """``/resetmypassword/form``: change my password; my other sessions end, this one goes on."""

    form = MyPasswordForm
    form_title = _l("Change my password")
    message = _l("Your password is changed. Your sessions on other devices have ended.")

    def form_post(self, form) -> None:
        sm = self.appbuilder.sm
        user = sm.get_user_by_id(g.user.id)
        sm.reset_password(user.id, form.password.data)
        start_session(user)
        flash(str(self.message), "info")


class ResetPasswordView(fab_views.ResetPasswordView):
    """``/resetpassword/form?pk=…`` (Admin): set a user's password; their sessions end."""

    form = UserPasswordForm
    form_title = _l("Set a new password")
    message = _l("The password is changed. The user's sessions have ended.")

    def form_post(self, form) -> None:
        user = _target_user()
        if user is None:
            abort(404)
        self.appbuilder.sm.reset_password(user.id, form.password.data)
        if user.id == g.user.id:
            start_session(user)
        flash(str(self.message), "info")
