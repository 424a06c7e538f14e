"""The exception tree (`mmsearch.errors`): the families callers catch by, and the pydantic boundary (a
ValidationError becomes one ConfigError naming the field and the value)."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mmsearch.errors import (
    ConfigError,
    ItemNotFoundError,
    NotFoundError,
    StorageError,
    UnknownNameError,
    config_error,
    validation_message,
)
from mmsearch.storage import VectorUpdate, open_store


def test_an_unknown_item_is_caught_as_any_unknown_id_and_as_a_store_error() -> None:
    with (
        open_store({"backend": "memory", "cf_dim": 2}, encoders=[]) as store,
        pytest.raises(NotFoundError, match="'ghost'") as e,
    ):
        store.update_vectors([VectorUpdate("ghost", {"cf": np.ones(2)})])
    assert isinstance(e.value, ItemNotFoundError)
    assert isinstance(e.value, StorageError) and isinstance(e.value, KeyError)
    assert str(e.value).startswith("1 item(s)")  # not quoted whole, as a bare KeyError would be


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    size: int = Field(1, ge=1)
    mode: str = "a"

    @field_validator("mode")
    @classmethod
    def _known(cls, mode: str) -> str:
        if mode not in ("a", "b"):
            raise UnknownNameError("mode", mode, ("a", "b"))
        return mode


def _error(**data: object) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        _Settings(**data)  # type: ignore[arg-type]
    return caught.value


def test_message_names_each_field_and_value() -> None:
    assert validation_message(_error(size=0)) == "size: Input should be greater than or equal to 1 (got 0)"
    text = validation_message(_error(size=0, colour="red"))
    assert text == (
        "size: Input should be greater than or equal to 1 (got 0); colour: Extra inputs are not permitted (got 'red')"
    )
    # A validator's own message already names its value: no "(got ...)" after it.
    assert validation_message(_error(mode="c")) == "mode: unknown mode 'c'; known: a, b"


def test_a_lone_config_error_from_a_validator_comes_back_as_itself() -> None:
    error = config_error(_error(mode="c"), "test settings")
    assert type(error) is UnknownNameError and error.name == "c"


def test_other_faults_become_one_config_error() -> None:
    error = config_error(_error(size=0), "test settings")
    assert type(error) is ConfigError
    assert str(error) == "invalid test settings: size: Input should be greater than or equal to 1 (got 0)"
    both = config_error(_error(size=0, mode="c"), "test settings")
    assert type(both) is ConfigError and "size:" in str(both) and "mode: unknown mode 'c'" in str(both)
