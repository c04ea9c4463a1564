"""The prediction endpoints as a plain ASGI layer in front of FastAPI.

``POST /predict`` and ``POST /v2/models/{name}/infer`` are the only hot paths, and most
of a Python web request's cost is framework plumbing. Here they are served straight from
the ASGI messages: read the body, parse it with orjson, validate, queue the rows for the
micro-batcher, write the JSON answer. Every other request passes through to FastAPI with
the model and request-id headers added. Nothing raised here escapes: client mistakes
become 4xx bodies naming the field; anything else is a bug, logged and answered 500.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

import orjson

from modeldeploy.server import contract as c
from modeldeploy.server.batching import Rows
from modeldeploy.server.requestid import new_request_id
from modeldeploy.server.runtime import BatchResult
from modeldeploy.server.wire import RequestError, check_content_type, error_json, parse_json

if TYPE_CHECKING:  # pragma: no cover
    from modeldeploy.server.app import ServerState

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
_INFER = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?/infer$")
_JSON = (b"content-type", b"application/json")
_NUMPY = orjson.OPT_SERIALIZE_NUMPY


def client_request_id(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's own ``x-request-id`` when it is sane, else "": answered back as
    ``x-client-request-id`` so a trace can follow it, never used as the request id."""
    for name, value in headers:
        if name == b"x-request-id":
            return value.decode("ascii") if _REQUEST_ID.match(value) else ""
    return ""


class ClientGone(Exception):
    """The client disconnected before sending its whole body."""


# After refusing a body as too large, read and discard up to this much more of it (or for
# this long) before answering, as nginx's lingering close does: a client that uploads the
# whole body before reading (Python's urllib and requests do) then gets its 413 instead of a
# connection reset. The connection is closed after the answer.
DRAIN_BYTES = 64 * 1024 * 1024
DRAIN_SECONDS = 5.0


async def drain_body(receive: Receive, limit: int = DRAIN_BYTES) -> None:
    """Discard what is left of a request body, at most ``limit`` bytes or ``DRAIN_SECONDS``."""
    deadline = time.monotonic() + DRAIN_SECONDS
    drained = 0
    while drained < limit and time.monotonic() < deadline:
        message = await receive()
        if message["type"] != "http.request":
            return
        drained += len(message.get("body", b""))
        if not message.get("more_body"):
            return


class BodyTooLarge(RequestError):
    """A body over the limit; ``pending`` when the client has more of it still to send."""

    def __init__(self, limit: int, pending: bool) -> None:
        super().__init__(413, "body", f"is larger than {limit} bytes")
        self.pending = pending


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body, refusing more than ``limit`` bytes."""
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientGone()
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        if len(body) > limit:
            raise BodyTooLarge(limit, pending=False)
        return body
    chunks = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit, pending=bool(message.get("more_body")))
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


class HotPath:
    """The ASGI app in front of FastAPI: serves the prediction endpoints itself."""

    def __init__(
        self, app: Callable[[Scope, Receive, Send], Awaitable[None]], state: ServerState
    ) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        match = None
        if (
            path == c.PREDICT_PATH
            or path.startswith("/v2/models/")
            and (match := _INFER.match(path))
        ):
            if scope["method"] == "POST":
                await self._serve(scope, receive, send, match)
            else:
                await self._refuse_method(scope, send)
            return
        await self._pass_through(scope, receive, send)

    async def _refuse_method(self, scope: Scope, send: Send) -> None:
        request_id, trace_id = new_request_id(), client_request_id(scope["headers"])
        error = RequestError(
            405, "method", f"{scope['method']} is not allowed on {scope['path']}; use POST"
        )
        answer = error_json(error, self.state.identity(), request_id)
        await send(
            {
                "type": "http.response.start",
                "status": 405,
                "headers": [
                    _JSON,
                    (b"allow", b"POST"),
                    (b"content-length", str(len(answer)).encode()),
                    *self.state.identity_headers(request_id, trace_id),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    async def _pass_through(self, scope: Scope, receive: Receive, send: Send) -> None:
        """FastAPI answers; we add the request id and the model's identity to its headers,
        unless the answer already names them (a peer's answer to a forwarded label)."""
        request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        extra = self.state.identity_headers(request_id, client_request_id(scope["headers"]))

        async def send_with_identity(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                named = {k.lower() for k, _ in headers}
                added = [(k, v) for k, v in extra if k not in named]
                message = {**message, "headers": [*headers, *added]}
            await send(message)

        await self.app(scope, receive, send_with_identity)

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, infer: re.Match[str] | None
    ) -> None:
        started = time.perf_counter()
        state = self.state
        headers = scope["headers"]
        request_id, trace_id = new_request_id(), client_request_id(headers)
        outcome = "client_error"
        close = False
        try:
            if state.runtime is None:
                raise RequestError(503, "model", state.not_ready_reason())
            content_type = None
            for name, value in headers:
                if name == b"content-type":
                    content_type = value
                    break
            check_content_type(content_type)
            body = await read_body(receive, state.settings.max_body_bytes)
            payload = parse_json(body)
            rows: Rows
            if infer is None:
                rows = state.schema.rows_from_predict(payload)
                part = await state.batcher.submit(rows)
                answer = self._predict_answer(part.result, part.start, part.stop, request_id)
            else:
                name, version = infer.group(1), infer.group(2)
                if name != state.model_name:
                    raise RequestError(
                        404, "model", f"{name!r} is not served here (this is {state.model_name!r})"
                    )
                if version is not None and version != state.model_version:
                    raise RequestError(
                        404,
                        "version",
                        f"{version!r} is not served here (this is {state.model_version!r})",
                    )
                rows, client_id = state.schema.rows_from_infer(payload)
                outputs = _requested_outputs(payload, state.runtime.classification)
                part = await state.batcher.submit(rows)
                answer = self._infer_answer(
                    part.result, part.start, part.stop, request_id, client_id, outputs
                )
            state.feedback.remember(request_id, part, rows)
            status, outcome = 200, "ok"
        except RequestError as exc:
            status, answer = exc.status, error_json(exc, state.identity(), request_id)
            if isinstance(exc, BodyTooLarge):
                close = True
            if isinstance(exc, BodyTooLarge) and exc.pending:
                try:
                    await drain_body(receive)
                except Exception:  # the client went away while we drained: nothing to do
                    log.debug("request %s: client gone while draining", request_id)
        except ClientGone:
            state.record_request("client_error", time.perf_counter() - started)
            return
        except Exception as exc:  # a bug, not bad input: log it, count it, answer 500
            log.exception("request %s failed inside the server", request_id)
            outcome = "server_error"
            status = 500
            answer = error_json(
                RequestError(
                    500, "server", f"internal error ({type(exc).__name__}); see the server log"
                ),
                state.identity(),
                request_id,
            )
        headers = state.identity_headers(request_id, trace_id)
        headers.append(_JSON)
        headers.append((b"content-length", b"%d" % len(answer)))
        if close:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": answer})
        state.record_request(outcome, time.perf_counter() - started)

    def _predict_answer(self, result: BatchResult, start: int, stop: int, request_id: str) -> bytes:
        state = self.state
        answer: dict[str, Any] = {
            "model_name": state.model_name,
            "model_version": state.model_version,
            "request_id": request_id,
            "predictions": self._labels(result.values[start:stop]),
        }
        if result.proba is not None:
            answer["probabilities"] = result.proba[start:stop]
            answer["classes"] = state.runtime.classes if state.runtime else []
        return orjson.dumps(answer, option=_NUMPY)

    def _labels(self, values: Any) -> Any:
        """Predicted values as orjson takes them: numeric arrays as they are, labels as a list."""
        runtime = self.state.runtime
        return values.tolist() if runtime is not None and runtime.labels_are_objects else values

    def _infer_answer(
        self,
        result: BatchResult,
        start: int,
        stop: int,
        request_id: str,
        client_id: str | None,
        outputs: tuple[str, ...],
    ) -> bytes:
        state = self.state
        rows = stop - start
        tensors: list[dict[str, Any]] = []
        if "predict" in outputs:
            values = result.values[start:stop]
            datatype = output_datatype(values.dtype.kind)
            tensors.append(
                {
                    "name": "predict",
                    "datatype": datatype,
                    "shape": [rows],
                    "data": self._labels(values),
                }
            )
        if "predict_proba" in outputs and result.proba is not None:
            proba = result.proba[start:stop]
            tensors.append(
                {
                    "name": "predict_proba",
                    "datatype": "FP64",
                    "shape": [rows, proba.shape[1]],
                    "data": proba.ravel(),
                }
            )
        return orjson.dumps(
            {
                "model_name": state.model_name,
                "model_version": state.model_version,
                "id": client_id if client_id is not None else request_id,
                "parameters": {"request_id": request_id},
                "outputs": tensors,
            },
            option=_NUMPY,
        )


def output_datatype(kind: str) -> str:
    """The V2 datatype of predicted values of a numpy dtype kind."""
    if kind in "iu":
        return "INT64"
    if kind == "b":
        return "BOOL"
    if kind in "OUS":
        return "BYTES"
    return "FP64"


def _requested_outputs(payload: dict[str, Any], classification: bool) -> tuple[str, ...]:
    """The OIP ``outputs`` a client asked for (all of them when it did not say)."""
    available = ("predict", "predict_proba") if classification else ("predict",)
    asked = payload.get("outputs")
    if asked is None:
        return available
    if type(asked) is not list:
        raise RequestError(422, "outputs", 'must be an array of {"name": ...} objects')
    names: list[str] = []
    for i, item in enumerate(asked):
        name = item.get("name") if type(item) is dict else None
        if not isinstance(name, str) or name not in available:
            raise RequestError(
                422, f"outputs[{i}].name", f"must be one of {', '.join(available)}, got {name!r}"
            )
        names.append(name)
    return tuple(names) or available
