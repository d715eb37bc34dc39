"""Shipped hardware profiles: loading, provenance, reference values, round trip, bad input."""

from __future__ import annotations

import math
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from magicdec_model.perfmodel.errors import InputError
from magicdec_model.perfmodel.hardware import (
    DATASHEET_KEYS,
    EFFICIENCY_KEYS,
    OP_CLASSES,
    REQUIRED_DATASHEET,
    HardwareProfile,
    builtin_hardware_names,
    load_profile,
    profile_from_dict,
    profile_to_toml,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

pytestmark = pytest.mark.unit

EXPECTED_NAMES = {
    "a100-40gb-sxm",
    "a100-80gb-sxm",
    "a100-80gb-pcie",
    "h100-sxm",
    "h100-pcie",
    "h200-sxm",
    "l40",
    "l40s",
    "b200",
    "mi300x",
}
FRACTION_KEYS = [k for k in EFFICIENCY_KEYS if k.endswith("_bw") or k.endswith("_flops")]


def _valid_doc() -> dict:
    """A fresh, valid parsed profile document (a deep copy of a shipped one)."""
    return tomllib.loads(profile_to_toml(load_profile("a100-80gb-sxm")))


# ---------------------------------------------------------------- shipped profiles


def test_builtin_names_are_exactly_the_shipped_ten():
    names = builtin_hardware_names()
    assert set(names) == EXPECTED_NAMES
    assert len(names) == len(EXPECTED_NAMES)
    assert names == sorted(names)


@pytest.mark.parametrize("name", sorted(EXPECTED_NAMES))
def test_every_shipped_profile_loads(name):
    p = load_profile(name)
    assert isinstance(p, HardwareProfile)
    assert p.name == name
    assert p.description
    assert set(p.efficiency) == set(EFFICIENCY_KEYS)
    for key in REQUIRED_DATASHEET:
        assert p.datasheet[key] > 0
    assert set(p.datasheet) <= set(DATASHEET_KEYS)


@pytest.mark.parametrize("name", sorted(EXPECTED_NAMES))
def test_every_value_has_a_source(name):
    p = load_profile(name)
    for key in list(p.datasheet) + list(p.efficiency):
        assert p.sources.get(key, "").strip(), f"{name}: [sources] {key} is missing or empty"
    # sources name the original reference, never just the in-repo summary file
    for key, text in p.sources.items():
        assert text.strip().lower() not in {"hardware.md", "see hardware.md"}, (name, key)


@pytest.mark.parametrize("name", sorted(EXPECTED_NAMES))
def test_shipped_values_are_plausible(name):
    p = load_profile(name)
    ds = p.datasheet
    assert ds["peak_flops_fp16"] >= ds["peak_flops_bf16"] * 0.99
    if "peak_flops_fp8" in ds:
        assert ds["peak_flops_fp8"] > ds["peak_flops_bf16"]
    assert ds["peak_flops_fp32"] < ds["peak_flops_bf16"]
    for key in FRACTION_KEYS:
        assert 0 < p.efficiency[key] <= 1
    # kernel fixed cost and all-reduce latencies are microseconds, not seconds
    assert 0 < p.efficiency["kernel_fixed_s"] < 1e-5
    assert 0 < p.efficiency["allreduce_latency_s"] < 1e-4
    assert 0 < p.efficiency["allreduce_hop_latency_s"] < 1e-5
    # measured bus bandwidth never exceeds the per-direction link rate
    assert 0 < p.efficiency["allreduce_busbw"] <= ds["interconnect_bw_uni"]


# ---------------------------------------------------------------- reference values


def test_a100_80gb_sxm_ridge():
    # magicdec-paper.md §1.6: ridge digitised from [BLOG-V1] Fig 2a = 153.0 for A100,
    # matching 312 TFLOP/s / 2039 GB/s (NVIDIA A100 datasheet, A100-80G SXM).
    p = load_profile("a100-80gb-sxm")
    assert p.ridge() == pytest.approx(312e12 / 2.039e12)
    assert p.ridge() == pytest.approx(153.0, abs=0.1)


def test_l40_ridge():
    # magicdec-paper.md §1.6: ridge digitised from [BLOG-V1] Fig 2a = 209.5 for L40,
    # matching 181 TFLOP/s / 864 GB/s (NVIDIA L40 datasheet).
    assert load_profile("l40").ridge() == pytest.approx(209.5, abs=0.2)


def test_h100_sxm_peak_and_bandwidth():
    # hardware.md §1, NVIDIA H100 whitepaper table: 989.4 TFLOP/s bf16 dense, 3.35 TB/s.
    # (The paper's 322.2 ridge in magicdec-paper.md §1.6 used LLM-Viewer's 3072 GB/s, so it is
    # not checked here.)
    p = load_profile("h100-sxm")
    assert p.peak_flops(2) == pytest.approx(989.4e12)
    assert p.mem_bw == pytest.approx(3.35e12)
    assert p.ridge() == pytest.approx(989.4e12 / 3.35e12)
    assert 295 <= p.ridge() <= 296


def test_capacities():
    # hardware.md §1 / ai-dynamo/aiconfigurator: H100 80 GiB = 85899345920 B,
    # H200 141 GiB = 151397597184 B.
    assert load_profile("h100-sxm").mem_capacity == 80 * 2**30 == 85899345920
    assert load_profile("h200-sxm").mem_capacity == 141 * 2**30 == 151397597184
    assert load_profile("h200-sxm").mem_capacity > load_profile("h100-sxm").mem_capacity


@pytest.mark.parametrize(
    ("name", "has_fp8"),
    [
        # hardware.md §1: FP8 tensor cores on Hopper, Ada, Blackwell and CDNA3; none on Ampere.
        ("h100-sxm", True),
        ("h100-pcie", True),
        ("h200-sxm", True),
        ("b200", True),
        ("mi300x", True),
        ("l40", True),
        ("l40s", True),
        ("a100-40gb-sxm", False),
        ("a100-80gb-sxm", False),
        ("a100-80gb-pcie", False),
    ],
)
def test_fp8_presence(name, has_fp8):
    p = load_profile(name)
    assert ("peak_flops_fp8" in p.datasheet) is has_fp8
    if has_fp8:
        assert p.peak_flops(1) == p.datasheet["peak_flops_fp8"]
    else:
        # without fp8 the model falls back to the bf16 peak
        assert p.peak_flops(1) == p.datasheet["peak_flops_bf16"]


def test_peak_flops_by_dtype():
    p = load_profile("h100-sxm")
    assert p.peak_flops(4) == p.datasheet["peak_flops_fp32"]
    assert p.peak_flops(2) == p.datasheet["peak_flops_bf16"]


# ---------------------------------------------------------------- ideal()


@pytest.mark.parametrize("name", sorted(EXPECTED_NAMES))
def test_ideal_has_unit_fractions_and_no_fixed_costs(name):
    p = load_profile(name)
    ideal = p.ideal()
    for key in FRACTION_KEYS:
        assert ideal.efficiency[key] == 1.0
    assert ideal.efficiency["kernel_fixed_s"] == 0.0
    assert ideal.efficiency["allreduce_latency_s"] == 0.0
    assert ideal.efficiency["allreduce_hop_latency_s"] == 0.0
    assert ideal.efficiency["allreduce_busbw"] == p.datasheet["interconnect_bw_uni"]
    assert set(ideal.efficiency) == set(EFFICIENCY_KEYS)
    assert ideal.datasheet == p.datasheet
    # the original is untouched
    assert p.efficiency["kernel_fixed_s"] > 0


def test_ideal_without_interconnect_has_unbounded_allreduce():
    doc = _valid_doc()
    del doc["datasheet"]["interconnect_bw_uni"]
    ideal = profile_from_dict(doc).ideal()
    assert math.isinf(ideal.efficiency["allreduce_busbw"])


# ---------------------------------------------------------------- round trip


def _same(a: HardwareProfile, b: HardwareProfile) -> None:
    assert b.name == a.name
    assert b.description == a.description
    assert b.datasheet == a.datasheet
    assert b.efficiency == a.efficiency
    assert b.sources == a.sources
    assert b.meta == a.meta


@pytest.mark.parametrize("name", sorted(EXPECTED_NAMES))
def test_shipped_profiles_round_trip(name):
    p = load_profile(name)
    _same(p, profile_from_dict(tomllib.loads(profile_to_toml(p))))


def test_round_trip_through_a_file(tmp_path):
    p = load_profile("h200-sxm")
    path = tmp_path / "copy.toml"
    path.write_text(profile_to_toml(p), encoding="utf-8")
    q = load_profile(str(path))
    _same(p, q)
    assert q.path == str(path)


_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)),  # TOML cannot hold lone surrogates
    max_size=40,
)
_positive = st.floats(min_value=1e-3, max_value=1e18, allow_nan=False, allow_infinity=False)
_fraction = st.floats(min_value=1e-6, max_value=1.0, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    name=_text.filter(bool),
    description=_text,
    bf16=_positive,
    mem_bw=_positive,
    frac=_fraction,
    fixed=st.floats(min_value=0, max_value=1, allow_nan=False),
    source=_text,
    extra_key=_text,
    meta_note=_text,
)
def test_round_trip_property(
    name, description, bf16, mem_bw, frac, fixed, source, extra_key, meta_note
):
    doc = _valid_doc()
    doc["name"] = name
    doc["description"] = description
    doc["datasheet"]["peak_flops_bf16"] = bf16
    doc["datasheet"]["mem_bw"] = mem_bw
    doc["efficiency"]["gemm_bw"] = frac
    doc["efficiency"]["kernel_fixed_s"] = fixed
    doc["sources"]["gemm_bw"] = source
    doc["sources"][extra_key] = source  # keys need quoting too
    doc["meta"] = {"note": meta_note, "residuals": [0.01, 0.02], "n": 3, "fit": {extra_key: 1.5}}
    p = profile_from_dict(doc)
    _same(p, profile_from_dict(tomllib.loads(profile_to_toml(p))))


# ---------------------------------------------------------------- bad input


def test_unknown_name_lists_closest():
    with pytest.raises(InputError) as exc:
        load_profile("h100-sxn")
    msg = str(exc.value)
    assert "'h100-sxn'" in msg
    assert "h100-sxm" in msg


def test_missing_path(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(InputError, match="does not exist") as exc:
        load_profile(str(missing))
    assert str(missing) in str(exc.value)


def test_malformed_toml(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[datasheet\npeak_flops_bf16 = 1e12\n', encoding="utf-8")
    with pytest.raises(InputError, match="not valid TOML") as exc:
        load_profile(str(bad))
    assert str(bad) in str(exc.value)


@pytest.mark.parametrize("key", EFFICIENCY_KEYS)
def test_missing_efficiency_key(key):
    doc = _valid_doc()
    del doc["efficiency"][key]
    with pytest.raises(InputError, match=key):
        profile_from_dict(doc)


@pytest.mark.parametrize("table", ["datasheet", "efficiency"])
def test_missing_table(table):
    doc = _valid_doc()
    del doc[table]
    with pytest.raises(InputError, match=rf"\[{table}\]"):
        profile_from_dict(doc)


@pytest.mark.parametrize("key", REQUIRED_DATASHEET)
def test_missing_required_datasheet_key(key):
    doc = _valid_doc()
    del doc["datasheet"][key]
    with pytest.raises(InputError, match=key):
        profile_from_dict(doc)


@settings(max_examples=40, deadline=None)
@given(
    key=st.sampled_from(FRACTION_KEYS),
    value=st.one_of(
        st.floats(min_value=1.0, max_value=1e6, exclude_min=True),
        st.floats(max_value=0.0, allow_nan=False, allow_infinity=False),
    ),
)
def test_fraction_out_of_range(key, value):
    doc = _valid_doc()
    doc["efficiency"][key] = value
    with pytest.raises(InputError) as exc:
        profile_from_dict(doc)
    msg = str(exc.value)
    assert key in msg
    assert repr(value) in msg


@pytest.mark.parametrize("key", ["mem_bw", "interconnect_bw_uni", "l2_bytes"])
def test_negative_datasheet_value(key):
    doc = _valid_doc()
    doc["datasheet"][key] = -2.0e12
    with pytest.raises(InputError) as exc:
        profile_from_dict(doc)
    assert key in str(exc.value)
    assert "-2000000000000.0" in str(exc.value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "fast", True])
def test_non_numeric_values(value):
    doc = _valid_doc()
    doc["datasheet"]["mem_bw"] = value
    with pytest.raises(InputError, match="mem_bw"):
        profile_from_dict(doc)


def test_zero_allreduce_busbw():
    doc = _valid_doc()
    doc["efficiency"]["allreduce_busbw"] = 0.0
    with pytest.raises(InputError, match="allreduce_busbw"):
        profile_from_dict(doc)


def test_negative_latency():
    doc = _valid_doc()
    doc["efficiency"]["allreduce_latency_s"] = -1e-6
    with pytest.raises(InputError, match="allreduce_latency_s"):
        profile_from_dict(doc)


@pytest.mark.parametrize("table", ["datasheet", "efficiency"])
def test_unknown_key(table):
    doc = _valid_doc()
    doc[table]["peak_flops_bf17"] = 1.0
    with pytest.raises(InputError, match="peak_flops_bf17"):
        profile_from_dict(doc)


def test_op_classes_cover_efficiency_keys():
    for c in OP_CLASSES:
        assert f"{c}_bw" in EFFICIENCY_KEYS
        assert f"{c}_flops" in EFFICIENCY_KEYS
