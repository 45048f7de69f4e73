"""ClinicDesk: the application factory."""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from app import models  # noqa: F401 - registers every table before FAB and Alembic look
from app.extensions import csrf, db, make_appbuilder, migrate
from app.logs import init_logging
from config import BASE_DIR, INSTANCE_DIR, Config, config_from_env


def create_app(config_class: type[Config] | None = None) -> Flask:
    """Build the app: bind extensions, register views, CLI and hooks — nothing else.

    :raises config.ConfigError: when the configuration is incomplete (e.g. production without
        SECRET_KEY, DATABASE_URL or REDIS_URL).
    """
    config_class = config_class or config_from_env()
    config_class.validate()

    app = Flask(__name__, instance_path=str(INSTANCE_DIR))
    app.config.from_object(config_class)
    init_logging(app)
    if app.config["PROXY_FIX_HOPS"]:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=app.config["PROXY_FIX_HOPS"], x_proto=1
        )

    from app.security.headers import init_security_headers
    from app.security.passwords import init_passwords
    from app.security.sessions import init_sessions
    from app.views.errors import init_error_pages

    csrf.init_app(app)
    db.init_app(app)
    migrate.init_app(app, db, directory=str(BASE_DIR / "migrations"))

    with app.app_context():
        appbuilder = make_appbuilder()
        appbuilder.init_app(app, db.session)

        from app.security.ratelimit import limit_auth_doors
        from app.views import register_views

        register_views(app, appbuilder)
        _check_fab_classes(app, appbuilder)
        limit_auth_doors(appbuilder)

    init_sessions(app)
    init_passwords(app)
    init_security_headers(app)
    init_error_pages(app)

    from app.cli import register_cli
    from app.security.audit_events import init_audit
    from app.security.signin import init_two_factor

    register_cli(app)
    init_audit(app)
    init_two_factor(app)
    return app


def _check_fab_classes(app: Flask, appbuilder) -> None:
    """Fail loudly where FAB would fall back silently.

    FAB imports FAB_SECURITY_MANAGER_CLASS and FAB_INDEX_VIEW by name; when an import fails it
    logs the error and carries on with its defaults — no 2FA-capable login, no home page.

    :raises RuntimeError: when either is not the configured class.
    """
    from app.security.manager import ClinicSecurityManager

    if not isinstance(appbuilder.sm, ClinicSecurityManager):
        raise RuntimeError("FAB_SECURITY_MANAGER_CLASS could not be loaded; see the log above")
    if "HomeView.index" not in app.view_functions:
        raise RuntimeError("FAB_INDEX_VIEW could not be loaded; see the log above")
