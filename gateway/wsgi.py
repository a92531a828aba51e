"""WSGI entry point for gunicorn: ``gateway.wsgi:app`` (the settings the master read)."""

from gateway.app import create_app
from gateway.config import settings

app = create_app(settings())
