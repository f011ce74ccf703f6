"""How read_graph translates graph-backed assets: parallelism, schedules, and what it refuses."""

from __future__ import annotations

from typing import Any

import pytest
from dagster import Definitions, DynamicOut, DynamicOutput, GraphOut, In, graph, graph_asset, op

from exporters.kfp.graph import UnsupportedConstructError, read_graph
from exporters.kfp.runtime import tracking_resource_keys
from exporters.kfp.schedule import recurring_run_from_schedule
from tests.graphs import fan_out


def test_parallelism_from_the_assets_metadata_and_no_limit_by_default() -> None:
    @op(out=DynamicOut())
    def plan():  # noqa: ANN202
        yield DynamicOutput(1, mapping_key="one")

    @op
    def double(n: int) -> int:
        return 2 * n

    @op
    def add(values: list) -> int:
        return sum(values)

    @graph_asset(metadata={"kfp/parallelism": 3})
    def limited() -> int:
        return add(plan().map(double).collect())

    @graph_asset
    def unlimited() -> int:
        return add.alias("add_all")(plan.alias("plan_all")().map(double.alias("twice")).collect())

    graph = read_graph(Definitions(assets=[limited, unlimited]), "m", [])
    tasks = {t.asset: t for t in graph.tasks}
    assert tasks["limited"].parallelism == {"plan": 3}
    assert tasks["unlimited"].parallelism == {"plan_all": 0}
    assert [o.function_name for o in tasks["unlimited"].ops] == [
        "unlimited__plan_all",
        "unlimited__twice",
        "unlimited__add_all",
    ]


def test_a_schedule_sets_op_config_of_a_graph_backed_asset() -> None:
    defs = fan_out.defs
    graph = read_graph(defs, "tests.graphs.fan_out", tracking_resource_keys(defs))
    recurring = recurring_run_from_schedule(defs, graph, "nightly_smoothing")
    assert recurring.parameters == {"horizon": 2}


@op(out=DynamicOut())
def _items():  # noqa: ANN202
    yield DynamicOutput(1, mapping_key="one")


@op(out={"low": DynamicOut(int), "high": DynamicOut(int)})
def _two(n: int):  # noqa: ANN202 - two fan-outs from one op (Dagster refuses nested ones)
    yield DynamicOutput(n, output_name="low", mapping_key="low")
    yield DynamicOutput(n, output_name="high", mapping_key="high")


@op
def _total(values: list) -> int:
    return sum(values)


@op
def _one() -> int:
    return 1


@graph(out={"result": GraphOut()})
def _inner(n: int) -> Any:
    return _total([n])


@graph_asset
def two_outputs() -> int:
    low, _high = _two(_one())
    return _total(low.collect())


@graph_asset
def nested_graph() -> int:
    return _inner(_one())


@graph_asset
def fan_in_list() -> int:
    return _total.alias("fan_in")([_one.alias("a")(), _one.alias("b")()])


@op
def _pair(first: list, second: list) -> int:
    return len(first) + len(second)


@graph_asset
def two_fan_outs() -> int:
    return _pair(_items().collect(), _items.alias("more_items")().collect())


@op(tags={"kfp/parallelism": "two"})
def _badly_tagged(n: int) -> int:
    return n


@graph_asset
def bad_parallelism() -> int:
    return _total(_items().map(_badly_tagged).collect())


@op(ins={"n": In(int)})
def _free(n: int) -> int:
    return n


@graph_asset
def unconnected() -> int:
    return _free()


@pytest.mark.parametrize(
    ("graph_asset_def", "message"),
    [
        (two_outputs, r"asset 'two_outputs': op '_two' with 2 outputs"),
        (nested_graph, r"asset 'nested_graph': op '_inner' is a nested graph"),
        (fan_in_list, r"asset 'fan_in_list': input 'values' of op 'fan_in' fans in several"),
        (bad_parallelism, r"asset 'bad_parallelism': op '_badly_tagged': 'kfp/parallelism: two'"),
        (unconnected, r"asset 'unconnected': input 'n' of op '_free' is not connected"),
        (two_fan_outs, r"asset 'two_fan_outs': op '_pair' collects several fan-outs"),
    ],
)
def test_what_cannot_be_translated_is_a_clear_error(graph_asset_def: Any, message: str) -> None:
    with pytest.raises(UnsupportedConstructError, match=message):
        read_graph(Definitions(assets=[graph_asset_def]), "m", [])
