"""Dynamic batching: requests waiting together are scored in one pass with the same answers."""

from __future__ import annotations

import asyncio

import pytest

from microsub import pipeline
from microsub.serve import registry, scoring
from microsub.serve.batching import Batcher


@pytest.fixture(scope="module")
def sessions(trained) -> list[list[dict]]:
    """Every prefix of the first 40 sessions (lengths 1 to 12)."""
    pages = pipeline.read_pages(pipeline.run(trained, stages=())).to_pandas()
    out = []
    for _, session in pages[pages["session_id"] < 40].groupby("session_id"):
        records = session.sort_values("line_no")[list(scoring.PAGE_FIELDS)].to_dict("records")
        out += [records[: t + 1] for t in range(len(records))]
    return out


@pytest.fixture(scope="module")
def scorer(trained) -> scoring.Scorer:
    return scoring.Scorer.from_models(registry.champions(trained))


def test_sessions_scored_together_get_their_own_answers(sessions, scorer) -> None:
    together = scoring.score_sessions(sessions, scorer)
    alone = [scoring.score_session(pages, scorer) for pages in sessions]
    assert together == alone  # equal, not close


@pytest.mark.parametrize(("max_batch", "sizes"), [(64, {20: 1}), (8, {8: 2, 4: 1})])
def test_requests_waiting_together_form_one_batch(sessions, scorer, max_batch, sizes) -> None:
    batcher = Batcher(scorer, max_batch=max_batch)
    chosen = sessions[:20]

    async def main() -> list[tuple[float, float]]:
        return await asyncio.gather(*(batcher.score(pages) for pages in chosen))

    answers = asyncio.run(main())
    assert answers == [scoring.score_session(pages, scorer) for pages in chosen]
    assert batcher.batch_sizes == sizes


def test_one_request_at_a_time_is_a_batch_of_one(sessions, scorer) -> None:
    batcher = Batcher(scorer)

    async def main() -> list[tuple[float, float]]:
        return [await batcher.score(pages) for pages in sessions[:5]]

    assert asyncio.run(main()) == [scoring.score_session(p, scorer) for p in sessions[:5]]
    assert batcher.batch_sizes == {1: 5}


def test_a_failing_batch_fails_its_requests_and_the_batcher_goes_on(sessions, scorer) -> None:
    batcher = Batcher(scorer)

    async def main():
        bad = batcher.score([{"hour": 1}])  # no page fields: scoring raises
        return await asyncio.gather(bad, return_exceptions=True), await batcher.score(sessions[0])

    (failed,), good = asyncio.run(main())
    assert isinstance(failed, KeyError)
    assert good == scoring.score_session(sessions[0], scorer)
