"""Real kernels of sparse-draft speculative decoding (torch; FlashInfer on NVIDIA GPUs).

Importing this package does not import torch or flashinfer; the names below load their module on
first access.  Modules: ``decoder`` (synthetic or loaded LLaMA-family decoder, one method per op),
``kvcache`` (paged caches, StreamingLLM / SnapKV budgets, rollback), ``attention`` (a package:
backend interface, torch SDPA, FlashInfer, a registry of backends by name),
``speculative_loop`` (SD loop, AR baseline), ``checkpoint`` (local safetensors, acceptance CSV),
``real_model`` (the shipped SmolLM2 GGUF, GGUF files, their tokenizer), ``corpus`` (real text),
``distributed`` (the process group), ``tensor_parallel`` (a decoder sharded in place for a
rank), ``weights`` and ``rotary``.  See docs/validate.md.
"""

from __future__ import annotations

from ..perfmodel.lazy_exports import module_getattr

_EXPORTS = {
    "Decoder": "decoder",
    "LAYER_OPS": "decoder",
    "STEP_OPS": "decoder",
    "PagedKVCache": "kvcache",
    "AttentionBackend": "attention",
    "TorchSDPABackend": "attention",
    "get_backend": "attention",
    "backend_names": "attention",
    "DraftKV": "speculative_loop",
    "SyntheticAcceptance": "speculative_loop",
    "StepRecord": "speculative_loop",
    "GenerationResult": "speculative_loop",
    "autoregressive_generate": "speculative_loop",
    "speculative_generate": "speculative_loop",
    "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "measure_acceptance": "checkpoint",
    "write_acceptance_csv": "checkpoint",
    "RealModel": "real_model",
    "load_real_model": "real_model",
    "resolve_checkpoint": "real_model",
    "default_text": "corpus",
    "read_text": "corpus",
    "token_windows": "corpus",
    "TensorParallel": "distributed",
    "init_tensor_parallel": "distributed",
    "parallelize": "tensor_parallel",
}

__all__ = sorted(_EXPORTS)


__getattr__ = module_getattr(__name__, _EXPORTS)
