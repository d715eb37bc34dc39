"""GGUF files for tests: a decoder written as llama.cpp's converter writes it (Q and K permuted for
interleaved-pair RoPE, F32 tensors, a byte-level BPE vocabulary in the metadata)."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import torch

from magicdec_model.validate.decoder import Decoder


def llama_cpp_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's converter (convert_hf_to_gguf.py, LlamaModel.permute), written from its formula:
    rows of a head regrouped from (2, head_dim/2) to (head_dim/2, 2)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(dec: Decoder, path: Path, tokens: list[str], merges: list[str]) -> Path:
    """``dec`` as llama.cpp's converter would write it: Q and K permuted, F32 tensors."""
    a = dec.arch
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(dec.num_layers)
    w.add_context_length(a.max_positions)
    w.add_embedding_length(a.hidden_size)
    w.add_feed_forward_length(a.intermediate_size)
    w.add_head_count(a.num_heads)
    w.add_head_count_kv(a.num_kv_heads)
    w.add_rope_freq_base(a.rope_theta)
    w.add_layer_norm_rms_eps(a.rms_norm_eps)
    w.add_rope_dimension_count(a.head_dim)
    w.add_vocab_size(a.vocab_size)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_merges(merges)
    w.add_token_types([3] + [1] * (len(tokens) - 1))

    def put(name, t):
        w.add_tensor(name, np.ascontiguousarray(t.detach().numpy().astype(np.float32)))

    put("token_embd.weight", dec.embed)
    put("output_norm.weight", dec.final_norm_w)
    if dec.head is not dec.embed:
        put("output.weight", dec.head)
    qd, kd = a.q_dim, a.kv_dim
    for i, lw in enumerate(dec.layers):
        put(f"blk.{i}.attn_norm.weight", lw.attn_norm)
        put(f"blk.{i}.attn_q.weight", torch.from_numpy(llama_cpp_permute(lw.wqkv[:qd].numpy(), a.num_heads)))
        put(f"blk.{i}.attn_k.weight",
            torch.from_numpy(llama_cpp_permute(lw.wqkv[qd:qd + kd].numpy(), a.num_kv_heads)))
        put(f"blk.{i}.attn_v.weight", lw.wqkv[qd + kd:])
        put(f"blk.{i}.attn_output.weight", lw.wo)
        put(f"blk.{i}.ffn_norm.weight", lw.mlp_norm)
        gate, up = lw.w_gate_up.chunk(2)
        put(f"blk.{i}.ffn_gate.weight", gate)
        put(f"blk.{i}.ffn_up.weight", up)
        put(f"blk.{i}.ffn_down.weight", lw.w_down)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
