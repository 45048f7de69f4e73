"""``/notifications/``: a signed-in staff member's own notifications, and the top bar's count."""

from __future__ import annotations

from flask import abort, g, redirect, request, url_for
from flask_appbuilder import BaseView, expose
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from app.extensions import db
from app.models.org import Branch
from app.security.actions import signed_in
from app.services import notifications as service


class NotificationView(BaseView):
    """Every signed-in user sees and marks read only their own notifications."""

    route_base = "/notifications"
    default_view = "index"

    @expose("/")
    @signed_in
    def index(self):
        user_id = g.user.id
        notifications = service.notifications_for(user_id)
        branches = {
            branch.id: branch
            for branch in db.session.query(Branch).filter(
                Branch.id.in_({n.branch_id for n in notifications if n.branch_id})
            )
        }
        rows = [
            {
                "notification": n,
                "branch": branches.get(n.branch_id),
                "text": service.notification_text(
                    n, branches[n.branch_id].name if n.branch_id in branches else ""
                ),
            }
            for n in notifications
        ]
        return self.render_template(
            "clinic/notifications/list.html",
            title=str(_l("Notifications")),
            rows=rows,
            unread=sum(1 for n in notifications if n.read_at is None),
        )

    @expose("/<int:pk>/read", methods=["POST"])
    @signed_in
    def mark_read(self, pk: int):
        """Mark one read; with ``open`` set, go on to what it is about."""
        notification = service.own_notification(g.user.id, pk)
        if notification is None:
            abort(404)
        service.mark_read(notification)
        db.session.commit()
        link = notification.link or ""
        if request.form.get("open") and link.startswith("/") and not link.startswith("//"):
            return redirect(link)
        return redirect(url_for("NotificationView.index"))

    @expose("/read-all", methods=["POST"])
    @signed_in
    def mark_all_read(self):
        service.mark_all_read(g.user.id)
        db.session.commit()
        return redirect(url_for("NotificationView.index"))


def notification_context() -> dict:
    """Templates get ``unread_notifications()``: the signed-in user's unread count, counted
    only when a page's top bar asks for it (never for visitors)."""

    def unread_notifications() -> int:
        if not current_user.is_authenticated:
            return 0
        return service.unread_count(int(current_user.id))

    return {"unread_notifications": unread_notifications}
