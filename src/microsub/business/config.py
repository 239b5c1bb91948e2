"""The business case's configuration: one YAML file, validated, with its units spelled out.

The defaults live in ``business.yaml`` beside this module (the book prints it); a copy of your
own is read instead when ``MICROSUB_BUSINESS_CONFIG`` (:class:`~microsub.config.Settings`)
names it. Every amount of money is in US dollars unless its name says Yuan.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from microsub.errors import ConfigError

#: The packaged default configuration.
DEFAULT_PATH = Path(str(resources.files("microsub.business") / "business.yaml"))


class Gate(BaseModel):
    """One success gate.

    Attributes:
        key: metric key as produced by the code that measures it (e.g. ``"roc_auc"``).
        name: label for tables.
        target: threshold value, in the metric's unit.
        direction: ``">="`` when higher is better, ``"<"`` when lower is better.
        unit: unit of the metric (``""`` for ratios).
        measured_by: which part of the package measures it.
        rationale: why the business needs it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    name: str
    target: float
    direction: Literal[">=", "<"]
    unit: str = ""
    measured_by: str
    rationale: str

    def passes(self, value: float | None) -> bool:
        """Whether ``value`` meets the gate (None and NaN never pass)."""
        if value is None or value != value:
            return False
        return value >= self.target if self.direction == ">=" else value < self.target

    @property
    def target_text(self) -> str:
        """``">= 0.8"``, ``"< 100 ms"``."""
        return f"{self.direction} {self.target:g}{(' ' + self.unit) if self.unit else ''}"


class Intervention(BaseModel):
    """A retention intervention and the risk tier it is for.

    Attributes:
        name: what is done.
        min_risk, max_risk: the tier: pages whose churn probability lies in
            ``[min_risk, max_risk)`` (``max_risk = 1`` includes 1).
        cost_usd: what one intervention costs, US$.
        effect: the share of the shopper's leave probability it removes, in [0, 1].
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    min_risk: float = Field(ge=0.0, le=1.0)
    max_risk: float = Field(ge=0.0, le=1.0)
    cost_usd: float = Field(gt=0.0)
    effect: float = Field(ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _tier(self) -> Intervention:
        if self.min_risk >= self.max_risk:
            raise ValueError(f"{self.name}: min_risk must be below max_risk")
        return self


class BusinessConfig(BaseModel):
    """The business case (see ``business.yaml`` for every field's meaning and unit)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    project: str
    objective: str
    budget_usd_per_month: float = Field(gt=0.0)
    yuan_per_usd: float = Field(gt=0.0)
    value_margin: float = Field(gt=0.0, le=1.0)
    sessions_per_month: int = Field(gt=0)
    platform_monthly_users: int = Field(gt=0)
    platform_sessions_per_user: float = Field(gt=0.0)
    interventions: tuple[Intervention, ...]
    sensitivity_factors: tuple[float, ...]
    gates: tuple[Gate, ...]
    constraints: tuple[str, ...]

    @model_validator(mode="after")
    def _consistent(self) -> BusinessConfig:
        tiers = sorted(self.interventions, key=lambda t: t.min_risk)
        if not tiers or tiers[0].min_risk != 0.0 or tiers[-1].max_risk != 1.0:
            raise ValueError("the intervention tiers must cover risks from 0 to 1")
        for lower, upper in zip(tiers, tiers[1:], strict=False):
            if lower.max_risk != upper.min_risk:
                raise ValueError(
                    f"tiers {lower.name!r} and {upper.name!r} leave a gap or overlap at risk "
                    f"{lower.max_risk} / {upper.min_risk}"
                )
        if len({g.key for g in self.gates}) != len(self.gates):
            raise ValueError("gate keys must be unique")
        if any(f <= 0 for f in self.sensitivity_factors):
            raise ValueError("sensitivity_factors must be positive")
        return self

    @property
    def budget_usd_per_session(self) -> float:
        """The monthly budget spread over the month's sessions (US$ per session)."""
        return self.budget_usd_per_month / self.sessions_per_month

    @property
    def platform_sessions_per_month(self) -> float:
        """Sessions a month at the platform's scale: monthly active users times feed sessions
        per user a month."""
        return self.platform_monthly_users * self.platform_sessions_per_user

    def gate(self, key: str) -> Gate:
        """The gate with this ``key`` (KeyError naming the known keys)."""
        for g in self.gates:
            if g.key == key:
                return g
        raise KeyError(f"no gate {key!r}; known gates: {[g.key for g in self.gates]}")

    def scaled(self, factor: float) -> BusinessConfig:
        """This configuration with every intervention's effect times ``factor`` (capped at 1)."""
        tiers = tuple(
            t.model_copy(update={"effect": min(1.0, t.effect * factor)}) for t in self.interventions
        )
        return self.model_copy(update={"interventions": tiers})


def load_config(path: str | Path | None = None) -> BusinessConfig:
    """The business configuration at ``path`` (default: the packaged ``business.yaml``).

    Raises:
        ConfigError: the file is missing, not YAML, or not a valid configuration (the message
            names the fields).
    """
    source = Path(path) if path is not None else DEFAULT_PATH
    try:
        doc = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"cannot read the business configuration {str(source)!r}: {exc.strerror or exc}; "
            "set MICROSUB_BUSINESS_CONFIG to a readable business.yaml or unset it"
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML: {exc}") from exc
    try:
        return BusinessConfig.model_validate(doc)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc']) or 'file'}: "
            f"{e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ConfigError(f"invalid business configuration {source}: {problems}") from None


def config_text(path: str | Path | None = None) -> str:
    """The configuration file as written (for the book to print)."""
    return (Path(path) if path is not None else DEFAULT_PATH).read_text(encoding="utf-8")
