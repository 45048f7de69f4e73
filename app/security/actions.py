"""Safe actions (and no stray file downloads) for FAB model views.

FAB's ``download`` route serves files from ``UPLOAD_FOLDER``, which ClinicDesk does not use: it
answers 404. FAB's ``action`` and ``action_post`` routes look records up without the view's row filters and
fail with a server error on an unknown action name. Here they stay open to signed-in users only,
each action checks its own permission (``(action name, view)``, or the mapped one in
``method_permission_name``), records come through the row filters, and the answers are plain
403/404s.
"""

from __future__ import annotations

from functools import wraps
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import abort, current_app, redirect, request, session
from flask_appbuilder import expose, has_access
from flask_appbuilder.urltools import Stack
from flask_login import current_user


def signed_in(view):
    """Let any signed-in user in; send anonymous visitors to the login page and back."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if not current_user.is_authenticated:
            return redirect(current_app.appbuilder.get_url_for_login_with(request.path))
        return view(*args, **kwargs)

    return wrapper


def without_search_terms(url: str) -> str:
    """``url`` without its search filters (``_flt_*``, ``q``, the patient register's ``search``):
    they may hold a patient's name."""
    parts = urlsplit(url)
    kept = [
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if not key.startswith("_flt_") and key not in ("q", "search")
    ]
    return urlunsplit(parts._replace(query=urlencode(kept)))


class SafeModelViewMixin:
    """Put before FAB's ``ModelView`` in a view's bases."""

    def update_redirect(self):
        """Remember the page to come back to after a save — without the search's terms.

        FAB keeps this history in the session cookie, which is signed but readable.
        """
        page_history = Stack(session.get("page_history", []))
        page_history.push(without_search_terms(request.url))
        session["page_history"] = page_history.to_json()

    def _allowed_action(self, name: str):
        action = self.actions.get(name)
        if action is None:
            abort(404)
        if not self.appbuilder.sm.has_access(
            self.get_action_permission_name(name), self.class_permission_name
        ):
            abort(403)
        return action

    @expose("/download/<string:filename>")
    @has_access
    def download(self, filename):
        """No uploads are kept on disk: there is nothing to download."""
        abort(404)

    @expose("/action/<string:name>/<pk>", methods=["GET", "POST"])
    @signed_in
    def action(self, name, pk):
        """Run a single-record action on a record this user may see."""
        action = self._allowed_action(name)
        if not self.is_get_mutation_allowed():
            abort(405)
        item = self.datamodel.get(self._deserialize_pk_if_composite(pk), self._base_filters)
        if item is None:
            abort(404)
        return action.func(item)

    @expose("/action_post", methods=["POST"])
    @signed_in
    def action_post(self):
        """Run an action on the selected records this user may see."""
        action = self._allowed_action(request.form.get("action", ""))
        if not action.multiple:
            abort(400)  # a single-record action runs from the record's own page
        items = [
            self.datamodel.get(self._deserialize_pk_if_composite(pk), self._base_filters)
            for pk in request.form.getlist("rowid")
        ]
        if not items or any(item is None for item in items):
            abort(404)
        return action.func(items)
