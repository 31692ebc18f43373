"""Argument checks shared by the layers: say what was received and expected."""


def check_positive_int(name, value):
    """Raises ValueError unless `value` is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"`{name}` must be a positive integer. Received: {name}={value!r}"
        )


def check_rate(name, value):
    """Raises ValueError unless 0 <= value < 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(
            f"`{name}` must be a float in [0, 1). Received: {name}={value!r}"
        )


def check_choice(name, value, choices):
    """Raises ValueError unless `value` is one of `choices`."""
    if value not in choices:
        raise ValueError(
            f"`{name}` must be one of {sorted(choices)}. Received: {name}={value!r}"
        )


def check_rank(layer_name, argument, shape, rank):
    """Raises ValueError if a known static rank differs from `rank`."""
    if shape is not None and len(shape) != rank:
        raise ValueError(
            f"{layer_name} expects `{argument}` of rank {rank}, received a "
            f"tensor of shape {tuple(shape)} (rank {len(shape)})."
        )
