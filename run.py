"""Entry point: ``flask --app run ...`` and ``gunicorn run:app``. Nothing runs at import but the factory."""

from app import create_app

app = create_app()
