"""HTTP echo for demos and tests: GET / answers with the pod's name and IP.

Environment: POD_NAME (default: the hostname), POD_IP, PORT (default 8080).
GET /healthz answers 200; GET /burn?seconds=N spins a CPU for N seconds.
"""

import http.server
import os
import signal
import socket
import sys
import time

NAME = os.environ.get("POD_NAME") or socket.gethostname()
PORT = int(os.environ.get("PORT", "8080"))
BIND = os.environ.get("BIND", "0.0.0.0")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        if self.path.startswith("/burn"):
            seconds = float(self.path.partition("seconds=")[2] or 1)
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                pass
        body = (NAME + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args: object) -> None:
        print(f"{self.client_address[0]} {fmt % args}", flush=True)


class Server(http.server.ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: with more connects in flight than that,
    # the kernel drops SYNs and each dropped one stalls its client for the 1 s retransmit.
    request_queue_size = 1024


if __name__ == "__main__":
    # Extra arguments (e.g. --marker=...) only label the process for tests.
    # As PID 1 in a container SIGTERM has no default action: exit on it ourselves.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    print(f"echo server {NAME} listening on {BIND}:{PORT}", flush=True)
    server = Server((BIND, PORT), Handler)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)
