"""Which Keras dtype policy trains fastest on this machine."""

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import keras
import tensorflow as tf

from keras_transformer.checks import check_choice

# Keras dtype policies a model may train under: float32, bfloat16 compute
# with float32 variables (fast where oneDNN has bfloat16 kernels: CPUs with
# AVX512_BF16 or AMX; docs/performance.md), or "auto", which
# `resolve_dtype_policy` turns into one of them for this machine.
DTYPE_POLICIES = ("auto", "float32", "mixed_bfloat16")
# /proc/cpuinfo flags of the x86 instructions that oneDNN runs bfloat16
# matmuls on: AVX512_BF16 (Cooper Lake, Zen 4) and AMX (Sapphire Rapids).
BFLOAT16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_bfloat16_matmul(cpuinfo: str | None = None) -> bool:
    """True when the CPU has bfloat16 matmul instructions (`BFLOAT16_CPU_FLAGS`)
    and TensorFlow's oneDNN kernels, which use them, are not turned off
    (`TF_ENABLE_ONEDNN_OPTS=0`). `cpuinfo` is the text of /proc/cpuinfo,
    read when None (False where there is none, as on macOS)."""
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0":
        return False
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text() if path.is_file() else ""
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return any(flag in flags for flag in BFLOAT16_CPU_FLAGS)


def resolve_dtype_policy(name: str) -> str:
    """`name`, or for "auto" the policy that trains fastest here: "mixed_bfloat16"
    on a CPU-only machine with `cpu_has_bfloat16_matmul`, else "float32".

    On a 2-core Xeon with AMX, mixed_bfloat16 trained the small recipe on
    Multi30k 1.36x as fast as float32 (steps in 25 minutes, validations
    included) with the same validation BLEU per step;
    without the instructions it is slower than float32 (docs/performance.md).
    GPUs are not chosen for: set the policy there. Any other name than
    `DTYPE_POLICIES` raises a ValueError.
    """
    check_choice("dtype_policy", name, DTYPE_POLICIES)
    if name != "auto":
        return name
    if tf.config.list_physical_devices("GPU") or not cpu_has_bfloat16_matmul():
        return "float32"
    return "mixed_bfloat16"


@contextlib.contextmanager
def dtype_policy_scope(name: str) -> Iterator[None]:
    """Layers built inside take the Keras dtype policy `name`; the global
    policy is restored on exit, even on an error.

    Example:
    >>> with dtype_policy_scope("mixed_bfloat16"):
    ...     layer = keras.layers.Dense(4)
    >>> layer.compute_dtype, keras.config.dtype_policy().name
    ('bfloat16', 'float32')
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
