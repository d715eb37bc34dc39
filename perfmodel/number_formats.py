"""Number formats of weights and KV caches: names and bits per element.

Model records name the format a checkpoint stores its weights in (``ModelArch.weight_dtype``,
``ModelArch.expert_weight_dtype``); the cost model reads element sizes from here.  Bits are per
element of the format itself; block or group scales are part of the format only where the format
defines them (MXFP4: one 8-bit E8M0 scale per block of 32 elements, OCP Microscaling Formats
(MX) v1.0 spec, hence 4 + 8/32 = 4.25 bits, the figure the gpt-oss model card (arXiv 2508.10925)
gives).  The per-block scales of DeepSeek-V3's fp8 checkpoint (one fp32 scale per 128 x 128 block,
``quantization_config.weight_block_size``) are not included (32/16384 = 0.002 bits per element);
``int4_g128`` is int4 with one fp16 scale per group of 128 elements (the AWQ/GPTQ default group
size): 4 + 16/128 = 4.125 bits, zero-points not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InputError

#: Bits per element of each named format.
FORMAT_BITS: dict[str, float] = {
    "fp32": 32.0,
    "bf16": 16.0,
    "fp16": 16.0,
    "fp8_e4m3": 8.0,
    "fp8_e5m2": 8.0,
    "int8": 8.0,
    "int4": 4.0,
    "int4_g128": 4.125,
    "mxfp4": 4.25,
}

#: Format of the activations implied by ``ModelArch.dtype_bytes`` (bytes per element).
FORMAT_OF_DTYPE_BYTES: dict[int, str] = {1: "fp8_e4m3", 2: "bf16", 4: "fp32"}


def format_bits(name: str) -> float:
    """Bits per element of the format ``name``; :class:`InputError` for an unknown name."""
    if name not in FORMAT_BITS:
        raise InputError(f"number format {name!r} is not known; allowed: {', '.join(FORMAT_BITS)}")
    return FORMAT_BITS[name]


#: ``--weight-dtype`` choices: CLI name -> format ("native": what the checkpoint stores).
WEIGHT_CHOICES: dict[str, str | None] = {"native": None, "fp32": "fp32", "bf16": "bf16", "fp16": "fp16",
                                         "fp8": "fp8_e4m3", "int4": "int4_g128", "mxfp4": "mxfp4"}
#: ``--kv-dtype`` choices: CLI name -> format ("native": the activations' format).
KV_CHOICES: dict[str, str | None] = {"native": None, "fp32": "fp32", "bf16": "bf16", "fp16": "fp16",
                                     "fp8": "fp8_e4m3"}
#: ``--weight-dtype`` choices that set the activations' format too: a model whose weights are in
#: fp32 runs in fp32 (activations, KV by default, GEMMs at the fp32 peak), as ``validate`` runs
#: on a CPU; the other weight formats keep the model's activations (dequantised in the kernel).
RUNS_IN: dict[str, int] = {"fp32": 4}
#: Formats whose GEMMs run on fp8 tensor cores (weights and activations in fp8, W8A8 with dynamic
#: activation scales as DeepSeek-V3's checkpoint and vLLM's fp8 path do); every other weight
#: format is dequantised in the kernel and multiplies at the activations' precision (W4A16).
FP8_COMPUTE = ("fp8_e4m3", "fp8_e5m2")


@dataclass(frozen=True)
class Formats:
    """Bytes per element of a model's weights, routed experts and KV cache, and the element size
    its GEMMs compute at (selects the tensor-core peak: 2 bf16, 1 fp8)."""

    weight: str
    expert: str
    kv: str
    activation_bytes: int

    @property
    def weight_bytes(self) -> float:
        """Bytes per weight element (dense weights)."""
        return FORMAT_BITS[self.weight] / 8.0

    @property
    def expert_bytes(self) -> float:
        """Bytes per weight element of the routed experts."""
        return FORMAT_BITS[self.expert] / 8.0

    @property
    def kv_bytes(self) -> float:
        """Bytes per KV-cache element."""
        return FORMAT_BITS[self.kv] / 8.0

    def compute_bytes(self, fmt: str) -> int:
        """Element size a GEMM over weights of ``fmt`` computes at (bytes)."""
        return 1 if fmt in FP8_COMPUTE else self.activation_bytes

    def describe(self) -> str:
        """Short label, e.g. ``weights bf16, experts mxfp4, KV fp8_e4m3``."""
        text = f"weights {self.weight}"
        if self.expert != self.weight:
            text += f", experts {self.expert}"
        return text + f", KV {self.kv}"


def formats_for(native_weight: str, native_expert: str, activation_bytes: int,
                weight_dtype: str = "native", kv_dtype: str = "native") -> Formats:
    """Resolve ``--weight-dtype`` / ``--kv-dtype`` against a model's native formats."""
    if weight_dtype not in WEIGHT_CHOICES:
        raise InputError(f"--weight-dtype {weight_dtype!r} is not one of: {', '.join(WEIGHT_CHOICES)}")
    if kv_dtype not in KV_CHOICES:
        raise InputError(f"--kv-dtype {kv_dtype!r} is not one of: {', '.join(KV_CHOICES)}")
    act = FORMAT_OF_DTYPE_BYTES.get(activation_bytes, "bf16")
    w = WEIGHT_CHOICES[weight_dtype]
    weight = w or native_weight
    expert = w or native_expert
    kv = KV_CHOICES[kv_dtype] or act
    return Formats(weight, expert, kv, activation_bytes)
