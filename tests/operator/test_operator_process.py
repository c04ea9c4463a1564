"""The operator's logging: the resync timer's success line is dropped, and nothing else."""

from __future__ import annotations

import logging

from modeldeploy.operator.process import QuietResync


def record(level: int, msg: str) -> logging.LogRecord:
    return logging.LogRecord("kopf.objects", level, __file__, 1, msg, None, None)


def test_only_the_timers_success_line_is_dropped() -> None:
    quiet = QuietResync()
    assert not quiet.filter(record(logging.INFO, "Timer 'resync' succeeded."))
    for level, msg in [
        (logging.INFO, "Handler 'reconcile' succeeded."),
        (logging.ERROR, "Timer 'resync' failed with an exception. Will retry."),
        (logging.WARNING, "Timer 'resync' succeeded."),
        (logging.INFO, "Creation is processed: 1 succeeded; 0 failed."),
    ]:
        assert quiet.filter(record(level, msg)), msg
