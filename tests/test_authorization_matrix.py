"""The authorization matrix: every route × method × (anonymous + each role) against the policy.

Routes come from the app's own URL map, so a screen or API added later is checked without
editing this file; a route the policy does not cover fails the suite.

Requests that could change data target a record that does not exist (an allowed request then
answers 404, a denied one 403) or send an empty form (an allowed request re-renders it with
errors); reads target real seeded records, and a denied answer must not contain their data.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from flask import Flask, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.security.sqla.models import Group, PermissionView, Role, User
from werkzeug.routing import Rule

from app.extensions import db
from app.models.org import Branch, Organisation
from app.security.actions import SafeModelViewMixin
from app.security import policy
from tests.conftest import ROLE_USERS, bearer_headers, login_as, required_permission

MISSING_PK = 987654
SENTINEL_BRANCH = "Sentinel Branch Qvx"
SENTINEL_STAFF = "Sentinelova"
SENTINEL_GROUP = "sentinel-group-qvx"
SENTINELS = (SENTINEL_BRANCH, SENTINEL_STAFF, SENTINEL_GROUP)
#: Methods of a view that only read, so they may target a real record.
READ_METHODS = {"show", "get", "edit", "list", "get_list", "info", "userinfo"}
ROLES = ["anonymous", *ROLE_USERS]


@dataclass(frozen=True)
class Route:
    rule: Rule
    method: str
    kind: str  # "public", "pending_sign_in", "signed_in", "refresh_token" or "permission"
    view: BaseView | None = None
    view_method: str = ""
    permission: tuple[str, str] | None = None

    @property
    def label(self) -> str:
        return f"{self.method} {self.rule.rule}"


def classify_routes(app: Flask) -> tuple[list[Route], list[str]]:
    """Every (rule, method) of the app, classified by the policy; plus the uncovered ones."""
    views = {view.endpoint: view for view in app.appbuilder.baseviews}
    covered_views = policy.covered_views()
    routes, uncovered = [], []
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            endpoint = rule.endpoint
            if endpoint in policy.PUBLIC_ENDPOINTS:
                routes.append(Route(rule, method, "public"))
                continue
            if endpoint in policy.REFRESH_TOKEN_ENDPOINTS:
                routes.append(Route(rule, method, "refresh_token"))
                continue
            if endpoint in policy.PENDING_SIGN_IN_ENDPOINTS:
                routes.append(Route(rule, method, "pending_sign_in"))
                continue
            if endpoint in policy.SIGNED_IN_ENDPOINTS:
                routes.append(Route(rule, method, "signed_in"))
                continue
            blueprint, _, method_name = endpoint.partition(".")
            view = views.get(blueprint)
            if isinstance(view, SafeModelViewMixin) and method_name in policy.ACTION_METHODS:
                # Open to signed-in users; each action checks its own pair on the view.
                if view.class_permission_name in covered_views:
                    routes.append(Route(rule, method, "signed_in", view, method_name))
                else:
                    uncovered.append(f"{method} {rule.rule} ({endpoint})")
                continue
            pair = required_permission(view, method_name) if view else None
            if pair is None or pair[1] not in covered_views:
                uncovered.append(f"{method} {rule.rule} ({endpoint})")
                continue
            routes.append(Route(rule, method, "permission", view, method_name, pair))
    return routes, uncovered


def expected_allowed(route: Route, role: str) -> bool:
    if route.kind == "public":
        return True
    if route.kind == "refresh_token":
        return False  # the matrix never sends a refresh token (tested on its own)
    if route.kind == "pending_sign_in":
        return False  # nobody here has just passed the password step (tested on its own)
    if role == "anonymous":
        return False
    if route.kind == "signed_in":
        return True
    perm, view_name = route.permission
    if perm not in (route.view.base_permissions or []):
        return False  # FAB refuses permissions a view does not declare, even to Admin
    if role == policy.ADMIN:
        return True
    return (perm, view_name) in policy.role_permissions(role)


def denied(response, route: Route) -> bool:
    """403/401, or the login page asking the visitor to sign in and come back (``next=``).

    The token refresh door answers 422 to an access token where it wants a refresh token. The
    two-factor step sends away everyone without a pending sign-in: visitors to the login page,
    signed-in users to the home page; it never shows its form to them.
    """
    location = response.headers.get("Location", "")
    if route.kind == "pending_sign_in":
        return response.status_code == 302 and urlsplit(location).path in ("/login/", "/")
    if response.status_code in (401, 403):
        return True
    if route.kind == "refresh_token" and response.status_code == 422:
        return True
    return response.status_code in (301, 302, 303) and "/login/?next=" in location


@pytest.fixture(scope="module")
def matrix_app(make_app):
    """The app with CSRF off: the matrix asks about permissions; CSRF has its own tests."""
    app = make_app(WTF_CSRF_ENABLED=False)
    with app.app_context():
        sm = app.appbuilder.sm
        branch = Branch(
            name=SENTINEL_BRANCH, code="SNT", country="GB", time_zone="Europe/London",
            currency="GBP",
        )
        db.session.add(branch)
        staff = sm.add_user(
            "sentinel.staff", "Sentra", SENTINEL_STAFF, "sentinel@example.org",
            sm.find_role(policy.DOCTOR), password="sentinel-password-123", commit=False,
        )
        staff.branches = [db.session.query(Branch).filter_by(code="DT").one()]
        db.session.add(Group(name=SENTINEL_GROUP, label=SENTINEL_GROUP))
        db.session.commit()
    return app


def sample_pk(view: BaseView) -> int:
    """A real record of the view's model: the sentinel where there is one."""
    model = view.datamodel.obj
    query = db.session.query(model)
    if model is Branch:
        return query.filter_by(name=SENTINEL_BRANCH).one().id
    if issubclass(model, User):
        return query.filter_by(last_name=SENTINEL_STAFF).one().id
    if model is Group:
        return query.filter_by(name=SENTINEL_GROUP).one().id
    if model is Organisation:
        return 1
    if model is Role:
        return query.filter_by(name=policy.DOCTOR).one().id
    record = query.first()
    # Models keyed by another column (a doctor's profile by user_id); an empty table reads a
    # missing record (allowed: 404, denied: 403).
    return view.datamodel.get_pk_value(record) if record is not None else MISSING_PK


def build_url(app: Flask, route: Route) -> str:
    values = {}
    for arg in route.rule.arguments:
        if arg == "pk":
            if route.method == "GET" and route.view_method in READ_METHODS:
                with app.app_context():
                    values[arg] = sample_pk(route.view)
            else:
                values[arg] = MISSING_PK
        elif arg == "filename":
            values[arg] = "css/clinic.css" if route.rule.endpoint.endswith("static") else "none.txt"
        elif arg == "name":
            values[arg] = "no-such-action"
        elif arg == "version":
            values[arg] = "v1"
        elif arg == "locale":
            values[arg] = "en"
        elif arg == "branch_id":
            values[arg] = MISSING_PK
        else:
            raise AssertionError(f"no sample value for <{arg}> in {route.rule.rule}")
    with app.test_request_context():
        return url_for(route.rule.endpoint, **values)


def request_as(app: Flask, role: str, route: Route, url: str):
    is_api = route.rule.rule.startswith("/api/")
    if role == "anonymous":
        client, headers = app.test_client(), {}
    elif is_api:
        client, headers = app.test_client(), bearer_headers(app, ROLE_USERS[role])
    else:
        client, headers = login_as(app, ROLE_USERS[role]), {}
    kwargs = {"headers": headers}
    if route.method in ("POST", "PUT", "PATCH"):
        if is_api:
            kwargs["json"] = {}
        else:
            kwargs["data"] = {}
    return client.open(url, method=route.method, **kwargs)


def test_every_route_is_covered_by_the_policy(matrix_app):
    _, uncovered = classify_routes(matrix_app)
    assert uncovered == [], "routes the policy does not cover:\n" + "\n".join(uncovered)


def test_authorization_matrix(matrix_app, capsys):
    routes, _ = classify_routes(matrix_app)
    failures, cells, denials = [], 0, 0
    for route in routes:
        url = build_url(matrix_app, route)
        for role in ROLES:
            response = request_as(matrix_app, role, route, url)
            cells += 1
            want = expected_allowed(route, role)
            got_denied = denied(response, route)
            if response.status_code >= 500:
                failures.append(f"{route.label} as {role}: server error {response.status_code}")
            elif want and got_denied:
                failures.append(f"{route.label} as {role}: denied ({response.status_code})")
            elif not want and not got_denied:
                failures.append(f"{route.label} as {role}: allowed ({response.status_code})")
            elif not want:
                denials += 1
                body = response.get_data(as_text=True)
                leaked = [s for s in SENTINELS if s in body]
                if leaked:
                    failures.append(f"{route.label} as {role}: denied page shows {leaked}")
    with capsys.disabled():
        print(
            f"\n[authorization matrix] {len(routes)} route-methods x {len(ROLES)} roles = "
            f"{cells} cells checked, {denials} denied as expected"
        )
    assert not failures, "\n".join(failures)


def test_a_new_route_without_policy_fails_the_check(make_app):
    class UnlistedView(BaseView):
        route_base = "/unlisted"

        @expose("/")
        @has_access
        def index(self):
            return "unlisted"

    app = make_app()
    with app.app_context():
        app.appbuilder.add_view_no_menu(UnlistedView)
    _, uncovered = classify_routes(app)
    assert uncovered == ["GET /unlisted/ (UnlistedView.index)"]


def test_an_unprotected_route_fails_the_check(make_app):
    app = make_app()
    app.add_url_rule("/open-door", "open_door", lambda: "anyone")
    _, uncovered = classify_routes(app)
    assert uncovered == ["GET /open-door (open_door)"]


@pytest.mark.parametrize("role", [r for r in ROLE_USERS if r != policy.ADMIN])
def test_staff_roles_hold_exactly_the_policy(matrix_app, role):
    with matrix_app.app_context():
        held = {
            (pv.permission.name, pv.view_menu.name)
            for pv in matrix_app.appbuilder.sm.find_role(role).permissions
            if pv.permission.name != "menu_access"
        }
    assert held == policy.role_permissions(role)


def test_admin_holds_every_permission(matrix_app):
    with matrix_app.app_context():
        sm = matrix_app.appbuilder.sm
        admin = {pv.id for pv in sm.find_role(policy.ADMIN).permissions}
        every = {pv.id for pv in db.session.query(PermissionView)}
    assert admin == every


def test_refresh_door_accepts_a_refresh_token(matrix_app):
    from flask_jwt_extended import create_refresh_token

    with matrix_app.app_context():
        user = matrix_app.appbuilder.sm.find_user(username="reception")
        token = create_refresh_token(identity=str(user.id))
    response = matrix_app.test_client().post(
        "/api/v1/security/refresh", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    assert response.get_json()["access_token"]
