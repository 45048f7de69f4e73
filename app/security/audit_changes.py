"""What one flushed row changed, as an audit entry records it.

From a row's ORM state after a flush: its changed columns with old and new values (secrets
redacted), its changed many-to-many collections (recorded on the side that owns the link), its
record id, branch and subject — and how the changes of two flushes of the same row in one
transaction merge into one.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import MANYTOONE, ColumnProperty, Mapper, RelationshipProperty
from sqlalchemy.orm.base import NO_VALUE
from sqlalchemy.orm.state import InstanceState

from app.services.audit import REDACTED, is_secret, plain_value
from app.services.audit_subjects import audit_subject

#: Tables whose rows are never audited: the trail itself and FAB's permission bookkeeping.
SKIPPED_TABLES = frozenset(
    {
        "audit_entry",
        "audit_chain_head",
        "subject_key",
        "ab_permission",
        "ab_view_menu",
        "ab_permission_view",
    }
)
#: Columns whose changes are sign-in bookkeeping (told by ``auth`` entries instead).
IGNORED_COLUMNS = {"ab_user": frozenset({"last_login", "login_count", "fail_login_count"})}
#: A changed collection is recorded whole (old and new) up to this size, else as what was added
#: and removed (a role's hundred permissions are not copied into every grant's entry).
WHOLE_COLLECTION_LIMIT = 20


def table_name(mapper: Mapper) -> str:
    return mapper.local_table.name


def is_audited(mapper: Mapper) -> bool:
    return table_name(mapper) not in SKIPPED_TABLES


def unknown_old_keys(state: InstanceState, deleting: bool) -> list[str]:
    """Column attributes whose old value the session does not hold but the entry needs."""
    mapper = state.mapper
    if deleting:
        return [
            prop.key
            for prop in mapper.column_attrs
            if prop.key not in state.dict and not prop.deferred
        ]
    keys = []
    for key, old in state.committed_state.items():
        prop = mapper.attrs.get(key)
        if prop is None:
            continue
        if isinstance(prop, ColumnProperty) and old is NO_VALUE:
            keys.append(key)
        elif isinstance(prop, RelationshipProperty) and prop.direction is MANYTOONE:
            # The foreign key changes during the flush; its old value must be read now.
            keys += [
                mapper.get_property_by_column(column).key
                for column in prop.local_columns
                if mapper.get_property_by_column(column).key not in state.dict
            ]
    return keys


def label(obj: Any) -> str:
    """How a related row is named inside an entry (never a patient's name)."""
    state = sa_inspect(obj)
    pk = ",".join(
        str(state.dict.get(state.mapper.get_property_by_column(column).key))
        for column in state.mapper.primary_key
    )
    if audit_subject(type(obj)) is None and type(obj).__repr__ is not object.__repr__:
        try:
            return str(obj)
        except SQLAlchemyError:
            pass
    return f"{type(obj).__name__} #{pk}"


def owns_link(relationship) -> bool:
    """The association table's first foreign key points at the side that owns the link."""
    for column in relationship.secondary.c:
        for foreign_key in column.foreign_keys:
            return foreign_key.column.table is relationship.parent.local_table
    return True


def recorded_by_owner(obj: Any, relationship, history) -> bool:
    """True when the other side of a many-to-many pair owns the link and records this change."""
    if owns_link(relationship):
        return False
    for reverse in relationship._reverse_property:
        if not is_audited(reverse.parent):
            continue
        for other in (*history.added, *history.deleted):
            other_history = sa_inspect(other).attrs[reverse.key].history
            if obj in other_history.added or obj in other_history.deleted:
                return True
    return False


def secret_safe(key: str, value: Any) -> Any:
    if value is not None and is_secret(key):
        return REDACTED
    return plain_value(value)


def column_changes(
    state: InstanceState, action: str, old_values: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    ignored = IGNORED_COLUMNS.get(table_name(state.mapper), frozenset())
    if action == "create":  # the new row's id is the entry's record id already
        ignored = ignored | {
            state.mapper.get_property_by_column(column).key for column in state.mapper.primary_key
        }
    changes: dict[str, dict[str, Any]] = {}
    for prop in state.mapper.column_attrs:
        key = prop.key
        if key in ignored:
            continue
        if action == "create":
            old, new = None, state.dict.get(key)
        elif action == "delete":
            old, new = state.dict.get(key, old_values.get(key)), None
        else:
            history = state.attrs[key].history
            if not history.added and not history.deleted:
                continue
            new = history.added[0] if history.added else None
            old = history.deleted[0] if history.deleted else old_values.get(key)
        if old == new:
            continue
        changes[key] = {"old": secret_safe(key, old), "new": secret_safe(key, new)}
    return changes


def collection_changes(obj: Any, state: InstanceState, action: str) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for relationship in state.mapper.relationships:
        if relationship.secondary is None:
            continue
        key = relationship.key
        if action == "delete":
            if key in state.dict and state.dict[key]:
                changes[key] = {"old": sorted(map(label, state.dict[key])), "new": None}
            continue
        history = state.attrs[key].history
        if not history.added and not history.deleted:
            continue
        if recorded_by_owner(obj, relationship, history):
            continue
        added, removed = sorted(map(label, history.added)), sorted(map(label, history.deleted))
        known = history.unchanged or key in state.dict or action == "create"
        if known and len(history.unchanged) + len(added) + len(removed) <= WHOLE_COLLECTION_LIMIT:
            kept = list(map(label, history.unchanged))
            changes[key] = {"old": sorted(kept + removed), "new": sorted(kept + added)}
        else:
            changes[key] = {"added": added, "removed": removed}
    return changes


def attribute_value(state: InstanceState, key: str, old_values: dict[str, Any]) -> Any:
    return state.dict.get(key, old_values.get(key))


def record_id(state: InstanceState, old_values: dict[str, Any]) -> str:
    mapper = state.mapper
    return ",".join(
        str(attribute_value(state, mapper.get_property_by_column(column).key, old_values))
        for column in mapper.primary_key
    )


def merge_change(first: dict[str, Any], then: dict[str, Any]) -> dict[str, Any] | None:
    """One field's change across two flushes; None when it ends where it began.

    A value or a whole collection reads ``{"old", "new"}``; a collection not loaded reads
    ``{"added", "removed"}``.
    """
    if "old" in first and "old" in then:
        merged = {"old": first["old"], "new": then["new"]}
    elif "old" in first:  # the whole collection before, then what was added and removed
        new = (set(first["new"] or []) | set(then["added"])) - set(then["removed"])
        merged = {"old": first["old"], "new": sorted(new)}
    elif "old" in then:  # what was added and removed, then the whole collection
        old = (set(then["old"] or []) - set(first["added"])) | set(first["removed"])
        merged = {"old": sorted(old), "new": then["new"]}
    else:
        first_added, first_removed = set(first["added"]), set(first["removed"])
        then_added, then_removed = set(then["added"]), set(then["removed"])
        added = (first_added - then_removed) | (then_added - first_removed)
        removed = (first_removed - then_added) | (then_removed - first_added)
        return {"added": sorted(added), "removed": sorted(removed)} if added or removed else None
    return None if merged["old"] == merged["new"] else merged


def merged_changes(first: dict[str, Any], then: dict[str, Any]) -> dict[str, Any]:
    changes = dict(first)
    for field, change in then.items():
        merged = merge_change(first[field], change) if field in first else change
        if merged is None:
            changes.pop(field, None)
        else:
            changes[field] = merged
    return changes


def subject_of_state(state: InstanceState, old_values: dict[str, Any]) -> tuple[str, int] | None:
    declared = audit_subject(state.class_)
    if declared is None:
        return None
    subject_id = attribute_value(state, declared[1], old_values)
    return (declared[0], int(subject_id)) if subject_id is not None else None
