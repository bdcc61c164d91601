"""``python -m smartimaging``."""

from smartimaging.cli import app

app()
