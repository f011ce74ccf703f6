# The image every KFP task runs in: the project and its pinned dependencies, kfp included.
#   docker build -t <registry>/stock-assets:0.1.0 .
#   python -m exporters.kfp --image <registry>/stock-assets:0.1.0
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    STOCK_ASSETS_DATA_DIR=/tmp/stock-assets

WORKDIR /app

# Dependencies first, so code changes do not reinstall them.
COPY pyproject.toml constraints.txt README.md ./
COPY stock_assets/__init__.py stock_assets/__init__.py
COPY exporters/__init__.py exporters/__init__.py
# The same install command as `make install` (tests/test_packaging.py keeps them in step).
RUN python -m pip install -c constraints.txt -e .

COPY stock_assets stock_assets
COPY exporters exporters

# KFP's lightweight components start `python3 -m kfp.dsl.executor_main`; check it is importable.
RUN python3 -c "import kfp.dsl.executor_main, exporters.kfp.runtime, stock_assets.definitions"

RUN useradd --create-home --uid 1000 pipeline
USER pipeline
