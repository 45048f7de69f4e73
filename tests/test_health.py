"""/health: database, Redis and migration state, without login and without data."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from app.extensions import db

pytestmark = pytest.mark.sqlite_subset


def test_healthy_instance_reports_ok(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"database": "ok", "redis": "ok", "migrations": "head"}
    assert response.headers["Cache-Control"] == "no-store"


def test_inline_mode_reports_inline(make_app):
    app = make_app(JOBS_INLINE=True)
    response = app.test_client().get("/health")
    assert response.status_code == 200
    assert response.get_json()["redis"] == "inline"


def test_schema_behind_head_is_unhealthy(app, client):
    with app.app_context():
        (current,) = db.session.execute(text("SELECT version_num FROM alembic_version")).one()
        db.session.execute(text("UPDATE alembic_version SET version_num = 'older'"))
        db.session.commit()
    try:
        response = client.get("/health")
        assert response.status_code == 503
        assert response.get_json()["migrations"] == "behind"
    finally:
        with app.app_context():
            db.session.execute(
                text("UPDATE alembic_version SET version_num = :v"), {"v": current}
            )
            db.session.commit()


def test_unreachable_database_is_unhealthy(make_app):
    app = make_app(SQLALCHEMY_DATABASE_URI="postgresql://nobody@127.0.0.1:1/none")
    response = app.test_client().get("/health")
    assert response.status_code == 503
    assert response.get_json()["database"] == "error"
