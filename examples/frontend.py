#!/usr/bin/env python3
"""A stand-in frontend: serves on $PORT and forwards GET / to the backend
at $API_URL, which brokerctl up fills in from {port:backend}. /healthz
answers 200 once the backend does. Standard library only."""

import http.server
import os
import sys
import urllib.request

API_URL = os.environ["API_URL"]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            with urllib.request.urlopen(API_URL + "/", timeout=5) as resp:
                status = resp.status
        except OSError as err:
            self.send_error(502, "backend at %s: %s" % (API_URL, err))
            return
        body = ("frontend on port %s; backend at %s answered %d\n"
                % (os.environ["PORT"], API_URL, status)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    server = http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
    print("frontend on http://127.0.0.1:%s, backend at %s" % (os.environ["PORT"], API_URL))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
