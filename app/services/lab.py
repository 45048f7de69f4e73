"""The lab: reference ranges, orders and their life, results, verification and amendments.

An order moves ordered → collected → in_progress → resulted → verified (or is cancelled before
it is resulted). Results are entered for every test of the order at once; a second person
verifies them; a verified result changes only through an amendment that keeps the old value
and the reason. All functions flush but never commit: the caller commits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Iterable, Mapping

from flask import g, has_app_context
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models.base import utcnow
from app.models.consultations import Consultation
from app.models.lab import (
    LAB_PRIORITIES,
    LabOrder,
    LabReferenceRange,
    LabResult,
    LabResultAmendment,
    LabTest,
)
from app.models.org import Branch
from app.models.patients import Patient
from app.services.errors import ClinicError

ORDER_STATUS_LABELS = {
    "ordered": _l("Ordered"),
    "collected": _l("Sample collected"),
    "in_progress": _l("In progress"),
    "resulted": _l("Resulted"),
    "verified": _l("Verified"),
    "cancelled": _l("Cancelled"),
}
PRIORITY_LABELS = {"routine": _l("Routine"), "urgent": _l("Urgent"), "stat": _l("STAT")}
FLAG_LABELS = {
    "normal": _l("Normal"),
    "low": _l("Low"),
    "high": _l("High"),
    "abnormal": _l("Abnormal"),
}
SEX_LABELS = {"any": _l("Any sex"), "female": _l("Female"), "male": _l("Male")}

#: Status moves made by hand; "resulted" and "verified" come from entering and verifying.
_MOVES = {"ordered": {"collected"}, "collected": {"in_progress"}}
#: Orders whose results may be entered (again, until verified).
ENTERABLE = frozenset({"collected", "in_progress", "resulted"})
#: Orders that may still be cancelled.
CANCELLABLE = frozenset({"ordered", "collected", "in_progress"})
_LARGEST = Decimal("1e10")  # Numeric(14, 4) holds ten digits before the point
_NUMBER_RE = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)$")


class LabError(ClinicError):
    """Base of the lab's refusals."""


class LabCatalogueError(LabError):
    """A test or reference range that does not make sense (e.g. high below low)."""


class LabOrderError(LabError):
    """An order that cannot be placed (no tests, a retired test, no branch)."""


class LabStatusError(LabError):
    """A move the order's life-cycle does not allow, or a cancel without a reason."""


class LabValueError(LabError):
    """A typed result that cannot be read (e.g. letters where a number is needed)."""


class LabResultValuesError(LabError):
    """Results that cannot be saved; ``errors`` maps result ids to a message each."""

    def __init__(self, errors: Mapping[int, str]) -> None:
        self.errors = dict(errors)
        first = next(iter(self.errors.values()), "")
        super().__init__(first)


class LabVerificationError(LabError):
    """Verification by the person who entered the results, or of unresulted results."""


class LabAmendmentError(LabError):
    """An amendment without a reason, of an unverified result, or that changes nothing."""


@dataclass
class ResultEntry:
    """What the technician typed for one test: the value, a comment, an "abnormal" mark."""

    value: str | None
    comment: str | None = None
    abnormal: bool = False


# -- who is acting -------------------------------------------------------------------------------


def _actor(by: Any | None) -> Any | None:
    if by is not None:
        return by
    if has_app_context():
        user = g.get("user")
        if user is not None and getattr(user, "is_authenticated", False):
            return user
    return None


def _actor_id(by: Any | None) -> int | None:
    user = _actor(by)
    return getattr(user, "id", None)


# -- reference ranges ----------------------------------------------------------------------------


def age_on(patient: Patient, day: date | None = None) -> int | None:
    """The patient's age in whole years on ``day`` (today by default); None without a birth date."""
    born = patient.date_of_birth
    if born is None:
        return None
    day = day or date.today()
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def select_range(
    test: LabTest, patient: Patient, on: date | None = None
) -> LabReferenceRange | None:
    """The reference range that applies to ``patient`` for ``test`` on ``on``.

    A range for the patient's sex wins over an "any" range; among ranges of the same kind the
    narrowest age band wins. Without a birth date only ranges covering every age apply. None
    when no range applies: the result is then not flagged.
    """
    age = age_on(patient, on)
    candidates = []
    for reference in test.ranges:
        if reference.sex not in ("any", patient.sex):
            continue
        if age is None:
            if reference.age_min_years > 0 or reference.age_max_years is not None:
                continue
        elif age < reference.age_min_years or (
            reference.age_max_years is not None and age >= reference.age_max_years
        ):
            continue
        candidates.append(reference)
    if not candidates:
        return None

    def preference(reference: LabReferenceRange) -> tuple:
        span = (reference.age_max_years or 200) - reference.age_min_years
        return (reference.sex == "any", span)

    return min(candidates, key=preference)


def flag_for(value: Decimal | None, low: Decimal | None, high: Decimal | None) -> str | None:
    """"low", "high" or "normal" for a number against a range; None without a number or range."""
    if value is None or (low is None and high is None):
        return None
    if low is not None and value < low:
        return "low"
    if high is not None and value > high:
        return "high"
    return "normal"


def is_numeric(test: LabTest) -> bool:
    """Tests with a unit or a reference range are reported as numbers; the others as text."""
    return bool(test.unit) or bool(test.ranges)


def plain_number(value: Decimal | None) -> str:
    """``Decimal("5.4000")`` → ``"5.4"``; ``Decimal("120.0000")`` → ``"120"``."""
    if value is None:
        return ""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def range_text(low: Decimal | None, high: Decimal | None) -> str:
    """``3.5–5`` , ``≤ 200``, ``≥ 40`` or empty."""
    if low is not None and high is not None:
        return f"{plain_number(low)}–{plain_number(high)}"
    if high is not None:
        return f"≤ {plain_number(high)}"
    if low is not None:
        return f"≥ {plain_number(low)}"
    return ""


def result_value_text(result: LabResult) -> str:
    """The result as it reads on the report."""
    if result.value_numeric is not None:
        return plain_number(result.value_numeric)
    return result.value_text or ""


def parse_number(text: str, test_name: str) -> Decimal:
    """A typed number (a decimal comma is read as a point).

    :raises LabValueError: for anything that is not a plain number.
    """
    cleaned = (text or "").strip().replace(" ", "")
    if not _NUMBER_RE.match(cleaned):
        raise LabValueError(
            str(_l("%(test)s: enter a number, e.g. 5.4.", test=test_name))
        )
    number = Decimal(cleaned.replace(",", "."))
    if abs(number) >= _LARGEST:
        raise LabValueError(str(_l("%(test)s: this number is too large.", test=test_name)))
    return number.quantize(Decimal("0.0001"))


def check_reference_range(reference: LabReferenceRange, test: LabTest) -> None:
    """A range with a bound, high not below low, a sensible age band, no overlap with another.

    :raises LabCatalogueError: with a sentence saying what to fix.
    """
    if reference.sex not in SEX_LABELS:
        raise LabCatalogueError(str(_l("Choose who the range applies to.")))
    if reference.low is None and reference.high is None:
        raise LabCatalogueError(str(_l("Enter a low or a high limit (or both).")))
    if reference.low is not None and reference.high is not None and reference.high < reference.low:
        raise LabCatalogueError(str(_l("The high limit must not be below the low limit.")))
    age_min = reference.age_min_years or 0
    if age_min < 0 or (reference.age_max_years is not None and reference.age_max_years < 0):
        raise LabCatalogueError(str(_l("Ages cannot be negative.")))
    if reference.age_max_years is not None and reference.age_max_years <= age_min:
        raise LabCatalogueError(
            str(_l("The age band must end after it starts (e.g. from 18 to 65 years)."))
        )
    end = reference.age_max_years if reference.age_max_years is not None else 10_000
    for other in test.ranges:
        if other is reference or other.sex != reference.sex:
            continue
        other_end = other.age_max_years if other.age_max_years is not None else 10_000
        if age_min < other_end and other.age_min_years < end:
            raise LabCatalogueError(
                str(_l("This age band overlaps another range for the same sex: "
                       "change or remove that one first."))
            )


def add_reference_range(
    test: LabTest,
    *,
    sex: str = "any",
    age_min_years: int | None = 0,
    age_max_years: int | None = None,
    low: Decimal | None = None,
    high: Decimal | None = None,
) -> LabReferenceRange:
    """Add a checked reference range to ``test``.

    :raises LabCatalogueError: see ``check_reference_range``.
    """
    reference = LabReferenceRange(
        sex=sex or "any", age_min_years=age_min_years or 0, age_max_years=age_max_years,
        low=low, high=high,
    )
    check_reference_range(reference, test)
    test.ranges.append(reference)
    db.session.flush()
    return reference


# -- orders --------------------------------------------------------------------------------------


def create_order(
    *,
    tests: Iterable[LabTest],
    patient: Patient | None = None,
    branch: Branch | None = None,
    consultation: Consultation | None = None,
    priority: str = "routine",
    clinical_notes: str | None = None,
    by: Any | None = None,
) -> LabOrder:
    """Order ``tests`` for a patient, from a consultation (its patient and branch) or directly.

    :raises LabOrderError: without tests, with a retired test, without patient or branch.
    """
    if consultation is not None:
        patient, branch = consultation.patient, consultation.branch
    if patient is None:
        raise LabOrderError(str(_l("Choose the patient.")))
    if branch is None:
        raise LabOrderError(str(_l("Choose the branch.")))
    if priority not in LAB_PRIORITIES:
        raise LabOrderError(str(_l("Choose a priority.")))
    chosen: list[LabTest] = []
    for test in tests:
        if test not in chosen:
            chosen.append(test)
    if not chosen:
        raise LabOrderError(str(_l("Choose at least one test.")))
    retired = [test.name for test in chosen if not test.is_active]
    if retired:
        raise LabOrderError(
            str(_l("%(tests)s can no longer be ordered.", tests=", ".join(retired)))
        )
    order = LabOrder(
        patient=patient,
        branch=branch,
        consultation=consultation,
        priority=priority,
        status="ordered",
        clinical_notes=(clinical_notes or "").strip() or None,
        ordered_by_id=_actor_id(by),
    )
    for test in chosen:
        order.results.append(LabResult(test=test, patient_id=patient.id))
    db.session.add(order)
    db.session.flush()
    return order


def _move(order: LabOrder, to_status: str) -> None:
    if to_status not in _MOVES.get(order.status, set()):
        raise LabStatusError(
            str(_l("An order that is “%(current)s” cannot become “%(target)s”.",
                   current=ORDER_STATUS_LABELS[order.status],
                   target=ORDER_STATUS_LABELS[to_status]))
        )
    order.status = to_status


def collect_sample(order: LabOrder, *, by: Any | None = None, at: datetime | None = None) -> LabOrder:
    """ordered → collected, noting who took the sample and when.

    :raises LabStatusError: from any other status.
    """
    _move(order, "collected")
    order.collected_at = at or utcnow()
    order.collected_by_id = _actor_id(by)
    db.session.flush()
    return order


def start_processing(order: LabOrder) -> LabOrder:
    """collected → in_progress.

    :raises LabStatusError: from any other status.
    """
    _move(order, "in_progress")
    db.session.flush()
    return order


def cancel_order(order: LabOrder, reason: str | None) -> LabOrder:
    """Cancel an order that has no results yet, saying why.

    :raises LabStatusError: without a reason, or once the order is resulted.
    """
    if order.status not in CANCELLABLE:
        raise LabStatusError(
            str(_l("An order that is “%(current)s” can no longer be cancelled.",
                   current=ORDER_STATUS_LABELS[order.status]))
        )
    reason = (reason or "").strip()
    if not reason:
        raise LabStatusError(str(_l("Say why the order is cancelled.")))
    order.status = "cancelled"
    order.cancel_reason = reason[:200]
    db.session.flush()
    return order


# -- results -------------------------------------------------------------------------------------


def _order_day(order: LabOrder) -> date:
    when = order.collected_at or order.created_at or utcnow()
    return when.date()


def _apply_value(result: LabResult, entry: ResultEntry) -> None:
    """Set a result's value and flag from what was typed (the range is already on the result).

    :raises LabValueError: for a numeric test whose value is not a number.
    """
    test = result.test
    text = (entry.value or "").strip()
    if is_numeric(test):
        result.value_numeric = parse_number(text, test.name)
        result.value_text = None
        flag = flag_for(result.value_numeric, result.reference_low, result.reference_high)
    else:
        if len(text) > 200:
            raise LabValueError(
                str(_l("%(test)s: keep the result under 200 characters.", test=test.name))
            )
        result.value_text = text
        result.value_numeric = None
        flag = None
    if flag is None and entry.abnormal:
        flag = "abnormal"
    result.flag = flag
    comment = (entry.comment or "").strip()
    result.comment = comment[:300] or None


def enter_results(
    order: LabOrder, entries: Mapping[int, ResultEntry], *, by: Any | None = None
) -> LabOrder:
    """Enter the results of every test of ``order`` (keyed by ``LabResult.id``).

    The unit and the patient's reference range are copied onto each result now; the order
    becomes "resulted". Results may be entered again until they are verified.

    :raises LabStatusError: before the sample is collected, or once verified or cancelled.
    :raises LabResultValuesError: when a value is missing or unreadable (one message per test).
    """
    if order.status not in ENTERABLE:
        raise LabStatusError(
            str(_l("Results cannot be entered for an order that is “%(current)s”.",
                   current=ORDER_STATUS_LABELS[order.status]))
        )
    errors: dict[int, str] = {}
    day = _order_day(order)
    for result in order.results:
        entry = entries.get(result.id)
        if entry is None or not (entry.value or "").strip():
            errors[result.id] = str(_l("%(test)s: enter the result.", test=result.test.name))
            continue
        reference = select_range(result.test, order.patient, day)
        result.unit = result.test.unit
        result.reference_low = reference.low if reference is not None else None
        result.reference_high = reference.high if reference is not None else None
        try:
            _apply_value(result, entry)
        except LabValueError as exc:
            errors[result.id] = str(exc)
    if errors:
        raise LabResultValuesError(errors)
    order.status = "resulted"
    order.resulted_at = utcnow()
    order.resulted_by_id = _actor_id(by)
    order.verified_at = order.verified_by_id = None
    db.session.flush()
    return order


def verify_results(order: LabOrder, *, by: Any | None = None) -> LabOrder:
    """A second person confirms the results: they become read-only.

    :raises LabVerificationError: when the order is not resulted, or the verifier entered them.
    """
    if order.status != "resulted":
        raise LabVerificationError(str(_l("Only entered results can be verified.")))
    verifier_id = _actor_id(by)
    if verifier_id is None or verifier_id == order.resulted_by_id:
        raise LabVerificationError(
            str(_l("Results must be verified by someone other than the person who entered them."))
        )
    try:
        with db.session.begin_nested():
            order.status = "verified"
            order.verified_at = utcnow()
            order.verified_by_id = verifier_id
            db.session.flush()
    except IntegrityError:  # ck_lab_order_second_verifier: someone re-entered them meanwhile
        db.session.refresh(order)
        raise LabVerificationError(
            str(_l("Results must be verified by someone other than the person who entered them."))
        ) from None
    return order


def amend_result(
    result: LabResult,
    entry: ResultEntry,
    reason: str | None,
    *,
    by: Any | None = None,
) -> LabResultAmendment:
    """Correct a verified result: the old and new values and the reason are kept; re-flagged.

    :raises LabAmendmentError: for an unverified order, without a reason, or if nothing changes.
    :raises LabValueError: for a value that is not a number where one is needed.
    """
    if result.order.status != "verified":
        raise LabAmendmentError(
            str(_l("Only verified results are amended; until then, enter the results again."))
        )
    reason = (reason or "").strip()
    if not reason:
        raise LabAmendmentError(str(_l("Say why the result is amended.")))
    if not (entry.value or "").strip():
        raise LabAmendmentError(str(_l("Enter the corrected result.")))
    before = (result_value_text(result), result.flag, result.comment)
    _apply_value(result, entry)
    after = (result_value_text(result), result.flag, result.comment)
    if before == after:
        raise LabAmendmentError(str(_l("The amendment changes nothing.")))
    amendment = LabResultAmendment(
        result=result,
        patient_id=result.patient_id,
        old_value=before[0][:200] or None,
        new_value=after[0][:200] or None,
        reason=reason[:300],
        amended_by_id=_actor_id(by),
        amended_at=utcnow(),
    )
    db.session.add(amendment)
    db.session.flush()
    return amendment


def active_tests() -> list[LabTest]:
    """The tests that may be ordered, by name."""
    return list(
        db.session.scalars(select(LabTest).where(LabTest.is_active.is_(True)).order_by(LabTest.name))
    )
