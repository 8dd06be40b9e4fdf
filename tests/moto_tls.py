"""moto's S3 server over TLS on loopback, for pgBackRest (which speaks S3 over TLS only).

`python -m moto.server --ssl` answers an S3 PUT without a Content-Length and with
"Connection: close", then closes the TLS connection without a close_notify; pgBackRest's
OpenSSL 3 reads that as "unexpected eof" and fails the request after its I/O timeout. This
serves moto's WSGI app with every response carrying a Content-Length and every connection
ended by a proper TLS shutdown, with the given certificate (or a throwaway self-signed one).
Usage: python tests/moto_tls.py HOST PORT [CERT KEY]
"""

from __future__ import annotations

import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


class ContentLength:
    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        captured = {}

        def capture(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        body = b"".join(self.app(environ, capture))
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        if environ.get("REQUEST_METHOD") == "HEAD":
            original = [v for k, v in captured["headers"] if k.lower() == "content-length"]
            headers.append(("Content-Length", original[0] if original else "0"))
            body = b""
        else:
            headers.append(("Content-Length", str(len(body))))
        start_response(captured["status"], headers)
        return [body]


class CleanTLSClose(MotoRequestHandler):
    """Send close_notify before closing, as a real TLS server does."""

    def finish(self) -> None:
        super().finish()
        unwrap = getattr(self.request, "unwrap", None)
        if unwrap is not None:
            try:
                self.request.settimeout(2)
                unwrap()
            except (OSError, ValueError):
                pass


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    ssl_context = (sys.argv[3], sys.argv[4]) if len(sys.argv) > 4 else "adhoc"
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, ContentLength(app), threaded=True, ssl_context=ssl_context, request_handler=CleanTLSClose)


if __name__ == "__main__":
    main()
