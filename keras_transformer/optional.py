"""Imports of the dependencies that live in a pip extra, with a one-line error."""

import importlib
from types import ModuleType


class MissingExtraError(ImportError):
    """An optional dependency is missing; the message names the pip extra."""


def import_optional(module: str, extra: str, purpose: str) -> ModuleType:
    """Imports `module`, or raises MissingExtraError naming the extra that installs it.

    Example:
    >>> pyplot = import_optional("matplotlib.pyplot", "plot", "the attention plot")  # doctest: +SKIP
    """
    from keras_transformer import DISTRIBUTION

    try:
        return importlib.import_module(module)
    except ImportError as error:
        package = (error.name or module).split(".")[0]
        raise MissingExtraError(
            f"{purpose} needs {package}, which is not installed; install it with "
            f"pip install '{DISTRIBUTION}[{extra}]'"
        ) from error
