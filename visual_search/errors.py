"""Errors a user can cause. Each message is written to be shown to a person as it is."""

from __future__ import annotations


class VisualSearchError(Exception):
    """Base of every error the UI and CLI show verbatim instead of a traceback."""


class RejectedImage(VisualSearchError):
    """An input file is not an image we can index (empty, corrupt, too big, not an image...)."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class InvalidQuery(VisualSearchError):
    """A query, k or alpha that cannot be answered (empty, too long, out of range)."""


class NotFound(VisualSearchError):
    """No indexed image has this id."""


class StoreUnavailable(VisualSearchError):
    """The vector store cannot be reached (e.g. the Chroma server is down)."""


class ModelLoadError(VisualSearchError):
    """A model id or folder could not be loaded."""


class IndexOutOfDate(VisualSearchError):
    """Images are stored but have no vectors for the current models (after a model change)."""


class NotAnImage(RejectedImage):
    """A file met inside a folder is not an image of any kind (a README, a video): skipped, not failed."""


class NotAllowed(VisualSearchError):
    """A public-demo visitor tried to change what only a signed-in curator may change."""


class QuotaExceeded(VisualSearchError):
    """A public-demo visitor reached a fair-share cap (images, bytes, uploads a minute, one job at a time)."""
