"""``/audit/`` and ``/access-log/``: the Admin's read-only view of the audit trail.

The audit log lists changes and sign-in events, the access log reads of patient data. Neither
has an add, edit or delete route: audit entries are evidence, and the app never changes them.
Lists show a one-line summary; an entry's page shows every field's old and new value, with a
patient's values decrypted while their key exists and ``[erased]`` after erasure.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from flask import redirect, url_for
from flask_appbuilder import expose, has_access
from flask_appbuilder.models.sqla.filters import FilterEqual, FilterNotEqual
from flask_babel import gettext, lazy_gettext as _l, ngettext
from markupsafe import Markup

from app.models.audit import AuditEntry
from app.security.policy import ACCESS_LOG, AUDIT_LOG, READ
from app.services.audit import record_access
from app.services.audit_subjects import open_details
from app.views.base import ClinicModelView, ClinicSQLAInterface

#: How much of a value a list's summary shows.
SUMMARY_VALUE_CHARS = 40
#: How many changed fields a list's summary names.
SUMMARY_FIELDS = 3
#: Between the changed fields of a list's summary (each shown on its own line).
SUMMARY_JOIN = "; "
#: Up to this many changed fields, a list's summary shows their old and new values.
SUMMARY_PAIRS = 2
#: Fields that say which record a created or deleted row was: a list's summary starts with one.
NAMING_FIELDS = ("name", "username", "title", "code")


def when(value: datetime | None) -> str:
    """``2026-11-22 14:05:09``: entries are stored and shown in UTC (the column says so)."""
    if value is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def shown(value: Any) -> str:
    """A recorded value as text: lists joined, nothing as a dash."""
    if value is None or value == "":
        return "—"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) if value else "—"
    if isinstance(value, bool):
        return gettext("Yes") if value else gettext("No")
    return str(value)


def _clip(text: str) -> str:
    return text if len(text) <= SUMMARY_VALUE_CHARS else text[: SUMMARY_VALUE_CHARS - 1] + "…"


def spacing_only(old: Any, new: Any) -> bool:
    """True when two texts differ only in spaces or line breaks (a browser's CRLF, say)."""
    return isinstance(old, str) and isinstance(new, str) and old != new and (
        old.split() == new.split()
    )


def _old_and_new(old: Any, new: Any) -> str:
    """``old → new``, starting near where they differ when both begin alike."""
    if spacing_only(old, new):
        return gettext("spaces or line breaks only")
    old_text, new_text = shown(old), shown(new)
    common = 0
    for a, b in zip(old_text, new_text):
        if a != b:
            break
        common += 1
    if common > SUMMARY_VALUE_CHARS // 2:
        start = common - SUMMARY_VALUE_CHARS // 4
        old_text, new_text = "…" + old_text[start:], "…" + new_text[start:]
    return f"{_clip(old_text)} → {_clip(new_text)}"


def _one_change(change: dict[str, Any]) -> str:
    old, new = change.get("old"), change.get("new")
    if isinstance(old, list) and isinstance(new, list):  # a collection: what came and went
        change = {"added": [i for i in new if i not in old], "removed": [i for i in old if i not in new]}
    if "added" in change or "removed" in change:
        parts = []
        if change.get("added"):
            parts.append("+ " + _clip(shown(change["added"])))
        if change.get("removed"):
            parts.append("− " + _clip(shown(change["removed"])))
        return " ".join(parts) or "—"
    if old is None:
        return _clip(shown(new))
    return _old_and_new(old, new)


def _change_summary(changes: dict[str, Any], sealed: bool) -> str:
    fields = sorted(changes, key=lambda field: (field not in NAMING_FIELDS, field))
    naming = fields[0] if fields and fields[0] in NAMING_FIELDS else None
    if naming and len(fields) > 1 and not sealed:
        change = changes[naming]
        value = change.get("new") if change.get("new") is not None else change.get("old")
        return ngettext(
            "%(field)s: %(value)s, and %(num)d more field",
            "%(field)s: %(value)s, and %(num)d more fields",
            len(fields) - 1,
            field=naming,
            value=_clip(shown(value)),
        )
    if len(fields) <= SUMMARY_PAIRS and not sealed:
        return SUMMARY_JOIN.join(f"{field}: {_one_change(changes[field])}" for field in fields)
    named = ", ".join(fields[:SUMMARY_FIELDS])
    more = len(fields) - SUMMARY_FIELDS
    text = gettext("%(fields)s and %(count)d more", fields=named, count=more) if more > 0 else named
    return gettext("%(fields)s (encrypted)", fields=text) if sealed else text


def summary_text(details: str | None) -> str:
    """One line about an entry, from its details alone (personal values are never decrypted
    for a list: a patient's entries name the fields, not the values)."""
    if not details:
        return "—"
    try:
        data = json.loads(details)
    except ValueError:
        return _clip(details)
    if not isinstance(data, dict):
        return _clip(shown(data))
    if "fields" in data:
        return _change_summary({field: {} for field in data["fields"]}, sealed=True)
    if "changes" in data:
        return _change_summary(data["changes"], sealed=False) if data["changes"] else "—"
    if "statement" in data:
        rows = data.get("rows") or 0
        return ngettext("Bulk statement, %(num)d row", "Bulk statement, %(num)d rows", rows)
    if "records" in data:
        return ngettext("%(num)d record", "%(num)d records", len(data["records"]))
    return ", ".join(f"{key}: {_clip(shown(value))}" for key, value in sorted(data.items()))


def summary(details: str | None) -> Markup:
    """The list's summary cell: one line per changed field (it may wrap; the other cells keep
    to one line)."""
    lines = Markup("").join(
        Markup('<span class="cd-audit-summary__line">{}</span>').format(line)
        for line in summary_text(details).split(SUMMARY_JOIN)
    )
    return Markup('<span class="cd-audit-summary">{}</span>').format(lines)


def _dash(value: Any) -> str:
    return "—" if value is None or value == "" else str(value)


def _chain_position(seq: int | None) -> str:
    return gettext("Not sealed yet") if seq is None else str(seq)


def change_rows(entry: AuditEntry) -> dict[str, list[tuple[str, str, str]]]:
    """What an entry's page shows: each changed field with its old and new value, and any other
    detail (records read, the statement of a bulk write, a sign-in event's facts)."""
    data = open_details(entry)
    changes = data.pop("changes", {}) if isinstance(data, dict) else {}
    rows = []
    for field in sorted(changes):
        change = changes[field]
        if "added" in change or "removed" in change:
            old = gettext("removed: %(items)s", items=shown(change.get("removed")))
            new = gettext("added: %(items)s", items=shown(change.get("added")))
        else:
            old, new = shown(change.get("old")), shown(change.get("new"))
            if spacing_only(change.get("old"), change.get("new")):
                new = f"{new} ({gettext('spaces or line breaks only')})"
        rows.append((field, old, new))
    facts = [(str(key), shown(value)) for key, value in sorted(data.items())]
    return {"changes": rows, "facts": facts}


class AuditTrailModelView(ClinicModelView):
    """What the audit and access logs share: read-only, newest first, filterable."""

    datamodel = ClinicSQLAInterface(AuditEntry)
    base_permissions = [READ]
    include_route_methods = {"list", "show"}
    list_template = "clinic/audit/list.html"
    show_template = "clinic/audit/show.html"
    base_order = ("id", "desc")
    order_columns = ["occurred_at", "actor", "action", "model"]
    page_size = 50
    formatters_columns = {
        "occurred_at": when,
        "details": summary,
        "branch": lambda branch: str(branch) if branch else "—",
        "ip": _dash,
        "user_agent": _dash,
        "record_id": _dash,
        "record": _dash,
        "model": _dash,
        "subject_type": _dash,
        "subject_id": _dash,
        "seq": _chain_position,
        "entry_hash": _dash,
    }
    label_columns = {
        "occurred_at": _l("When (UTC)"),
        "kind": _l("Kind"),
        "action": _l("Action"),
        "actor": _l("Who"),
        "ip": _l("From"),
        "user_agent": _l("Browser"),
        "model": _l("Record type"),
        "record_id": _l("Record"),
        "record": _l("Record"),
        "branch": _l("Branch"),
        "subject_type": _l("Subject type"),
        "subject_id": _l("Patient"),
        "details": _l("Summary"),
        "seq": _l("Chain position"),
        "entry_hash": _l("Chain hash"),
    }
    show_columns = [
        "occurred_at",
        "kind",
        "action",
        "actor",
        "ip",
        "user_agent",
        "model",
        "record_id",
        "branch",
        "subject_type",
        "subject_id",
        "seq",
        "entry_hash",
    ]
    description_columns = {
        "seq": _l("Empty until the sealer links the entry into the hash chain (within seconds)."),
    }

    #: The endpoint of the other log, where entries of the other kind are shown.
    other_log = ""
    #: Whether this log shows the access entries (the access log) or all the others.
    shows_access = False

    def belongs_here(self, entry: AuditEntry) -> bool:
        return (entry.kind == "access") == self.shows_access

    @expose("/show/<pk>", methods=["GET"])
    @has_access
    def show(self, pk):
        """An entry of the other log opens on that log's page."""
        entry = self.datamodel.get(self._deserialize_pk_if_composite(pk))
        if entry is not None and not self.belongs_here(entry):
            return redirect(url_for(f"{self.other_log}.show", pk=pk))
        return super().show(pk)

    def _get_show_widget(self, pk: Any, item: AuditEntry, **kwargs: Any):
        widgets = super()._get_show_widget(pk, item, **kwargs)
        widgets["audit_details"] = change_rows(item)
        if item.subject_type and item.subject_id is not None:
            # The entry shows a patient's values in clear: reading them is a read of patient data.
            record_access(item.subject_type, item.subject_id, "view", records=[item.id],
                          model="AuditEntry")
        return widgets


class AuditLogModelView(AuditTrailModelView):
    """Every change (who, when, from where, old and new values) and every sign-in event."""

    route_base = "/audit"
    class_permission_name = AUDIT_LOG
    other_log = "AccessLogModelView"
    base_filters = [["kind", FilterNotEqual, "access"]]
    list_title = _l("Audit log")
    show_title = _l("Audit entry")
    list_columns = ["occurred_at", "actor", "action", "record", "branch", "details"]
    search_columns = [
        "occurred_at",
        "actor",
        "kind",
        "action",
        "model",
        "record_id",
        "branch",
        "subject_type",
        "subject_id",
        "ip",
    ]


class AccessLogModelView(AuditTrailModelView):
    """Who read which patient's data, when and from where: one entry per page, print or export."""

    route_base = "/access-log"
    class_permission_name = ACCESS_LOG
    other_log = "AuditLogModelView"
    base_filters = [["kind", FilterEqual, "access"]]
    list_title = _l("Access log")
    shows_access = True
    show_title = _l("Access entry")
    list_columns = ["occurred_at", "actor", "action", "subject_id", "record", "details", "branch"]
    search_columns = [
        "occurred_at",
        "actor",
        "action",
        "subject_type",
        "subject_id",
        "model",
        "record_id",
        "branch",
        "ip",
    ]
    formatters_columns = {
        **AuditTrailModelView.formatters_columns,
        "subject_id": lambda subject_id: "—" if subject_id is None else f"#{subject_id}",
    }
