"""The scoring service over real HTTP (uvicorn on a loopback port): scores equal the batch
path's, 401 without the key, 422 that says what was wrong, /health names the models, no input
produces a server error (schemathesis against the app's OpenAPI schema), the key is never
logged and the service refuses to start without one; beyond its admission limit it answers 503
with Retry-After at once; its fast path accepts only what FastAPI accepts, with the same values
and the same answer."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr, TypeAdapter, ValidationError
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from typer.testing import CliRunner

from microsub import cli, pipeline
from microsub.errors import ServingError
from microsub.serve import scoring
from microsub.serve.app import AdmissionLimit, ScoreRequest, create_app

KEY = secrets.token_urlsafe(24)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def base_url(trained):
    """A uvicorn server in a thread, serving the trained champions, for the module."""
    app = create_app(trained.model_copy(update={"api_key": SecretStr(KEY)}))
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(30)


@pytest.fixture(scope="module")
def session(trained) -> list[dict]:
    """The pages of the longest session of the first 200 (at least 3 pages)."""
    pages = pipeline.read_pages(pipeline.run(trained, stages=())).to_pandas()
    first = pages[pages["session_id"] < 200]
    longest = first.groupby("session_id").size().idxmax()
    session = first[first["session_id"] == longest].sort_values("line_no")
    assert len(session) >= 3
    return session[list(scoring.PAGE_FIELDS)].to_dict("records")


def _jsonable(pages: list[dict]) -> list[dict]:
    return json.loads(json.dumps(pages, default=lambda v: v.item()))


def test_score_answers_the_batch_scores_of_the_last_page(base_url, trained, session) -> None:
    from microsub.serve import registry

    scorer = scoring.Scorer.from_models(registry.champions(trained))
    for t in (0, len(session) - 1):
        body = {"pages": _jsonable(session[: t + 1])}
        response = httpx.post(f"{base_url}/score", json=body, headers={"X-API-Key": KEY})
        assert response.status_code == 200, response.text
        answer = response.json()
        p_leave, value = scoring.score_session(session[: t + 1], scorer)
        assert answer["p_leave"] == pytest.approx(p_leave, abs=1e-12)
        assert answer["expected_value"] == pytest.approx(value, abs=1e-12)
        assert answer["action_page_id"] == session[t]["action_page_id"]
        assert answer["models"] == {"churn": 1, "value": 1}


def test_health_reports_the_model_versions(base_url) -> None:
    response = httpx.get(f"{base_url}/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "models": {
            "churn": {"name": "microsub-churn", "version": 1, "uri": "models:/microsub-churn/1"},
            "value": {"name": "microsub-value", "version": 1, "uri": "models:/microsub-value/1"},
        },
    }


WRONG = [{}, {"X-API-Key": "wrong"}, {"X-API-Key": KEY + "x"}, {"X-API-Key": ""},
         {"Authorization": f"Bearer {KEY}"}]  # fmt: skip


@pytest.mark.parametrize("headers", WRONG)
def test_missing_or_wrong_api_key_gets_401(base_url, session, headers) -> None:
    response = httpx.post(f"{base_url}/score", json={"pages": _jsonable(session)}, headers=headers)
    assert response.status_code == 401
    assert response.json() == {
        "detail": "missing or wrong API key: send it in the X-API-Key header"
    }


def _page(**changes) -> dict:
    page = {"action_page_id": 0, "hour": 20, "state_purchase_power": 4, "n_clicks": 2,
            "n_carts": 1, "n_favs": 0, "n_purchases": 0, "page_value": 0.0, "mean_ctr": 0.03,
            "mean_cvr": 0.01, "mean_log_price": 4.2}  # fmt: skip
    return {**page, **changes}


BAD = [
    ({"pages": [_page(hour=24)]}, "body.pages.0.hour: Input should be less than or equal to 23"),
    ({"pages": []}, "body.pages: List should have at least 1 item after validation, not 0"),
    ({"pages": [_page(n_clicks="3")]}, "body.pages.0.n_clicks: Input should be a valid integer"),
    ({"pages": [_page(n_clicks=True)]}, "body.pages.0.n_clicks: Input should be a valid integer"),
    ({"pages": [_page(mean_ctr=1.5)]}, "body.pages.0.mean_ctr: Input should be less than or equal"),
    ({"pages": [_page(colour="red")]}, "body.pages.0.colour: Extra inputs are not permitted"),
    ({"pages": [_page(action_page_id=i) for i in range(13)]}, "List should have at most 12 items"),
    ({"pages": [_page(action_page_id=1), _page(action_page_id=0)]},
     "pages must be in session order, with increasing action_page_id; got [1, 0]"),
    ({"pages": [{k: v for k, v in _page().items() if k != "hour"}]},
     "body.pages.0.hour: Field required"),
    ({}, "body.pages: Field required"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "message"), BAD)
def test_bad_input_gets_422_saying_what_was_wrong(base_url, body, message) -> None:
    response = httpx.post(f"{base_url}/score", json=body, headers={"X-API-Key": KEY})
    assert response.status_code == 422
    assert message in response.json()["message"]
    assert all({"loc", "msg", "type"} == set(d) for d in response.json()["detail"])


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "JSON decode error"), ('{"pages": [NaN]}', "body.pages.0"),
     ('{"pages": [' + json.dumps(_page()).replace("4.2", "NaN") + "]}",
      "mean_log_price: Input should be a finite number"),
     (b"\xff\xfe\x00", "send a JSON object encoded as UTF-8")],
)  # fmt: skip
def test_malformed_json_and_nan_get_422(base_url, content, message) -> None:
    headers = {"X-API-Key": KEY, "Content-Type": "application/json"}
    response = httpx.post(f"{base_url}/score", content=content, headers=headers)
    assert response.status_code == 422
    assert message in response.json()["message"]


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda m: m.value)
def test_no_request_produces_a_server_error(base_url, mode) -> None:
    """schemathesis against the running app's OpenAPI schema: valid and invalid requests to
    every operation, all of schemathesis's checks (no server error, status codes and bodies as
    documented, auth enforced, invalid data rejected, ...). Excluded: positive_data_acceptance,
    because a session whose page ids do not increase is valid for the JSON schema (which cannot
    say "increasing") but rightly refused with 422."""
    api = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert sorted(op.label for op in operations) == ["GET /health", "POST /score"]
    calls = {"n": 0, "server_errors": 0}

    for operation in operations:
        if mode is GenerationMode.NEGATIVE and operation.label == "GET /health":
            continue  # it takes no input: there is nothing invalid to send

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=100, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def check(case) -> None:
            response = case.call_and_validate(
                headers={"X-API-Key": KEY}, excluded_checks=[positive_data_acceptance]
            )
            calls["n"] += 1
            calls["server_errors"] += response.status_code >= 500

        check()
    assert calls["n"] >= 50 and calls["server_errors"] == 0


def test_without_an_api_key_the_app_refuses_to_exist(trained) -> None:
    with pytest.raises(ServingError, match="set MICROSUB_API_KEY"):
        create_app(trained.model_copy(update={"api_key": None}))


def _serve(trained, port: int, key: str | None, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MICROSUB_", "MLFLOW_"))}
    env.update(MICROSUB_DATA_DIR=str(trained.data_dir), MICROSUB_LAKE=trained.lake,
               MICROSUB_MLFLOW_TRACKING_URI=trained.tracking_uri)  # fmt: skip
    if key is not None:
        env["MICROSUB_API_KEY"] = key
    command = [str(Path(sys.executable).parent / "microsub"), "serve", "--port", str(port),
               "--access-log"]  # fmt: skip
    return subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def test_microsub_serve_refuses_to_start_without_a_key(trained, monkeypatch) -> None:
    for name in ("MICROSUB_API_KEY", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MICROSUB_DATA_DIR", str(trained.data_dir))
    monkeypatch.setenv("MICROSUB_MLFLOW_TRACKING_URI", trained.tracking_uri)
    result = CliRunner().invoke(cli.app, ["serve", "--lake", trained.lake, "--port", "1"])
    assert result.exit_code == 1
    assert "the scoring service needs an API key: set MICROSUB_API_KEY" in result.output


def test_microsub_serve_never_logs_the_key(trained, tmp_path, session) -> None:
    port, log = _free_port(), tmp_path / "log"
    process = _serve(trained, port, KEY, log)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        body = {"pages": _jsonable(session)}
        assert httpx.post(f"{base}/score", json=body, headers={"X-API-Key": KEY}).status_code == 200
        bad = {"X-API-Key": KEY[:-1]}
        assert httpx.post(f"{base}/score", json=body, headers=bad).status_code == 401
        assert httpx.post(f"{base}/score", json={"pages": []},
                          headers={"X-API-Key": KEY}).status_code == 422  # fmt: skip
    finally:
        process.terminate()
        process.wait(30)
    text = log.read_text()
    assert '"POST /score HTTP/1.1" 200' in text and '"POST /score HTTP/1.1" 401' in text
    assert KEY not in text and KEY[:-1] not in text


def _request(path: str = "/score") -> dict:
    return {"type": "http", "method": "POST", "path": path, "headers": []}


def test_the_admission_limit_refuses_the_request_beyond_it_with_503_and_retry_after() -> None:
    """Two requests held inside the app, a third refused at once; once one leaves, the next
    gets in. Other paths are never refused."""
    release = asyncio.Event()
    entered: list[str] = []

    async def inner(scope, receive, send) -> None:
        entered.append(scope["path"])
        if scope["path"] == "/score":
            await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    limit = AdmissionLimit(inner, limit=2)

    async def call(path: str = "/score") -> list[dict]:
        sent: list[dict] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        await limit(_request(path), receive, send)
        return sent

    async def main():
        held = [asyncio.create_task(call()) for _ in range(2)]
        while limit.in_flight < 2:  # let both enter
            await asyncio.sleep(0)
        refused = await call()
        health = await call("/health")
        release.set()
        done = await asyncio.gather(*held)
        after = await call()
        return refused, health, done, after

    refused, health, done, after = asyncio.run(main())
    assert refused[0]["status"] == 503
    headers = dict(refused[0]["headers"])
    assert headers[b"retry-after"] == b"1" and headers[b"content-type"] == b"application/json"
    assert json.loads(refused[1]["body"])["detail"].startswith("the scoring service is at capacity")
    assert int(headers[b"content-length"]) == len(refused[1]["body"])
    assert health[0]["status"] == 200
    assert [d[0]["status"] for d in done] == [200, 200] and after[0]["status"] == 200
    assert entered == ["/score", "/score", "/health", "/score"]  # the refused one never entered
    assert limit.refused == 1 and limit.in_flight == 0


def _in_flight(app) -> int:
    """Requests inside ``app``'s admission limit (0 before the middleware stack is built)."""
    layer = app.middleware_stack
    while layer is not None and not isinstance(layer, AdmissionLimit):
        layer = getattr(layer, "app", None)
    return 0 if layer is None else layer.in_flight


def test_the_app_answers_503_beyond_max_in_flight_and_documents_it(trained, session) -> None:
    """The app's own wiring: with one request held while being scored, the next gets 503."""
    from microsub.serve import registry

    scorer = scoring.Scorer.from_models(registry.champions(trained))
    app = create_app(trained.model_copy(update={"api_key": SecretStr(KEY)}), scorer,
                     max_in_flight=1)  # fmt: skip
    body = {"pages": _jsonable(session)}

    async def main():
        async with app.router.lifespan_context(app):
            batcher = app.state.batcher
            release, real = asyncio.Event(), batcher.score

            async def held(pages):
                await release.wait()
                return await real(pages)

            batcher.score = held
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                first = asyncio.create_task(
                    client.post("/score", json=body, headers={"X-API-Key": KEY})
                )
                while not first.done() and _in_flight(app) < 1:
                    await asyncio.sleep(0.01)  # until the first is inside, waiting
                second = await client.post("/score", json=body, headers={"X-API-Key": KEY})
                health = await client.get("/health")
                release.set()
                return await first, second, health, (await client.get("/openapi.json")).json()

    first, second, health, schema = asyncio.run(main())
    assert first.status_code == 200
    assert first.json()["p_leave"] == pytest.approx(scoring.score_session(session, scorer)[0],
                                                    abs=1e-12)  # fmt: skip
    assert second.status_code == 503 and second.headers["retry-after"] == "1"
    assert "at capacity" in second.json()["detail"]
    assert health.status_code == 200
    assert "503" in schema["paths"]["/score"]["post"]["responses"]


def test_max_in_flight_must_be_positive(trained, monkeypatch) -> None:
    with pytest.raises(ServingError, match="max_in_flight must be at least 1, got 0"):
        create_app(trained.model_copy(update={"api_key": SecretStr(KEY)}), max_in_flight=0)
    monkeypatch.setenv("MICROSUB_API_KEY", KEY)
    result = CliRunner().invoke(cli.app, ["serve", "--lake", trained.lake, "--max-in-flight", "0"])
    assert result.exit_code == 2 and "--max-in-flight" in result.output


#: JSON number and value spellings that strict validation treats differently.
_TOKENS = st.sampled_from([
    "0", "3", "11", "12", "23", "24", "-1", "50", "51", "3.0", "3e0", "1e2", "0.5", "1e-3", "-0.0",
    "1.5e308", "1e400", "NaN", "Infinity", "-Infinity", "true", "false", "null", '"3"', '"x"',
    "[]", "{}", "12345678901234567890123", "4.2", "0.03", "1E-2",
])  # fmt: skip


@st.composite
def _bodies(draw) -> bytes:
    """JSON request bodies near the valid ones: valid pages with fields respelled, dropped,
    duplicated or added, pages out of order, too many pages."""
    pages = []
    for i in range(draw(st.integers(0, 13))):
        fields = [(k, json.dumps(v)) for k, v in _page(action_page_id=i).items()]
        for _ in range(draw(st.integers(0, 3))):
            j = draw(st.integers(0, len(fields) - 1))
            change = draw(st.sampled_from(["respell", "drop", "duplicate", "extra"]))
            name = fields[j][0]
            if change == "respell":
                fields[j] = (name, draw(_TOKENS))
            elif change == "drop":
                del fields[j]
            elif change == "duplicate":
                fields.append((name, draw(_TOKENS)))
            else:
                fields.append(("colour", draw(_TOKENS)))
            if not fields:
                break
        pages.append("{" + ", ".join(f'"{k}": {v}' for k, v in fields) + "}")
    if draw(st.booleans()):
        pages.reverse()
    return ('{"pages": [' + ", ".join(pages) + "]}").encode()


_FASTAPI_VALIDATION = TypeAdapter(ScoreRequest)


@given(body=_bodies())
@settings(max_examples=400, deadline=None, database=None)
def test_what_the_fast_path_accepts_fastapi_accepts_with_the_same_values(body) -> None:
    """FastScore validates the bytes with pydantic-core's JSON mode; FastAPI parses with
    json.loads, then validates the objects. The fast path may refuse more (FastAPI then answers
    itself) but must never accept what FastAPI would refuse, nor read other values."""
    try:
        fast = ScoreRequest.model_validate_json(body)
    except ValidationError:
        return
    slow = _FASTAPI_VALIDATION.validate_python(json.loads(body))  # must not raise
    assert slow == fast


def test_a_request_fastapi_serves_itself_gets_the_same_answer(base_url, session) -> None:
    """A JSON media type other than application/json goes past the fast path to FastAPI's
    endpoint: the same status and the same bytes."""
    content = json.dumps({"pages": _jsonable(session)})
    answers = [
        httpx.post(f"{base_url}/score", content=content,
                   headers={"X-API-Key": KEY, "Content-Type": media})
        for media in ("application/json", "application/vnd.microsub+json")
    ]  # fmt: skip
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].content == answers[1].content
    assert answers[0].headers["content-type"] == answers[1].headers["content-type"]
