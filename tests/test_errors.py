"""The exception tree (`mmsearch.errors`): the families callers catch by."""

from __future__ import annotations

import numpy as np
import pytest

from mmsearch.errors import ItemNotFoundError, NotFoundError, StorageError
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
