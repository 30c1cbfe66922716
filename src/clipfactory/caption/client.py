"""A small client of the OpenAI-compatible chat completions API, for captions of a few frames.

Each request is one user message: the prompt as a ``text`` part and each frame as an ``image_url`` part
holding a ``data:image/jpeg;base64,...`` URL. The reply's ``choices[0].message.content`` is the caption.

Failures are typed for the executor: a timeout, a connection error, HTTP 408/425/429/5xx, or a reply that is
not a usable caption (not JSON, no choices, empty or non-text content, a refusal-length wall of text) is
:class:`~clipfactory.errors.TransientError` (retried with backoff); other HTTP 4xx (a wrong URL, model or
key) is :class:`~clipfactory.errors.TerminalError`. The API key is read from the environment variable named
in the config, sent only in the ``Authorization`` header, and never logged, stored or put in an error.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass

import httpx

from clipfactory.errors import ConfigError, TerminalError, TransientError

RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


def completions_url(endpoint: str) -> str:
    """``http://host:port`` or ``.../v1`` or the full ``.../v1/chat/completions`` → the full URL."""
    url = endpoint.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(
            "the VLM endpoint is not an http(s) URL", item=f"[caption.vlm] endpoint = {endpoint!r}",
            fix="give the server's base URL, e.g. http://127.0.0.1:8000/v1",
        )
    if url.endswith("/chat/completions"):
        return url
    if url.endswith("/v1"):
        return url + "/chat/completions"
    return url + "/v1/chat/completions"


def image_part(jpeg: bytes) -> dict:
    return {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()}}


@dataclass
class VlmClient:
    """See the module docstring. ``client`` is an :class:`httpx.Client` (shared by threads)."""

    endpoint: str
    model: str
    timeout_s: float = 60.0
    api_key_env: str | None = None
    max_tokens: int = 120
    temperature: float = 0.2
    max_caption_chars: int = 1000

    def __post_init__(self) -> None:
        self.url = completions_url(self.endpoint)
        headers = {"Content-Type": "application/json"}
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise ConfigError(
                    f"the environment variable {self.api_key_env} that holds the VLM API key is not set",
                    item="[caption.vlm] api_key_env",
                    fix=f"export {self.api_key_env}=..., or unset api_key_env for a server without a key",
                )
            headers["Authorization"] = f"Bearer {key}"
        self.client = httpx.Client(timeout=httpx.Timeout(self.timeout_s), headers=headers, follow_redirects=False)

    def close(self) -> None:
        self.client.close()

    def __repr__(self) -> str:  # never shows the headers
        return f"VlmClient(url={self.url!r}, model={self.model!r})"

    def complete(self, prompt: str, jpegs: list[bytes], *, item: str | None = None) -> str:
        """The model's text for ``prompt`` and the frames ``jpegs``."""
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}, *map(image_part, jpegs)]}],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }
        try:
            resp = self.client.post(self.url, content=json.dumps(body))
        except httpx.TimeoutException as exc:
            raise TransientError(
                f"caption.timeout: no answer from the VLM endpoint within {self.timeout_s:g} s ({type(exc).__name__})",
                item=item, fix="raise [caption.vlm] timeout_s or lower concurrency",
            ) from None
        except httpx.HTTPError as exc:
            raise TransientError(
                f"caption.unreachable: the VLM endpoint {self.url} cannot be reached ({type(exc).__name__})",
                item=item, fix="check that the server is running at [caption.vlm] endpoint",
            ) from None
        if resp.status_code in RETRY_STATUS:
            raise TransientError(f"caption.http_{resp.status_code}: the VLM endpoint is busy or failing", item=item)
        if resp.status_code >= 400:
            raise TerminalError(
                f"caption.http_{resp.status_code}: the VLM endpoint refused the request ({_short(resp.text)})",
                item=item, fix="check [caption.vlm] endpoint, model and api_key_env",
            )
        return self._content(resp, item)

    def _content(self, resp: httpx.Response, item: str | None) -> str:
        def bad(why: str) -> TransientError:
            return TransientError(f"caption.bad_response: {why}", item=item, fix="check the server's logs")

        try:
            doc = resp.json()
        except ValueError:
            raise bad(f"the reply is not JSON ({_short(resp.text)})") from None
        try:
            content = doc["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise bad("the reply has no choices[0].message.content") from None
        if isinstance(content, list):  # some servers answer with content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if not isinstance(content, str):
            raise bad("the reply's content is not text")
        text = " ".join(content.split())
        if not text or not any(ch.isalpha() for ch in text):
            raise bad("the reply's content holds no words")
        if len(text) > self.max_caption_chars:
            raise bad(f"the reply is {len(text)} characters long (max_caption_chars is {self.max_caption_chars})")
        return text


def _short(text: str, n: int = 120) -> str:
    t = " ".join((text or "").split())
    return t[:n] + ("…" if len(t) > n else "")
