"""How the operator process logs, set up before kopf starts.

kopf logs an INFO line after every successful run of a timer: with the resync timer that is
a hundred lines a second at 500 ModelDeployments (one every 5 s each), which says nothing
(a failure is still logged) and buries what does. The operator logs each Event it posts
instead (``handlers.reconcile``): what it decided, for which object, and why.
"""

from __future__ import annotations

import logging

QUIET = ("Timer 'resync' succeeded.",)


class QuietResync(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.INFO and record.getMessage() in QUIET)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("kopf.objects").addFilter(QuietResync())
