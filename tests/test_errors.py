"""The exception family: one base class, the lake's errors under LakeError, models' errors
usable where scikit-learn expects a ValueError."""

from __future__ import annotations

import inspect

import pytest

from microsub import errors


def _classes() -> list[type[BaseException]]:
    return [
        c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__
    ]


def test_every_error_is_a_microsub_error_with_a_docstring() -> None:
    classes = _classes()
    assert len(classes) == 13
    for cls in classes:
        assert issubclass(cls, errors.MicrosubError), cls
        assert cls.__doc__ and cls.__doc__.strip(), cls


@pytest.mark.parametrize(
    "cls",
    [
        errors.LakeAuthError,
        errors.LakeUnavailableError,
        errors.DatasetNotFoundError,
        errors.ObjectNotFoundError,
        errors.IntegrityError,
    ],
)
def test_lake_errors_share_a_base(cls: type[errors.LakeError]) -> None:
    assert issubclass(cls, errors.LakeError)
    with pytest.raises(errors.LakeError, match="where and why"):
        raise cls("where and why")


def test_model_errors_are_value_errors_for_scikit_learn() -> None:
    assert issubclass(errors.ModelError, ValueError)
    with pytest.raises(ValueError):
        raise errors.ModelError("alpha must be >= 0")


def test_data_errors_are_not_lake_errors() -> None:
    for cls in (errors.DataFormatError, errors.QuarantineLimitError, errors.ContractError,
                errors.ConfigError):  # fmt: skip
        assert not issubclass(cls, errors.LakeError)


def test_serving_errors_are_microsub_errors() -> None:
    with pytest.raises(errors.MicrosubError, match="no champion"):
        raise errors.ServingError("no champion")
