"""Secrets never reach a file or the console: every error text that is stored or printed passes ``redact``.

Keys read from the environment are remembered here; some gateways echo a bad key back in their error body
("Incorrect API key provided: sk-..."), and that text would otherwise land in failed.jsonl or a score row.
"""

from __future__ import annotations

import base64
import re
import threading
import urllib.parse

_KNOWN: set[str] = set()
_GRAMS: set[str] = set()  # every 8-character piece of a remembered secret and of its common encodings
_LOCK = threading.Lock()
PIECE = 8  # a piece of a key this long is as good as gone: no such piece may be written
SHAPES = re.compile(
    r"((?i:bearer)\s+)[A-Za-z0-9._~+/=-]{8,}"  # an Authorization header
    r"|\b(sk-|hf_|key-)[A-Za-z0-9_-]{8,}"  # the shapes of OpenAI, Hugging Face and other keys (case as issued)
)


def encodings(secret: str) -> list[str]:
    """The forms a key is echoed in: as is, hex, base64 at each of its three alignments, URL-quoted.

    >>> "616263" in encodings("abc"), "YWJj" in encodings("abc")
    (True, True)
    """
    raw = secret.encode()
    forms = [secret, raw.hex(), raw.hex().upper(), urllib.parse.quote(secret, safe="")]
    for pad in range(3):  # base64 of a key inside a longer text: each alignment gives other characters
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(b"\0" * pad + raw).decode().rstrip("=")
            forms.append(text[(pad * 4 + 2) // 3 :])  # without the characters the padding shaped
    return forms


def remember(secret: str | None) -> None:
    """A value that must never be written: the key read from an ``api_key_env`` variable."""
    if secret and len(secret) >= 4:
        with _LOCK:
            _KNOWN.add(secret)
            for form in encodings(secret):
                _GRAMS.update(form[i : i + PIECE] for i in range(len(form) - PIECE + 1))


def redact(text: str) -> str:
    """``text`` without any remembered secret, any piece of 8 or more of its characters (plain, hex,
    base64, URL-quoted), and without anything shaped like a key or bearer token.

    >>> remember("hunter2-secret")
    >>> redact("Incorrect API key provided: hunter2-secret. Authorization: Bearer abcdefgh12345 sk-proj-0123456789")
    'Incorrect API key provided: [redacted]. Authorization: Bearer [redacted] sk-[redacted]'
    >>> redact("key ...er2-secre, HF_HUB_OFFLINE is set")
    'key ...[redacted], HF_HUB_OFFLINE is set'
    """
    with _LOCK:
        known, grams = sorted(_KNOWN, key=len, reverse=True), _GRAMS
        for secret in known:
            text = text.replace(secret, "[redacted]")
        text = SHAPES.sub(lambda m: (m.group(1) or m.group(2)) + "[redacted]", text)
        hits = [i for i in range(len(text) - PIECE + 1) if text[i : i + PIECE] in grams]
    spans: list[list[int]] = []  # the hits merged into runs of covered characters
    for i in hits:
        if spans and i <= spans[-1][1]:
            spans[-1][1] = i + PIECE
        else:
            spans.append([i, i + PIECE])
    for start, end in reversed(spans):
        text = text[:start] + "[redacted]" + text[end:]
    return text
