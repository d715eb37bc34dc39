"""Design-space report: figures present, traces non-empty, contour at speedup 1, OOM mask, tables, HTML."""

from __future__ import annotations

import numpy as np
import pytest
from plotly.offline import get_plotlyjs

from magicdec_model.perfmodel.errors import InputError
from magicdec_model.perfmodel.hardware import load_profile
from magicdec_model.perfmodel.report import _HOVER, build_report, write_report
from magicdec_model.perfmodel.strategy import Strategy, cross_strategies
from magicdec_model.perfmodel.sweep import Query

pytestmark = pytest.mark.unit

BATCH = [1, 2, 4, 8, 16, 32, 64, 128, 256]
SEQ = [1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000]
SELF = Strategy("self", "streamingllm", 512)
SMALL = Strategy("llama-3.2-1b", "streamingllm", 512)


@pytest.fixture(scope="module")
def rep():
    # kernel-only engine: the structural checks below rest on its speedups (e.g. SMALL > 1 everywhere)
    q = Query(model="llama-3.1-8b", batch=BATCH, seq_len=SEQ, gpus=[8], hardware="a100-80gb-sxm",
              engine="cuda-graph")
    return build_report(q, [SELF, SMALL])


def _trace(fig, name):
    found = [t for t in fig.data if t.name == name]
    assert found, f"no trace named {name!r} in {[t.name for t in fig.data]}"
    return found[0]


def _grid(rep, strategy, col):
    df = rep.predictions[rep.predictions["strategy"] == strategy.label]
    return df.sort_values(["batch", "seq_len"])[col].to_numpy().reshape(len(BATCH), len(SEQ))


def test_every_figure_present_with_non_empty_traces(rep):
    expected = {f"speedup:{SELF.label}", f"speedup:{SMALL.label}", "regimes", "kv_share",
                "step_ratios", "throughput_latency", "speedup_interval", "strategy_map", "acceptance"}
    assert set(rep.figures) == expected
    for key, fig in rep.figures.items():
        assert fig.data, key
        for t in fig.data:
            data = t.z if getattr(t, "z", None) is not None else t.y
            assert data is not None and np.size(data) > 0, (key, t.name)
        assert fig.layout.title.text, key


def test_speedup_heatmap_values_speedup_text_and_hover(rep):
    fig = rep.figures[f"speedup:{SELF.label}"]
    hm = _trace(fig, "speedup")
    fits = _grid(rep, SELF, "fits_memory").astype(bool)
    speed = _grid(rep, SELF, "speedup")
    z = np.asarray(hm.z, float)
    assert np.allclose(z[fits], speed[fits])
    assert np.isnan(z[~fits]).all()
    # the number in a cell is the speedup (issue 17: not gamma, which is in the hover)
    assert (np.asarray(hm.text)[fits] == np.char.mod("%.2f", speed[fits])).all()
    assert (np.asarray(hm.text)[~fits] == "").all()
    assert hm.texttemplate == "%{text}"
    assert "best gamma" in hm.hovertemplate
    cd = np.asarray(hm.customdata)
    assert cd.shape == (len(BATCH), len(SEQ), len(_HOVER) + 2)
    assert np.allclose(cd[..., 1], speed, rtol=1e-4)  # _HOVER[1] is speedup
    for _, label, _ in _HOVER:
        assert label in hm.hovertemplate


def test_contour_at_speedup_one_where_the_data_cross_it(rep):
    # self-speculation on 8xA100: < 1 at short context and small batch, > 1 at long context
    speed = _grid(rep, SELF, "speedup")
    assert speed.min() < 1 < speed.max()
    c = _trace(rep.figures[f"speedup:{SELF.label}"], "speedup = 1")
    assert c.type == "contour"
    assert c.contours.start == 1.0 and c.contours.end == 1.0
    assert np.allclose(np.asarray(c.z, float), np.asarray(_trace(
        rep.figures[f"speedup:{SELF.label}"], "speedup").z, float), equal_nan=True)


def test_no_contour_where_the_data_do_not_cross_one(rep):
    speed = _grid(rep, SMALL, "speedup")
    fits = _grid(rep, SMALL, "fits_memory").astype(bool)
    assert speed[fits].min() > 1.0  # precondition of this case
    names = [t.name for t in rep.figures[f"speedup:{SMALL.label}"].data]
    assert "speedup = 1" not in names


def test_out_of_memory_region_masked(rep):
    fits = _grid(rep, SELF, "fits_memory").astype(bool)
    assert (~fits).any() and fits.any()  # batch 256 x 128K tokens cannot fit on 8 x 80 GB
    oom = _trace(rep.figures[f"speedup:{SELF.label}"], "out of memory")
    z = np.asarray(oom.z, float)
    assert (z[~fits] == 1).all() and np.isnan(z[fits]).all()


def test_axes_have_units_and_log_scale(rep):
    lay = rep.figures[f"speedup:{SELF.label}"].layout
    assert "(tokens)" in lay.xaxis.title.text and lay.xaxis.type == "log"
    assert "batch" in lay.yaxis.title.text and lay.yaxis.type == "log"
    tl = rep.figures["throughput_latency"].layout
    assert "ms/token" in tl.xaxis.title.text and "tokens/s" in tl.yaxis.title.text


def test_linear_axis_when_values_span_less_than_a_decade():
    q = Query(model="llama-3.1-8b", batch=[16, 32], seq_len=[4000, 8000], gpus=[8])
    lay = build_report(q, [SELF]).figures[f"speedup:{SELF.label}"].layout
    assert lay.xaxis.type == "linear" and lay.yaxis.type == "linear"


def test_regime_diagram_matches_predictions_and_critical_curve(rep):
    fig = rep.figures["regimes"]
    heat = [t for t in fig.data if t.type == "heatmap"]
    assert len(heat) == 3 * 2
    target = np.asarray(heat[0].z, float)
    assert np.array_equal(target, (_grid(rep, SELF, "regime") == "compute").astype(float))
    assert np.array_equal(np.asarray(heat[1].z, float),
                          (_grid(rep, SELF, "regime_verify") == "compute").astype(float))
    crit = [t for t in fig.data if t.name == "critical sequence length S*(B)"]
    assert len(crit) == 6
    assert np.allclose(np.asarray(crit[0].x, float), _grid(rep, SELF, "critical_seq_len")[:, 0])
    # the critical sequence length falls as batch grows (MagicDec: KV dominates at large B x S)
    assert np.all(np.diff(np.asarray(crit[0].x, float)) < 0)


def test_kv_share_lines_rise_with_sequence_length(rep):
    fig = rep.figures["kv_share"]
    assert 2 <= len(fig.data) <= 8
    for t in fig.data:
        y = np.asarray(t.y, float)
        assert ((0 <= y) & (y <= 100)).all()
        assert np.all(np.diff(y) > 0), t.name


def test_draft_to_target_ratio_falls_with_batch_for_budget_self_draft(rep):
    # MagicDec (project page, Fig. 5): with a fixed draft KV budget T_D/T_T falls as batch grows
    fig = rep.figures["step_ratios"]
    draft = [t for t in fig.data if t.xaxis == "x2" and t.legendgroup == SELF.label]
    assert draft
    y = np.asarray(draft[-1].y, float)  # the longest sequence length drawn
    assert y[-1] < y[0]
    verify = [t for t in fig.data if t.xaxis == "x" and t.showlegend]
    assert verify and all(np.asarray(t.y, float).min() >= 0.99 for t in verify)


def test_throughput_latency_has_ar_and_sd_lines_of_fitting_points(rep):
    groups = [t.legendgroup for t in rep.figures["throughput_latency"].data]
    assert "AR" in groups and f"SD {SELF.label}" in groups
    for t in rep.figures["throughput_latency"].data:
        assert len(t.x) == len(t.y) > 0


def test_tables_inputs_with_sources_and_best_per_seq_len(rep):
    inputs = rep.tables["inputs"]
    hw = load_profile("a100-80gb-sxm")
    mem_row = inputs[inputs["input"] == "datasheet mem_bw"].iloc[0]
    assert mem_row["source"] == hw.sources["mem_bw"]
    acc = inputs[inputs["input"].str.startswith(f"acceptance, {SELF.label}")]
    assert acc["source"].str.contains("MagicDec project page").any()
    assert inputs["value"].str.contains("llama-3.1-8b").any()
    best = rep.tables["best"]
    assert list(best["seq_len"]) == SEQ
    df = rep.predictions[rep.predictions["fits_memory"]]
    for _, row in best.iterrows():
        assert row["speedup"] == pytest.approx(df[df["seq_len"] == row["seq_len"]]["speedup"].max(), abs=1e-3)


def test_html_is_self_contained_with_one_div_per_figure(rep, tmp_path):
    path = write_report(tmp_path / "r.html", rep)
    text = path.read_text(encoding="utf-8")
    assert "<script src=" not in text  # no CDN: opens offline
    assert get_plotlyjs()[:2000] in text  # plotly.js itself is embedded
    assert text.count('class="plotly-graph-div"') == len(rep.figures)
    assert 'id="table-best"' in text and 'id="table-inputs"' in text


def test_64x64_grid_three_drafts(tmp_path):
    # the speed target (under 5 s) is measured by benchmarks/bench_report.py, not here
    B = list(range(1, 65))
    S = [int(v) for v in np.geomspace(1000, 128000, 64).round()]
    q = Query(model="llama-2-7b-32k", batch=B, seq_len=S, gpus=[8])
    strategies = [SELF, Strategy("self", "snapkv", 256), Strategy("tinyllama-1.1b", "streamingllm", 512)]
    rep = build_report(q, strategies)
    path = write_report(tmp_path / "big.html", rep)
    assert len(rep.predictions) == 3 * 64 * 64
    assert path.stat().st_size > 0


def test_bad_report_inputs():
    q = Query(model="llama-3.1-8b", batch=[1], seq_len=[1000], gpus=[1, 8])
    with pytest.raises(InputError, match="one GPU count"):
        build_report(q, [SELF])
    q = Query(model="llama-3.1-8b", batch=[1], seq_len=[1000], gamma=[2, 3])
    with pytest.raises(InputError, match="gamma"):
        build_report(q, [SELF])
    with pytest.raises(InputError, match="no draft strategy"):
        cross_strategies(["self"], ["full"], [512])


def test_cross_strategies_full_ignores_budgets():
    got = cross_strategies(["self", "tinyllama-1.1b"], ["streamingllm", "full"], [256, 512])
    labels = [s.label for s in got]
    assert labels == ["self + streamingllm 256", "self + streamingllm 512",
                      "tinyllama-1.1b + streamingllm 256", "tinyllama-1.1b + streamingllm 512",
                      "tinyllama-1.1b + full KV"]


def test_interval_band_is_shaded_around_each_line():
    # the default engine declares uncertainties, so every band has a width
    q = Query(model="llama-3.1-8b", batch=[8, 64], seq_len=[4000, 32000], gpus=[8])
    fig = build_report(q, [SELF]).figures["speedup_interval"]
    bands = [t for t in fig.data if t.fill == "toself"]
    lines = [t for t in fig.data if t.fill != "toself"]
    assert len(bands) == len(lines) == 2
    for band, line in zip(bands, lines, strict=True):
        y = np.asarray(band.y, float)
        n = len(line.y)
        hi, lo = y[:n], y[n:][::-1]
        mid = np.asarray(line.y, float)
        assert np.all(lo < mid) and np.all(mid < hi)


# ---------------------------------------------------------------- issue 17: a report people can read


def test_summary_names_the_best_configuration_that_fits_and_where_sd_pays(rep):
    from magicdec_model.perfmodel.advise import WORTH_IT
    df = rep.predictions
    fit = df[df["fits_memory"]]
    best = fit.loc[fit["speedup"].idxmax()]
    first = rep.summary[0]
    assert f"{best['strategy']} at batch {best['batch']}," in first
    assert f"speedup {best['speedup']:.2f}x" in first
    # a point that does not fit is never the headline, however fast
    unfit = df[~df["fits_memory"]]
    assert unfit["speedup"].max() > best["speedup"]  # the 8xA100 grid has faster points that do not fit
    per_point = fit.groupby(["batch", "seq_len"])["speedup"].max()
    pays = int((per_point >= WORTH_IT).sum())
    assert f"at {pays} of the {len(per_point)} points that fit" in rep.summary[1]
    missing = len(BATCH) * len(SEQ) - len(per_point)
    assert any(line.startswith(f"{missing} of the {len(BATCH) * len(SEQ)} points") for line in rep.summary)
    assert '<ul id="summary">' in rep.to_html()


def test_axes_are_labelled_with_round_token_counts(rep):
    fig = rep.figures[f"speedup:{SELF.label}"]
    assert list(fig.layout.xaxis.ticktext) == ["1k", "2k", "4k", "8k", "16k", "32k", "64k", "128k"]
    assert list(fig.layout.xaxis.tickvals) == SEQ
    assert list(fig.layout.yaxis.ticktext) == [str(b) for b in BATCH]


def test_title_names_the_engine_and_where_acceptance_comes_from(rep):
    assert "engine cuda-graph" in rep.title
    # budget 512 at the published lengths: measured; other budgets and lengths: the acceptance model
    assert "acceptance: the acceptance model, measured" in rep.title and "default 0.8" in rep.title


def test_inputs_table_values_carry_units(rep):
    table = rep.tables["inputs"].set_index("input")["value"]
    assert table["datasheet mem_bw"] == "2.039 TB/s"  # A100 80GB SXM: 2,039 GB/s (NVIDIA datasheet)
    assert table["datasheet mem_capacity"] == "80 GiB"
    assert table["efficiency gemm_bw"].endswith("of peak")


def test_each_colour_has_one_meaning():
    from magicdec_model.perfmodel.report import figures as f
    regime = {f._MEM_COLOR, f._COMP_COLOR}
    kinds = set(f._MAP_COLORS[1:])
    speed = {c for _, c in f._diverging((0.5, 2.0))}
    assert f._NO_GAIN_COLOR in speed  # white: speedup 1, no gain
    speed.discard(f._NO_GAIN_COLOR)
    special = {f._OOM_COLOR, f._NO_GAIN_COLOR}
    assert len(regime | kinds | speed | special) == len(regime) + len(kinds) + len(speed) + len(special)
    assert f._MAP_COLORS[0] == f._NO_GAIN_COLOR  # 'use AR' is white, as speedup 1 is in the heatmaps


def test_summary_says_when_sd_never_pays_and_when_nothing_fits():
    # acceptance 0: every draft token rejected, Omega = 1 token per step, so SD is slower everywhere
    q = Query(model="llama-3.1-8b", batch=[1, 64], seq_len=[8000, 32000], gpus=[8], acceptance=0.0)
    rep0 = build_report(q, [SELF])
    assert "SD does not pay anywhere on this grid" in rep0.summary[1]
    assert "acceptance: given on the command line" in rep0.title
    # LLaMA-3.1-70B: 141 GB of bf16 weights (models.md) > 90% of one 40 GB A100
    q = Query(model="llama-3.1-70b", batch=[1, 8], seq_len=[1000, 8000], gpus=[1], hardware="a100-40gb-sxm")
    rep1 = build_report(q, [SELF])
    assert rep1.summary[0].startswith("No point of the grid fits in GPU memory")


def test_legends_fit_short_entries_grouped_under_the_plot(rep):
    for key in ("step_ratios", "throughput_latency", "speedup_interval"):
        fig = rep.figures[key]
        assert fig.layout.legend.orientation == "h" and fig.layout.legend.y < 0, key  # below the plot
        shown = [t for t in fig.data if t.showlegend is not False]
        assert shown and all(len(t.name) <= 12 for t in shown), (key, [t.name for t in shown])
        assert all(t.legendgrouptitle.text for t in shown), key  # the strategy names the group


def test_acceptance_figure_and_best_budget_stars():
    q = Query(model="llama-3.1-8b", batch=[8, 64], seq_len=[4000, 64000], gpus=[8], hardware="a100-80gb-sxm")
    strategies = cross_strategies(["self"], ["streamingllm"], [128, 512, 4096])
    rep = build_report(q, strategies)
    fig = rep.figures["acceptance"]
    # the published budget-512 curve (magicdec-paper.md §3.1) as markers, the model as lines
    pts = _trace(fig, "measured, streamingllm")
    assert sorted(np.asarray(pts.y, float).round(2).tolist()) == [0.79, 0.79, 0.81, 0.82, 0.83, 0.84]
    lines = [t for t in fig.data if t.mode == "lines"]
    assert lines and all(np.all((np.asarray(t.y) >= 0) & (np.asarray(t.y) <= 1)) for t in lines)
    # every (batch, seq_len) cell has exactly one best budget, starred on that budget's heatmap
    stars = np.zeros((2, 2), int)
    for s in strategies:
        text = np.asarray(_trace(rep.figures[f"speedup:{s.label}"], "speedup").text, dtype=str)
        stars += np.char.endswith(text, "★").astype(int)
    assert (stars == 1).all(), stars
    sp = {s.kv_budget: _grid_of(rep, s) for s in strategies}
    best = np.argmax(np.stack([sp[b] for b in (128, 512, 4096)]), axis=0)
    text = np.asarray(_trace(rep.figures[f"speedup:{strategies[2].label}"], "speedup").text, dtype=str)
    assert np.array_equal(np.char.endswith(text, "★"), best == 2)


def _grid_of(rep, strategy):
    df = rep.predictions[rep.predictions["strategy"] == strategy.label]
    return df.sort_values(["batch", "seq_len"])["speedup"].to_numpy().reshape(2, 2)


def test_no_acceptance_figure_without_a_self_draft_or_with_a_given_acceptance():
    q = Query(model="llama-3.1-8b", batch=[8, 64], seq_len=[4000, 64000], gpus=[8], hardware="a100-80gb-sxm")
    assert "acceptance" not in build_report(q, [SMALL]).figures
    given = Query(**{**q.__dict__, "acceptance": 0.7})
    assert "acceptance" not in build_report(given, [SELF]).figures
