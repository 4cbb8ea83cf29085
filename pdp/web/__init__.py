"""HTTP: the app factory, gunicorn, the JSON API and the console."""
