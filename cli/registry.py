"""`models list|show` and `hardware list|show`: what the registries hold."""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import TYPE_CHECKING

import typer

from magicdec_model.perfmodel.inputs import nonempty

from .options import guard

if TYPE_CHECKING:  # pragma: no cover
    from magicdec_model.perfmodel.architecture import ModelArch

models_app = typer.Typer(help="The built-in model registry.", no_args_is_help=True)
hardware_app = typer.Typer(help="The shipped hardware profiles.", no_args_is_help=True)
engines_app = typer.Typer(help="The shipped serving-engine profiles.", no_args_is_help=True)


@models_app.command("list")
@guard
def models_list() -> None:
    """List the registry models with their size, active size and KV bytes per token."""
    from rich.console import Console
    from rich.table import Table

    from magicdec_model.perfmodel.architecture import builtin_model_names, get_model
    table = Table(box=None, header_style="bold")
    for col in ("name", "params (B)", "active (B)", "layers", "heads/kv", "KV KiB/tok", "max pos"):
        table.add_column(col, justify="left" if col == "name" else "right")
    for name in builtin_model_names():
        m = get_model(name)
        table.add_row(name, f"{m.param_count() / 1e9:.2f}", f"{m.active_param_count() / 1e9:.2f}",
                      str(m.num_layers), f"{m.num_heads}/{m.num_kv_heads}",
                      f"{m.kv_bytes_per_token() / 1024:.0f}", str(m.max_positions))
    Console(width=80).print(table)


#: Fields of the original dense record, always shown; the others only where they differ from
#: their default (MoE, MLA, window pattern, MTP, number formats).
_CORE = ("name", "hidden_size", "num_layers", "num_heads", "num_kv_heads", "head_dim",
         "intermediate_size", "vocab_size", "max_positions", "tie_embeddings", "gated_mlp",
         "qkv_bias", "rope_theta", "rope_scaling", "rms_norm_eps", "sliding_window", "dtype_bytes",
         "hf_id", "source", "family")


def _record_lines(m: ModelArch) -> list[tuple[str, object]]:
    out = []
    for f in fields(m):
        value = getattr(m, f.name)
        if f.name in _CORE or (f.default is not MISSING and value != f.default):
            out.append((f.name, list(value) if isinstance(value, tuple) else value))
    return out


def _windows_line(m: ModelArch) -> str:
    if m.sliding_window is None:
        return "none: every layer attends to the whole context"
    local = m.num_layers - len(m.global_layers)
    return f"{local} of {m.num_layers} layers keep {m.sliding_window} tokens, {len(m.global_layers)} global"


@models_app.command("show")
@guard
def models_show(name: str = typer.Argument(..., help="Registry name or config.json path.")) -> None:
    """Show one model's architecture record and derived sizes."""
    from magicdec_model.perfmodel.architecture import get_model
    nonempty(name, "models show NAME", "a registry name (see 'magicdec-model models list') or "
             "a path to a config.json")
    m = get_model(name)
    for key, value in _record_lines(m):
        typer.echo(f"{key:18} {value}")
    typer.echo(f"{'params':18} {m.param_count():,}")
    if m.is_moe:
        typer.echo(f"{'active params':18} {m.active_param_count():,} per token "
                   f"({m.active_param_count(embedding=False):,} without the input embedding)")
    if m.mtp_layers:
        typer.echo(f"{'mtp params':18} {m.mtp_param_count():,} (not in params)")
    typer.echo(f"{'weight_bytes':18} {m.weight_bytes():,}")
    typer.echo(f"{'kv_bytes/token':18} {m.kv_bytes_per_token():,}"
               + (" (MLA latent)" if m.is_mla else ""))
    typer.echo(f"{'windows':18} {_windows_line(m)}")


@hardware_app.command("list")
@guard
def hardware_list() -> None:
    """List the shipped profiles with their headline datasheet values."""
    from rich.console import Console
    from rich.table import Table

    from magicdec_model.perfmodel.hardware import builtin_hardware_names, load_profile
    table = Table(box=None, header_style="bold")
    for col in ("name", "bf16 TFLOP/s", "HBM TB/s", "GiB", "link GB/s"):
        table.add_column(col, justify="left" if col == "name" else "right")
    for name in builtin_hardware_names():
        p = load_profile(name)
        d = p.datasheet
        table.add_row(name, f"{d['peak_flops_bf16'] / 1e12:.0f}", f"{d['mem_bw'] / 1e12:.2f}",
                      f"{d['mem_capacity'] / 2**30:.0f}",
                      f"{d.get('interconnect_bw_uni', 0) / 1e9:.0f}")
    Console(width=80).print(table)


@hardware_app.command("show")
@guard
def hardware_show(name: str = typer.Argument(..., help="Profile name or .toml path.")) -> None:
    """Show one profile: datasheet, efficiencies and where each value came from."""
    from magicdec_model.perfmodel.hardware import load_profile
    nonempty(name, "hardware show NAME", "a profile name (see 'magicdec-model hardware list') or "
             "a path to a profile .toml")
    p = load_profile(name)
    typer.echo(f"{p.name}: {p.description}")
    for title, values in (("datasheet", p.datasheet), ("efficiency", p.efficiency)):
        typer.echo(f"[{title}]")
        for key, value in values.items():
            typer.echo(f"  {key:24} {value:<12.4g} {p.sources.get(key, '(no source given)')}")
    if p.meta:
        typer.echo("[meta]")
        for key, value in p.meta.items():
            typer.echo(f"  {key:24} {value}")


@engines_app.command("list")
@guard
def engines_list() -> None:
    """List the shipped engines with their terms (the default is marked)."""
    from rich.console import Console
    from rich.table import Table

    from magicdec_model.perfmodel.engine import DEFAULT_ENGINE, builtin_engine_names, load_engine
    table = Table(box=None, header_style="bold")
    for col in ("name", "host ms/step", "us/seq", "us/launch", "SD loop ms", "calibrated"):
        table.add_column(col, justify="left" if col == "name" else "right")
    for name in builtin_engine_names():
        e = load_engine(name)
        t = e.terms
        table.add_row(name + (" (default)" if name == DEFAULT_ENGINE else ""),
                      f"{t['host_step_s'] * 1e3:.3g}", f"{t['host_per_seq_s'] * 1e6:.3g}",
                      f"{t['launch_s'] * 1e6:.3g}", f"{t['sd_iteration_s'] * 1e3:.3g}",
                      "yes" if e.calibrated else "no")
    Console(width=80).print(table)


@engines_app.command("show")
@guard
def engines_show(name: str = typer.Argument(..., help="Engine name or .toml path.")) -> None:
    """Show one engine: every term with its standard error and source, and its calibration."""
    from magicdec_model.perfmodel.engine import load_engine
    nonempty(name, "engines show NAME", "an engine name (see 'magicdec-model engines list') or "
             "a path to an engine .toml")
    e = load_engine(name)
    typer.echo(f"{e.name}: {e.description}")
    for title, values in (("terms", e.terms), ("efficiency", e.efficiency)):
        if not values:
            continue
        typer.echo(f"[{title}]")
        for key, value in values.items():
            typer.echo(f"  {key:22} {value:<11.4g} +- {e.stderr.get(key, 0.0):<10.3g} "
                       f"{e.sources.get(key, '(no source given)')}")
    if e.calibration:
        typer.echo("[calibration]")
        for key, value in e.calibration.items():
            if key != "covariance":
                typer.echo(f"  {key:22} {value}")
