"""A loopback HTTP server on 127.0.0.1 that speaks the OpenAI chat completions API, for caption tests.

No model runs: the "caption" it answers is made from the request, so that a test knows what to expect. It
checks each request the way a real server would (JSON body, a model name, one user message of a text part
and base64 JPEG ``image_url`` parts that decode as images) and records it. ``script`` decides how each
request is answered: ``"ok"``, ``"garbage"`` (a body that is not JSON), ``"no_choices"`` (JSON without
choices), ``"slow"`` (sleeps past the client's timeout), ``"503"`` or ``"404"``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image


class VlmServer:
    def __init__(self, script=None, *, slow_s: float = 2.0):
        self.script = script or (lambda req, n: "ok")
        self.slow_s = slow_s
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.seen: dict[str, int] = {}  # times each set of frames was sent
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != "/v1/chat/completions":
                    return self._send(404, b'{"error": "not found"}')
                try:
                    req = json.loads(body)
                    parts = req["messages"][0]["content"]
                    text = next(p["text"] for p in parts if p["type"] == "text")
                    images = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
                    sizes, jpegs = [], []
                    for url in images:
                        head, data = url.split(",", 1)
                        assert head == "data:image/jpeg;base64"
                        jpegs.append(base64.b64decode(data))
                        img = Image.open(io.BytesIO(jpegs[-1]))
                        assert img.format == "JPEG"
                        sizes.append(img.size)
                except Exception as exc:  # a malformed request is the client's bug: answer 400
                    return self._send(400, json.dumps({"error": f"bad request: {exc}"}).encode())
                key = hashlib.sha256("".join(images).encode()).hexdigest()
                with outer.lock:
                    n = outer.seen.get(key, 0)
                    outer.seen[key] = n + 1
                    rec = {
                        "model": req.get("model"), "prompt": text, "images": len(images), "sizes": sizes, "jpegs": jpegs,
                        "auth": self.headers.get("Authorization"), "attempt": n + 1, "key": key,
                    }
                    outer.requests.append(rec)
                what = outer.script(rec, n)
                if what == "slow":
                    time.sleep(outer.slow_s)
                    what = "ok"
                if what == "garbage":
                    return self._send(200, b"<html>upstream proxy error</html>", "text/html")
                if what == "no_choices":
                    return self._send(200, b'{"object": "chat.completion", "choices": []}')
                if what in ("503", "404"):
                    return self._send(int(what), b'{"error": {"message": "nope"}}')
                caption = f"{len(images)} frames for {req.get('model')}: " + (
                    "rewritten " + text.split('"')[1] if '"' in text else "a textured scene with moving shapes"
                )
                doc = {
                    "id": "chatcmpl-1", "object": "chat.completion", "model": req.get("model"),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": caption}, "finish_reason": "stop"}],
                }
                self._send(200, json.dumps(doc).encode())

            def _send(self, code: int, body: bytes, ctype: str = "application/json"):
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> VlmServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
