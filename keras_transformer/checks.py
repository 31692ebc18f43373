"""Argument checks shared by every subpackage: say what was received and expected.

Plain Python that imports nothing from the rest of the package, so data
and the model side both use it (`layers.validation` re-exports it beside
the tensor checks of the layers).
"""

from collections.abc import Collection


def check_positive_int(name: str, value, none_means: str | None = None) -> None:
    """Raises ValueError unless `value` is an int >= 1 (a bool is not).

    With `none_means` (what None stands for, such as "ragged output"),
    None is accepted too.
    """
    if value is None and none_means is not None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        expected = "a positive integer"
        if none_means is not None:
            expected += f", or None for {none_means}"
        raise ValueError(f"`{name}` must be {expected}. Received: {name}={value!r}")


def check_number(name: str, value, positive: bool = False, meaning: str = "") -> None:
    """Raises ValueError unless `value` is an int or float (a bool is not),
    above 0 when `positive`; `meaning`, such as "alpha, 0.6 in the paper",
    goes in parentheses after what is expected."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (positive and not value > 0)
    ):
        expected = "a number > 0" if positive else "a number"
        if meaning:
            expected += f" ({meaning})"
        raise ValueError(f"`{name}` must be {expected}. Received: {name}={value!r}")


def check_rate(name: str, value) -> None:
    """Raises ValueError unless `value` is a number with 0 <= value < 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"`{name}` must be a float in [0, 1). Received: {name}={value!r}")


def check_choice(name: str, value, choices: Collection) -> None:
    """Raises ValueError unless `value` is one of `choices`."""
    if value not in choices:
        raise ValueError(
            f"`{name}` must be one of {sorted(choices)}. Received: {name}={value!r}"
        )
