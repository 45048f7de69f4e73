"""The home page: a role-aware start screen for whoever signs in."""

from __future__ import annotations

from flask import g
from flask_appbuilder import IndexView, expose

from app.security.scoping import allowed_branch_ids, role_names
from app.services.org import get_organisation
from app.security.actions import signed_in


class HomeView(IndexView):
    """``/``: the signed-in user's branches, roles and the screens they can open."""

    route_base = ""
    index_template = "clinic/home.html"

    @expose("/")
    @signed_in
    def index(self):
        user = g.user
        return self.render_template(
            self.index_template,
            organisation=get_organisation(),
            roles=sorted(role_names(user)),
            branches=sorted(user.branches, key=lambda branch: branch.name),
            branch_count=len(allowed_branch_ids()),
        )
