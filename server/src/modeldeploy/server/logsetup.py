"""How the server half's commands log: to stderr, one line per record with its time, level
and logger (stdout is each command's answer: a digest, a table, a card)."""

from __future__ import annotations

import logging
import sys


def setup_logging(level: str = "info") -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
