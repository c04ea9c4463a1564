"""How the operator process logs, set up before kopf starts.

The operator logs each Event it posts (``handlers.reconcile``): what it decided, for which
object, and why. The resync (``resync``) runs in a daemon of its own, which kopf does not log
on every run as it does a timer's: at 500 ModelDeployments that was a hundred lines a second
saying nothing.
"""

from __future__ import annotations

import logging


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
