"""Config types KFP carries differently: a list of ints and optional fields."""

from dagster import Config, Definitions, asset


class Numbers(Config):
    counts: list[int] = [1, 2]
    limit: int | None = None
    label: str | None = None
    scale: float = 1.0


@asset(description="Numbers from typed config.")
def numbers(config: Numbers) -> dict:
    assert all(type(c) is int for c in config.counts), config.counts
    return {"counts": config.counts, "limit": config.limit, "label": config.label}


defs = Definitions(assets=[numbers])
