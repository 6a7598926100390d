"""celery-rabbitmq: the Celery task queue of the classic Kubernetes example, production-grade."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # ``__version__`` on first access only: importlib.metadata costs ~30 ms of CPU, and every import of
    # the package (the health probe's too) would pay it; only ``taskqueue --version`` needs it.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("celery-rabbitmq")
        except PackageNotFoundError:  # running from a source tree that was never installed
            return "0.0.0"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
