"""Words for column names: one mapping, read by every figure axis and display table.

A reader of the book never sees a raw column name (``action_page_id``, ``done``): figures take
their axis labels and heatmap ticks from :data:`LABELS` through :func:`label`, and display tables
pass computed text that names columns through :func:`words`.
"""

from __future__ import annotations

import re

#: Readable names of pages-table and feature columns, for axes, heatmaps and tables.
LABELS = {
    # --- the session and the shopper ---
    "action_page_id": "page depth",
    "hour": "hour of day",
    "hour_sin": "hour (sine)",
    "hour_cos": "hour (cosine)",
    "state_purchase_power": "purchase power",
    # --- what the shopper did on the page ---
    "n_clicks": "clicks",
    "n_carts": "carts",
    "n_favs": "favourites",
    "n_purchases": "purchases",
    "engagement": "engagement",
    "purchased": "purchase on the page",
    # --- money (Yuan) ---
    "reward": "reward (Yuan)",
    "page_value": "page value (Yuan)",
    # --- the items the page showed ---
    "mean_ctr": "mean CTR",
    "mean_cvr": "mean CVR",
    "mean_log_price": "mean log price",
    # --- the session so far ---
    "cum_value": "session value so far",
    "cum_engagement": "session engagement so far",
    "pages_since_purchase": "pages since purchase",
    "prev_engagement": "engagement on the previous page",
    "prev_cum_value": "session value before the page",
    "prev_pages_since_purchase": "pages since purchase, before the page",
    # --- targets ---
    "done": "left after the page",
    # --- protected attributes (fairness audit only) ---
    "age_level": "age level",
    "gender": "gender",
}


def label(column: str) -> str:
    """The words for ``column`` (the name itself when :data:`LABELS` has none)."""
    return LABELS.get(column, column)


#: Raw names a reader must not meet in running text: the snake_case keys of :data:`LABELS`
#: (a key that is also an English word, such as ``hour`` or ``engagement``, is left alone).
SNAKE_CASE = tuple(sorted((k for k in LABELS if "_" in k), key=len, reverse=True))

_RAW_NAME = re.compile(r"(?<![\w`])(" + "|".join(map(re.escape, SNAKE_CASE)) + r")(?![\w`])")


def words(text: str) -> str:
    """``text`` with every whole-word snake_case column name of :data:`LABELS` replaced by its
    words (names in code spans, between backticks, are left alone): for computed sentences,
    such as the audit's, that name columns."""
    return _RAW_NAME.sub(lambda m: LABELS[m.group(1)], text)
