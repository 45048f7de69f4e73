"""The patient page's timeline: each kind of record adds its items, seen only by roles allowed.

A module with records about a patient registers a source::

    @timeline_source("appointment", READ, APPOINTMENTS)
    def appointment_items(patient, branch_ids):
        return [(appointment.starts_at, appointment) for appointment in ...]

and writes ``app/templates/clinic/timeline/appointment.html``, which renders one ``item`` (its
``record`` and ``at``). ``branch_ids`` are the signed-in user's branches: a source returns only
records of those branches (``None`` for patient-wide records such as consent changes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from typing import Any, Callable, Iterable

from flask import current_app

from app.models.patients import Patient
from app.security.scoping import allowed_branch_ids

#: ``(when, record)`` pairs of one kind for a patient, given the user's branch ids.
Loader = Callable[[Patient, list[int]], Iterable[tuple[datetime | date, Any]]]


@dataclass(frozen=True)
class TimelineSource:
    kind: str
    permission: str
    view: str
    load: Loader


TIMELINE_SOURCES: dict[str, TimelineSource] = {}


def timeline_source(kind: str, permission: str, view: str) -> Callable[[Loader], Loader]:
    """Register ``load`` as the timeline's source of ``kind`` items, shown with (permission, view)."""

    def register(load: Loader) -> Loader:
        TIMELINE_SOURCES[kind] = TimelineSource(kind, permission, view, load)
        return load

    return register


def _aware(when: datetime | date) -> datetime:
    """Items sort by time: dates count from their midnight, naive times are UTC."""
    if not isinstance(when, datetime):
        when = datetime.combine(when, time.min)
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def patient_timeline(patient: Patient | None) -> list[dict[str, Any]]:
    """What happened to the patient that the signed-in user may see, newest first."""
    if patient is None:
        return []
    sm = current_app.appbuilder.sm
    branch_ids = allowed_branch_ids()
    items = []
    for source in TIMELINE_SOURCES.values():
        if not sm.has_access(source.permission, source.view):
            continue
        for when, record in source.load(patient, branch_ids):
            items.append({"kind": source.kind, "at": _aware(when), "record": record})
    items.sort(key=lambda item: item["at"], reverse=True)
    return items
