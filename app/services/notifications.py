"""In-app notifications to staff: who is told about what, and marking them read.

A notification's text is composed from its kind when it is shown; the row holds no personal
data, only a link inside the app (e.g. the lead's page) that the reader's own permissions guard.
"""

from __future__ import annotations

from flask_appbuilder.security.sqla.models import Role, User
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from app.extensions import db
from app.models.base import utcnow
from app.models.leads import Lead, Notification
from app.models.org import user_branch
from app.security.policy import RECEPTIONIST

#: What each kind of notification says; ``%(branch)s`` is the branch's name.
NOTIFICATION_TEXTS = {
    "new_lead": _l("A new appointment request arrived at %(branch)s."),
}
#: How many notifications the list shows.
LIST_LIMIT = 100


def receptionists_of(branch_id: int) -> list[User]:
    """The active staff with the Receptionist role who work at the branch."""
    return list(
        db.session.scalars(
            select(User)
            .join(user_branch, user_branch.c.user_id == User.id)
            .where(
                user_branch.c.branch_id == branch_id,
                User.active.is_(True),
                User.roles.any(Role.name == RECEPTIONIST),
            )
            .order_by(User.id)
        )
    )


def notify_new_lead(lead: Lead) -> list[Notification]:
    """Tell each active receptionist of the lead's branch that a request arrived. Flushes.

    The lead must be flushed (it needs its id); the caller commits.
    """
    if lead.id is None:
        db.session.flush()
    notifications = [
        Notification(
            recipient_id=user.id,
            branch_id=lead.branch_id,
            kind="new_lead",
            link=f"/leads/show/{lead.id}",
            lead_id=lead.id,
        )
        for user in receptionists_of(lead.branch_id)
    ]
    db.session.add_all(notifications)
    db.session.flush()
    return notifications


def notification_text(notification: Notification, branch_name: str = "") -> str:
    """The sentence a notification shows, in the reader's language."""
    text = NOTIFICATION_TEXTS.get(notification.kind)
    if text is None:
        return str(_l("You have a new notification."))
    return str(text) % {"branch": branch_name}


def unread_count(user_id: int) -> int:
    """How many of the user's notifications are unread (one COUNT on an indexed pair)."""
    return db.session.scalar(
        select(func.count(Notification.id)).where(
            Notification.recipient_id == user_id, Notification.read_at.is_(None)
        )
    ) or 0


def notifications_for(user_id: int, limit: int = LIST_LIMIT) -> list[Notification]:
    """The user's own notifications, newest first."""
    return list(
        db.session.scalars(
            select(Notification)
            .where(Notification.recipient_id == user_id)
            .order_by(Notification.created_at.desc(), Notification.id.desc())
            .limit(limit)
        )
    )


def own_notification(user_id: int, notification_id: int) -> Notification | None:
    """One of the user's notifications; ``None`` for anyone else's or a missing one."""
    notification = db.session.get(Notification, notification_id)
    if notification is None or notification.recipient_id != user_id:
        return None
    return notification


def mark_read(notification: Notification) -> None:
    """Mark one notification read (once: the first reading time is kept). The caller commits."""
    if notification.read_at is None:
        notification.read_at = utcnow()


def mark_all_read(user_id: int) -> int:
    """Mark every unread notification of the user read; returns how many. The caller commits."""
    unread = list(
        db.session.scalars(
            select(Notification).where(
                Notification.recipient_id == user_id, Notification.read_at.is_(None)
            )
        )
    )
    now = utcnow()
    for notification in unread:
        notification.read_at = now
    return len(unread)
