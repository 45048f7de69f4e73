"""Flask-AppBuilder strings that FAB's own Spanish catalogue leaves untranslated (or fuzzy).

Never imported: it only lists the messages for ``pybabel extract`` (see translations/babel.cfg),
so our catalogues can translate them. Our translations directory is merged after FAB's, so an
entry here wins over FAB's. Add a FAB string here when it shows up in English on a translated
screen; strings FAB hard-codes in its templates (the confirm dialog's "Cancel"/"OK") cannot be
translated this way.
"""

from flask_babel import lazy_gettext as _l

FAB_MESSAGES = [
    # List and detail screens: action buttons (read out by screen readers) and the delete dialog.
    _l("Add"),
    _l("Show"),
    _l("Edit"),
    _l("Delete"),
    _l("User confirmation needed"),
    _l("Are you sure you want to delete this item?"),
    # Forms.
    _l("Not a valid choice"),
    _l("Select Value"),
    _l("Database Error"),
    # The Admin's user, role and group screens.
    _l("Edit User Information"),
    _l("User information changed"),
    _l("The user's password for authentication"),
    _l("Either select a role or a group"),
    _l("User(s) exists in the role, cannot delete"),
    _l("List Groups"),
    _l("Show Group"),
    _l("Add Group"),
    _l("Edit Group"),
    _l("User(s) exists in the group, cannot delete"),
    _l(
        "The user group on the application, this will associate with a list of roles "
        "associated with the group"
    ),
]
