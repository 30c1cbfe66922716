"""A loopback HTTP server that counts requests in flight and requests per second (the limiter tests)."""

from __future__ import annotations

import sys

server = sys.modules["cf_acquire_server"]  # loaded by conftest.py


class CountingServer:
    """A loopback HTTP server that counts what a polite client must keep low: requests in flight at once
    (``max_active``) and request start times (for requests per second). Every video path answers after
    ``delay_s`` with the same small MP4; robots.txt and tdmrep.json answer 404 (no rules)."""

    def __init__(self, delay_s: float = 0.5):
        import http.server
        import threading

        self.delay_s = delay_s
        self.lock = threading.Lock()
        self.active = self.max_active = 0
        self.starts: list[float] = []
        self.paths: list[str] = []
        body = server.fake_mp4(4096)
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                import time

                with owner.lock:
                    owner.active += 1
                    owner.max_active = max(owner.max_active, owner.active)
                    owner.starts.append(time.monotonic())
                    owner.paths.append(self.path)
                try:
                    if self.path.startswith("/v/"):
                        time.sleep(owner.delay_s)
                        status, data, ctype = 200, body, "video/mp4"
                    else:
                        status, data, ctype = 404, b"none", "text/plain"
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    with owner.lock:
                        owner.active -= 1

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def most_in_window(self, seconds: float = 1.0) -> int:
        """The most requests that started within any window of ``seconds``."""
        t = sorted(self.starts)
        return max((sum(1 for u in t[i:] if u - s < seconds) for i, s in enumerate(t)), default=0)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
