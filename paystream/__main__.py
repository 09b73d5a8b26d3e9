"""``python -m paystream`` is the ``paystream`` command."""

from paystream.cli.main import app

app()
