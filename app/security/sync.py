"""Write the policy (app/security/policy.py) into FAB's role and permission tables.

Run by ``clinic init`` only: app boots never touch permissions, so gunicorn workers cannot race.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask_appbuilder import AppBuilder

from app.security.policy import READ, STAFF_ROLES, role_permissions


class PolicyError(RuntimeError):
    """The policy grants a permission on a view the app does not have."""


@dataclass
class SyncReport:
    """What a sync changed, so a second run can show it changed nothing."""

    granted: list[tuple[str, str, str]] = field(default_factory=list)
    revoked: list[tuple[str, str, str]] = field(default_factory=list)
    roles_created: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.granted or self.revoked or self.roles_created)


def menu_permissions(appbuilder: AppBuilder, pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """``menu_access`` on each menu entry (and its category) whose view the role may read."""
    readable = {view for perm, view in pairs if perm == READ}
    menu_pairs: set[tuple[str, str]] = set()
    for category in appbuilder.menu.get_list():
        entries = category.childs or [category]
        for item in entries:
            view = getattr(item.baseview, "class_permission_name", None)
            if view in readable:
                menu_pairs.add(("menu_access", item.name))
                menu_pairs.add(("menu_access", category.name))
    return menu_pairs


def remove_stale_views(appbuilder: AppBuilder) -> list[tuple[str, str, str]]:
    """Delete permissions on views and menus the app no longer has (a view renamed or removed).

    FAB's own ``security_cleanup`` also "converges" class names that ClinicDesk never used, and
    warns about each one at every run; this does only the cleanup.
    """
    sm = appbuilder.sm
    live = {view.class_permission_name for view in appbuilder.baseviews}
    live |= set(appbuilder.menu.get_flat_name_list())
    removed = []
    for view_menu in sm.get_all_view_menu():
        if view_menu.name in live:
            continue
        for perm_view in sm.find_permissions_view_menu(view_menu):
            for role in sm.get_all_roles():
                if perm_view in role.permissions:
                    sm.del_permission_role(role, perm_view)
                    removed.append((role.name, perm_view.permission.name, view_menu.name))
            sm.del_permission_view_menu(perm_view.permission.name, view_menu.name)
        sm.del_view_menu(view_menu.name)
    return removed


def sync_permissions(appbuilder: AppBuilder) -> SyncReport:
    """Create FAB's permissions for every view, then give each staff role exactly its policy.

    Admin receives every permission (FAB's admin role); Public receives none.

    :raises PolicyError: when the policy names a (permission, view) pair no view declares.
    """
    sm = appbuilder.sm
    report = SyncReport()
    for builtin in (sm.auth_role_admin, sm.auth_role_public):
        if sm.find_role(builtin) is None:
            sm.add_role(builtin)
            report.roles_created.append(builtin)
    appbuilder.add_permissions(update_perms=True)
    report.revoked.extend(remove_stale_views(appbuilder))

    for role_name in STAFF_ROLES:
        role = sm.find_role(role_name)
        if role is None:
            role = sm.add_role(role_name)
            report.roles_created.append(role_name)
        wanted = role_permissions(role_name)
        wanted |= menu_permissions(appbuilder, wanted)
        held = {(pv.permission.name, pv.view_menu.name): pv for pv in role.permissions}
        for pair, perm_view in held.items():
            if pair not in wanted:
                sm.del_permission_role(role, perm_view)
                report.revoked.append((role_name, *pair))
        for perm, view in sorted(wanted - set(held)):
            perm_view = sm.find_permission_view_menu(perm, view)
            if perm_view is None:
                raise PolicyError(f"the policy grants {perm} on {view}, which no view declares")
            sm.add_permission_role(role, perm_view)
            report.granted.append((role_name, perm, view))
    return report
