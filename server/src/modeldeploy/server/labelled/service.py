"""The labelled-data store wired into a model server: its writer from the settings and the
loaded model, and the pod name its files carry."""

from __future__ import annotations

import os
import socket

from prometheus_client import CollectorRegistry

from modeldeploy.server.card import ModelCard
from modeldeploy.server.contract import retrain as r
from modeldeploy.server.labelled.format import Layout
from modeldeploy.server.labelled.sinks import open_sink
from modeldeploy.server.labelled.writer import DAY, LabelledWriter, Limits
from modeldeploy.server.runtime import ModelRuntime
from modeldeploy.server.settings import LabelledSettings


def pod_name() -> str:
    """``$MODELDEPLOY_POD_NAME`` (the downward API fills it in pods), else the host name."""
    return os.environ.get(r.ENV_POD_NAME, "") or socket.gethostname() or "server"


def start_writer(
    settings: LabelledSettings,
    card: ModelCard,
    runtime: ModelRuntime,
    role: str,
    registry: CollectorRegistry,
) -> LabelledWriter:
    """The running writer of the served model, its metrics on the server's registry."""
    classes = runtime.classes if runtime.classification else None
    writer = LabelledWriter(
        open_sink(settings.location, settings.s3),
        Layout.from_card(card, classes),
        model=card.name,
        version=card.version,
        role=role,
        pod=settings.pod,
        limits=Limits(
            rows_per_file=settings.rows_per_file,
            max_age=settings.max_age,
            max_pending=settings.max_pending,
            retention=settings.retention_days * DAY,
        ),
        registry=registry,
    )
    writer.start()
    return writer
