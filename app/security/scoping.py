"""Branch scoping: which branches' records the signed-in user (or a job's user) may touch.

Admin, Owner and Accountant see every branch; every other role sees the branches assigned to
the user. Views and APIs apply this through ``BranchScopedMixin`` (app/views/base.py); jobs call
:func:`allowed_branch_ids` with the user they act for.
"""

from __future__ import annotations

from typing import Any

from flask import g, has_request_context
from flask_appbuilder.models.filters import BaseFilter
from flask_login import current_user
from sqlalchemy import select

from app.extensions import db
from app.models.org import Branch
from app.security.policy import ALL_BRANCH_ROLES


def role_names(user: Any) -> set[str]:
    """Names of the user's roles, including those granted through FAB groups."""
    roles = set(user.roles or [])
    for group in getattr(user, "groups", None) or []:
        roles.update(group.roles or [])
    return {role.name for role in roles}


def sees_all_branches(user: Any) -> bool:
    """True for roles that work across the whole organisation."""
    return bool(role_names(user) & ALL_BRANCH_ROLES)


def _compute_allowed(user: Any) -> list[int]:
    if user is None or not getattr(user, "is_authenticated", True):
        return []
    if sees_all_branches(user):
        return list(db.session.scalars(select(Branch.id).order_by(Branch.id)))
    return sorted(branch.id for branch in user.branches)


def allowed_branch_ids(user: Any | None = None) -> list[int]:
    """Ids of the branches whose records ``user`` (default: the signed-in user) may see.

    Computed once per request for the signed-in user. Anonymous users get an empty list, so a
    filter built on it matches nothing.
    """
    if user is not None:
        return _compute_allowed(user)
    if not has_request_context():
        return []
    if "clinic_branch_ids" not in g:
        # FAB sets g.user for both session and API-token requests; flask-login only knows sessions.
        user = g.get("user") or current_user
        g.clinic_branch_ids = _compute_allowed(user)
    return g.clinic_branch_ids


class FilterInBranches(BaseFilter):
    """Rows whose ``branch_id`` (or the column named) is one of the user's branches."""

    name = "In my branches"
    arg_name = "inbranch"

    def apply(self, query, value):
        column = getattr(self.model, self.column_name)
        return query.filter(column.in_(allowed_branch_ids()))


class FilterWorksInMyBranches(BaseFilter):
    """Users who work at one of the signed-in user's branches (a many-to-many filter)."""

    name = "Works in my branches"
    arg_name = "staffbranch"

    def apply(self, query, value):
        branches = getattr(self.model, self.column_name)
        return query.filter(branches.any(Branch.id.in_(allowed_branch_ids())))


def default_branch_id() -> int | None:
    """The branch a new record gets when the user works at exactly one (else the form asks)."""
    ids = allowed_branch_ids()
    if len(ids) == 1:
        return ids[0]
    return None
