"""Echo backend for the portcullis differential tests: gunicorn + Flask.

Reports what a typical Flask app behind gunicorn would see: the method after
the classic X-HTTP-Method-Override WSGI middleware, Werkzeug's decoded
request.path, request.host and the X-Auth-Subject header.
"""

from flask import Flask, jsonify, request

NAME = "flask"


class HTTPMethodOverrideMiddleware:
    """Werkzeug's old werkzeug.contrib.fixers.HTTPMethodOverrideMiddleware
    (also the Flask docs' "Adding HTTP Method Overrides" pattern): applies the
    header for ANY original method, not just POST."""

    allowed_methods = frozenset(["GET", "HEAD", "POST", "DELETE", "PUT", "PATCH", "OPTIONS"])
    bodyless_methods = frozenset(["GET", "HEAD", "OPTIONS", "DELETE"])

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        method = environ.get("HTTP_X_HTTP_METHOD_OVERRIDE", "").upper()
        if method in self.allowed_methods:
            environ["REQUEST_METHOD"] = method
        if method in self.bodyless_methods:
            environ["CONTENT_LENGTH"] = "0"
        return self.app(environ, start_response)


app = Flask(__name__)
app.wsgi_app = HTTPMethodOverrideMiddleware(app.wsgi_app)


def _safe(get, fallback):
    try:
        return get()
    except Exception:  # odd input must never turn into a 500
        return fallback


# A before_request hook runs before Flask raises the routing result, so every
# method and every path (including ones the URL map would 404/405/redirect)
# reaches this handler.
@app.before_request
def echo():
    environ = request.environ
    body = {
        "backend": NAME,
        "method": _safe(lambda: request.method, environ.get("REQUEST_METHOD", "")),
        "path": _safe(lambda: request.path, environ.get("PATH_INFO", "")),
        "host": _safe(lambda: request.host, environ.get("HTTP_HOST", "")),
        "user": request.headers.get("X-Auth-Subject"),
        "headers": {k.lower(): v for k, v in request.headers.items()},
    }
    resp = jsonify(body)
    resp.headers["X-Diff-Backend"] = NAME
    return resp
