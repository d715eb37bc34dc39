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
    from magicdec_model.perfmodel.architecture import builtin_model_names, get_model

    from .output import Column, show
    cols = [Column("name", left=True), Column("params (B)"), Column("active (B)"), Column("layers"),
            Column("heads/kv", "heads / KV heads"), Column("KV KiB/tok", "KV KiB/token"),
            Column("max pos", "max positions")]
    rows = []
    for name in builtin_model_names():
        m = get_model(name)
        rows.append([name, f"{m.param_count() / 1e9:.2f}", f"{m.active_param_count() / 1e9:.2f}",
                     str(m.num_layers), f"{m.num_heads}/{m.num_kv_heads}",
                     f"{m.kv_bytes_per_token() / 1024:.0f}", str(m.max_positions)])
    show(cols, rows)


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
def models_show(
    name: str = typer.Argument(..., help="Registry name or Hugging Face id (any case), or config.json path."),
) -> None:
    """Show one model's architecture record and derived sizes."""
    from magicdec_model.perfmodel.architecture import get_model

    from .output import described
    nonempty(name, "models show NAME", "a registry name (see 'magicdec-model models list') or "
             "a path to a config.json")
    m = get_model(name)
    rows = [(key, str(value), "") for key, value in _record_lines(m)]
    rows.append(("params", f"{m.param_count():,}", ""))
    if m.is_moe:
        rows.append(("active params", f"{m.active_param_count():,} per token "
                     f"({m.active_param_count(embedding=False):,} without the input embedding)", ""))
    if m.mtp_layers:
        rows.append(("mtp params", f"{m.mtp_param_count():,} (not in params)", ""))
    rows.append(("weight_bytes", f"{m.weight_bytes():,}", ""))
    rows.append(("kv_bytes/token", f"{m.kv_bytes_per_token():,}" + (" (MLA latent)" if m.is_mla else ""), ""))
    rows.append(("windows", _windows_line(m), ""))
    described(rows, indent="", key_width=18)


@hardware_app.command("list")
@guard
def hardware_list() -> None:
    """List the shipped profiles with their headline datasheet values."""
    from magicdec_model.perfmodel.hardware import builtin_hardware_names, load_profile

    from .output import Column, show
    cols = [Column("name", left=True), Column("bf16 TFLOP/s"), Column("HBM TB/s"),
            Column("GiB", "memory GiB"), Column("link GB/s", "link GB/s per direction")]
    rows = []
    for name in builtin_hardware_names():
        d = load_profile(name).datasheet
        rows.append([name, f"{d['peak_flops_bf16'] / 1e12:.0f}", f"{d['mem_bw'] / 1e12:.2f}",
                     f"{d['mem_capacity'] / 2**30:.0f}", f"{d.get('interconnect_bw_uni', 0) / 1e9:.0f}"])
    show(cols, rows)


@hardware_app.command("show")
@guard
def hardware_show(
    name: str = typer.Argument(..., help="Profile name or .toml path."),
    as_toml: bool = typer.Option(False, "--toml", help="Print the profile as TOML, to edit into "
                                 "your own: hardware show h100-sxm --toml > my-gpu.toml, then "
                                 "--hardware my-gpu.toml."),
) -> None:
    """Show one profile: datasheet, efficiencies and where each value came from."""
    from magicdec_model.perfmodel.hardware import load_profile
    from magicdec_model.perfmodel.units import with_unit

    from .output import console, described, say
    nonempty(name, "hardware show NAME", "a profile name (see 'magicdec-model hardware list') or "
             "a path to a profile .toml")
    p = load_profile(name)
    if as_toml:
        from magicdec_model.perfmodel.hardware import profile_to_toml

        typer.echo(f"# {p.name} as 'magicdec-model hardware show --toml' printed it: edit the name and "
                   f"values, then pass\n# this file to --hardware. SI units: FLOP/s, bytes/s, bytes, "
                   f"seconds; efficiencies are fractions.\n" + profile_to_toml(p), nl=False)
        return
    con = console()
    say(f"{p.name}: {p.description}", con)
    for title, values in (("datasheet", p.datasheet), ("efficiency", p.efficiency)):
        say(f"[{title}]", con)
        described([(key, with_unit(key, value), p.sources.get(key, "(no source given)"))
                   for key, value in values.items()], con)
    if p.meta:
        say("[meta]", con)
        described([(key, str(value), "") for key, value in p.meta.items()], con)


@engines_app.command("list")
@guard
def engines_list() -> None:
    """List the shipped engines with their terms (the default is marked)."""
    from magicdec_model.perfmodel.engine import DEFAULT_ENGINE, builtin_engine_names, load_engine

    from .output import Column, show
    cols = [Column("name", left=True), Column("host ms/step"), Column("us/seq", "host us/seq"),
            Column("us/launch"), Column("SD loop ms", "SD loop ms/iteration"), Column("calibrated")]
    rows = []
    for name in builtin_engine_names():
        e = load_engine(name)
        t = e.terms
        rows.append([name + (" (default)" if name == DEFAULT_ENGINE else ""),
                     f"{t['host_step_s'] * 1e3:.3g}", f"{t['host_per_seq_s'] * 1e6:.3g}",
                     f"{t['launch_s'] * 1e6:.3g}", f"{t['sd_iteration_s'] * 1e3:.3g}",
                     "yes" if e.calibrated else "no"])
    show(cols, rows)


@engines_app.command("show")
@guard
def engines_show(name: str = typer.Argument(..., help="Engine name or .toml path.")) -> None:
    """Show one engine: every term with its standard error and source, and its calibration."""
    from magicdec_model.perfmodel.engine import load_engine
    from magicdec_model.perfmodel.units import with_unit

    from .output import console, described, say
    nonempty(name, "engines show NAME", "an engine name (see 'magicdec-model engines list') or "
             "a path to an engine .toml")
    e = load_engine(name)
    con = console()
    say(f"{e.name}: {e.description}", con)
    for title, values in (("terms", e.terms), ("efficiency", e.efficiency)):
        if not values:
            continue
        say(f"[{title}]", con)
        described([(key, f"{with_unit(key, value)} +- {with_unit(key, e.stderr.get(key, 0.0))}",
                    e.sources.get(key, "(no source given)")) for key, value in values.items()], con)
    if e.calibration:
        say("[calibration]", con)
        described([(key, str(value), "") for key, value in e.calibration.items()
                   if key != "covariance"], con)
    say("[supports]", con)
    if e.supports:
        described([("strategies", ", ".join(e.supports), ""), ("source", e.supports_source, "")], con)
    else:
        say("  any draft strategy (a cost model, not one product)", con)
