"""Base classes every ClinicDesk screen and REST API is built on.

- ``ClinicModelView`` / ``ClinicModelApi``: FAB's CRUD view and REST API, with the policy's four
  permissions (read, create, edit, delete), database errors turned into messages that carry no
  SQL or data, and actions that honour the view's row filters.
- ``BranchScopedMixin``: put it first on a view or API over a ``BranchOwnedMixin`` model and its
  lists, detail pages, edits, deletes, search filters, dropdowns and new rows keep to the
  signed-in user's branches.
- ``access_log = "patient"`` on a view or API: every list page, detail page and API read of it
  is recorded in the access log, one entry per page (``logs_access`` does it for a view's own
  routes, such as a print page).
"""

from __future__ import annotations

import logging
from functools import wraps
from typing import Any, Callable, Iterable

from flask import current_app
from flask_appbuilder import ModelRestApi, ModelView
from flask_appbuilder.const import PERMISSION_PREFIX
from flask_appbuilder.exceptions import DatabaseException
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_appbuilder.security.sqla.models import User
from flask_babel import lazy_gettext as _l
from marshmallow.validate import Length
from sqlalchemy import String, Text
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from app.extensions import db
from app.models.base import BranchOwnedMixin
from app.models.org import Branch
from app.security.actions import SafeModelViewMixin
from app.security.policy import (
    API_METHOD_PERMISSIONS,
    CREATE,
    DELETE,
    EDIT,
    READ,
    VIEW_METHOD_PERMISSIONS,
)
from app.security.scoping import (
    FilterInBranches,
    FilterWorksInMyBranches,
    allowed_branch_ids,
    default_branch_id,
)
from app.services.audit import record_access
from app.services.audit_subjects import audit_subject
from app.services.errors import ClinicError

log = logging.getLogger(__name__)

class SafeDatabaseError(DatabaseException):
    """A write the database refused, described without SQL or the values involved.

    FAB's screens flash ``str(error)``; its REST API reports ``error.__cause__``: both read the
    same translated sentence.
    """


class ClinicSQLAInterface(SQLAInterface):
    """FAB's data interface, but a refused write never shows or logs SQL or the row's values.

    FAB flashes ``str(exception)`` and logs it with a traceback; a PostgreSQL error's DETAIL line
    quotes the offending values, which may be a patient's. The caught error is logged by class
    and constraint name only, and the user reads a translated sentence.
    """

    def _refused(self, action: str, exc: SQLAlchemyError) -> SafeDatabaseError:
        self.session.rollback()
        constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
        log.warning(
            "%s on %s refused by the database: %s (constraint %s)",
            action,
            self.obj.__name__,
            type(exc.orig or exc).__name__,
            constraint or "unknown",
        )
        if isinstance(exc, IntegrityError):
            message = _l(
                "This could not be saved: it conflicts with another record or is still in use. "
                "Check the values and try again."
            )
        else:
            message = _l("This could not be saved. Please try again.")
        error = SafeDatabaseError(str(message))
        error.__cause__ = SafeDatabaseError(str(message))
        error.__suppress_context__ = True  # the original error quotes SQL and values
        return error

    def add(self, item: Any, commit: bool = True) -> None:
        try:
            self.session.add(item)
            if commit:
                self.session.commit()
        except SQLAlchemyError as exc:
            raise self._refused("add", exc)

    def edit(self, item: Any, commit: bool = True) -> None:
        try:
            self.session.merge(item)
            if commit:
                self.session.commit()
        except SQLAlchemyError as exc:
            raise self._refused("edit", exc)

    def delete(self, item: Any, commit: bool = True) -> None:
        try:
            self.session.delete(item)
            if commit:
                self.session.commit()
        except SQLAlchemyError as exc:
            raise self._refused("delete", exc)


def record_reads(view: Any, action: str, pks: Iterable[Any]) -> None:
    """One access-log entry for the rows of ``view``'s model that a page or API call showed.

    The rows are still in the session (the page just loaded them), so naming their patients
    costs no query.
    """
    model = view.datamodel.obj
    pks = list(pks)
    items = [item for item in (db.session.get(model, pk) for pk in pks) if item is not None]
    declared = audit_subject(model)
    subjects = (
        [getattr(item, declared[1]) for item in items]
        if declared and declared[0] == view.access_log
        else []
    )
    branches = {getattr(item, "branch_id", None) for item in items}
    record_access(
        view.access_log,
        None,
        action,
        records=pks,
        model=model.__name__,
        subject_ids=subjects,
        branch_id=branches.pop() if len(branches) == 1 else None,
    )


def log_matched_patients(patients: Iterable[Any]) -> None:
    """A list of possible duplicates shows patients' names and MRNs: one access entry for it."""
    ids = [patient.id for patient in patients]
    if ids:
        record_access("patient", None, "view", records=ids, model="Patient", subject_ids=ids)


def logs_access(action: str) -> Callable:
    """Record a view's own route (a print page, an export of one record) in the access log.

    Put it under ``@has_access``; the route must take ``pk``. The read is recorded once the page
    was served without error, and only when the view declares ``access_log``.
    """

    def decorator(handler: Callable) -> Callable:
        @wraps(handler)
        def wrapper(self, *args: Any, **kwargs: Any):
            response = handler(self, *args, **kwargs)
            if self.access_log and getattr(response, "status_code", 200) < 400:
                record_reads(self, action, [self._deserialize_pk_if_composite(kwargs["pk"])])
            return response

        return wrapper

    return decorator


def may_open(endpoint: str) -> bool:
    """Whether the endpoint exists and the signed-in user holds the permission it requires.

    For links to another screen (a "Start visit" button on the day list): shown only to those
    who may follow them, and only once that screen is registered.
    """
    if endpoint not in current_app.view_functions:
        return False
    view_name, _sep, method = endpoint.partition(".")
    appbuilder = current_app.appbuilder
    for view in appbuilder.baseviews:
        if view.endpoint != view_name:
            continue
        base = getattr(getattr(view, method, None), "_permission_name", None)
        mapped = (view.method_permission_name or {}).get(method)
        if base is None and mapped is None:
            return True  # not a permission-guarded route
        name = PERMISSION_PREFIX + (mapped or base.removeprefix(PERMISSION_PREFIX))
        return appbuilder.sm.has_access(name, view.class_permission_name)
    return False


class ClinicModelView(SafeModelViewMixin, ModelView):
    """A CRUD screen governed by the policy's read/create/edit/delete permissions."""

    method_permission_name = VIEW_METHOD_PERMISSIONS
    base_permissions = [READ, CREATE, EDIT, DELETE]
    page_size = 25
    add_row_message = _l("Saved.")
    edit_row_message = _l("Your changes are saved.")
    delete_row_message = _l("Deleted.")
    #: The subject type ("patient", "lead") whose data this screen shows: each list and detail
    #: page then writes one access-log entry naming the records (and patients) it showed.
    access_log: str | None = None

    def _list(self, **kwargs: Any):
        widgets = super()._list(**kwargs)
        if self.access_log:
            record_reads(self, "view", widgets["list"].template_args["pks"])
        return widgets

    def _show(self, pk: Any):
        widgets = super()._show(pk)  # a record outside the user's reach is a 404 before this
        if self.access_log:
            record_reads(self, "view", [pk])
        return widgets


#: The longest text a REST client may write into a ``Text`` column (screens limit their own).
API_TEXT_LIMIT = 10_000


def length_validators(model: type) -> dict[str, Length]:
    """A length limit for every text column of ``model``: its declared size, else the API's limit.

    SQLite ignores ``String(n)``, and a ``Text`` column has no size at all: without these a
    client could store a megabyte in a note.
    """
    validators = {}
    for column in sa_inspect(model).columns:
        if isinstance(column.type, String):
            limit = column.type.length if not isinstance(column.type, Text) else None
            validators[column.key] = Length(max=limit or API_TEXT_LIMIT)
    return validators


class ClinicModelApi(ModelRestApi):
    """A REST resource under /api/v1/, sharing its screen's permission name.

    Bearer tokens only: a browser's session cookie is never accepted, so no other site can make
    a signed-in browser write through the API. Every text column is length-limited.
    """

    allow_browser_login = False
    method_permission_name = API_METHOD_PERMISSIONS
    base_permissions = [READ, CREATE, EDIT, DELETE]
    page_size = 25
    #: As on ``ClinicModelView``: each GET of a record or a page of records is one access entry.
    access_log: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.validators_columns = {
            **length_validators(self.datamodel.obj),
            **(self.validators_columns or {}),
        }
        super().__init__(*args, **kwargs)

    def pre_get(self, data: dict[str, Any]) -> None:
        super().pre_get(data)
        if self.access_log:
            record_reads(self, "api_read", [data["id"]])

    def pre_get_list(self, data: dict[str, Any]) -> None:
        super().pre_get_list(data)
        if self.access_log:
            record_reads(self, "api_read", data["ids"])

    def _get_list_related_field(self, field, filter_rel_field, page=None, page_size=None):
        """``_info``'s choices for a relationship, never records that hold patient data.

        FAB lists every row of a related model as choices: for the patient register (names and
        MRNs) or a patient's child rows (prescription items, lab results, which carry no branch
        of their own) that would be a read no access log records, across branches. Such a
        record is given by id instead, found through its own (logged, scoped) API.
        """
        related = self.datamodel.get_related_model(field.name)
        if audit_subject(related) is not None and not issubclass(related, BranchOwnedMixin):
            return 0, []
        return super()._get_list_related_field(
            field, filter_rel_field, page=page, page_size=page_size
        )

    # FAB calls pre_add/pre_update outside its error handling: a refused rule answers 422 here.
    def post_headless(self):
        try:
            return super().post_headless()
        except ClinicError as exc:
            db.session.rollback()
            return self.response_422(message=str(exc))

    def put_headless(self, pk):
        try:
            return super().put_headless(pk)
        except ClinicError as exc:
            db.session.rollback()
            return self.response_422(message=str(exc))


def scoped_relation_filters(model: type) -> dict[str, list[list]]:
    """FAB ``query_rel_fields`` keeping each relationship's choices to the user's branches."""
    filters: dict[str, list[list]] = {}
    for rel in sa_inspect(model).relationships:
        target = rel.mapper.class_
        if issubclass(target, Branch):
            filters[rel.key] = [["id", FilterInBranches, None]]
        elif issubclass(target, BranchOwnedMixin):
            filters[rel.key] = [["branch_id", FilterInBranches, None]]
        elif issubclass(target, User):
            filters[rel.key] = [["branches", FilterWorksInMyBranches, None]]
    return filters


def _merged(own: dict | None, scoped: dict[str, list[list]]) -> dict[str, list[list]]:
    merged = {key: list(value) for key, value in scoped.items()}
    for key, value in (own or {}).items():
        merged.setdefault(key, []).extend(value)
    return merged


class BranchNotAllowedError(ClinicError):
    """The record names a branch the user does not work at."""


class BranchScopedMixin:
    """Keeps a view or API over a branch-owned model to the signed-in user's branches.

    Lists, show, edit and delete are filtered (``base_filters``); relationship dropdowns and
    search filters offer only the user's branches and their records; a new or edited record
    must name one of the user's branches, and gets it by default when the user has just one.
    """

    branch_column = "branch_id"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.base_filters = [[self.branch_column, FilterInBranches, None]] + list(
            self.base_filters or []
        )
        scoped = scoped_relation_filters(self.datamodel.obj)
        if isinstance(self, ModelRestApi):
            self.add_query_rel_fields = _merged(self.add_query_rel_fields, scoped)
            self.edit_query_rel_fields = _merged(self.edit_query_rel_fields, scoped)
        else:
            self.add_form_query_rel_fields = _merged(self.add_form_query_rel_fields, scoped)
            self.edit_form_query_rel_fields = _merged(self.edit_form_query_rel_fields, scoped)
            self.search_form_query_rel_fields = _merged(
                self.search_form_query_rel_fields, scoped
            )
        super().__init__(*args, **kwargs)

    def _check_branch(self, item: Any) -> None:
        """Default the branch for one-branch users; refuse any branch the user does not work at.

        The relationship wins over the column: an edit that changes ``item.branch`` has not
        updated ``branch_id`` yet.

        :raises BranchNotAllowedError: for a branch outside the user's branches.
        """
        branch = getattr(item, "branch", None)
        branch_id = branch.id if branch is not None else getattr(item, self.branch_column)
        if branch_id is None:
            branch_id = default_branch_id()
            setattr(item, self.branch_column, branch_id)
        if branch_id not in allowed_branch_ids():
            raise BranchNotAllowedError(str(_l("Choose one of your own branches for this record.")))
        self._check_related(item)

    def _check_related(self, item: Any) -> None:
        """Every linked record must be one the user could have picked from the dropdown.

        FAB's REST API loads related records by id without the dropdowns' filters, so a crafted
        request could link a record of another branch (then read it back through this one).

        :raises BranchNotAllowedError: for a link outside the user's branches.
        """
        allowed = set(allowed_branch_ids())
        for name in scoped_relation_filters(type(item)):
            value = getattr(item, name, None)
            for related in value if isinstance(value, (list, set, tuple)) else [value]:
                if related is not None and not _within(related, allowed):
                    raise BranchNotAllowedError(
                        str(_l("This record links to something outside your branches."))
                    )

    def pre_add(self, item: Any) -> None:
        self._check_branch(item)
        super().pre_add(item)

    def pre_update(self, item: Any) -> None:
        self._check_branch(item)
        super().pre_update(item)


def _within(related: Any, allowed: set[int]) -> bool:
    """Whether a linked branch, branch-owned record or colleague belongs to ``allowed``."""
    if isinstance(related, Branch):
        return related.id in allowed
    if isinstance(related, BranchOwnedMixin):
        return related.branch_id in allowed
    if isinstance(related, User):
        return any(branch.id in allowed for branch in related.branches)
    return True

