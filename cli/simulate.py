"""`simulate`: SD under load, a serving simulation per policy x load point (docs/serving.md)."""

from __future__ import annotations

import math
import sys
from typing import Annotated

import typer

from magicdec_model.perfmodel.errors import InputError
from magicdec_model.perfmodel.inputs import parse_float, parse_int

from .options import (
    Acceptance,
    AcceptanceTable,
    AcceptLen,
    DraftFraction,
    DraftOpt,
    DraftVocab,
    EngineOpt,
    ExpertParallel,
    Hardware,
    KvDtype,
    KvMethod,
    Model,
    WeightDtype,
    guard,
)

SIMULATE_EPILOG = """\
\b
Examples:
  magicdec-model simulate --model llama-3.1-8b --hardware h100-sxm --engine vllm-h100 \\
      --draft eagle --workload sharegpt --qps 1:64:8 --policy off,fixed,optimal --gamma 1,3,5
  magicdec-model simulate --model llama-3.1-8b --hardware a100-80gb-sxm --gpus 8 --draft self \\
      --kv-budget 512 --workload pg19 --concurrency 8,32,128 --acceptance 0.8
  magicdec-model simulate --draft ngram --hardware h100-sxm --qps 10 --slo-ttft 1 --slo-tpot 0.05 \\
      --max-qps-under-slo --export vllm --out spec.json
"""

OPT = typer.Option


def load_list(text: str | None, flag: str, integer: bool) -> list[float]:
    """``A,B,C`` or ``START:STOP:COUNT`` (COUNT values evenly spaced, START and STOP included)."""
    if text is None:
        return []
    out: list[float] = []
    for item in str(text).split(","):
        item = item.strip()
        if ":" in item:
            parts = item.split(":")
            if len(parts) != 3:
                raise InputError(f"{flag} {item!r} is not START:STOP:COUNT")
            lo = parse_float(parts[0], flag, 0.0, 1e6, lo_open=True)
            hi = parse_float(parts[1], flag, lo, 1e6)
            n = parse_int(parts[2], f"{flag} count", 1, 1000)
            step = (hi - lo) / (n - 1) if n > 1 else 0.0
            vals = [lo + i * step for i in range(n)]
        else:
            vals = [parse_float(item, flag, 0.0, 1e6, lo_open=True)]
        for v in vals:
            if integer:
                v = float(round(v))
                if v < 1:
                    raise InputError(f"{flag} {item!r}: concurrency must be at least 1")
            out.append(v)
    out = sorted(set(out))
    if not out:
        raise InputError(f"{flag} {text!r} has no values")
    return out


@guard
def simulate_cmd(
    model: Model = "llama-3.1-8b",
    draft: DraftOpt = "eagle",
    kv_budget: Annotated[str, OPT("--kv-budget", help="Draft KV budget in tokens (sparse drafts).")] = "512",
    kv_method: KvMethod = "auto",
    hardware: Hardware = "h100-sxm",
    gpus: Annotated[str, OPT("--gpus", help="Tensor-parallel GPUs per replica.")] = "1",
    engine: EngineOpt = None,
    acceptance: Acceptance = None,
    acceptance_table: AcceptanceTable = None,
    accept_len: AcceptLen = None,
    draft_fraction: DraftFraction = 1.0,
    draft_vocab: DraftVocab = None,
    weight_dtype: WeightDtype = "native",
    kv_dtype: KvDtype = "native",
    expert_parallel: ExpertParallel = False,
    gamma: Annotated[str, OPT("--gamma", help="Gammas of the fixed policies (and of --accept-len), "
                              "comma-separated.")] = "1,3,5",
    policy: Annotated[str, OPT("--policy", help="Policies to compare: off, fixed (one per --gamma), "
                               "fixed:G, schedule:1-16:3,17-64:1,65-4096:0, optimal.")] = "off,fixed,optimal",
    gamma_max: Annotated[int, OPT("--gamma-max", help="Largest gamma policy optimal considers.")] = 8,
    qps: Annotated[str | None, OPT("--qps", help="Poisson loads (requests/s): A,B,... or "
                                   "START:STOP:COUNT.")] = None,
    concurrency: Annotated[str | None, OPT("--concurrency", help="Closed-loop loads (requests in "
                                           "flight): A,B,... or START:STOP:COUNT.")] = None,
    burstiness: Annotated[float, OPT("--burstiness", help="Coefficient of variation of Gamma "
                                     "inter-arrival gaps (1 = Poisson).")] = 1.0,
    trace: Annotated[str | None, OPT("--trace", help="CSV arrival_s,prompt_tokens,output_tokens.")] = None,
    workload: Annotated[str, OPT("--workload", help="Length preset: sharegpt, cnn_dailymail, gsm8k, "
                                 "pg19.")] = "sharegpt",
    prompt: Annotated[str | None, OPT("--prompt", help="Prompt tokens: N, uniform:A:B, "
                                      "lognormal:MEAN:SIGMA or a preset (default: --workload's).")] = None,
    output: Annotated[str | None, OPT("--output", help="Output tokens, as --prompt.")] = None,
    num_requests: Annotated[int, OPT("--num-requests", help="Requests per load point.")] = 1000,
    seed: Annotated[int, OPT("--seed", help="Random seed (same seed, same results).")] = 0,
    acceptance_spread: Annotated[float, OPT("--acceptance-spread", help="SD of the per-request "
                                            "acceptance rate around the mean.")] = 0.12,
    max_seqs: Annotated[int, OPT("--max-seqs", help="Most running sequences (vLLM max_num_seqs).")] = 256,
    max_batched_tokens: Annotated[int, OPT("--max-batched-tokens", help="Token budget per engine "
                                           "step (chunked prefill).")] = 8192,
    replicas: Annotated[int, OPT("--replicas", help="Identical replicas behind a round-robin "
                                 "router.")] = 1,
    slo_ttft: Annotated[float, OPT("--slo-ttft", help="TTFT SLO in seconds.")] = math.inf,
    slo_tpot: Annotated[float, OPT("--slo-tpot", help="TPOT SLO in seconds.")] = math.inf,
    slo_attainment: Annotated[float, OPT("--slo-attainment", help="Share of requests that must meet "
                                         "the SLOs (--max-qps-under-slo).")] = 0.9,
    max_qps_under_slo: Annotated[bool, OPT("--max-qps-under-slo", help="Find each policy's largest "
                                           "Poisson load meeting the SLOs (bisection).")] = False,
    fmt: Annotated[str, OPT("--format", help="table, csv or json.")] = "table",
    html: Annotated[str | None, OPT("--html", help="Write an HTML page of the results.")] = None,
    export: Annotated[str | None, OPT("--export", help="Write the best policy's SD config for "
                                      "vllm, sglang or trtllm (to --out).")] = None,
    out: Annotated[str | None, OPT("--out", help="File for --export.")] = None,
    executor: Annotated[str, OPT("--executor", help="local (processes) or dask.")] = "local",
    jobs: Annotated[int, OPT("--jobs", help="Worker processes (local) or Dask workers.")] = 1,
    scheduler: Annotated[str | None, OPT("--scheduler", help="Address of a running Dask scheduler.")] = None,
) -> None:
    """Simulate serving under load per speculation policy: latency, throughput, goodput, SLOs."""
    import pandas as pd

    from magicdec_model.perfmodel.outfiles import atomic_write_text, check_out_file
    from magicdec_model.perfmodel.serving.costs import serving_model
    from magicdec_model.perfmodel.serving.export import ENGINES, export_config, schedule_from_counts
    from magicdec_model.perfmodel.serving.metrics import COLUMNS
    from magicdec_model.perfmodel.serving.policy import parse_policies
    from magicdec_model.perfmodel.serving.runner import EXECUTORS, Point, SimSpec, run_points
    from magicdec_model.perfmodel.serving.runner import max_qps_under_slo as bisect_qps
    from magicdec_model.perfmodel.serving.simulator import SchedulerConfig
    from magicdec_model.perfmodel.serving.workload import PRESETS, parse_length, read_trace
    from magicdec_model.perfmodel.speculative import GAMMA_MAX

    from .options import gamma_list, int_list
    from .output import FORMATS
    from .predict import build_query

    if fmt not in FORMATS:
        raise InputError(f"--format {fmt!r} is not one of: {', '.join(FORMATS)}")
    if executor not in EXECUTORS:
        raise InputError(f"--executor {executor!r} is not one of: {', '.join(EXECUTORS)}")
    if scheduler is not None and executor != "dask":
        raise InputError(f"--scheduler {scheduler!r} is the address of a Dask scheduler; allowed: with "
                         "--executor dask")
    if acceptance_table is not None:
        from magicdec_model.perfmodel.acceptance import load_table

        load_table(acceptance_table)  # read (and refused) here, whatever the draft uses
    if export is not None and export not in ENGINES:
        raise InputError(f"--export {export!r} is not one of: {', '.join(ENGINES)}")
    if export is not None and not out:
        raise InputError("--export needs --out FILE")
    if export is not None and draft == "self":
        raise InputError("--export: no engine ships a sparse-KV self-draft (MagicDec's); allowed: "
                         "--draft eagle, mtp, ngram or a draft model")
    if out and export is None:
        raise InputError("--out is the file of --export; add --export vllm, sglang or trtllm")
    for flag, v, lo, hi in (("--num-requests", num_requests, 1, 10_000_000), ("--jobs", jobs, 1, 1024),
                            ("--max-seqs", max_seqs, 1, 1_000_000), ("--replicas", replicas, 1, 10_000),
                            ("--max-batched-tokens", max_batched_tokens, 1, 10_000_000),
                            ("--gamma-max", gamma_max, 1, GAMMA_MAX), ("--seed", seed, 0, 2**32 - 1)):
        if not lo <= v <= hi:
            raise InputError(f"{flag} {v} is outside {lo}..{hi}")
    for flag, v in (("--slo-ttft", slo_ttft), ("--slo-tpot", slo_tpot)):
        if not (v > 0) or math.isnan(v):
            raise InputError(f"{flag} {v} must be a positive number of seconds")
    if not 0 < slo_attainment <= 1:
        raise InputError(f"--slo-attainment {slo_attainment} must be in (0, 1]")
    if not 0 <= acceptance_spread <= 0.5 or math.isnan(acceptance_spread):
        raise InputError(f"--acceptance-spread {acceptance_spread} must be in 0..0.5")
    if not 0.05 <= burstiness <= 20 or math.isnan(burstiness):
        raise InputError(f"--burstiness {burstiness} must be in 0.05..20 (1 = Poisson)")
    if workload.lower() not in PRESETS:
        raise InputError(f"--workload {workload!r} is not one of: {', '.join(PRESETS)}")
    gammas = gamma_list(gamma)
    if gammas == "auto":
        raise InputError("--gamma auto: simulate takes a list of gammas (policy optimal searches "
                         "0..--gamma-max)")
    gpu_list = int_list(gpus, "--gpus")
    budgets = int_list(kv_budget, "--kv-budget")
    if len(gpu_list) != 1 or len(budgets) != 1:
        raise InputError("--gpus and --kv-budget take one value each in simulate")
    policies = parse_policies(policy, list(gammas), gamma_max)
    qps_list = load_list(qps, "--qps", False)
    conc_list = load_list(concurrency, "--concurrency", True)
    trace_req = read_trace(trace) if trace else None
    if trace_req is None and not qps_list and not conc_list and not max_qps_under_slo:
        raise InputError("give a load: --qps, --concurrency, --trace or --max-qps-under-slo")
    if trace_req is not None and (qps_list or conc_list):
        raise InputError("--trace sets the arrivals: drop --qps / --concurrency")
    if max_qps_under_slo and math.isinf(slo_ttft) and math.isinf(slo_tpot):
        raise InputError("--max-qps-under-slo needs --slo-ttft and/or --slo-tpot")
    p_dist = parse_length(prompt or workload, "--prompt", "prompt")
    o_dist = parse_length(output or workload, "--output", "output")
    out_path = check_out_file(out, (".json", ".yaml", ".yml", ".txt", ".sh")) if out else None
    html_path = check_out_file(html, (".html",), "--html") if html else None
    if html and not (qps_list or conc_list or trace_req is not None):
        raise InputError("--html needs load points (--qps, --concurrency or --trace)")

    query = build_query(model, draft, kv_budget, kv_method, hardware, gpus, "1", "1000",
                        ",".join(str(g) for g in gammas) if accept_len is None else str(gammas[0]),
                        acceptance, acceptance_table, False, budget_policy="cap", engine=engine,
                        weight_dtype=weight_dtype, kv_dtype=kv_dtype, accept_len=accept_len,
                        position_acceptance=None, draft_fraction=draft_fraction, verify_tokens=None,
                        draft_vocab=draft_vocab, expert_parallel=expert_parallel)
    if trace_req is not None:
        mean_ctx = float(trace_req.prompt.mean() + trace_req.output.mean() / 2)
    else:
        mean_ctx = p_dist.mean + o_dist.mean / 2
    smodel = serving_model(query, max(1, round(mean_ctx)))
    if smodel.pool_bytes(True) <= 0:
        raise InputError(f"the weights do not fit {hardware} x {gpu_list[0]} GPUs: no memory is left "
                         f"for the KV cache; allowed: more --gpus or a larger GPU")
    spec = SimSpec(smodel, p_dist, o_dist, num_requests,
                   SchedulerConfig(max_seqs=max_seqs, max_batched_tokens=max_batched_tokens),
                   burstiness=burstiness, spread=acceptance_spread, slo_ttft=slo_ttft, slo_tpot=slo_tpot,
                   replicas=replicas, trace=trace_req)
    points = []
    for pol in policies:
        if trace_req is not None:
            points.append(Point(pol, seed=seed))
        points += [Point(pol, qps=q, seed=seed) for q in qps_list]
        points += [Point(pol, concurrency=int(c), seed=seed) for c in conc_list]
    rows = []
    if points:
        from rich.progress import Progress

        with Progress(transient=True, console=_stderr_console()) as bar:
            task = bar.add_task("simulating", total=len(points))
            rows = run_points(spec, points, executor, jobs, scheduler,
                              progress=lambda k: bar.update(task, completed=k))
    df = pd.DataFrame(rows)
    best_name = None
    if max_qps_under_slo:
        caps = {p.name: bisect_qps(spec, p, seed, slo_attainment) for p in policies}
        if not rows:
            df = pd.DataFrame({"policy": list(caps)})
        df["max_qps_under_slo"] = df["policy"].map(caps)
        best_name = max(caps, key=caps.get)
    if rows and best_name is None:
        score = df.groupby("policy", sort=False)["goodput_req_s"].mean() \
            if not (math.isinf(slo_ttft) and math.isinf(slo_tpot)) \
            else df.groupby("policy", sort=False)["throughput_tok_s"].mean()
        best_name = str(score.idxmax())
    _emit(df, fmt, COLUMNS, _caption(smodel, spec), best_name)
    if html_path is not None:
        from magicdec_model.perfmodel.serving.page import write_serving_page

        path = write_serving_page(html_path, df, "magicdec-model simulate", _caption(smodel, spec))
        typer.echo(f"wrote {path}", err=True)
    if export is not None:
        best = next(p for p in policies if p.name == best_name)
        table = ()
        if best.kind == "optimal" and rows:
            counts: dict[str, int] = {}
            for c in df[df["policy"] == best.name]["gamma_by_batch"]:
                for k, v in c.items():
                    counts[k] = counts.get(k, 0) + v
            table = schedule_from_counts(counts)
        text = export_config(export, best, smodel.scenario.draft.kind, smodel.scenario.draft.name, table)
        atomic_write_text(out_path, text)
        typer.echo(f"wrote the {export} config of policy {best.name} to {out_path}", err=True)


def _stderr_console():
    from rich.console import Console

    return Console(file=sys.stderr)


def _caption(model, spec) -> str:
    scn = model.scenario
    return (f"{scn.target.name} on {scn.gpus} x {scn.hardware.name}, engine {scn.engine.name}, draft "
            f"{scn.draft.name} ({scn.draft.kv_method}), mean acceptance {model.rate:.3f} (spread "
            f"{spec.spread}), prompts {spec.prompt.text}, outputs {spec.output.text}, "
            f"{spec.num_requests} requests per point, {spec.replicas} replica(s); KV pool "
            f"{model.pool_bytes(True) / 2**30:.1f} GiB per GPU with the draft.")


def _emit(df, fmt: str, columns: tuple[str, ...], caption: str, best: str | None) -> None:
    import json

    cols = [c for c in columns if c in df.columns] + (["max_qps_under_slo"] if "max_qps_under_slo" in df
                                                      else [])
    if fmt == "json":
        sys.stdout.write(json.dumps(json.loads(df[cols].to_json(orient="records")), indent=1) + "\n")
        return
    if fmt == "csv":
        df[cols].to_csv(sys.stdout, index=False)
        return
    from .output import Column, console, say, show

    shown = [("policy", "policy", str), ("qps", "qps", "{:.3g}".format),
             ("concurrency", "conc", "{:.0f}".format),
             ("throughput_tok_s", "tok/s", "{:.0f}".format), ("goodput_req_s", "good req/s", "{:.3g}".format),
             ("ttft_p50_s", "TTFT p50 ms", lambda x: f"{x * 1e3:.3g}"),
             ("ttft_p99_s", "TTFT p99 ms", lambda x: f"{x * 1e3:.3g}"),
             ("tpot_p50_s", "TPOT p50 ms", lambda x: f"{x * 1e3:.3g}"),
             ("tpot_p99_s", "TPOT p99 ms", lambda x: f"{x * 1e3:.3g}"),
             ("mean_batch", "batch", "{:.1f}".format), ("mean_gamma", "gamma", "{:.2f}".format),
             ("tokens_per_step", "tok/step", "{:.2f}".format), ("preemptions", "preempt", "{:.0f}".format),
             ("slo_attainment", "SLO ok", "{:.2f}".format),
             ("max_qps_under_slo", "max qps @SLO", "{:.3g}".format)]
    shown = [s for s in shown if s[0] in df.columns]
    con = console()
    say(caption, con, "bold")
    rows = [[f(r[c]) if not (isinstance(r[c], float) and math.isnan(r[c])) else "" for c, _, f in shown]
            for _, r in df.iterrows()]
    show([Column(head, left=head == "policy") for _c, head, _f in shown], rows, con)
    if best:
        say(f"best policy: {best}", con)
