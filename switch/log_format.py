"""How `mekong run` writes its logs (issue 11 item 4): one JSON object per line on stderr (the
default, what a log shipper reads), or the classic text line for a person at a terminal.

JSON comes from python-json-logger, a small, dependency-free formatter for the standard logging
module: every module keeps `logging.getLogger(__name__)`, records of aiohttp and aiokafka come out
the same way, and a line is only serialised when it is actually emitted (a DEBUG line below the
level costs nothing). A hand-written formatter would have to get JSON escaping, exceptions and
`extra` fields right itself; structlog would mean rewriting every call site.

Each line: `time` (ISO 8601 UTC), `level`, `logger`, `message`, the payment context in force
(switch/log_context.py: uetr, instruction_id, participant, partner, corridor), any `extra`
fields, and `exc_info` for an exception. A run of 13 to 19 digits that passes the Luhn check (a
card number, should one ever reach a message) is cut to its last four, as the switch stores it.
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import datetime, timezone
from typing import IO, Any, Final, Literal

from pythonjsonlogger.json import JsonFormatter
from stdnum import luhn

from switch import limits
from switch.log_context import FIELDS, PaymentContextFilter

LogFormat = Literal["json", "text"]
LOG_FORMATS: Final = ("json", "text")
_PAN_LIKE: Final = re.compile(r"(?<![0-9])[0-9]{13,19}(?![0-9])")


def _mask_pan(match: re.Match[str]) -> str:
    digits = match.group(0)
    return f"****{digits[-4:]}" if luhn.is_valid(digits) else digits


def redact(text: str) -> str:
    """`text` with anything that looks like a full card number cut to its last four digits."""
    return _PAN_LIKE.sub(_mask_pan, text) if any(c.isdigit() for c in text) else text


class JsonLogFormatter(JsonFormatter):
    """One JSON object per line (python-json-logger), `time` first, in UTC with milliseconds."""

    def __init__(self) -> None:
        super().__init__(
            ["levelname", "name", "message"],
            rename_fields={"levelname": "level", "name": "logger"},
            json_ensure_ascii=False,
        )

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        log_data["time"] = datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        super().add_fields(log_data, record, message_dict)
        for key in ("message", "exc_info", "stack_info"):
            value = log_data.get(key)
            if isinstance(value, str):
                log_data[key] = redact(value)


class TextLogFormatter(logging.Formatter):
    """The classic line, the payment context appended in brackets when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = [f"{k}={getattr(record, k)}" for k in FIELDS if getattr(record, k, None)]
        if fields:
            head, sep, tail = line.partition("\n")  # after the message, before a traceback
            line = f"{head} [{' '.join(fields)}]{sep}{tail}"
        return redact(line)


class RepeatFilter(logging.Filter):
    """At most one record per logger and message template per `window_s` from the loggers under
    `prefix` (aiokafka: with the broker gone it writes a line per reconnection attempt, tens a
    second); the next one let through says how many were held back. Cheap: a dict look-up per
    record, and only for those loggers."""

    def __init__(self, prefix: str, window_s: float, clock: Any = None) -> None:
        super().__init__()
        import time

        self._prefix = prefix
        self._window_s = window_s
        self._clock = clock or time.monotonic
        self._seen: dict[tuple[str, object], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self._prefix):
            return True
        key, now = (record.name, record.msg), self._clock()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self._window_s:
            self._seen[key] = (last[0], last[1] + 1)
            return False
        if len(self._seen) > 1000:  # bounded: templates are few, but never let it grow
            self._seen.clear()
        self._seen[key] = (now, 0)
        if last is not None and last[1]:
            record.suppressed = last[1]  # a field of its own in JSON
            record.msg = f"{record.msg} ({last[1]} more like it in the last {now - last[0]:.0f} s not logged)"
        return True


def configure(level: str = "INFO", log_format: LogFormat = "json", stream: IO[str] | None = None) -> logging.Handler:
    """Send every record to `stream` (stderr) in `log_format`, with the payment context; replaces
    whatever handlers the root logger had. Returns the handler (tests read through it)."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format {log_format!r}: json or text")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonLogFormatter() if log_format == "json" else TextLogFormatter())
    handler.addFilter(PaymentContextFilter())
    handler.addFilter(RepeatFilter("aiokafka", limits.partner_problem_log_window_s))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    logging.getLogger("aiokafka").setLevel(logging.WARNING)  # its INFO is a line per (re)connection
    return handler
