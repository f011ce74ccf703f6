"""A fan-out of another shape: two ops chained inside it, and the items themselves collected.

``numbers`` (an asset) feeds ``totals``, a ``@graph_asset``: ``split`` emits one item per chunk,
``square`` then ``offset`` run per item (``.map(square).map(offset)``; ``offset`` reads its
mapping key and the output of ``measure``, an op outside the fan-out), and ``combine`` collects
both the results and the raw items. The
intermediate ops store their outputs through a second io manager (``io_manager_key="memory"``),
as a project whose asset io manager cannot store op outputs would.
"""

from dagster import (
    Config,
    Definitions,
    DynamicOut,
    DynamicOutput,
    InMemoryIOManager,
    IOManagerDefinition,
    OpExecutionContext,
    Out,
    asset,
    graph_asset,
    op,
)


class NumbersConfig(Config):
    count: int = 6


@asset(description="The numbers to split.")
def numbers(config: NumbersConfig) -> list[int]:
    return list(range(1, config.count + 1))


class SplitConfig(Config):
    chunk: int = 2


@op(out=DynamicOut(list, io_manager_key="memory"))
def split(config: SplitConfig, numbers: list[int]):  # noqa: ANN201 - a generator op
    for start in range(0, len(numbers), config.chunk):
        chunk = numbers[start : start + config.chunk]
        yield DynamicOutput(chunk, mapping_key=f"from_{chunk[0]}")


@op(out=Out(list, io_manager_key="memory"))
def square(chunk: list) -> list:
    return [n * n for n in chunk]


@op(out=Out(int, io_manager_key="memory"))
def measure(numbers: list[int]) -> int:
    return len(numbers)


@op(out=Out(dict, io_manager_key="memory"))
def offset(context: OpExecutionContext, squares: list, size: int) -> dict:
    return {"key": context.get_mapping_key(), "sum": sum(squares) + size}


@op
def combine(results: list[dict], chunks: list[list]) -> dict:
    return {"results": results, "chunks": chunks}


@graph_asset(description="Sums of squares per chunk.")
def totals(numbers: list[int]) -> dict:
    chunks = split(numbers)
    size = measure(numbers)
    results = chunks.map(square).map(lambda squares: offset(squares, size))
    return combine(results.collect(), chunks.collect())


defs = Definitions(
    assets=[numbers, totals],
    resources={"memory": IOManagerDefinition.hardcoded_io_manager(InMemoryIOManager())},
)
