"""Secrets never reach a file or the console: every error text that is stored or printed passes ``redact``.

Keys read from the environment are remembered here; some gateways echo a bad key back in their error body
("Incorrect API key provided: sk-..."), and that text would otherwise land in failed.jsonl or a score row.
"""

from __future__ import annotations

import re
import threading

_KNOWN: set[str] = set()
_LOCK = threading.Lock()
SHAPES = re.compile(
    r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"  # an Authorization header
    r"|\b(sk-|hf_|key-)[A-Za-z0-9_-]{8,}"  # the shapes of OpenAI, Hugging Face and other keys
)


def remember(secret: str | None) -> None:
    """A value that must never be written: the key read from an ``api_key_env`` variable."""
    if secret and len(secret) >= 4:
        with _LOCK:
            _KNOWN.add(secret)


def redact(text: str) -> str:
    """``text`` without any remembered secret and without anything shaped like a key or bearer token.

    >>> remember("hunter2-secret")
    >>> redact("Incorrect API key provided: hunter2-secret. Authorization: Bearer abcdefgh12345 sk-proj-0123456789")
    'Incorrect API key provided: [redacted]. Authorization: Bearer [redacted] sk-[redacted]'
    """
    with _LOCK:
        known = sorted(_KNOWN, key=len, reverse=True)
    for secret in known:
        text = text.replace(secret, "[redacted]")
    return SHAPES.sub(lambda m: (m.group(1) or m.group(2)) + "[redacted]", text)
