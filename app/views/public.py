"""``/request-appointment``: the public appointment request form (no sign-in).

Protection without third-party services: the app's CSRF token, a honeypot field, a signed
"form opened at" time (a submission faster than ``PUBLIC_FORM_MIN_SECONDS`` is a bot's), a
per-address limit on POSTs (``PUBLIC_FORM_RATE_LIMIT``, counted in Redis by FAB's limiter), and
a length limit on every field. The lead is built from the form's own fields only: nothing a
crafted POST adds (stage, owner, notes …) reaches it.
"""

from __future__ import annotations

import time

from flask import Response, current_app, redirect, render_template, request, url_for
from flask_appbuilder import AppBuilder, BaseView, expose
from flask_appbuilder.forms import DynamicForm
from flask_babel import lazy_gettext as _l
from itsdangerous import BadSignature, URLSafeSerializer
from wtforms import BooleanField, EmailField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Email, Length, Optional, ValidationError

from app.extensions import db
from app.models.leads import Lead
from app.models.org import Branch
from app.models.scheduling import Service
from app.services.audit import acting_as
from app.services.errors import ClinicError
from app.services.leads import HEARD_ABOUT_LABELS, create_lead
from app.services.notifications import notify_new_lead
from app.services.org import InvalidSettingError, get_organisation, normalise_phone

#: The audit trail's name for writes the public form makes (with the visitor's address).
PUBLIC_FORM_ACTOR = "public form"
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
UTM_MAX = 100
_STARTED_SALT = "clinicdesk public request form started"
NEED_A_WAY_TO_REACH = _l("Please give a phone number or an e-mail address so we can reach you.")
CONTACT_CONSENT_NEEDED = _l(
    "We can only arrange your appointment if we may contact you about it. Please tick this box."
)
TRY_AGAIN = _l("Sorry, we could not send your request. Please check it and send it again.")


def _clip(limit: int):
    """A filter that trims a hidden value to ``limit`` characters (never an error: nobody sees it)."""

    def clip(value):
        value = (value or "").strip()[:limit]
        return value or None

    return clip


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class PublicRequestForm(DynamicForm):
    """What a visitor may tell us: contact details, where and when, what for, and consents.

    The view sets ``branch.choices`` (active branches) and ``service.choices`` (active services)
    before validating; a valid phone is stored in international form for the chosen branch.
    """

    first_name = StringField(
        _l("First name"), filters=[_strip],
        validators=[DataRequired(message=_l("Please tell us your first name.")), Length(max=80)],
    )
    last_name = StringField(
        _l("Last name"), filters=[_strip],
        validators=[DataRequired(message=_l("Please tell us your last name.")), Length(max=80)],
    )
    phone = StringField(
        # No Optional(): an empty phone must still reach validate_phone (phone or e-mail).
        _l("Phone"), filters=[_strip], validators=[Length(max=40)],
        description=_l("We call or text you on this number about your request."),
    )
    email = EmailField(
        _l("E-mail"), filters=[_strip],
        validators=[
            Optional(),
            Length(max=254),
            Email(message=_l("Please check the e-mail address; it does not look complete.")),
        ],
    )
    branch = SelectField(_l("Preferred clinic"), coerce=int, default=0)
    service = SelectField(_l("What would you like to book?"), coerce=int, default=0)
    preferred_times = StringField(
        _l("Preferred days and times"), filters=[_strip], validators=[Optional(), Length(max=300)],
        description=_l("For example: weekday mornings, or after 5 pm on Tuesdays."),
    )
    reason = TextAreaField(
        _l("Reason for the visit"), filters=[_strip], validators=[Optional(), Length(max=2000)],
        description=_l("A few words are enough. Please do not send test results or documents here."),
    )
    heard_about = SelectField(_l("How did you hear about us?"), default="")
    consent_contact = BooleanField(
        _l("You may contact me about this request"),
        validators=[DataRequired(message=CONTACT_CONSENT_NEEDED)],
        description=_l("Needed to arrange your appointment: we use your details only for it."),
    )
    consent_reminders = BooleanField(_l("Send me appointment reminders"))
    consent_marketing = BooleanField(_l("Send me news and offers from the clinic"))
    # The honeypot: hidden from people (CSS, aria-hidden, no tab stop); bots fill it in.
    website = StringField(_l("Website"), validators=[Optional(), Length(max=200)])
    started = HiddenField()
    utm_source = HiddenField(filters=[_clip(UTM_MAX)])
    utm_medium = HiddenField(filters=[_clip(UTM_MAX)])
    utm_campaign = HiddenField(filters=[_clip(UTM_MAX)])
    utm_term = HiddenField(filters=[_clip(UTM_MAX)])
    utm_content = HiddenField(filters=[_clip(UTM_MAX)])

    def chosen_branch(self) -> Branch | None:
        return self.branches.get(self.branch.data) if self.branch.data else None

    def validate_branch(self, field) -> None:
        if self.chosen_branch() is None:
            raise ValidationError(str(_l("Please choose a clinic.")))

    def validate_service(self, field) -> None:
        if field.data and field.data not in self.service_ids:
            raise ValidationError(str(_l("Please choose a service from the list.")))

    def validate_phone(self, field) -> None:
        if not field.data:
            if not self.email.data:
                raise ValidationError(str(NEED_A_WAY_TO_REACH))
            return
        branch = self.chosen_branch()
        try:
            # Read as the chosen clinic's country reads it; "+<code>" works from anywhere.
            field.data = normalise_phone(field.data, branch.country if branch else "")
        except InvalidSettingError:
            raise ValidationError(
                str(_l("Please check the phone number; add the country code if it is not local."))
            ) from None


def _started_serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=_STARTED_SALT)


#: A form opened longer ago than this is stale: its "opened at" token is not reused by a bot forever.
FORM_MAX_AGE_SECONDS = 12 * 3600


def started_token(at: float | None = None) -> str:
    """A signed "form opened at" time for the hidden ``started`` field."""
    return _started_serializer().dumps(at if at is not None else time.time())


def started_at(token: str | None) -> float | None:
    """The time a form was opened, or ``None`` when the token is missing or tampered with."""
    if not token:
        return None
    try:
        value = _started_serializer().loads(token)
    except BadSignature:
        return None
    return float(value) if isinstance(value, (int, float)) else None


def active_branches() -> list[Branch]:
    return list(db.session.query(Branch).filter_by(is_active=True).order_by(Branch.name))


def active_services() -> list[Service]:
    return list(db.session.query(Service).filter_by(is_active=True).order_by(Service.name))


class PublicRequestView(BaseView):
    """The form, its thank-you page, and nothing else: no sign-in, no staff frame."""

    route_base = "/request-appointment"
    default_view = "request_form"
    form_template = "clinic/public/request.html"

    @expose("", methods=["GET", "POST"])
    def request_form(self):
        form = PublicRequestForm()
        branches = active_branches()
        services = active_services()
        form.branches = {branch.id: branch for branch in branches}
        form.service_ids = {service.id for service in services}
        form.branch.choices = [(0, str(_l("Choose a clinic")))] + [(b.id, b.name) for b in branches]
        form.service.choices = [(0, str(_l("Not sure yet")))] + [(s.id, s.name) for s in services]
        form.heard_about.choices = [("", str(_l("Choose one (optional)")))] + [
            (value, str(label)) for value, label in HEARD_ABOUT_LABELS.items()
        ]
        notice = None
        if request.method == "GET":
            if len(branches) == 1:
                form.branch.data = branches[0].id
            for name in UTM_FIELDS:
                getattr(form, name).data = request.args.get(name, "").strip()[:UTM_MAX] or None
            form.started.data = started_token()
        elif form.website.data:
            # A bot filled in the honeypot: answer as if all went well, and keep nothing.
            return redirect(url_for("PublicRequestView.thanks"))
        else:
            opened = started_at(form.started.data)
            if opened is None or time.time() - opened > FORM_MAX_AGE_SECONDS:
                form.started.data = started_token()  # tampered with or stale: start again
                notice = TRY_AGAIN
            elif time.time() - opened < current_app.config["PUBLIC_FORM_MIN_SECONDS"]:
                notice = TRY_AGAIN  # too fast for a person; the same clock still runs
            elif form.validate_on_submit():
                try:
                    self._submit(form, form.chosen_branch())
                except ClinicError as error:
                    db.session.rollback()
                    notice = str(error)
                else:
                    return redirect(url_for("PublicRequestView.thanks"))
        return self.render_template(
            self.form_template, form=form, notice=notice, organisation_name=_organisation_name(),
        )

    @expose("/thanks")
    def thanks(self):
        return self.render_template(
            "clinic/public/thanks.html",
            organisation_name=_organisation_name(),
            branches=[b for b in active_branches() if b.phone],
        )

    @staticmethod
    def _submit(form: PublicRequestForm, branch: Branch) -> Lead:
        """Create the lead from the whitelisted fields, tell reception, commit."""
        lead = Lead(
            branch=branch,
            source="web_form",
            first_name=form.first_name.data,
            last_name=form.last_name.data,
            phone=form.phone.data or None,
            email=(form.email.data or "").lower() or None,
            requested_service_id=form.service.data or None,
            preferred_times=form.preferred_times.data or None,
            reason=(form.reason.data or "").replace("\r\n", "\n") or None,
            heard_about=form.heard_about.data or None,
            consent_contact=bool(form.consent_contact.data),
            consent_reminders=bool(form.consent_reminders.data),
            consent_marketing=bool(form.consent_marketing.data),
            **{name: getattr(form, name).data for name in UTM_FIELDS},
        )
        with acting_as(PUBLIC_FORM_ACTOR):
            create_lead(lead, obtained="web_form")
            notify_new_lead(lead)
            db.session.commit()
        return lead


def _organisation_name() -> str:
    organisation = get_organisation()
    return organisation.name if organisation is not None else current_app.appbuilder.app_name


def limit_public_form(appbuilder: AppBuilder, view: PublicRequestView) -> None:
    """Count the form's POSTs per address against ``PUBLIC_FORM_RATE_LIMIT`` (FAB's limiter,
    its counters in Redis); a refused visitor gets the public "too many requests" page (429).

    Call it in the app context, after the view is added. The thank-you page (GET) is not counted.
    """
    appbuilder.sm.limiter.limit(
        lambda: current_app.config["PUBLIC_FORM_RATE_LIMIT"],
        methods=["POST"],
        on_breach=_too_many_requests,
    )(view.blueprint)


def _too_many_requests(_limit) -> Response:
    page = render_template(
        "clinic/public/too_many.html",
        appbuilder=current_app.appbuilder,
        organisation_name=_organisation_name(),
        branches=[b for b in active_branches() if b.phone],
    )
    return Response(page, status=429, mimetype="text/html")
