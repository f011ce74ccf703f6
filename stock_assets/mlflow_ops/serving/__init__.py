"""Serving the production model: the pyfunc the registry holds and the `make serve` launcher."""
