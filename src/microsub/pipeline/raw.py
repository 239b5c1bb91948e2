"""Stage ``raw``: the log a run ingests, the real one or a synthetic one generated once.

The real log when ``MICROSUB_RAW_PATH`` is set; else the synthetic log of the profile and seed
(:mod:`microsub.data.synth`), regenerated only when its sidecar ``<file>.json`` (the generator's
summary) does not match the profile's size, the seed and the generator's parameters.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from microsub import __version__, contract
from microsub.config import Settings
from microsub.data import synth
from microsub.data.synth import SynthSummary
from microsub.errors import ConfigError
from microsub.progress import ProgressFactory, quiet
from microsub.sim.params import DEFAULT_PARAMS, params_digest


@dataclass(frozen=True)
class RawInput:
    """The raw log a run ingests.

    Attributes:
        path: the file.
        kind: ``"synthetic"`` or ``"real"``.
        details: JSON-safe description (profile, seed and generator digest for synthetic data).
    """

    path: Path
    kind: str
    details: dict[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """Cheap identity of the file and of the code that reads it (size, mtime, versions)."""
        stat = self.path.stat()
        payload = {
            "file": str(self.path.resolve()),
            "bytes": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "microsub": __version__,
            "schema_version": contract.SCHEMA_VERSION,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def prepare_raw(settings: Settings, *, progress: ProgressFactory = quiet) -> RawInput:
    """The raw log of this run: the real file, or the synthetic one (generated if needed).

    A synthetic log is regenerated only when its sidecar ``<file>.json`` (the generator's
    summary) does not match the profile's size, the seed and the generator's parameters.

    Raises:
        ConfigError: ``MICROSUB_RAW_PATH`` names a file that does not exist.
    """
    if settings.raw_path is not None:
        path = Path(settings.raw_path)
        if not path.is_file():
            raise ConfigError(
                f"MICROSUB_RAW_PATH / --raw points at {str(path)!r}, which is not a file. Give the "
                "path of www.data (plain, .gz or the public wwwdata.tar), or unset it to use the "
                "synthetic log."
            )
        return RawInput(path, "real", {"file": path.name})

    path = settings.synthetic_raw_path
    sidecar = path.with_name(path.name + ".json")
    n_pages = settings.data_profile.n_pages
    want = {
        "n_pages": n_pages,
        "seed": settings.seed,
        "params_digest": params_digest(DEFAULT_PARAMS),
    }
    if path.is_file() and sidecar.is_file():
        known = json.loads(sidecar.read_text())
        if all(known.get(k) == v for k, v in want.items()) and known.get("bytes") == (
            path.stat().st_size
        ):
            return RawInput(path, "synthetic", _synthetic_details(settings, known))
    summary = generate_synthetic(path, n_pages=n_pages, seed=settings.seed, progress=progress)
    known = {
        "n_pages": summary.n_pages,
        "n_sessions": summary.n_sessions,
        "seed": summary.seed,
        "params_digest": summary.params_digest,
        "sha256": summary.sha256,
        "bytes": summary.bytes,
    }
    sidecar.write_text(json.dumps(known, indent=2, sort_keys=True))
    return RawInput(path, "synthetic", _synthetic_details(settings, known))


def generate_synthetic(
    out: Path, *, n_pages: int, seed: int, progress: ProgressFactory = quiet
) -> SynthSummary:
    """:func:`microsub.data.synth.generate` with a progress task counting pages.

    Returns:
        The generator's :class:`~microsub.data.synth.SynthSummary`.
    """

    with progress(f"generating {n_pages:,} synthetic pages", n_pages) as advance:
        return synth.generate(out, n_pages=n_pages, seed=seed, progress=advance)


def _synthetic_details(settings: Settings, known: dict[str, Any]) -> dict[str, Any]:
    return {
        "file": settings.synthetic_raw_path.name,
        "profile": settings.profile,
        "seed": known["seed"],
        "params_digest": known["params_digest"],
        "n_pages": known["n_pages"],
    }
