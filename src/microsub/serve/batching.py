"""Dynamic batching of online scoring requests on the event loop.

Scoring one page costs mostly fixed overhead (a few NumPy and compiled-kernel calls over the
session, two one-row predictions), not work per row. When requests arrive faster than they are
scored, the ones that came in while the service was busy are scored together in one pass
(:func:`microsub.serve.scoring.score_tables`): at low load every batch holds one request and
nothing waits for a batch to fill (there is no time window); under load the batches grow, so the
cost per request falls exactly when the queue would otherwise grow. How many requests may wait
at all is bounded where they enter the app (:mod:`microsub.serve.app` answers 503 beyond it).

A batch runs on the event loop thread: the scoring is CPU-bound and holds the GIL, so a worker
thread would only add hand-over cost. Answers are the same as one request at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np

from microsub.serve import scoring

#: Most sessions scored in one pass (bounds the time one batch holds the loop).
MAX_BATCH = 64

#: One session's pages: mappings or objects with the fields of ``scoring.PAGE_FIELDS``.
Pages = Sequence[Any]


class Batcher:
    """Collects the sessions to score and scores them in batches, on the running loop.

    Args:
        scorer: the models.
        max_batch: most sessions per pass.
    """

    def __init__(self, scorer: scoring.Scorer, max_batch: int = MAX_BATCH) -> None:
        self.scorer = scorer
        self.max_batch = max_batch
        self._pending: list[tuple[np.ndarray, asyncio.Future[tuple[float, float]]]] = []
        self._scheduled = False
        #: sizes of the batches scored so far, by size (for tests and diagnostics)
        self.batch_sizes: dict[int, int] = {}

    async def score(self, pages: Pages) -> tuple[float, float]:
        """``(p_leave, expected_value)`` of the last of ``pages``, scored with whatever else is
        waiting when the loop gets to it."""
        table = scoring.page_table(pages)  # a page without its fields fails here, alone
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[float, float]] = loop.create_future()
        self._pending.append((table, future))
        if not self._scheduled:
            self._scheduled = True
            # after the callbacks already ready: requests parsed in this pass join the batch
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
        self.batch_sizes[len(batch)] = self.batch_sizes.get(len(batch), 0) + 1
        try:
            p_leave, value = scoring.score_tables([table for table, _ in batch], self.scorer)
        except Exception as exc:  # the requests fail, the service goes on
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
        else:
            results = zip(p_leave.tolist(), value.tolist(), strict=True)
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():  # a client that went away cancelled it
                    future.set_result(result)
        if self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        else:
            self._scheduled = False


__all__ = ["MAX_BATCH", "Batcher"]
