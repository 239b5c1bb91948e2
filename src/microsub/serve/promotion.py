"""Champion or challenger: does a retrained model beat the one that serves?

Pure: both models' predictions on the same held-out sessions in, a :class:`Decision` out.

The rule, per task, on the held-out (test) sessions of the data the challenger was trained on:

* churn: the metrics of the success gates the benchmark measures
  (:data:`microsub.business.gates.BENCHMARK_GATE_KEYS`: ROC AUC and precision at the top 20 %);
  the challenger must be higher on ROC AUC and at least as high on precision at 20 %;
* value: no success gate measures it; the challenger must have the lower RMSE (Yuan per page),
  the benchmark's selection metric.

Ties keep the champion (retraining must earn its switch). The gates' absolute targets are not
required here: they are the business case's verdict on whichever model serves, reported by
the benchmark; a challenger that is better than the champion serves better even when neither
reaches a target.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from microsub.business.gates import BENCHMARK_GATE_KEYS
from microsub.models import evaluation


@dataclass(frozen=True)
class Decision:
    """Whether the challenger of ``task`` replaces the champion.

    Attributes:
        task: ``"churn"`` or ``"value"``; promote: the verdict; reason: one sentence.
        challenger, champion: metric name -> value on the same held-out rows.
    """

    task: str
    promote: bool
    reason: str
    challenger: dict[str, float]
    champion: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """JSON values."""
        return asdict(self)


def held_out_metrics(
    task: str, y_true: np.ndarray, prediction: np.ndarray, top_share: float = 0.2
) -> dict[str, float]:
    """Metrics that decide a promotion: churn: the gate metrics (``roc_auc``,
    ``precision_at_20``) of P(leave) ``prediction``; value: ``rmse`` of Yuan ``prediction``."""
    if task == "churn":
        m = evaluation.classification_metrics(y_true, prediction, top_share=top_share)
        return {k: float(m[k]) for k in BENCHMARK_GATE_KEYS}
    return {"rmse": evaluation.regression_metrics(y_true, prediction)["rmse"]}


def decide(task: str, challenger: dict[str, float], champion: dict[str, float] | None) -> Decision:
    """The verdict of the module docstring's rule (no champion: the challenger is promoted)."""
    if champion is None:
        return Decision(task, True, "no champion yet", challenger, {})
    if task == "churn":
        better = challenger["roc_auc"] > champion["roc_auc"]
        no_worse = challenger["precision_at_20"] >= champion["precision_at_20"]
        promote = better and no_worse
        reason = (
            f"ROC AUC {challenger['roc_auc']:.4f} vs {champion['roc_auc']:.4f}, precision at "
            f"20% {challenger['precision_at_20']:.4f} vs {champion['precision_at_20']:.4f}"
        )
    else:
        promote = challenger["rmse"] < champion["rmse"]
        reason = f"RMSE {challenger['rmse']:.4f} vs {champion['rmse']:.4f} Yuan"
    verdict = "challenger beats the champion" if promote else "champion kept"
    return Decision(task, promote, f"{verdict}: {reason}", challenger, champion)


__all__ = ["Decision", "decide", "held_out_metrics"]
