"""Settings: defaults, the environment, overrides, validation, secrets that never print."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from microsub import config
from microsub.config import LakeLocation, Settings, get_settings, parse_lake


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("MICROSUB_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    s = Settings()
    assert s.profile == "default" and s.data_profile.n_pages == 300_000
    assert s.seed == 20190513
    assert s.lake_location == LakeLocation("local", path=Path("data/lake"))
    assert s.raw_path is None and s.raw_input == Path("data/raw/synthetic-default-seed20190513.txt")
    assert s.real_sample_path == Path("data/real/rec_rl_data_small")
    assert s.cache_dir == Path("data/cache")
    assert s.s3_access_key is None and s.s3_secret_key is None and s.s3_secure is False
    assert s.max_quarantine_share == 0.01


def test_the_shipped_real_sample_is_where_the_default_points() -> None:
    root = Path(__file__).resolve().parents[1]
    assert (root / Settings().real_sample_path).is_file()


def test_environment_then_explicit_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MICROSUB_PROFILE", "ci")
    monkeypatch.setenv("MICROSUB_SEED", "7")
    monkeypatch.setenv("MICROSUB_DATA_DIR", "/tmp/elsewhere")
    s = get_settings()
    assert (s.profile, s.seed, s.data_dir) == ("ci", 7, Path("/tmp/elsewhere"))
    assert s.synthetic_raw_path == Path("/tmp/elsewhere/raw/synthetic-ci-seed7.txt")
    # explicit values win; None means "not given"
    s = get_settings(seed=11, profile=None)
    assert (s.profile, s.seed) == ("ci", 11)


def test_raw_path_replaces_the_synthetic_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MICROSUB_RAW_PATH", "/logs/www.data")
    assert get_settings().raw_input == Path("/logs/www.data")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("profile", "huge", "'ci', 'default' or 'full'"),
        ("seed", -1, "greater than or equal to 0"),
        ("max_quarantine_share", 1.5, "less than or equal to 1"),
        ("ingest_batch_bytes", 10, "greater than or equal to 65536"),
        ("lake", "ftp://host", "folder path or s3://HOST:PORT"),
        ("no_such_setting", 1, "Extra inputs are not permitted"),
    ],
)
def test_invalid_values_are_refused(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**{field: value})


def test_settings_are_frozen() -> None:
    with pytest.raises(ValidationError):
        Settings().seed = 3  # type: ignore[misc]


def test_secrets_never_print(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MICROSUB_S3_ACCESS_KEY", "AKIAEXAMPLE")
    monkeypatch.setenv("MICROSUB_S3_SECRET_KEY", "very-secret-value")
    s = get_settings()
    assert s.s3_secret_key is not None
    assert s.s3_secret_key.get_secret_value() == "very-secret-value"
    for text in (repr(s), str(s), str(s.model_dump())):
        assert "very-secret-value" not in text


@pytest.mark.parametrize(
    ("text", "location"),
    [
        ("data/lake", LakeLocation("local", path=Path("data/lake"))),
        ("~/lake", LakeLocation("local", path=Path("~/lake").expanduser())),
        ("s3://127.0.0.1:9000", LakeLocation("s3", endpoint="127.0.0.1:9000")),
        ("S3://minio.local/", LakeLocation("s3", endpoint="minio.local")),
    ],
)
def test_parse_lake(text: str, location: LakeLocation) -> None:
    assert parse_lake(text) == location
    assert str(location) in (text.rstrip("/").lower(), str(location.path))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("s3://key:secret@host:9000", "MICROSUB_S3_ACCESS_KEY"),
        ("s3://", "needs a host"),
        ("s3://host:9000/bucket", "without a path"),
        ("http://host", "folder path or s3://HOST:PORT"),
    ],
)
def test_parse_lake_refuses_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_lake(text)


def test_profiles_grow_and_describe_themselves() -> None:
    sizes = [config.PROFILES[n].n_pages for n in ("ci", "default", "full")]
    assert sizes == sorted(sizes) == [20_000, 300_000, 1_500_000]
    assert all(p.description for p in config.PROFILES.values())


def test_the_environment_of_a_child_gives_it_the_same_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    for name in list(os.environ):
        if name.startswith("MICROSUB_") or name.startswith("MLFLOW_"):
            monkeypatch.delenv(name)
    settings = Settings(
        profile="ci", seed=7, data_dir=tmp_path, lake=str(tmp_path / "lake"), s3_secure=True,
        s3_access_key="k", s3_secret_key="s3cret", latency_check_seconds=2.5,
        mlflow_tracking_uri="http://127.0.0.1:5000",
    )  # fmt: skip
    env = settings.environment()
    assert env["MICROSUB_S3_SECRET_KEY"] == "s3cret" and env["MICROSUB_S3_SECURE"] == "1"
    assert "MICROSUB_RAW_PATH" not in env  # unset stays unset
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert Settings() == settings
