"""``POST /api/v1/security/login`` with the same rules as the sign-in form.

FAB's REST login issues tokens on a password alone. Here an enrolled user must also send the
current code (or a recovery code) as ``totp``; a locked account answers 423, a user who must use
two-factor sign-in but has not set it up answers 403, and failures count toward the lockout.
"""

from __future__ import annotations

from flask import Response, request
from flask_appbuilder.api import safe
from flask_appbuilder.const import API_SECURITY_ACCESS_TOKEN_KEY, API_SECURITY_REFRESH_TOKEN_KEY
from flask_appbuilder.security.api import SecurityApi
from flask_appbuilder.security.schemas import LoginPost
from flask_appbuilder.views import expose
from flask_jwt_extended import create_access_token, create_refresh_token
from marshmallow import ValidationError, fields
from marshmallow.validate import Length

from app.security import totp
from app.security.sessions import security_state
from app.security.signin import (
    AccountLockedError,
    EnrolmentRequiredError,
    InvalidCredentialsError,
    InvalidSecondFactorError,
    SecondFactorRequiredError,
    check_password,
    check_second_factor,
    complete_sign_in,
)


class TwoFactorLoginPost(LoginPost):
    """FAB's login body, plus the second factor."""

    totp = fields.String(required=False, validate=Length(min=1, max=32))


login_schema = TwoFactorLoginPost()


class ClinicSecurityApi(SecurityApi):
    """FAB's security API with a login that requires the second factor of enrolled users."""

    def create_blueprint(self, appbuilder, endpoint=None, static_folder=None):
        # Keep FAB's endpoint names (SecurityApi.login, SecurityApi.refresh): the policy and the
        # rate limits name them.
        return super().create_blueprint(appbuilder, endpoint or "SecurityApi", static_folder)

    @expose("/login", methods=["POST"])
    @safe
    def login(self) -> Response:
        """Sign in and get a JWT access token (and optionally a refresh token).
        ---
        post:
          description: >-
            Authenticate with username, password and, for users with two-factor sign-in, the
            current 6-digit code (or an unused recovery code) as `totp`.
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  type: object
                  required: [username, password]
                  properties:
                    username:
                      type: string
                      example: reception
                    password:
                      type: string
                    provider:
                      type: string
                      enum: [db]
                    refresh:
                      type: boolean
                    totp:
                      description: The current code from the user's authenticator app, or a recovery code
                      type: string
                      example: "123456"
          responses:
            200:
              description: Signed in
              content:
                application/json:
                  schema:
                    type: object
                    properties:
                      access_token:
                        type: string
                      refresh_token:
                        type: string
            400:
              $ref: '#/components/responses/400'
            401:
              $ref: '#/components/responses/401'
            403:
              $ref: '#/components/responses/403'
            423:
              description: The account is locked after too many failed attempts
            500:
              $ref: '#/components/responses/500'
        """
        if not request.is_json:
            return self.response_400(message="Request payload is not JSON")
        try:
            payload = login_schema.load(request.json)
        except ValidationError as error:
            return self.response_400(message=error.messages)
        try:
            user = check_password(payload["username"], payload["password"])
            if totp.is_enrolled(user.id):
                if not payload.get("totp"):
                    raise SecondFactorRequiredError()
                method = check_second_factor(user, payload["totp"])
            elif totp.two_factor_required(user):
                raise EnrolmentRequiredError()
            else:
                method = "password"
        except AccountLockedError as error:
            return self.response(423, message=str(error))
        except EnrolmentRequiredError as error:
            return self.response(403, message=str(error))
        except (InvalidCredentialsError, SecondFactorRequiredError, InvalidSecondFactorError) as error:
            return self.response(401, message=str(error))
        complete_sign_in(user, method, via="api")
        claims = {"sv": security_state(user.id).session_version}
        tokens = {
            API_SECURITY_ACCESS_TOKEN_KEY: create_access_token(
                identity=str(user.id), fresh=True, additional_claims=claims
            )
        }
        if payload.get("refresh"):
            tokens[API_SECURITY_REFRESH_TOKEN_KEY] = create_refresh_token(
                identity=str(user.id), additional_claims=claims
            )
        return self.response(200, **tokens)
