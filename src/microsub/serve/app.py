"""The real-time scoring service: a FastAPI app (``microsub serve`` runs it under uvicorn).

Endpoints:

* ``POST /score`` (API key required): the pages of one session so far, in order; answers
  P(leave) after the last page and the expected Yuan of that page, computed by the same feature
  code as batch scoring (:mod:`microsub.serve.scoring`).
* ``GET /health``: ``{"status": "ok", "models": {task: {name, version, uri}}}``; no key needed,
  it tells nothing but the model versions.

Security: the key is ``MICROSUB_API_KEY`` (:class:`~pydantic.SecretStr`); clients send it in
the ``X-API-Key`` header. It is compared in constant time (:func:`secrets.compare_digest`);
a missing or wrong key gets 401. :func:`create_app` refuses to build an app without a key, and
the key is never logged (uvicorn's access log, off by default, holds no headers).

Validation: the body is a :class:`ScoreRequest` (pydantic, strict: no strings for numbers, no
unknown fields, no NaN or infinity, every value within the ranges ingestion accepts, 1 to 12
pages with increasing page ids). Anything else gets 422 with ``message`` saying what was wrong
and ``detail`` listing each error (location, message, type), never echoing the input.

Fast path: a ``POST /score`` with the right key and a body that validates as a
:class:`ScoreRequest` is answered by a thin ASGI layer (:class:`FastScore`): pydantic-core
validates the JSON bytes in one call and the pages go to the batcher, without FastAPI's
per-request routing, dependency and serialisation machinery (three quarters of a request's time
once scoring took tens of microseconds). Anything else (no or wrong key, another content type, a
body that does not validate) goes on to the FastAPI app, which answers it exactly as documented;
what the fast path accepts, the app accepts too, with the same values
(``tests/test_app.py``), and both answer with the same bytes.

Overload: at most ``max_in_flight`` requests to ``/score`` are inside the app at once (parsed,
waiting for their batch or being scored); one more gets 503 at once, before its body is read,
with ``Retry-After: 1`` (:class:`AdmissionLimit`). A server that cannot keep up so answers the
excess in microseconds instead of letting every request wait in an ever longer queue until all
of them time out. ``GET /health`` is never refused.

The champions are loaded once, when the app starts (FastAPI lifespan), unless a
:class:`~microsub.serve.scoring.Scorer` is handed in; a first page is scored then, so the
compiled kernels are loaded before the first request, and the objects alive at that point are
frozen out of the garbage collector's scans (:func:`gc.freeze`: a full collection over the
imported libraries' objects would stall every request for milliseconds). Requests that arrive
while the service is busy are scored together (:mod:`microsub.serve.batching`), with the same
answers.
"""

from __future__ import annotations

import gc
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request, Security
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException
from threadpoolctl import threadpool_limits

from microsub.config import Settings
from microsub.contract import ITEMS_PER_PAGE, MAX_PAGE_ID
from microsub.errors import ServingError
from microsub.serve import registry, scoring
from microsub.serve.batching import Batcher

#: Header that carries the API key.
API_KEY_HEADER = "X-API-Key"
#: Default of ``max_in_flight``: requests to ``/score`` inside the app at once before 503. About
#: a batch (:data:`~microsub.serve.batching.MAX_BATCH`): at a few thousand requests per second
#: of capacity, a full house waits a few tens of milliseconds.
MAX_IN_FLIGHT = 64
#: Seconds a refused client is asked to wait (``Retry-After``).
RETRY_AFTER_S = 1

Count = Annotated[int, Field(ge=0, le=ITEMS_PER_PAGE, description="items of the page (0..50)")]
Rate = Annotated[float, Field(ge=0.0, le=1.0)]


class Page(BaseModel):
    """One page of the session, as the pages table records it."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    action_page_id: int = Field(ge=0, le=MAX_PAGE_ID, description="page depth, 0..11")
    hour: int = Field(ge=0, le=23, description="hour of day, 0..23")
    state_purchase_power: int = Field(ge=-128, le=127, description="purchase-power level")
    n_clicks: Count
    n_carts: Count
    n_favs: Count
    n_purchases: Count
    page_value: float = Field(ge=0.0, le=1e8, description="Yuan spent on the page")
    mean_ctr: Rate = Field(description="mean predicted CTR of the 50 items")
    mean_cvr: Rate = Field(description="mean predicted CVR of the 50 items")
    mean_log_price: float = Field(ge=-20.0, le=20.0, description="mean ln(price in Yuan)")


class ScoreRequest(BaseModel):
    """The pages of one session so far, first page first; the last one is scored."""

    model_config = ConfigDict(extra="forbid", strict=True)

    pages: list[Page] = Field(min_length=1, max_length=MAX_PAGE_ID + 1)

    @model_validator(mode="after")
    def _in_order(self) -> ScoreRequest:
        ids = [p.action_page_id for p in self.pages]
        if any(b <= a for a, b in zip(ids, ids[1:], strict=False)):
            raise ValueError(
                f"pages must be in session order, with increasing action_page_id; got {ids}"
            )
        return self


class ScoreResponse(BaseModel):
    """Scores of the last page of the request."""

    action_page_id: int = Field(description="page id of the scored (last) page")
    p_leave: float = Field(ge=0.0, le=1.0, description="P(the shopper leaves after this page)")
    expected_value: float = Field(description="expected Yuan spent on this page")
    models: dict[str, int] = Field(description="registered version of each model (task -> version)")


class ModelRef(BaseModel):
    """A registered model version."""

    name: str
    version: int
    uri: str


class ErrorItem(BaseModel):
    """One thing wrong with a request."""

    loc: list[str] = Field(description="where: body, pages, index, field")
    msg: str
    type: str


class ValidationProblem(BaseModel):
    """422: what was wrong with the request."""

    message: str = Field(description="every error, as 'location: message'; ...")
    detail: list[ErrorItem]


class AuthProblem(BaseModel):
    """401: the API key is missing or wrong."""

    detail: str


class Overloaded(BaseModel):
    """503: the service has as many requests in hand as it accepts; retry after Retry-After."""

    detail: str


class Health(BaseModel):
    """The service is up, with these models."""

    status: str
    models: dict[str, ModelRef]


async def _unparsable_body(request: Request, exc: Exception) -> Any:
    """A body that is not even text (FastAPI's 400) is a bad input too: 422, saying so."""
    if isinstance(exc, StarletteHTTPException) and exc.status_code == 400:
        message = f"body: {exc.detail}; send a JSON object encoded as UTF-8"
        return JSONResponse(status_code=422, content={"message": message, "detail": []})
    return await http_exception_handler(request, exc)  # type: ignore[arg-type]


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 with one readable ``message`` and the errors (location, message, type), no input."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
         "type": str(e.get("type", ""))}
        for e in errors
    ]  # fmt: skip
    message = "; ".join(f"{'.'.join(d['loc'])}: {d['msg']}" for d in detail) or "invalid request"
    return JSONResponse(status_code=422, content={"message": message, "detail": detail})


_API_KEY = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)


class _KeyCheck:
    """Dependency: 401 unless the request's ``X-API-Key`` equals the key (constant time)."""

    def __init__(self, expected: bytes) -> None:
        self._expected = expected

    async def __call__(self, key: str | None = Security(_API_KEY)) -> None:
        # async: FastAPI would run a plain function in its thread pool, a hop per request
        if key is None or not secrets.compare_digest(key.encode("utf-8"), self._expected):
            raise HTTPException(
                status_code=401,
                detail=f"missing or wrong API key: send it in the {API_KEY_HEADER} header",
            )


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
                   Awaitable[None]]  # fmt: skip


class AdmissionLimit:
    """ASGI middleware: at most ``limit`` requests to ``path`` inside ``app`` at once; one more
    is answered 503 with ``Retry-After`` before anything else is done with it.

    Attributes:
        in_flight: requests to ``path`` inside the app now.
        refused: requests answered 503 so far.
    """

    BODY = json.dumps(
        {"detail": "the scoring service is at capacity; retry after the Retry-After seconds"}
    ).encode()

    def __init__(self, app: ASGIApp, *, limit: int, path: str = "/score") -> None:
        if limit < 1:
            raise ServingError(f"max_in_flight must be at least 1, got {limit}")
        self.app, self.limit, self.path = app, limit, path
        self.in_flight = 0
        self.refused = 0
        self._headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self.BODY)).encode()),
            (b"retry-after", str(RETRY_AFTER_S).encode()),
        ]

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:  # fmt: skip
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            self.refused += 1
            await send({"type": "http.response.start", "status": 503, "headers": self._headers})
            await send({"type": "http.response.body", "body": self.BODY})
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


def _answer(action_page_id: int, p_leave: float, value: float, versions: bytes) -> bytes:
    """The JSON of a :class:`ScoreResponse` (``p_leave`` clipped to [0, 1]); ``versions``: the
    encoded ``models`` mapping."""
    return b'{"action_page_id":%d,"p_leave":%s,"expected_value":%s,"models":%s}' % (
        action_page_id, json.dumps(min(max(p_leave, 0.0), 1.0)).encode(),
        json.dumps(value).encode(), versions,
    )  # fmt: skip


def _is_json(content_type: bytes | None) -> bool:
    """No content type, or ``application/json`` (with parameters): bodies FastAPI reads as
    JSON, as the fast path does (other JSON types go to FastAPI)."""
    return content_type is None or (
        content_type.split(b";", 1)[0].strip().lower() == b"application/json"
    )


class FastScore:
    """ASGI middleware: answers a valid, authorised ``POST /score`` itself (module docstring),
    hands every other request to ``app``.

    Args:
        app: the FastAPI app (its ``state`` holds ``batcher`` and ``versions`` once started).
        key: the API key, UTF-8 encoded; compared in constant time.
    """

    def __init__(self, app: ASGIApp, *, key: bytes, state: Any) -> None:
        self.app, self._key, self._state = app, key, state
        self.answered = 0  #: requests answered here (for tests and diagnostics)

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:  # fmt: skip
        if scope["type"] != "http" or scope["path"] != "/score" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        key = content_type = None
        for name, value in scope["headers"]:
            if name == b"x-api-key" and key is None:
                key = value
            elif name == b"content-type" and content_type is None:
                content_type = value
        # as FastAPI reads the header: latin-1 text, then UTF-8 bytes to compare
        if (
            key is None
            or not _is_json(content_type)
            or not secrets.compare_digest(key.decode("latin-1").encode(), self._key)
        ):
            await self.app(scope, receive, send)  # FastAPI answers 401 / 422 / 200
            return  # fmt: skip
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            request = ScoreRequest.model_validate_json(body)
        except ValidationError:
            await self.app(scope, _replay(body, receive), send)  # FastAPI's own 422
            return
        p_leave, value = await self._state.batcher.score(request.pages)
        content = _answer(request.pages[-1].action_page_id, p_leave, value,
                          self._state.versions)  # fmt: skip
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(content)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": content})
        self.answered += 1


def _replay(body: bytes, receive: Callable[[], Awaitable[Message]]
            ) -> Callable[[], Awaitable[Message]]:  # fmt: skip
    """A ``receive`` that gives the body already read once, then defers to ``receive``."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


def _load(settings: Settings) -> scoring.Scorer:
    return scoring.Scorer.from_models(registry.champions(settings))


def create_app(
    settings: Settings, scorer: scoring.Scorer | None = None, *, max_in_flight: int = MAX_IN_FLIGHT
) -> FastAPI:
    """The scoring app.

    Args:
        settings: ``api_key`` (required) and where the registry is.
        scorer: models to serve; default: the champions, loaded when the app starts.
        max_in_flight: requests to ``/score`` inside the app at once before 503 (>= 1).

    Raises:
        ServingError: no API key is set (``MICROSUB_API_KEY``), or ``max_in_flight`` < 1.
    """
    key = settings.api_key.get_secret_value() if settings.api_key is not None else ""
    if not key:
        raise ServingError(
            "the scoring service needs an API key: set MICROSUB_API_KEY to a secret of your "
            f"choice (clients send it in the {API_KEY_HEADER} header); it has no default"
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        served = scorer if scorer is not None else _load(settings)
        app.state.scorer = served
        app.state.batcher = Batcher(served)
        app.state.versions = json.dumps(served.versions).encode()
        app.state.models = {
            task: ModelRef(
                name=registry.MODEL_NAMES[task], version=v,
                uri=f"models:/{registry.MODEL_NAMES[task]}/{v}",
            )
            for task, v in served.versions.items()
        }  # fmt: skip
        # one page at a time: BLAS/OpenMP thread pools only add start-up cost per request
        with threadpool_limits(1):
            scoring.score_tables([np.zeros((1, len(scoring.PAGE_FIELDS)))], served)  # warm-up
            gc.collect()
            gc.freeze()  # what lives now (libraries, models) is never scanned again
            try:
                yield
            finally:
                gc.unfreeze()

    app = FastAPI(
        title="microsub scoring",
        summary="P(leave) and expected value of a shopping session's current page",
        lifespan=lifespan,
    )
    if max_in_flight < 1:
        raise ServingError(f"max_in_flight must be at least 1, got {max_in_flight}")
    app.add_middleware(FastScore, key=key.encode("utf-8"), state=app.state)
    app.add_middleware(AdmissionLimit, limit=max_in_flight)  # outermost: refuses first
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _unparsable_body)
    require_key = _KeyCheck(key.encode("utf-8"))

    @app.post(
        "/score",
        response_model=ScoreResponse,
        dependencies=[Security(require_key)],
        responses={401: {"model": AuthProblem, "description": "missing or wrong API key"},
                   422: {"model": ValidationProblem, "description": "invalid request"},
                   503: {"model": Overloaded, "description": "at capacity: retry after the "
                         "Retry-After header's seconds"}},
    )  # fmt: skip
    async def score(body: ScoreRequest) -> Any:
        """Score the last page of a session's pages so far."""
        # most requests are answered by FastScore; this serves the rest the same way
        p_leave, value = await app.state.batcher.score(body.pages)
        content = _answer(body.pages[-1].action_page_id, p_leave, value, app.state.versions)
        return Response(content, media_type="application/json")

    @app.get("/health", response_model=Health)
    async def health() -> Any:
        """Whether the service is up, and the model versions it serves."""
        return Health(status="ok", models=app.state.models)

    return app


__all__ = [
    "API_KEY_HEADER", "MAX_IN_FLIGHT", "RETRY_AFTER_S", "AdmissionLimit", "AuthProblem",
    "FastScore", "Health", "Overloaded", "Page", "ScoreRequest", "ScoreResponse",
    "ValidationProblem", "create_app",
]  # fmt: skip
