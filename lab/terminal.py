"""Text for the terminal: what the CLI prints of user-controlled strings (names, labels, messages,
log lines) never reaches the terminal as a control sequence.

A name such as "web\\x1b]0;owned\\x07" printed raw would retitle the window, move the cursor or
hide the lines above it; an ESC byte from a log line could do the same to whoever reads the logs.
escape() writes every control character (C0, DEL, C1) and every Unicode bidirectional control
(which can make text read in another order than it runs) as a visible escape: ESC becomes \\x1b.
"""
from __future__ import annotations

import re

_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}]")


def _visible(m: re.Match) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text, keep: str = "") -> str:
    """`text` (anything; str() of it) with its control characters escaped, except those in `keep`
    (e.g. "\\n" for a multi-line message, "\\t" for a log line)."""
    s = str(text)
    if not _UNSAFE.search(s):
        return s
    return _UNSAFE.sub(lambda m: m.group() if m.group() in keep else _visible(m), s)


def out(*values, sep: str = " ", end: str = "\n", file=None, flush: bool = False) -> None:
    """print() for the CLI: each value escaped, keeping line breaks and tabs (for a table cell or
    a value that must stay on its line, escape() it first)."""
    print(*(escape(v, keep="\n\t") for v in values), sep=sep, end=end, file=file, flush=flush)
