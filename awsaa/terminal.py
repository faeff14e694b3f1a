"""Untrusted text, made safe to print on a terminal.

Policy files, file names and error messages can hold anything, including escape sequences
that retitle the terminal, clear it or forge coloured lines, and line breaks that forge
rows. :func:`shown` renders such text as one visible, bounded line. The command-line tools
use it for whatever they print that came from a file or from the user: ``awsaa-policy``'s
file names, ``meta`` keys and values and output paths, and the tools' error lines
(:mod:`awsaa.cli.common`).
"""

from __future__ import annotations

import re

__all__ = ["shown"]

# C0 controls (ESC, \n, \r, \t ...), DEL, C1 controls (e.g. U+009B, the one-byte CSI), the
# Unicode line and paragraph separators, and the bidi controls that reorder what is shown.
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(c: str) -> str:
    """``c`` (one unsafe character) as Python writes it in a string literal: ``\\x1b``, ``\\u202e``."""
    code = ord(c)
    return NAMED.get(c) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def shown(text: object, limit: int = 300) -> str:
    """``str(text)`` with every control character written as a visible escape (``\\x1b``,
    ``\\n``, ``\\x9b``, ``\\u202e``) and at most ``limit`` characters long, ending in ``…``
    when cut (never inside an escape). Printable text, ``é`` or ``数据`` included, is kept
    as it is; backslashes too, so ordinary messages and Windows paths read the same."""
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    s = str(text)
    out = UNSAFE.sub(lambda m: _escape(m.group()), s[:limit + 1])  # each character gives >= 1
    if len(out) <= limit:
        return out
    kept: list[str] = []
    size = 0
    for c in s[:limit]:
        piece = _escape(c) if UNSAFE.match(c) else c
        if size + len(piece) > limit - 1:  # room for the ellipsis
            break
        kept.append(piece)
        size += len(piece)
    return "".join(kept) + "…"
