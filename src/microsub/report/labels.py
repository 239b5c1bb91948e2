"""Words for column names: one mapping, read by every figure axis and display table."""

from __future__ import annotations

#: Readable names of pages-table and feature columns, for axes and heatmaps.
LABELS = {
    "action_page_id": "page depth",
    "state_purchase_power": "purchase power",
    "hour_sin": "hour (sin)",
    "hour_cos": "hour (cos)",
    "n_clicks": "clicks",
    "n_carts": "carts",
    "n_favs": "favourites",
    "n_purchases": "purchases",
    "engagement": "engagement",
    "reward": "reward (Yuan)",
    "page_value": "page value (Yuan)",
    "mean_ctr": "mean CTR",
    "mean_cvr": "mean CVR",
    "mean_log_price": "mean log price",
    "cum_value": "session value so far",
    "pages_since_purchase": "pages since purchase",
    "done": "left (done)",
}
