"""Command-line flags with environment-variable equivalents.

Every service reads its configuration through `add_flag`, so `--redis-url`
can also be given as KUBELITE_REDIS_URL: the same settings work in
docker-compose (environment) and locally (flags).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any


def env_name(flag: str) -> str:
    return "KUBELITE_" + flag.lstrip("-").upper().replace("-", "_")


def add_flag(parser: argparse.ArgumentParser, flag: str, *, default: Any, help: str,
             type: Any = None, **kwargs: Any) -> None:
    """Adds --flag whose default comes from $KUBELITE_FLAG when set."""
    conv = type or (builtin_type(default))
    env = os.environ.get(env_name(flag))
    value = conv(env) if env is not None else default
    parser.add_argument(flag, default=value, type=conv,
                        help=f"{help} (env {env_name(flag)}; default {default!r})", **kwargs)


def builtin_type(default: Any) -> Any:
    if isinstance(default, bool):
        return lambda v: str(v).lower() in ("1", "true", "yes", "on")
    if default is None:
        return str
    return type(default)


class KeyValueFormatter(logging.Formatter):
    """Structured key=value log lines: ts=... level=... logger=... msg="..." k=v."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields.update(getattr(record, "kv", {}) or {})
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        return " ".join(f"{k}={_quote(v)}" for k, v in fields.items())


def _quote(value: Any) -> str:
    text = str(value)
    if text and all(c.isalnum() or c in "-_./:@,[]" for c in text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def setup_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.Formatter.converter = __import__("time").gmtime
