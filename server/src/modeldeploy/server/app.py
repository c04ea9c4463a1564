"""The FastAPI application: ``create_app(settings)`` serves one bundle.

The model is loaded in the background by the lifespan, so liveness answers at once and
readiness turns true only once the verified model is in memory. Prediction endpoints are
served by ``HotPath`` (plain ASGI in front of FastAPI, see there); everything else is
ordinary FastAPI routes, kept thin: they read the state and render it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from modeldeploy.server import __version__
from modeldeploy.server import contract as c
from modeldeploy.server.batching import MicroBatcher
from modeldeploy.server.bundle import Bundle, load_bundle, read_card
from modeldeploy.server.bundling.markdown import card_markdown
from modeldeploy.server.card import ModelCard
from modeldeploy.server.exposition import MonitorCollector
from modeldeploy.server.hotpath import HotPath
from modeldeploy.server.labelled.format import Labelled
from modeldeploy.server.labelled.service import start_writer
from modeldeploy.server.labelled.writer import LabelledWriter
from modeldeploy.server.metadata import model_metadata_of
from modeldeploy.server.monitor import Monitor
from modeldeploy.server.peers import FORWARDED_HEADER, Peers, own_addresses
from modeldeploy.server.requestid import new_request_id
from modeldeploy.server.runtime import BatchResult, FeedbackStore, ModelRuntime, slice_values
from modeldeploy.server.settings import Settings
from modeldeploy.server.validation import InputSchema
from modeldeploy.server.wire import (
    RequestError,
    check_content_type,
    error_json,
    parse_feedback,
    parse_json,
)

log = logging.getLogger(__name__)

_CLIENT_ID_HEADER = c.CLIENT_REQUEST_ID_HEADER.encode()


class ServerState:
    """What the routes share: settings, the loaded model and its bookkeeping."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.card: ModelCard | None = None
        self.runtime: ModelRuntime | None = None
        self.monitor: Monitor | None = None
        self.error: str | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.feedback = FeedbackStore(
            settings.feedback_capacity, keep_inputs=settings.labelled is not None
        )
        self.labelled: LabelledWriter | None = None
        self.peers = (
            Peers(settings.feedback_peers, own_addresses(settings.host, settings.port))
            if settings.feedback_peers
            else None
        )
        self.schema: InputSchema
        self.batcher: MicroBatcher[BatchResult]
        self.sha256 = ""  # the verified bundle digest, once loaded
        self._identity = ((b"x-model-name", b""), (b"x-model-version", b""))

    @property
    def model_name(self) -> str:
        return self.card.name if self.card else "unknown"

    @property
    def model_version(self) -> str:
        return self.card.version if self.card else "unknown"

    def identity(self) -> tuple[str, str]:
        return self.model_name, self.model_version

    def identity_headers(self, request_id: str, client_id: str = "") -> list[tuple[bytes, bytes]]:
        """The headers every answer carries (the model's two built once per card)."""
        out = [*self._identity, (b"x-request-id", request_id.encode())]
        if client_id:
            out.append((_CLIENT_ID_HEADER, client_id.encode()))
        return out

    def set_card(self, card: ModelCard) -> None:
        self.card = card
        self._identity = (
            (b"x-model-name", card.name.encode()),
            (b"x-model-version", card.version.encode()),
        )

    def not_ready_reason(self) -> str:
        return f"failed to load: {self.error}" if self.error else "is still loading"

    def record_request(self, outcome: str, seconds: float) -> None:
        if self.monitor is not None:
            self.monitor.observe_request(outcome, seconds)

    def install(self, bundle: Bundle) -> None:
        """Wire a verified bundle into the server; after this the server is ready."""
        s = self.settings
        self.set_card(bundle.card)
        monitor = Monitor(bundle.card, s.role, drift=s.drift, window=s.drift_window)
        runtime = ModelRuntime(bundle, monitor)
        self.schema = InputSchema.from_card(bundle.card, s.max_request_rows)
        self.batcher = MicroBatcher(
            runtime.predict,
            max_rows=s.max_batch_rows,
            max_wait=s.max_batch_wait_ms / 1000.0,
            stack=runtime.encoder.build,
        )
        self.registry.register(MonitorCollector(monitor, bundle.sha256))
        self.sha256 = bundle.sha256
        if s.labelled is not None:
            self.labelled = start_writer(s.labelled, bundle.card, runtime, s.role, self.registry)
        self.monitor = monitor
        self.runtime = runtime


async def _load(state: ServerState) -> None:
    s = state.settings
    try:
        bundle = await asyncio.to_thread(load_bundle, s.bundle, s.sha256)
        state.install(bundle)
        # The model's many long-lived objects need never be scanned by the cyclic collector
        # again: freezing them keeps full collections (and tail latency) short.
        gc.collect()
        gc.freeze()
        log.info(
            "ready: model %s version %s, role %s, drift bookkeeping %s",
            state.model_name,
            state.model_version,
            s.role,
            "on" if s.drift else "off",
        )
    except Exception as exc:
        state.error = str(exc)
        log.error("model not loaded, staying unready: %s", exc)


def _json(data: dict[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id") or new_request_id())


def create_app(settings: Settings) -> HotPath:
    """The ASGI app serving the bundle in ``settings`` (loaded when the app starts): the hot
    path in front of FastAPI, so a prediction pays for no framework layer at all."""
    state = ServerState(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            state.set_card(read_card(settings.bundle))
        except Exception as exc:
            log.error("cannot read the model card: %s", exc)
        task = asyncio.create_task(_load(state))
        yield
        task.cancel()
        if state.peers is not None:
            await state.peers.close()
        if state.labelled is not None:  # what waits in memory goes to the store now
            await asyncio.to_thread(state.labelled.close)

    app = FastAPI(
        title="modeldeploy model server",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.server = state

    def ident(request: Request) -> dict[str, Any]:
        return {
            "model_name": state.model_name,
            "model_version": state.model_version,
            "request_id": _request_id(request),
        }

    def fail(request: Request, status: int, field: str, problem: str) -> Response:
        body = error_json(
            RequestError(status, field, problem), state.identity(), _request_id(request)
        )
        return Response(body, status_code=status, media_type="application/json")

    @app.exception_handler(RequestError)
    async def on_request_error(request: Request, exc: RequestError) -> Response:
        return fail(request, exc.status, exc.field, exc.problem)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        field = "method" if exc.status_code == 405 else "path"
        problem = {
            404: f"{request.url.path} is not an endpoint of this server",
            405: f"{request.method} is not allowed on {request.url.path}",
        }.get(exc.status_code, str(exc.detail))
        return fail(request, exc.status_code, field, problem)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        return fail(
            request,
            422,
            ".".join(str(p) for p in first.get("loc", ())),
            str(first.get("msg", "invalid")),
        )

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> Response:
        # A failure no input should cause is the server's fault: say so honestly (500), so
        # clients and the error-rate alert see it; the fuzz tests hold the server to none.
        log.exception("request %s to %s failed", _request_id(request), request.url.path)
        return fail(
            request, 500, "server", f"internal error ({type(exc).__name__}); see the server log"
        )

    @app.get(c.LIVE_PATH)
    async def live(request: Request) -> Response:
        return _json({"live": True, **ident(request)})

    @app.get(c.READY_PATH)
    async def ready(request: Request) -> Response:
        if state.runtime is None:
            return _json(
                {"ready": False, "reason": f"model {state.not_ready_reason()}", **ident(request)},
                503,
            )
        return _json({"ready": True, **ident(request)})

    @app.get("/v2")
    async def server_metadata(request: Request) -> Response:
        return _json(
            {"name": "modeldeploy", "version": __version__, "extensions": [], **ident(request)}
        )

    def model_or_404(name: str) -> ModelCard:
        if state.card is None or name != state.card.name:
            raise RequestError(
                404, "model", f"{name!r} is not served here (this is {state.model_name!r})"
            )
        return state.card

    @app.get("/v2/models/{name}")
    async def model_metadata(name: str, request: Request) -> Response:
        card = model_or_404(name)
        return _json({**model_metadata_of(card, settings.role, state.sha256), **ident(request)})

    @app.get("/v2/models/{name}/ready")
    async def model_ready(name: str, request: Request) -> Response:
        model_or_404(name)
        ok = state.runtime is not None
        return _json({"name": name, "ready": ok, **ident(request)}, 200 if ok else 503)

    @app.get(c.CARD_PATH)
    async def model_card(request: Request) -> Response:
        """The card as JSON; as Markdown with ``?format=markdown`` or ``Accept: text/markdown``."""
        if state.card is None:
            raise RequestError(503, "model", state.not_ready_reason())
        wanted = request.query_params.get("format", "")
        if wanted not in ("", "json", "markdown"):
            raise RequestError(422, "format", f"must be json or markdown, got {wanted!r}")
        if wanted == "markdown" or (
            not wanted and "text/markdown" in request.headers.get("accept", "")
        ):
            text = card_markdown(state.card, state.sha256 or None)
            return Response(text, media_type="text/markdown; charset=utf-8")
        return _json({"card": state.card.to_dict(), "sha256": state.sha256, **ident(request)})

    @app.get(c.METRICS_PATH)
    async def metrics() -> Response:
        return Response(generate_latest(state.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get(c.DRIFT_PATH)
    async def drift(request: Request) -> Response:
        if state.monitor is None:
            raise RequestError(503, "model", state.not_ready_reason())
        report = state.monitor.drift_report(settings.drift_alpha, settings.drift_min_rows)
        return _json({**report, **ident(request)})

    @app.post(c.FEEDBACK_PATH)
    async def feedback(request: Request) -> Response:
        if state.runtime is None or state.monitor is None:
            raise RequestError(503, "model", state.not_ready_reason())
        check_content_type(request.headers.get("content-type", "").encode("latin-1") or None)
        body = await request.body()
        if len(body) > settings.max_body_bytes:
            raise RequestError(413, "body", f"is larger than {settings.max_body_bytes} bytes")
        classes = tuple(state.runtime.classes) if state.runtime.classification else None
        request_id, labels = parse_feedback(parse_json(body), classes)
        entry = state.feedback.take(request_id)
        if entry is None and state.peers is not None and FORWARDED_HEADER not in request.headers:
            # Another replica made this prediction (a Service spreads requests): ask it.
            forwarded = await state.peers.forward(body, request.headers.get("content-type", ""))
            if forwarded is not None:
                log.debug("feedback for %s answered by peer %s", request_id, forwarded.peer)
                return Response(
                    forwarded.body,
                    status_code=forwarded.status,
                    media_type="application/json",
                    headers=forwarded.headers,
                )
        if entry is None:
            raise RequestError(
                404, "request_id", f"{request_id!r} is unknown, too old, or already has feedback"
            )
        values, scores = slice_values(entry.part)
        if len(labels) != len(values):
            state.feedback.put_back(request_id, entry)
            raise RequestError(
                422,
                "labels",
                f"has {len(labels)} labels, request {request_id} had {len(values)} rows",
            )
        right, wrong = state.monitor.observe_feedback(labels, values, scores)
        if state.labelled is not None and entry.rows is not None:
            state.labelled.add(
                Labelled(request_id, entry.rows, values, labels, entry.predicted_at, time.time())
            )
        return _json(
            {
                "accepted": len(labels),
                "correct": right,
                "incorrect": wrong,
                "for_request_id": request_id,
                **ident(request),
            }
        )

    return HotPath(app, state)
