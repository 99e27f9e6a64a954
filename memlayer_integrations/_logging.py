"""The package's logger, and the redaction that keeps API keys out of every log record.

httpx masks ``Authorization`` in its own logs but knows nothing of ``X-API-Key``, so the
package logger carries a filter that masks anything shaped like a MemLayer key.
"""

from __future__ import annotations

import logging
import re

__all__ = ["RedactingFilter", "get_logger", "logger", "mask_key", "redact"]

_KEY_RE = re.compile(r"ml_live_[A-Za-z0-9]+")


def _encoded(char: str) -> str:
    """A pattern for ``char`` as written plainly or escaped: percent-encoded (also twice,
    ``%255F``), as a JSON or Python ``\\u005f`` / ``\\x5f`` escape, as an HTML entity."""
    code = ord(char)
    hex_ = f"{code:02x}"
    forms = [
        re.escape(char),
        f"%(?:25)?{hex_}",
        f"\\\\u00{hex_}",
        f"\\\\x{hex_}",
        f"&#x0*{hex_};",
        f"&#0*{code};",
    ]
    return "(?:" + "|".join(forms) + ")"


# A key however a URL, a JSON document or a log formatter may have escaped its characters
# (``ml%5Flive%5F...`` in an access log line, say): the prefix, then letters and digits.
_ENCODED_KEY_RE = re.compile(
    "".join(_encoded(c) for c in "ml_live_")
    + "(?:"
    + "|".join(
        [
            "[A-Za-z0-9]",
            "%(?:25)?(?:3[0-9]|4[1-9a-f]|5[0-9a]|6[1-9a-f]|7[0-9a])",
            r"\\(?:u00|x)(?:3[0-9]|4[1-9a-f]|5[0-9a]|6[1-9a-f]|7[0-9a])",
        ]
    )
    + ")+",
    re.IGNORECASE,
)


def mask_key(key: str | None) -> str:
    """``ml_live_a1b2c3d4e5f6`` -> ``ml_live_a1b2…``: enough to tell keys apart, not to use one."""
    if not key:
        return "<none>"
    if key.startswith("ml_live_"):
        return key[:12] + "…"
    return "<redacted>"


def redact(text: str) -> str:
    """Replace every key-shaped substring of ``text`` by its masked form; an escaped or
    percent-encoded key by ``ml_live_<redacted>``."""
    text = _ENCODED_KEY_RE.sub(_mask_escaped, text)
    return _KEY_RE.sub(lambda m: mask_key(m.group(0)), text)


def _mask_escaped(match: re.Match[str]) -> str:
    found = match.group(0)
    return found if _KEY_RE.fullmatch(found) else "ml_live_<redacted>"


class RedactingFilter(logging.Filter):
    """Masks keys in a record's message and arguments, whatever the level."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Render first: the key may sit in the arguments, or in the str() of a non-string
        # message (an exception object, say), not only in the format string.
        record.msg = redact(record.getMessage())
        record.args = None
        return True


def get_logger(name: str = "memlayer_integrations") -> logging.Logger:
    """A logger under ``memlayer_integrations`` with the redacting filter attached.

    Logger filters do not apply to records of child loggers, so every module that logs takes
    its logger from here rather than from ``logging.getLogger``.
    """
    log = logging.getLogger(name)
    if not any(isinstance(f, RedactingFilter) for f in log.filters):
        log.addFilter(RedactingFilter())
    return log


logger = get_logger()
