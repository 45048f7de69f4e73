"""Branch scoping, proven on a test-only branch-owned model and on users (the staff directory).

``ScopedNote`` stands in for the clinical, lead and billing records later issues add: a screen
and a REST API built on ``BranchScopedMixin`` must keep a Downtown doctor out of Lakeside's
records through every door — list, show, edit, delete, search, dropdowns, API, new rows.
"""

from __future__ import annotations

import pytest
from flask_appbuilder import Model
from flask_appbuilder.security.sqla.models import User
from sqlalchemy import ForeignKey, String, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import BranchOwnedMixin
from app.models.org import Branch
from app.security import policy
from app.security.scoping import allowed_branch_ids
from app.views.base import BranchScopedMixin, ClinicModelApi, ClinicModelView, ClinicSQLAInterface
from tests.conftest import Auth, bearer_headers, csrf_token_from, login_as


class ScopedNote(BranchOwnedMixin, Model):
    """A branch-owned record that exists only in tests."""

    __tablename__ = "test_scoped_note"
    __table_args__ = {"info": {"test_only": True}}

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(100), nullable=False)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id"))
    author: Mapped[User | None] = relationship(User)


class ScopedNoteModelView(BranchScopedMixin, ClinicModelView):
    route_base = "/test-notes"
    datamodel = ClinicSQLAInterface(ScopedNote)
    class_permission_name = "ScopedNotes"
    list_columns = ["title", "branch", "author"]
    add_columns = edit_columns = ["title", "branch", "author"]
    show_columns = ["title", "branch", "author"]
    search_columns = ["title", "branch", "author"]


class ScopedNoteApi(BranchScopedMixin, ClinicModelApi):
    resource_name = "test-notes"
    datamodel = ClinicSQLAInterface(ScopedNote)
    class_permission_name = "ScopedNotes"
    list_columns = show_columns = ["id", "title", "branch.name", "author.username"]
    add_columns = edit_columns = ["title", "branch", "author"]


@pytest.fixture(scope="module")
def scoped_app(make_app):
    """The app plus the test-only screen and API, granted to Doctor and Receptionist."""
    app = make_app()
    with app.app_context():
        ScopedNote.__table__.create(db.engine)
        appbuilder = app.appbuilder
        appbuilder.add_view_no_menu(ScopedNoteModelView)
        appbuilder.add_api(ScopedNoteApi)
        sm = appbuilder.sm
        sm.add_permissions_view(list(policy.CRUD), "ScopedNotes")
        for role_name in (policy.DOCTOR, policy.RECEPTIONIST):
            role = sm.find_role(role_name)
            for perm in policy.CRUD:
                sm.add_permission_role(role, sm.find_permission_view_menu(perm, "ScopedNotes"))
        branches = {b.code: b for b in db.session.scalars(select(Branch))}
        doctor = sm.find_user(username="doctor")
        doctor2 = sm.find_user(username="doctor2")
        db.session.add_all(
            [
                ScopedNote(title="Downtown note", branch=branches["DT"], author=doctor),
                ScopedNote(title="Lakeside secret", branch=branches["LS"], author=doctor2),
            ]
        )
        db.session.commit()
    return app


def note_id(app, title: str) -> int:
    with app.app_context():
        return db.session.scalar(select(ScopedNote.id).where(ScopedNote.title == title))


def branch_id(app, code: str) -> int:
    with app.app_context():
        return db.session.scalar(select(Branch.id).where(Branch.code == code))


@pytest.mark.parametrize(
    "username, sees_lakeside",
    [("doctor", False), ("reception", False), ("doctor2", True)],
)
def test_list_shows_only_own_branches(scoped_app, username, sees_lakeside):
    body = login_as(scoped_app, username).get("/test-notes/list/").get_data(as_text=True)
    assert ("Lakeside secret" in body) is sees_lakeside
    assert ("Downtown note" in body) is (username != "doctor2")


@pytest.mark.parametrize("path", ["/test-notes/show/{id}", "/test-notes/edit/{id}"])
def test_other_branch_record_is_not_found(scoped_app, path):
    client = login_as(scoped_app, "doctor")
    response = client.get(path.format(id=note_id(scoped_app, "Lakeside secret")))
    assert response.status_code == 404
    assert "Lakeside secret" not in response.get_data(as_text=True)


def test_other_branch_record_cannot_be_deleted(scoped_app):
    client = scoped_app.test_client()
    Auth(client).login("doctor")
    page = client.get("/test-notes/list/").get_data(as_text=True)
    lakeside = note_id(scoped_app, "Lakeside secret")
    response = client.post(
        f"/test-notes/delete/{lakeside}", data={"csrf_token": csrf_token_from(page)}
    )
    assert response.status_code == 404
    assert note_id(scoped_app, "Lakeside secret") == lakeside


def test_search_cannot_reach_other_branch(scoped_app):
    client = login_as(scoped_app, "doctor")
    lakeside = branch_id(scoped_app, "LS")
    body = client.get(f"/test-notes/list/?_flt_0_branch={lakeside}").get_data(as_text=True)
    assert "Lakeside secret" not in body
    body = client.get("/test-notes/list/?_flt_2_title=secret").get_data(as_text=True)
    assert "Lakeside secret" not in body


def test_add_form_offers_only_own_branches_and_colleagues(scoped_app):
    body = login_as(scoped_app, "doctor").get("/test-notes/add").get_data(as_text=True)
    assert "Downtown Clinic" in body
    assert "Lakeside Dental" not in body
    assert "Priya" in body  # doctor's Downtown colleagues can be chosen as author
    assert "Sanjay" not in body  # doctor2 works at Lakeside only


def test_search_form_offers_only_own_branches(scoped_app):
    body = login_as(scoped_app, "doctor").get("/test-notes/list/").get_data(as_text=True)
    assert "Lakeside Dental" not in body


def test_crafted_post_to_other_branch_is_refused_and_input_kept(scoped_app):
    client = scoped_app.test_client()
    Auth(client).login("doctor")
    page = client.get("/test-notes/add").get_data(as_text=True)
    response = client.post(
        "/test-notes/add",
        data={
            "title": "Sneaky cross-branch note",
            "branch": str(branch_id(scoped_app, "LS")),
            "csrf_token": csrf_token_from(page),
        },
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "This field is required" in body  # the other branch is simply not a choice
    assert "Sneaky cross-branch note" in body  # what the user typed is still there
    assert note_id(scoped_app, "Sneaky cross-branch note") is None


def test_new_record_in_own_branch_is_saved(scoped_app):
    client = scoped_app.test_client()
    Auth(client).login("doctor")
    page = client.get("/test-notes/add").get_data(as_text=True)
    response = client.post(
        "/test-notes/add",
        data={
            "title": "Ward round notes",
            "branch": str(branch_id(scoped_app, "DT")),
            "csrf_token": csrf_token_from(page),
        },
    )
    assert response.status_code == 302
    with scoped_app.app_context():
        note = db.session.scalar(select(ScopedNote).where(ScopedNote.title == "Ward round notes"))
        assert note.branch.code == "DT"


@pytest.mark.parametrize("username", ["owner", "accountant", "admin"])
def test_organisation_wide_roles_see_every_branch(scoped_app, username):
    with scoped_app.app_context():
        user = scoped_app.appbuilder.sm.find_user(username=username)
        ids = allowed_branch_ids(user)
        assert ids == sorted(db.session.scalars(select(Branch.id)))


def test_api_lists_only_own_branches(scoped_app):
    client = scoped_app.test_client()
    headers = bearer_headers(scoped_app, "doctor")
    titles = {row["title"] for row in client.get("/api/v1/test-notes/", headers=headers).json["result"]}
    assert "Downtown note" in titles
    assert "Lakeside secret" not in titles


def test_api_refuses_other_branch_records(scoped_app):
    client = scoped_app.test_client()
    headers = bearer_headers(scoped_app, "doctor")
    lakeside = note_id(scoped_app, "Lakeside secret")
    assert client.get(f"/api/v1/test-notes/{lakeside}", headers=headers).status_code == 404
    response = client.put(f"/api/v1/test-notes/{lakeside}", json={"title": "x"}, headers=headers)
    assert response.status_code == 404
    assert client.delete(f"/api/v1/test-notes/{lakeside}", headers=headers).status_code == 404
    assert note_id(scoped_app, "Lakeside secret") == lakeside


def test_api_refuses_new_rows_in_other_branches(scoped_app):
    client = scoped_app.test_client()
    headers = bearer_headers(scoped_app, "doctor")
    response = client.post(
        "/api/v1/test-notes/",
        json={"title": "API cross-branch", "branch": branch_id(scoped_app, "LS")},
        headers=headers,
    )
    assert response.status_code in (400, 422), response.get_data(as_text=True)
    assert note_id(scoped_app, "API cross-branch") is None
    response = client.post(
        "/api/v1/test-notes/",
        json={"title": "API own branch", "branch": branch_id(scoped_app, "DT")},
        headers=headers,
    )
    assert response.status_code == 201
    assert note_id(scoped_app, "API own branch") is not None


def test_api_cannot_move_a_record_to_another_branch(scoped_app):
    client = scoped_app.test_client()
    headers = bearer_headers(scoped_app, "doctor")
    downtown = note_id(scoped_app, "Downtown note")
    response = client.put(
        f"/api/v1/test-notes/{downtown}",
        json={"branch": branch_id(scoped_app, "LS")},
        headers=headers,
    )
    assert response.status_code in (400, 422), response.get_data(as_text=True)
    with scoped_app.app_context():
        assert db.session.get(ScopedNote, downtown).branch.code == "DT"


def test_api_info_offers_only_own_branches(scoped_app):
    client = scoped_app.test_client()
    response = client.get("/api/v1/test-notes/_info", headers=bearer_headers(scoped_app, "doctor"))
    fields = {field["name"]: field for field in response.json["add_columns"]}
    branch_names = {value["value"] for value in fields["branch"]["values"]}
    assert branch_names == {"Downtown Clinic"}


def test_api_ignores_the_session_cookie(scoped_app):
    client = login_as(scoped_app, "doctor")
    assert client.get("/api/v1/test-notes/").status_code == 401


def test_staff_directory_shows_colleagues_of_own_branches(scoped_app):
    body = login_as(scoped_app, "doctor").get("/staff/list/").get_data(as_text=True)
    assert "Rahul" in body  # reception, Downtown
    assert "Sanjay" not in body  # doctor2, Lakeside only
    assert "Neha" not in body  # reception2, Lakeside only


def test_staff_directory_hides_other_branch_profiles(scoped_app):
    with scoped_app.app_context():
        doctor2 = scoped_app.appbuilder.sm.find_user(username="doctor2").id
    response = login_as(scoped_app, "doctor").get(f"/staff/show/{doctor2}")
    assert response.status_code == 404


def test_owner_sees_staff_of_every_branch(scoped_app):
    body = login_as(scoped_app, "owner").get("/staff/list/").get_data(as_text=True)
    assert "Sanjay" in body and "Rahul" in body


def test_jobs_scope_by_the_user_they_act_for(scoped_app):
    with scoped_app.app_context():
        sm = scoped_app.appbuilder.sm
        downtown = branch_id(scoped_app, "DT")
        lakeside = branch_id(scoped_app, "LS")
        assert allowed_branch_ids(sm.find_user(username="reception2")) == [lakeside]
        assert allowed_branch_ids(sm.find_user(username="reception")) == [downtown]
        assert allowed_branch_ids() == []  # no request, no user: nothing


def test_api_refuses_links_to_other_branch_records(scoped_app):
    """FAB's API loads related ids without the dropdown filters: the mixin checks them."""
    client = scoped_app.test_client()
    headers = bearer_headers(scoped_app, "doctor")
    with scoped_app.app_context():
        doctor2 = scoped_app.appbuilder.sm.find_user(username="doctor2").id
    response = client.post(
        "/api/v1/test-notes/",
        json={"title": "Linked across", "branch": branch_id(scoped_app, "DT"), "author": doctor2},
        headers=headers,
    )
    assert response.status_code == 422, response.json
    assert note_id(scoped_app, "Linked across") is None
    downtown = note_id(scoped_app, "Downtown note")
    response = client.put(f"/api/v1/test-notes/{downtown}", json={"author": doctor2}, headers=headers)
    assert response.status_code == 422
    with scoped_app.app_context():
        assert db.session.get(ScopedNote, downtown).author.username == "doctor"
