"""Migrations own the schema: `clinic init` on any database, twice, and models == migrations.

Each test runs on SQLite and, when the suite runs on PostgreSQL, on PostgreSQL as well.
"""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_appbuilder.models.sqla import Base

from app import create_app
from app.extensions import db
from app.security import policy
from app.services.system import head_revisions
from tests.conftest import DatabaseFactory, config_for

pytestmark = pytest.mark.sqlite_subset

BACKENDS = ["sqlite"] + (
    ["postgresql"] if os.environ.get("DATABASE_URL", "").startswith("postgresql") else []
)


@pytest.fixture(params=BACKENDS)
def empty_database(request, databases, tmp_path):
    """A brand-new database with no tables, on each backend under test."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'fresh.db'}"
        yield url
        return
    factory: DatabaseFactory = databases
    url = factory.create_empty(f"fresh_{request.node.name[-20:].replace('[', '_').strip(']')}")
    yield url
    factory.drop(url)


def run_cli(app, *args):
    result = app.test_cli_runner().invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result.output


def permission_snapshot(app) -> set[tuple[str, str, str]]:
    """Every (role, permission, view) grant in the database."""
    rows = db.session.execute(
        sa.text(
            "SELECT r.name, p.name, v.name FROM ab_permission_view_role pvr "
            "JOIN ab_role r ON r.id = pvr.role_id "
            "JOIN ab_permission_view pv ON pv.id = pvr.permission_view_id "
            "JOIN ab_permission p ON p.id = pv.permission_id "
            "JOIN ab_view_menu v ON v.id = pv.view_menu_id"
        )
    )
    return {tuple(row) for row in rows}


def skip_test_only_tables(obj, name, type_, reflected, compare_to):
    """Tests may declare tables of their own (marked ``test_only``); they are not the product's."""
    return not (type_ == "table" and obj.info.get("test_only"))


def test_init_brings_an_empty_database_to_head(empty_database):
    app = create_app(config_for(empty_database))
    output = run_cli(app, "clinic", "init")
    assert "Permissions synced" in output
    with app.app_context():
        versions = set(db.session.scalars(sa.text("SELECT version_num FROM alembic_version")))
        assert versions == set(head_revisions())
        roles = set(db.session.scalars(sa.text("SELECT name FROM ab_role")))
        assert roles == {policy.ADMIN, "Public", *policy.STAFF_ROLES}
        assert db.session.scalar(sa.text("SELECT name FROM organisation WHERE id = 1"))
    assert app.test_client().get("/health").get_json()["migrations"] == "head"


def test_init_twice_changes_nothing(empty_database):
    app = create_app(config_for(empty_database))
    run_cli(app, "clinic", "init")
    with app.app_context():
        before = permission_snapshot(app)
    output = run_cli(app, "clinic", "init")
    assert "already up to date" in output
    with app.app_context():
        assert permission_snapshot(app) == before


def test_models_and_migrations_agree(empty_database):
    app = create_app(config_for(empty_database))
    run_cli(app, "clinic", "init")
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={"compare_type": True, "include_object": skip_test_only_tables},
        )
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_init_upgrades_an_older_database_and_resyncs_roles(empty_database):
    app = create_app(config_for(empty_database))
    run_cli(app, "clinic", "init")
    run_cli(app, "db", "downgrade", "base")
    with app.app_context():
        tables = set(sa.inspect(db.engine).get_table_names())
        assert tables <= {"alembic_version"}
    run_cli(app, "clinic", "init")
    with app.app_context():
        assert set(db.session.scalars(sa.text("SELECT version_num FROM alembic_version"))) == set(
            head_revisions()
        )


def test_init_revokes_grants_the_policy_does_not_make(empty_database):
    app = create_app(config_for(empty_database))
    run_cli(app, "clinic", "init")
    with app.app_context():
        sm = app.appbuilder.sm
        doctor = sm.find_role(policy.DOCTOR)
        sm.add_permission_role(doctor, sm.find_permission_view_menu(policy.EDIT, policy.BRANCHES))
        assert (policy.DOCTOR, policy.EDIT, policy.BRANCHES) in permission_snapshot(app)
    output = run_cli(app, "clinic", "init")
    assert "1 revoked" in output
    with app.app_context():
        assert (policy.DOCTOR, policy.EDIT, policy.BRANCHES) not in permission_snapshot(app)


def test_boot_never_syncs_permissions(empty_database):
    app = create_app(config_for(empty_database))
    run_cli(app, "clinic", "init")
    with app.app_context():
        before = permission_snapshot(app)
        db.session.execute(sa.text("DELETE FROM ab_permission_view_role"))
        db.session.commit()
    create_app(config_for(empty_database))  # a gunicorn worker booting
    with app.app_context():
        assert permission_snapshot(app) == set()
    run_cli(app, "clinic", "init")
    with app.app_context():
        assert permission_snapshot(app) == before


def test_init_removes_permissions_on_views_that_no_longer_exist(empty_database):
    app = create_app(config_for(empty_database))
    run_cli(app, "clinic", "init")
    with app.app_context():
        sm = app.appbuilder.sm
        gone = sm.add_permission_view_menu(policy.READ, "RetiredScreen")
        sm.add_permission_role(sm.find_role(policy.DOCTOR), gone)
    output = run_cli(app, "clinic", "init")
    assert "1 revoked" in output
    with app.app_context():
        assert app.appbuilder.sm.find_view_menu("RetiredScreen") is None
    assert "already up to date" in run_cli(app, "clinic", "init")


def test_init_upgrades_a_database_with_data_from_the_first_release(empty_database):
    app = create_app(config_for(empty_database))
    run_cli(app, "db", "upgrade", "0001")
    with app.app_context():
        db.session.execute(sa.text("INSERT INTO organisation (id, name, default_locale, date_format,"
                                   " created_at, updated_at) VALUES (1, 'Old Clinic', 'en',"
                                   " 'dd/MM/yyyy', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
        db.session.commit()
    run_cli(app, "clinic", "init")
    with app.app_context():
        row = db.session.execute(
            sa.text("SELECT name, require_2fa_for_all FROM organisation WHERE id = 1")
        ).one()
        assert row[0] == "Old Clinic" and not row[1]
        versions = set(db.session.scalars(sa.text("SELECT version_num FROM alembic_version")))
        assert versions == set(head_revisions())
