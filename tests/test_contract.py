"""The data contract: conforming tables to a schema, layouts by name."""

from __future__ import annotations

import pyarrow as pa
import pytest

from microsub import contract
from microsub.errors import ContractError

SMALL = pa.schema([pa.field("a", pa.int8(), nullable=False), pa.field("b", pa.float32())])


def test_conform_orders_casts_and_drops_extra_columns():
    table = pa.table({"x": [1, 2], "b": [0.5, None], "a": [3, 4]})
    out = contract.conform(table, SMALL)
    assert out.schema == SMALL
    assert out.column("a").to_pylist() == [3, 4]
    assert out.column("b").to_pylist() == [0.5, None]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (pa.table({"b": [1.0]}), "lacks contract columns \\['a'\\]"),
        (pa.table({"a": [300], "b": [1.0]}), "cannot be cast to int8"),
        (pa.table({"a": pa.array([None, 1], pa.int64()), "b": [1.0, 2.0]}), "holds 1 nulls"),
    ],
)
def test_conform_refuses_what_breaks_the_contract(table, message):
    with pytest.raises(ContractError, match=message):
        contract.conform(table, SMALL)


def test_layouts_by_name():
    assert contract.layout_named("official-15") is contract.OFFICIAL
    assert contract.layout_named("example-14").terminal is None
    with pytest.raises(ContractError, match="official-15"):
        contract.layout_named("userbehavior")


def test_public_page_columns_are_in_the_pages_schema_in_order():
    names = contract.PAGES_SCHEMA.names
    assert [n for n in names if n in contract.PUBLIC_PAGE_COLUMNS] == list(
        contract.PUBLIC_PAGE_COLUMNS
    )
