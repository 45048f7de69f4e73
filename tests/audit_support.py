"""A test-only patient record, its screen and API, and helpers to read the audit trail.

``PatientNote`` stands in for the clinical records later issues add: it belongs to a branch and
concerns one patient (``__audit_subject__``), so its audit entries are encrypted with that
patient's key, and its screen and API declare ``access_log = "patient"``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import abort, redirect
from flask_appbuilder import Model, expose, has_access
from flask_appbuilder.actions import action
from markupsafe import escape
from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.audit import AuditEntry
from app.models.base import BranchOwnedMixin
from app.security import policy
from app.views.base import (
    BranchScopedMixin,
    ClinicModelApi,
    ClinicModelView,
    ClinicSQLAInterface,
    logs_access,
)

PERMISSION_VIEW = "PatientNotes"


class PatientNote(BranchOwnedMixin, Model):
    """A note about a patient, kept at a branch; exists only in tests."""

    __tablename__ = "test_patient_note"
    __table_args__ = {"info": {"test_only": True}}
    __audit_subject__ = ("patient", "patient_id")

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(Integer, nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)


class PatientNoteModelView(BranchScopedMixin, ClinicModelView):
    route_base = "/test-patient-notes"
    datamodel = ClinicSQLAInterface(PatientNote)
    class_permission_name = PERMISSION_VIEW
    method_permission_name = {**ClinicModelView.method_permission_name,
                              "print_note": "read", "archive": "edit"}
    access_log = "patient"
    list_columns = show_columns = ["patient_id", "title", "branch"]
    add_columns = edit_columns = ["patient_id", "title", "branch"]

    @expose("/print/<pk>")
    @has_access
    @logs_access("print")
    def print_note(self, pk):
        item = self.datamodel.get(self._deserialize_pk_if_composite(pk), self._base_filters)
        if item is None:
            abort(404)
        return f"<pre>{escape(item.title)}</pre>"

    @action("archive", "Archive", "Archive these notes?", "fa-box-archive", single=False)
    def archive(self, items):
        for item in items:
            item.title = f"[archived] {item.title}"
        db.session.commit()
        return redirect(self.get_redirect())


class PatientNoteApi(BranchScopedMixin, ClinicModelApi):
    resource_name = "test-patient-notes"
    datamodel = ClinicSQLAInterface(PatientNote)
    class_permission_name = PERMISSION_VIEW
    access_log = "patient"
    list_columns = show_columns = ["id", "patient_id", "title"]
    add_columns = edit_columns = ["patient_id", "title", "branch"]


def install_patient_notes(app) -> None:
    """Create the table, add the screen and API, and let doctors use them."""
    with app.app_context():
        PatientNote.__table__.create(db.engine, checkfirst=True)
        appbuilder = app.appbuilder
        appbuilder.add_view_no_menu(PatientNoteModelView)
        appbuilder.add_api(PatientNoteApi)
        sm = appbuilder.sm
        sm.add_permissions_view(list(policy.CRUD), PERMISSION_VIEW)
        doctor = sm.find_role(policy.DOCTOR)
        for perm in policy.CRUD:
            sm.add_permission_role(doctor, sm.find_permission_view_menu(perm, PERMISSION_VIEW))
        db.session.commit()


def last_entry_id(app) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.max(AuditEntry.id))) or 0


def entries_since(app, since: int, **where: Any) -> list[AuditEntry]:
    """Entries written after entry ``since``, oldest first, optionally filtered by column."""
    with app.app_context():
        query = sa.select(AuditEntry).where(AuditEntry.id > since).order_by(AuditEntry.id)
        for column, value in where.items():
            query = query.where(getattr(AuditEntry, column) == value)
        found = list(db.session.scalars(query))
        db.session.expunge_all()
        return found
