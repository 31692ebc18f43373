import pytest

from keras_transformer.training import cpu_has_bfloat16_matmul, resolve_dtype_policy
from keras_transformer.training import precision

ICE_LAKE = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_vnni\n"
SAPPHIRE_RAPIDS = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
COOPER_LAKE = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n"


@pytest.mark.parametrize(
    "cpuinfo, expected",
    [(ICE_LAKE, False), (SAPPHIRE_RAPIDS, True), (COOPER_LAKE, True), ("", False)],
)
def test_bfloat16_matmul_instructions_are_read_from_the_cpu_flags(cpuinfo, expected, monkeypatch):
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    assert cpu_has_bfloat16_matmul(cpuinfo) is expected


def test_without_onednn_bfloat16_is_not_fast(monkeypatch):
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    assert not cpu_has_bfloat16_matmul(SAPPHIRE_RAPIDS)


@pytest.mark.parametrize("fast, expected", [(True, "mixed_bfloat16"), (False, "float32")])
def test_auto_resolves_by_the_cpu_and_named_policies_stay(fast, expected, monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_bfloat16_matmul", lambda: fast)
    assert resolve_dtype_policy("auto") == expected
    assert resolve_dtype_policy("float32") == "float32"
    assert resolve_dtype_policy("mixed_bfloat16") == "mixed_bfloat16"


def test_an_unknown_policy_name_is_refused():
    with pytest.raises(ValueError, match=r"`dtype_policy` must be one of \['auto', 'float32', "
                       r"'mixed_bfloat16'\]\. Received: dtype_policy='bf16'"):
        resolve_dtype_policy("bf16")
