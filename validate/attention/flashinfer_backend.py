"""FlashInfer attention backend (NVIDIA GPUs); the only module of the package importing flashinfer.

Written against the API of ``flashinfer-python >=0.6.13,<0.8`` (the ``[gpu]`` extra; signatures
from the 0.7.2.post1 wheel and 0.6.18 sources); other versions are refused with a clear message.
On CPU its logic is tested with a fake module; it has not yet been run on a GPU.
Every optional argument is passed by keyword (0.6.16 made the
optional ``plan`` arguments keyword-only).

Mapping of the validator's operations (reference: docs/validate.md, shared kernels reference §2):

- decode (``q_len = 1``, full or budget KV): ``BatchDecodeWithPagedKVCacheWrapper``; tensor cores
  when the GQA group is > 4 or not one the CUDA-core kernels dispatch (1, 2, 3, 4, 6, 8, 16);
- verify / prefill / multi-token draft catch-up (``q_len > 1``):
  ``BatchPrefillWithPagedKVCacheWrapper`` with ``causal=True`` and ``qo_indptr = arange(B+1) *
  q_len`` (FlashInfer aligns the causal mask bottom-right, which is verification semantics);
- the budget KV is a separate paged cache with its own page table (a compact copy, as MagicDec).

The cache is passed in FlashInfer's tuple form ``(k_cache, v_cache)``, each
``[max_pages, page_size, H_kv, D]`` (NHD), and the page table is int32 CSR.  ``plan`` runs once per
forward step (outside any timed kernel region); ``run`` once per layer.
"""

from __future__ import annotations

import importlib.util
import math
import re
from types import ModuleType
from typing import TYPE_CHECKING, Any

import torch

from .base import AttentionBackend

if TYPE_CHECKING:  # pragma: no cover
    from ..kvcache import PagedKVCache

SUPPORTED_RANGE = ((0, 6, 13), (0, 8, 0))  # inclusive lower bound, exclusive upper bound
SUPPORTED_SPEC = "flashinfer-python>=0.6.13,<0.8"
CUDA_CORE_GROUP_SIZES = frozenset({1, 2, 3, 4, 6, 8, 16})
DEFAULT_WORKSPACE_BYTES = 128 * 1024 * 1024


class FlashInferUnavailableError(RuntimeError):
    """FlashInfer cannot be used here (not installed, wrong version, or no suitable GPU)."""


def parse_version(text: str) -> tuple[int, int, int]:
    """``"0.7.2.post1"`` -> ``(0, 7, 2)`` (release numbers only; missing parts are 0)."""
    m = re.match(r"^\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?", text)
    if not m:
        raise ValueError(f"cannot parse version {text!r}")
    return tuple(int(x) if x is not None else 0 for x in m.groups())  # type: ignore[return-value]


def version_supported(text: str) -> bool:
    """Whether a FlashInfer version string lies in the tested range."""
    lo, hi = SUPPORTED_RANGE
    return lo <= parse_version(text) < hi


def import_flashinfer() -> ModuleType:
    """Import flashinfer and check its version (raises :class:`FlashInferUnavailableError`)."""
    try:
        import flashinfer  # the only import of flashinfer in the package
    except Exception as exc:  # a broken install raises more than ImportError
        raise FlashInferUnavailableError(
            f"flashinfer is not importable ({exc.__class__.__name__}: {exc}); "
            f"install the extra: pip install 'magicdec-model[gpu]' ({SUPPORTED_SPEC})"
        ) from exc
    version = str(getattr(flashinfer, "__version__", "0"))
    if not version_supported(version):
        raise FlashInferUnavailableError(
            f"flashinfer {version} is outside the tested range {SUPPORTED_SPEC}"
        )
    return flashinfer


def flashinfer_usable(device: torch.device | str) -> bool:
    """True when FlashInfer can run on ``device``: CUDA, capability >= 7.5, package installed."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    if torch.cuda.get_device_capability(device) < (7, 5):
        return False
    try:
        return importlib.util.find_spec("flashinfer") is not None
    except (ImportError, ValueError):
        return False


def use_tensor_cores_for(group_size: int) -> bool:
    """SGLang's rule: tensor-core decode for GQA groups > 4 or ones the CUDA-core path lacks."""
    return group_size > 4 or group_size not in CUDA_CORE_GROUP_SIZES


class FlashInferBackend(AttentionBackend):
    """Paged attention through FlashInfer's batch decode and batch prefill wrappers.

    Args:
        device: a CUDA device.
        workspace_bytes: float workspace (bytes); FlashInfer recommends 128 MiB.
        use_tensor_cores: force the decode path; None chooses by GQA group size.
        kernel_backend: FlashInfer's ``backend`` argument (``"auto"``, ``"fa2"``, ``"fa3"``...);
            pin ``"fa2"`` for comparisons across GPUs.
        allow_non_cuda: only for tests that inject a fake ``flashinfer`` module.
    """

    name = "flashinfer"

    def __init__(
        self,
        device: torch.device | str = "cuda",
        *,
        workspace_bytes: int = DEFAULT_WORKSPACE_BYTES,
        use_tensor_cores: bool | None = None,
        kernel_backend: str = "auto",
        allow_non_cuda: bool = False,
    ) -> None:
        self.fi = import_flashinfer()
        self.device = torch.device(device)
        if self.device.type != "cuda" and not allow_non_cuda:
            raise FlashInferUnavailableError(f"FlashInfer needs a CUDA device, got {self.device}")
        self.workspace = torch.zeros(workspace_bytes, dtype=torch.uint8, device=self.device)
        self.kernel_backend = kernel_backend
        self.force_tensor_cores = use_tensor_cores
        self._decode: dict[bool, Any] = {}
        self._prefill: Any = None
        self._active: Any = None
        self._q_len = 0
        self._planned_for: tuple[int, int] | None = None

    # ----------------------------------------------------------------- wrappers
    def _decode_wrapper(self, tensor_cores: bool) -> Any:
        if tensor_cores not in self._decode:
            self._decode[tensor_cores] = self.fi.BatchDecodeWithPagedKVCacheWrapper(
                self.workspace,
                kv_layout="NHD",
                use_tensor_cores=tensor_cores,
                backend=self.kernel_backend,
            )
        return self._decode[tensor_cores]

    def _prefill_wrapper(self) -> Any:
        if self._prefill is None:
            self._prefill = self.fi.BatchPrefillWithPagedKVCacheWrapper(
                self.workspace, kv_layout="NHD", backend=self.kernel_backend
            )
        return self._prefill

    # ------------------------------------------------------------------- plan
    def plan(self, cache: PagedKVCache, q_len: int, num_qo_heads: int) -> None:
        if self.device.type == "cuda" and cache.dtype not in (torch.float16, torch.bfloat16):
            raise ValueError(f"FlashInfer attention needs fp16 or bf16 caches, not {cache.dtype}")
        pt = cache.page_table()
        H_kv, D = cache.num_kv_heads, cache.head_dim
        if num_qo_heads % H_kv:
            raise ValueError(f"{num_qo_heads} query heads are not a multiple of {H_kv} KV heads")
        common = dict(
            num_qo_heads=num_qo_heads,
            num_kv_heads=H_kv,
            page_size=cache.page_size,
            q_data_type=cache.dtype,
            kv_data_type=cache.dtype,
            sm_scale=1.0 / math.sqrt(D),
        )
        if q_len == 1:
            group = num_qo_heads // H_kv
            tc = self.force_tensor_cores
            wrapper = self._decode_wrapper(use_tensor_cores_for(group) if tc is None else tc)
            wrapper.plan(
                indptr=pt.indptr,
                indices=pt.indices,
                last_page_len=pt.last_page_len,
                head_dim=D,
                **common,
            )
        else:
            wrapper = self._prefill_wrapper()
            qo_indptr = (
                torch.arange(cache.batch + 1, dtype=torch.int32, device=cache.device) * q_len
            )
            wrapper.plan(
                qo_indptr=qo_indptr,
                paged_kv_indptr=pt.indptr,
                paged_kv_indices=pt.indices,
                paged_kv_last_page_len=pt.last_page_len,
                head_dim_qk=D,
                causal=True,
                **common,
            )
        self._active = wrapper
        self._q_len = q_len
        self._planned_for = (id(cache), cache.version)

    # -------------------------------------------------------------------- run
    def run(self, q: torch.Tensor, cache: PagedKVCache, layer: int) -> torch.Tensor:
        if self._planned_for != (id(cache), cache.version) or q.shape[1] != self._q_len:
            raise RuntimeError("FlashInferBackend.run called without plan() for this cache state")
        B, T, H, D = q.shape
        out = self._active.run(q.reshape(B * T, H, D).contiguous(), cache.layer_kv(layer))
        return out.view(B, T, H, D)

    def describe(self) -> dict[str, str]:
        labels = {
            "backend": self.name,
            "flashinfer_version": str(getattr(self.fi, "__version__", "?")),
            "kernel_backend": self.kernel_backend,
        }
        resolved = getattr(self._active, "resolved_backend", None)
        if resolved is not None:
            labels["resolved_backend"] = str(resolved)
        return labels
