"""Keep what must not be translated out of the MT system's reach.

Code blocks and numbers-only texts are split off whole and never sent; inline code, URLs and
placeholders inside prose are swapped for numbered markers and restored after translation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FENCE = re.compile(r"```.*?(?:```|$)", re.S)
INLINE = re.compile(
    r"`[^`\n]+`"  # inline code
    r"|https?://[^\s)>\]]+|www\.[^\s)>\]]+"  # URLs
    r"|\{\{[^{}\n]*\}\}|\{[A-Za-z_][A-Za-z0-9_]*\}"  # {{jinja}} and {format} placeholders
    r"|%\(?[a-z_]*\)?[sdif]"  # printf placeholders
    r"|<[A-Za-z/][^<>\n]*>"  # markup tags
)
NOT_PROSE = re.compile(r"^[\W\d_]*$")  # only digits, punctuation, symbols, whitespace
MARKER = "⟦{}⟧"
MARKER_RE = re.compile(r"⟦(\d+)⟧")


@dataclass(frozen=True)
class Segment:
    text: str
    translate: bool  # False: copied verbatim


def split_segments(text: str) -> list[Segment]:
    """Split a field into prose to translate and verbatim parts (code blocks, numbers-only text).

    >>> [(s.text, s.translate) for s in split_segments("Run this:\\n```\\nls\\n```\\nDone.")]
    [('Run this:\\n', True), ('```\\nls\\n```', False), ('\\nDone.', True)]
    >>> [(s.text, s.translate) for s in split_segments("3.5 + 4 = 7.5")]
    [('3.5 + 4 = 7.5', False)]
    """
    out: list[Segment] = []
    pos = 0
    for m in FENCE.finditer(text):
        out.append(Segment(text[pos : m.start()], True))
        out.append(Segment(m.group(0), False))
        pos = m.end()
    out.append(Segment(text[pos:], True))
    return [Segment(s.text, s.translate and not NOT_PROSE.match(s.text)) for s in out if s.text]


def mask(text: str) -> tuple[str, list[str]]:
    """Replace inline code, URLs and placeholders by numbered markers.

    >>> mask("Open `app.py` at https://x.org/a now")
    ('Open ⟦0⟧ at ⟦1⟧ now', ['`app.py`', 'https://x.org/a'])
    """
    kept: list[str] = []

    def swap(m: re.Match) -> str:
        kept.append(m.group(0))
        return MARKER.format(len(kept) - 1)

    return INLINE.sub(swap, text), kept


def unmask(text: str, kept: list[str]) -> tuple[str, int]:
    """Put the kept strings back; returns the text and how many markers the translator lost.

    >>> unmask("Öffne ⟦0⟧ unter ⟦1⟧ jetzt", ["`app.py`", "https://x.org/a"])
    ('Öffne `app.py` unter https://x.org/a jetzt', 0)
    >>> unmask("Öffne jetzt", ["`app.py`"])
    ('Öffne jetzt `app.py`', 1)
    """
    used: set[int] = set()

    def back(m: re.Match) -> str:
        i = int(m.group(1))
        if i >= len(kept):
            return ""
        used.add(i)
        return kept[i]

    out = MARKER_RE.sub(back, text)
    lost = [kept[i] for i in range(len(kept)) if i not in used]
    if lost:  # never drop protected content: append what the translator lost
        out = out.rstrip() + " " + " ".join(lost)
    return out, len(lost)
