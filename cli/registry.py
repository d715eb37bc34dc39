"""`models list|show` and `hardware list|show`: what the registries hold."""

from __future__ import annotations

from dataclasses import asdict

import typer
from rich.console import Console
from rich.table import Table

from magicdec_model.perfmodel.architecture import builtin_model_names, get_model
from magicdec_model.perfmodel.hardware import builtin_hardware_names, load_profile

from .options import guard

models_app = typer.Typer(help="The built-in model registry.", no_args_is_help=True)
hardware_app = typer.Typer(help="The shipped hardware profiles.", no_args_is_help=True)


@models_app.command("list")
@guard
def models_list() -> None:
    """List the registry models with their size and KV bytes per token."""
    table = Table(box=None, header_style="bold")
    for col in ("name", "params (B)", "layers", "heads/kv", "KV KiB/token", "max pos"):
        table.add_column(col, justify="left" if col == "name" else "right")
    for name in builtin_model_names():
        m = get_model(name)
        table.add_row(name, f"{m.param_count() / 1e9:.2f}", str(m.num_layers),
                      f"{m.num_heads}/{m.num_kv_heads}", f"{m.kv_bytes_per_token() / 1024:.0f}",
                      str(m.max_positions))
    Console(width=80).print(table)


@models_app.command("show")
@guard
def models_show(name: str = typer.Argument(..., help="Registry name or config.json path.")) -> None:
    """Show one model's architecture record and derived sizes."""
    m = get_model(name)
    for key, value in asdict(m).items():
        typer.echo(f"{key:18} {value}")
    typer.echo(f"{'params':18} {m.param_count():,}")
    typer.echo(f"{'weight_bytes':18} {m.weight_bytes():,}")
    typer.echo(f"{'kv_bytes/token':18} {m.kv_bytes_per_token():,}")


@hardware_app.command("list")
@guard
def hardware_list() -> None:
    """List the shipped profiles with their headline datasheet values."""
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
