"""The two-factor screens: the code step of sign-in (``/totp/``) and enrolment (``/totp/enroll``)."""

from __future__ import annotations

import time

from flask import flash, g, redirect, session
from flask_appbuilder import BaseView, expose
from flask_appbuilder.security.decorators import no_cache
from flask_babel import format_datetime
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from app.extensions import db
from app.security import totp
from app.security.actions import signed_in
from app.security.password_views import is_my_current_password
from app.security.sessions import STARTED_KEY, security_state, start_session
from app.security.signin import (
    MUST_ENROLL_KEY,
    AccountLockedError,
    InvalidSecondFactorError,
    PendingSignInExpiredError,
    check_second_factor,
    clear_pending_sign_in,
    complete_sign_in,
    pending_sign_in,
)

#: Session key of the secret being enrolled (encrypted) and whose it is.
ENROLMENT_KEY = "totp_enrolment"
#: How long one enrolment QR code stays valid before a new secret is offered.
ENROLMENT_SECONDS = 3600
LOCKED_TEMPLATE = "clinic/security/locked.html"


class TotpCodeForm(FlaskForm):
    """One field, ``code``: six digits from the app, or a recovery code."""

    code = StringField(
        _l("Code"),
        validators=[
            DataRequired(message=_l("Enter the code from your app.")),
            Length(max=32, message=_l("Enter the code from your app.")),
        ],
    )


class TotpReauthForm(TotpCodeForm):
    """The code, and the current password: the sign-in was too long ago to trust the screen."""

    current_password = PasswordField(
        _l("Current password"), validators=[DataRequired(), is_my_current_password]
    )


#: Enrolling soon after signing in needs only the code; later, the password too.
RECENT_SIGN_IN_SECONDS = 10 * 60


def _signed_in_recently() -> bool:
    started = session.get(STARTED_KEY)
    return started is not None and time.time() - float(started) < RECENT_SIGN_IN_SECONDS


class TotpView(BaseView):
    """Two-factor sign-in: the second step of signing in, and setting it up."""

    route_base = "/totp"
    default_view = "verify"
    base_permissions: list[str] = []

    @expose("/", methods=["GET", "POST"])
    @no_cache
    def verify(self):
        """The code step, for a visitor who has just given the right password (nobody else)."""
        if current_user.is_authenticated:
            return redirect(self.appbuilder.get_url_for_index)
        try:
            pending = pending_sign_in()
        except PendingSignInExpiredError as error:
            flash(str(error), "warning")
            return redirect(self.appbuilder.get_url_for_login)
        if pending is None:
            return redirect(self.appbuilder.get_url_for_login)
        form = TotpCodeForm()
        if form.validate_on_submit():
            try:
                method = check_second_factor(pending.user, form.code.data)
            except AccountLockedError as error:
                clear_pending_sign_in()
                return self.render_template(LOCKED_TEMPLATE, message=str(error)), 423
            except InvalidSecondFactorError as error:
                flash(str(error), "danger")
            else:
                complete_sign_in(pending.user, method)
                start_session(pending.user)
                if method == "recovery_code":
                    self._warn_about_recovery_codes(pending.user.id)
                return redirect(pending.next_url)
            form.code.data = ""
        return self.render_template(
            "clinic/security/totp_verify.html", form=form, title=_l("Two-factor sign-in")
        )

    @staticmethod
    def _warn_about_recovery_codes(user_id: int) -> None:
        left = totp.recovery_codes_left(user_id)
        flash(
            str(
                _l(
                    "You signed in with a recovery code. %(left)s recovery codes are left: if you "
                    "have lost your phone, ask an administrator to reset your two-factor sign-in.",
                    left=left,
                )
            ),
            "warning",
        )

    @expose("/enroll", methods=["GET", "POST"])
    @signed_in
    @no_cache
    def enroll(self):
        """Set up two-factor sign-in: scan or type the secret, confirm with a code."""
        user = g.user
        if totp.is_enrolled(user.id):
            session.pop(MUST_ENROLL_KEY, None)
            return self.render_template(
                "clinic/security/totp_status.html",
                title=_l("Two-factor sign-in"),
                since=format_datetime(security_state(user.id).totp_confirmed_at),
                codes_left=totp.recovery_codes_left(user.id),
                codes_total=totp.RECOVERY_CODE_COUNT,
            )
        secret = self._enrolment_secret(user.id)
        # Whoever finds an unlocked screen must not bind the account to their own phone.
        form = TotpCodeForm() if _signed_in_recently() else TotpReauthForm()
        if form.validate_on_submit():
            try:
                codes = totp.confirm_enrolment(user, secret, form.code.data)
            except totp.TwoFactorError as error:
                db.session.rollback()
                flash(str(error), "danger")
                form.code.data = ""
            else:
                db.session.commit()
                session.pop(ENROLMENT_KEY, None)
                session.pop(MUST_ENROLL_KEY, None)
                # Shown once, in this answer only: nothing keeps them readable afterwards.
                return self.render_template(
                    "clinic/security/totp_recovery_codes.html",
                    title=_l("Your recovery codes"),
                    codes=codes,
                )
        return self.render_template(
            "clinic/security/totp_enroll.html",
            title=_l("Set up two-factor sign-in"),
            form=form,
            required=totp.two_factor_required(user),
            qr_code=totp.qr_svg(totp.provisioning_uri(secret, user.username)),
            secret_text=totp.grouped(secret),
        )

    @staticmethod
    def _enrolment_secret(user_id: int) -> str:
        """The secret on offer: kept (encrypted) in the session, so a reload shows the same code.

        Nothing is written to the database before the user confirms it with a code.
        """
        data = session.get(ENROLMENT_KEY) or {}
        secret = None
        if data.get("user_id") == user_id:
            secret = totp.pending_secret(data.get("secret"), ENROLMENT_SECONDS)
        if secret is None:
            secret = totp.new_secret()
            session[ENROLMENT_KEY] = {"user_id": user_id, "secret": totp.encrypt_secret(secret)}
        return secret
