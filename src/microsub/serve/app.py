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

The champions are loaded once, when the app starts (FastAPI lifespan), unless a
:class:`~microsub.serve.scoring.Scorer` is handed in. Requests that arrive while the service is
busy are scored together (:mod:`microsub.serve.batching`), with the same answers.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Request, Security
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException
from threadpoolctl import threadpool_limits

from microsub.config import Settings
from microsub.contract import ITEMS_PER_PAGE, MAX_PAGE_ID
from microsub.errors import ServingError
from microsub.serve import registry, scoring
from microsub.serve.batching import Batcher

#: Header that carries the API key.
API_KEY_HEADER = "X-API-Key"

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


def _load(settings: Settings) -> scoring.Scorer:
    return scoring.Scorer.from_models(registry.champions(settings))


def create_app(settings: Settings, scorer: scoring.Scorer | None = None) -> FastAPI:
    """The scoring app.

    Args:
        settings: ``api_key`` (required) and where the registry is.
        scorer: models to serve; default: the champions, loaded when the app starts.

    Raises:
        ServingError: no API key is set (``MICROSUB_API_KEY``).
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
        app.state.models = {
            task: ModelRef(
                name=registry.MODEL_NAMES[task], version=v,
                uri=f"models:/{registry.MODEL_NAMES[task]}/{v}",
            )
            for task, v in served.versions.items()
        }  # fmt: skip
        # one page at a time: BLAS/OpenMP thread pools only add start-up cost per request
        with threadpool_limits(1):
            yield

    app = FastAPI(
        title="microsub scoring",
        summary="P(leave) and expected value of a shopping session's current page",
        lifespan=lifespan,
    )
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _unparsable_body)
    require_key = _KeyCheck(key.encode("utf-8"))

    @app.post(
        "/score",
        response_model=ScoreResponse,
        dependencies=[Security(require_key)],
        responses={401: {"model": AuthProblem, "description": "missing or wrong API key"},
                   422: {"model": ValidationProblem, "description": "invalid request"}},
    )  # fmt: skip
    async def score(body: ScoreRequest) -> Any:
        """Score the last page of a session's pages so far."""
        served: scoring.Scorer = app.state.scorer
        pages = [p.model_dump() for p in body.pages]
        p_leave, value = await app.state.batcher.score(pages)
        return ScoreResponse(
            action_page_id=pages[-1]["action_page_id"],
            p_leave=min(max(p_leave, 0.0), 1.0),
            expected_value=value,
            models=served.versions,
        )

    @app.get("/health", response_model=Health)
    async def health() -> Any:
        """Whether the service is up, and the model versions it serves."""
        return Health(status="ok", models=app.state.models)

    return app


__all__ = [
    "API_KEY_HEADER", "AuthProblem", "Health", "Page", "ScoreRequest", "ScoreResponse",
    "ValidationProblem", "create_app",
]  # fmt: skip
