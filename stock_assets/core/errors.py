"""The one error the training code raises for inputs it cannot turn into a model.

It lives apart from the modules that raise it (model types, the time split, the class checks,
fitting) so that each of them, and every caller catching it, imports it from one place.
"""

from __future__ import annotations

__all__ = ["TrainingError"]


class TrainingError(ValueError):
    """The inputs cannot produce a meaningful model (bad config or unusable data).

    A ValueError, so a configuration layer can report it like any other bad value.
    """
