"""Acceptance of a sparse-KV self-draft as a fitted model of its KV budget and the context length.

Form (docs/acceptance.md, "The acceptance model").  A self-draft reads the same weights as the
target over a KV cache of ``B`` tokens out of the ``S`` in context; its greedy token differs from
the target's only where the target's prediction needs information that the draft dropped.  Let
``G(d) = (1 + d / d0)^(-p)`` be the share of predictions that need information more than ``d``
tokens back (a Lomax survival function: a power-law tail of exponent ``p`` past a scale ``d0``
tokens), and ``kappa`` the share of those that the draft then gets wrong.  Information beyond the
context does not exist for either model, so the disagreement is ``kappa (G(B) - G(S))``:

    alpha(method, B, S) = 1 - kappa * max(0, G(m B) - G(m S))

with ``m`` the method's distance scale (StreamingLLM: 1, by definition; SnapKV: fitted, shared by
every model, ``m < 1`` where SnapKV's choice of tokens does better than a recent window).  The
limits hold by construction: ``0 <= alpha <= 1`` (``0 <= kappa <= 1`` and ``0 < G <= 1``); alpha
does not decrease with B (G decreases); ``alpha = 1`` exactly when ``B >= S`` (the draft is the
target); at fixed B it decreases with S towards the floor ``1 - kappa G(m B)``.  Per-position
rates follow the i.i.d. convention of Eq. 1 (:mod:`acceptance_conventions`).

Parameters: per measured (model, draft) group ``theta_g = (logit kappa, log d0, log p)``; per
method other than StreamingLLM ``log m``; two pooled means ``(mu_d0, mu_p)`` of the groups' log d0
and log p.  They are fitted (``scipy.optimize.least_squares``) to every self-draft row of the
built-in table (published: MagicDec's budget-512 curve) and of the CSVs in
``data/acceptance_measured/`` at temperature 0, each residual ``(alpha_model - alpha) / sigma``
with ``sigma`` the row's standard error (a measured row: its 95 % interval / (2 x 1.96); a
published row given to two decimals: the rounding's 0.005 / sqrt(3)), and regularised by
Gaussian priors (``logit kappa ~ N(0, 2^2)``; ``log d0, log p ~ N(mu, 1)`` per group, so that a
group measured at one budget borrows the budget shape of the others).  Each group's sigmas are
then scaled by sqrt(chi2 / dof) of its rows where that exceeds 1 (scatter the errors do not
explain) and the fit repeated; the parameter covariance is the inverse of J'J at the optimum.
A prediction's standard error adds, by the delta method, the parameter covariance and the
group's residual scatter relative to the disagreement (so it vanishes where alpha = 1), at most
sqrt(alpha (1 - alpha)), the largest spread of a quantity in [0, 1] with that mean.

The fitted parameters ship as data (``data/acceptance_model.toml``, with the data's hashes and
the cross-validated errors); :func:`fit_model` reproduces them from the shipped tables
(``magicdec-model acceptance fit``).  A (model, self) pair without measurements uses the group
named ``fallback`` in that file, and says so.  Drafts other than ``self`` are not modelled.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import least_squares
from scipy.special import expit

from .acceptance import COLUMNS, _validate
from .errors import InputError
from .inputs import parse_toml, read_csv

#: standard error of a published value printed to two decimals: its rounding, 0.005 / sqrt(3)
PUBLISHED_SD = 0.005 / np.sqrt(3.0)
#: smallest standard error given to a measured row (a window-level interval can be ~0)
MIN_SD = 0.002
#: z of a measured table's 95 % interval (``acceptance_lo``, ``acceptance_hi``)
Z95 = 1.959963984540054
#: the KV method whose distance scale is 1 by definition
REFERENCE_METHOD = "streamingllm"
#: prior sd of each group's logit kappa (centre 0) and of log d0, log p around the pooled means
PRIOR_LOGIT_KAPPA_SD = 2.0
PRIOR_GROUP_SD = 1.0
MEASURED_DIR = "data/acceptance_measured"
#: the name the built-in published rows go by in the fit's ``table`` column
PUBLISHED_TABLE = "acceptance.csv (published)"
MODEL_FILE = "data/acceptance_model.toml"
_THETA = ("logit_kappa", "log_d0", "log_p")


def survival(d: np.ndarray, d0: float, p: float) -> np.ndarray:
    """G(d) = (1 + d/d0)^(-p): share of predictions needing information beyond ``d`` tokens."""
    return (1.0 + np.asarray(d, dtype=float) / d0) ** (-p)


def alpha_form(budget: np.ndarray, seq_len: np.ndarray, kappa: float, d0: float, p: float,
               scale: float = 1.0) -> np.ndarray:
    """alpha = 1 - kappa max(0, G(m B) - G(m S)) (module docstring); 1 exactly where B >= S."""
    B = np.asarray(budget, dtype=float)
    S = np.asarray(seq_len, dtype=float)
    gap = np.maximum(survival(scale * B, d0, p) - survival(scale * S, d0, p), 0.0)
    return np.where(B >= S, 1.0, 1.0 - kappa * gap)


# ------------------------------------------------------------------------------------- data
def row_sigma(rows: pd.DataFrame) -> np.ndarray:
    """Standard error of each row's acceptance: its 95 % interval / (2 x 1.96) where the table
    has ``acceptance_lo`` and ``acceptance_hi`` (at least :data:`MIN_SD`), else the rounding of a
    two-decimal figure (:data:`PUBLISHED_SD`)."""
    if not {"acceptance_lo", "acceptance_hi"} <= set(rows.columns):
        return np.full(len(rows), PUBLISHED_SD)
    lo = pd.to_numeric(rows["acceptance_lo"], errors="coerce").to_numpy(float)
    hi = pd.to_numeric(rows["acceptance_hi"], errors="coerce").to_numpy(float)
    sd = (hi - lo) / (2 * Z95)
    return np.maximum(np.where(np.isfinite(sd), sd, PUBLISHED_SD), MIN_SD)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _package_path(rel: str) -> Path:
    return Path(str(resources.files("magicdec_model.perfmodel").joinpath(rel)))


def measured_files() -> list[Path]:
    """The shipped measured tables (``data/acceptance_measured/*.csv``), sorted."""
    folder = _package_path(MEASURED_DIR)
    return sorted(folder.glob("*.csv")) if folder.is_dir() else []


def fit_rows(paths: Sequence[str | Path] | None = None, published: bool = True) -> pd.DataFrame:
    """Rows the model is fitted to: self-draft, sparse-KV, greedy, budget below the context.

    ``paths``: measured tables (default: :func:`measured_files`); ``published``: add the built-in
    table's self-draft rows.  Columns: model, draft, method, budget, seq_len, acceptance, sigma,
    table (file name or ``published``), source.
    """
    frames = []
    if published:
        from .acceptance import builtin_table

        pub = builtin_table()
        pub = pub.assign(sigma=PUBLISHED_SD, table=PUBLISHED_TABLE)
        frames.append(pub)
    for p in measured_files() if paths is None else [Path(x) for x in paths]:
        raw = read_csv(p, "acceptance table")
        df = _validate(raw, str(p))
        df["sigma"] = row_sigma(raw)
        temp = pd.to_numeric(raw["temperature"], errors="coerce").to_numpy(float) \
            if "temperature" in raw.columns else np.zeros(len(df))
        df = df[np.nan_to_num(temp, nan=0.0) == 0.0]
        frames.append(df.assign(table=p.name))
    if not frames:
        return pd.DataFrame(columns=[*COLUMNS, "sigma", "table"])
    rows = pd.concat(frames, ignore_index=True)
    keep = (rows["draft"] == "self") & (rows["method"] != "full") & (rows["budget"] < rows["seq_len"])
    return rows[keep].reset_index(drop=True)


# ------------------------------------------------------------------------------------- model
@dataclass
class AcceptanceModel:
    """Fitted parameters, their covariance and what they were fitted to (module docstring)."""

    names: list[str]
    values: np.ndarray
    covariance: np.ndarray
    groups: list[str]  # "model/draft"
    methods: list[str]  # methods with a fitted scale (besides the reference)
    residual_rel: dict[str, float]  # group -> RMS of (alpha - fit) / (1 - fit)
    fallback: str | None
    info: dict[str, Any] = field(default_factory=dict)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def group_for(self, model: str, draft: str) -> tuple[str | None, bool]:
        """The group that predicts (model, draft), and whether it is that pair's own."""
        key = f"{model}/{draft}"
        if key in self.groups:
            return key, True
        if draft == "self" and self.fallback in self.groups:
            return self.fallback, False
        return None, False

    def covers(self, model: str, draft: str, method: str) -> bool:
        """Whether the model predicts this pair and method (self-drafts with a sparse KV)."""
        return (draft == "self" and method != "full"
                and self.group_for(model, draft)[0] is not None)

    def _idx(self, group: str, method: str) -> list[int]:
        idx = [self.index(f"{group}:{t}") for t in _THETA]
        if method != REFERENCE_METHOD and method in self.methods:
            idx.append(self.index(f"method:{method}:log_scale"))
        return idx

    def _alpha(self, vec: np.ndarray, group: str, method: str, B: np.ndarray, S: np.ndarray) -> np.ndarray:
        lk, ld, lp = (vec[self.index(f"{group}:{t}")] for t in _THETA)
        scale = 1.0
        if method != REFERENCE_METHOD and method in self.methods:
            scale = float(np.exp(vec[self.index(f"method:{method}:log_scale")]))
        return alpha_form(B, S, float(expit(lk)), float(np.exp(ld)), float(np.exp(lp)), scale)

    def predict(self, model: str, draft: str, method: str, budget: Any, seq_len: Any
                ) -> tuple[np.ndarray, np.ndarray, str]:
        """alpha, its standard error and a source note at broadcast ``budget`` x ``seq_len`` (tokens).

        Raises :class:`InputError` for a pair the model does not cover (:meth:`covers`).
        """
        if not self.covers(model, draft, method):
            raise InputError(f"the acceptance model covers self-drafts with a sparse KV, not {model} "
                             f"drafted by {draft} with {method}")
        group, own = self.group_for(model, draft)
        assert group is not None
        own_method = self.info.get("method_tables", {}).get(method) == \
            self.info.get("tables", {}).get(group)
        B, S = np.broadcast_arrays(np.asarray(budget, float), np.asarray(seq_len, float))
        a = self._alpha(self.values, group, method, B, S)
        idx = self._idx(group, method)
        grads = []
        for i in idx:
            h = 1e-6
            v = self.values.copy()
            v[i] += h
            grads.append((self._alpha(v, group, method, B, S) - a) / h)
        J = np.stack(grads, axis=-1)
        C = self.covariance[np.ix_(idx, idx)]
        var = np.einsum("...i,ij,...j->...", J, C, J)
        var = var + (self.residual_rel.get(group, 0.0) * (1.0 - a)) ** 2
        # a quantity in [0, 1] with mean a has sd at most sqrt(a (1 - a)) (a poorly identified fit
        # can give more by the delta method)
        sd = np.minimum(np.sqrt(np.maximum(var, 0.0)), np.sqrt(a * (1.0 - a)))
        origin = self.info.get("origin", MODEL_FILE)
        note = f"acceptance model ({origin}, fitted to {self.info.get('tables', {}).get(group, group)})"
        if not own:
            note += f": {group}'s parameters, no measurement of {model}"
        if method != REFERENCE_METHOD and method not in self.methods:
            note += f"; {method} taken as {REFERENCE_METHOD} (no {method} measurement)"
        elif method != REFERENCE_METHOD and not own_method:
            note += f"; {method}'s distance scale fitted to {self.info['method_tables'][method]}"
        return a, sd, note


# --------------------------------------------------------------------------------------- fit
@dataclass
class FitResult:
    """A fitted model, the rows it was fitted to (with the fit) and cross-validated errors."""

    model: AcceptanceModel
    rows: pd.DataFrame
    cv: pd.DataFrame = field(default_factory=pd.DataFrame)


def _layout(rows: pd.DataFrame) -> tuple[list[str], list[str], list[str]]:
    groups = list(dict.fromkeys(rows["model"] + "/" + rows["draft"]))
    methods = sorted(m for m in rows["method"].unique() if m != REFERENCE_METHOD)
    names = [f"{g}:{t}" for g in groups for t in _THETA]
    names += [f"method:{m}:log_scale" for m in methods]
    names += ["pooled:log_d0", "pooled:log_p"]
    return groups, methods, names


def _solve(rows: pd.DataFrame, sigma: np.ndarray, groups: list[str], methods: list[str],
           names: list[str], x0: np.ndarray | None) -> Any:
    gi = (rows["model"] + "/" + rows["draft"]).map({g: i for i, g in enumerate(groups)}).to_numpy()
    mi = rows["method"].map({m: i for i, m in enumerate(methods)}).fillna(-1).to_numpy(int)
    B = rows["budget"].to_numpy(float)
    S = rows["seq_len"].to_numpy(float)
    y = rows["acceptance"].to_numpy(float)
    nG, nM = len(groups), len(methods)

    def residuals(x: np.ndarray) -> np.ndarray:
        th = x[: 3 * nG].reshape(nG, 3)
        ls = x[3 * nG: 3 * nG + nM]
        mu = x[3 * nG + nM:]
        kappa, d0, p = expit(th[gi, 0]), np.exp(th[gi, 1]), np.exp(th[gi, 2])
        scale = np.where(mi >= 0, np.exp(ls[np.maximum(mi, 0)] if nM else 0.0), 1.0)
        fit = alpha_form(B, S, kappa, d0, p, scale)
        prior = [th[:, 0] / PRIOR_LOGIT_KAPPA_SD, (th[:, 1] - mu[0]) / PRIOR_GROUP_SD,
                 (th[:, 2] - mu[1]) / PRIOR_GROUP_SD]
        return np.concatenate([(fit - y) / sigma, *prior])

    if x0 is None:
        x0 = np.concatenate([np.tile([0.0, np.log(64.0), np.log(0.5)], nG), np.zeros(nM),
                             [np.log(64.0), np.log(0.5)]])
    return least_squares(residuals, x0, method="trf", x_scale=1.0, xtol=1e-12, ftol=1e-12, gtol=1e-12,
                         max_nfev=2000)


def fit_model(rows: pd.DataFrame, fallback: str | None = "llama-3.1-8b/self",
              tables: dict[str, str] | None = None) -> FitResult:
    """Fit the model to ``rows`` (:func:`fit_rows`); see the module docstring for the method."""
    if rows.empty:
        raise InputError("no acceptance rows to fit (self-drafts with a sparse KV, greedy, budget < "
                         "seq_len)")
    rows = rows.reset_index(drop=True)
    groups, methods, names = _layout(rows)
    sigma = rows["sigma"].to_numpy(float)
    res = _solve(rows, sigma, groups, methods, names, None)
    key = (rows["model"] + "/" + rows["draft"]).to_numpy()
    n = len(rows)
    # per-group inflation: scatter the stated errors do not explain
    infl = np.ones(n)
    for g in groups:
        sel = key == g
        r = res.fun[:n][sel]
        dof = max(int(sel.sum()) - 3, 1)
        infl[sel] = np.sqrt(max(1.0, float(r @ r) / dof))
    res = _solve(rows, sigma * infl, groups, methods, names, res.x)
    J = res.jac
    cov = np.linalg.pinv(J.T @ J)
    model = AcceptanceModel(names, res.x.copy(), cov, groups, methods, {}, fallback if fallback in groups
                            else (groups[0] if groups else None))
    fitted = np.empty(n)
    for (g, m), idx in rows.groupby([pd.Series(key), rows["method"]]).groups.items():
        sub = rows.loc[idx]
        fitted[idx] = model._alpha(model.values, g, m, sub["budget"].to_numpy(float),
                                   sub["seq_len"].to_numpy(float))
    rows = rows.assign(fit=fitted, sigma_used=sigma * infl)
    for g in groups:
        sub = rows[key == g]
        rel = (sub["acceptance"] - sub["fit"]) / np.maximum(1.0 - sub["fit"], 1e-9)
        model.residual_rel[g] = float(np.sqrt(np.mean(rel ** 2)))
    model.info["tables"] = tables or {g: ", ".join(dict.fromkeys(rows.loc[key == g, "table"]))
                                      for g in groups}
    model.info["method_tables"] = {m: ", ".join(dict.fromkeys(rows.loc[rows["method"] == m, "table"]))
                                   for m in methods}
    return FitResult(model, rows)


def cross_validate(rows: pd.DataFrame, fallback: str | None = "llama-3.1-8b/self") -> pd.DataFrame:
    """Held-out errors: each (group, method, budget) left out in turn (a group measured at one
    budget: each seq_len instead) and each table left out in turn, predicted by the refit.

    One row per held-out point: scheme, group, method, budget, seq_len, acceptance, predicted,
    error (predicted - measured).
    """
    rows = rows.reset_index(drop=True)
    key = rows["model"] + "/" + rows["draft"]
    out = []

    def held(scheme: str, test: np.ndarray) -> None:
        train = rows[~test]
        if train.empty:
            return
        try:
            m = fit_model(train, fallback).model
        except InputError:
            return
        for i in np.flatnonzero(test):
            r = rows.iloc[i]
            if not m.covers(r["model"], r["draft"], r["method"]):
                continue
            a, _, _ = m.predict(r["model"], r["draft"], r["method"], r["budget"], r["seq_len"])
            out.append({"scheme": scheme, "group": key.iloc[i], "method": r["method"],
                        "budget": int(r["budget"]), "seq_len": int(r["seq_len"]),
                        "acceptance": float(r["acceptance"]), "sigma": float(r["sigma"]),
                        "predicted": float(a), "error": float(a) - float(r["acceptance"])})

    for (g, meth), sub in rows.groupby([key, rows["method"]]):
        budgets = sub["budget"].unique()
        if len(budgets) >= 2:
            for b in budgets:
                held("leave-one-budget-out", ((key == g) & (rows["method"] == meth)
                                              & (rows["budget"] == b)).to_numpy())
        else:
            for s in sub["seq_len"].unique():
                held("leave-one-seq_len-out", ((key == g) & (rows["method"] == meth)
                                               & (rows["seq_len"] == s)).to_numpy())
    if rows["table"].nunique() > 1:
        for t in rows["table"].unique():
            held("leave-one-table-out", (rows["table"] == t).to_numpy())
    return pd.DataFrame(out, columns=["scheme", "group", "method", "budget", "seq_len", "acceptance",
                                      "sigma", "predicted", "error"])


def cv_summary(cv: pd.DataFrame) -> pd.DataFrame:
    """RMSE and largest absolute error per (scheme, group, method), and the RMS standard error of
    the held-out measurements themselves (``noise_rms``: an RMSE near it is as good as the data
    allow)."""
    cols = ["scheme", "group", "method", "points", "rmse", "max_abs", "noise_rms"]
    if cv.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for (scheme, group, method), part in cv.groupby(["scheme", "group", "method"], sort=False):
        e = part["error"].to_numpy(float)
        rows.append((scheme, group, method, len(part), float(np.sqrt(np.mean(e ** 2))),
                     float(np.max(np.abs(e))), float(np.sqrt(np.mean(part["sigma"].to_numpy(float) ** 2)))))
    return pd.DataFrame(rows, columns=cols)


# ------------------------------------------------------------------------------ TOML in/out
def data_hashes(paths: Sequence[Path] | None = None) -> dict[str, str]:
    """SHA-256 of the built-in table and each measured table (by file name)."""
    out = {"acceptance.csv": _sha256(_package_path("data/acceptance.csv"))}
    for p in measured_files() if paths is None else paths:
        out[f"acceptance_measured/{Path(p).name}"] = _sha256(Path(p))
    return out


def model_to_toml(result: FitResult, hashes: dict[str, str]) -> str:
    """The fitted model as TOML text that :func:`load_model` reads back."""
    from .hardware import toml_key, toml_value

    m = result.model
    lines = [
        "# Acceptance model of sparse-KV self-drafts (perfmodel/acceptance_model.py, docs/acceptance.md).",
        "# Written by 'magicdec-model acceptance fit'; a test refits it from the data below.",
        "form = " + toml_value("alpha = 1 - kappa * max(0, G(m B) - G(m S)), G(d) = (1 + d/d0)^(-p)"),
        f"fallback = {toml_value(m.fallback or '')}",
        f"names = {toml_value(m.names)}",
        f"values = {toml_value([float(v) for v in m.values])}",
        "covariance = [",
        *(f"  {toml_value([float(c) for c in row])}," for row in m.covariance),
        "]",
        "",
        "[data_sha256]",
        *(f"{toml_key(k)} = {toml_value(v)}" for k, v in hashes.items()),
        "",
        "[residual_rel]",
        *(f"{toml_key(g)} = {toml_value(v)}" for g, v in m.residual_rel.items()),
        "",
        "[tables]",
        *(f"{toml_key(g)} = {toml_value(v)}" for g, v in m.info.get("tables", {}).items()),
        "",
        "[method_tables]",
        *(f"{toml_key(k)} = {toml_value(v)}" for k, v in m.info.get("method_tables", {}).items()),
    ]
    for g in m.groups:
        i = [m.index(f"{g}:{t}") for t in _THETA]
        lk, ld, lp = (float(m.values[j]) for j in i)
        lines += ["", f"[groups.{toml_key(g)}]", f"kappa = {toml_value(float(expit(lk)))}",
                  f"d0_tokens = {toml_value(float(np.exp(ld)))}", f"p = {toml_value(float(np.exp(lp)))}",
                  f"points = {int(((result.rows['model'] + '/' + result.rows['draft']) == g).sum())}"]
    for meth in m.methods:
        j = m.index(f"method:{meth}:log_scale")
        lines += ["", f"[methods.{toml_key(meth)}]", f"scale = {toml_value(float(np.exp(m.values[j])))}",
                  f"log_scale_sd = {toml_value(float(np.sqrt(m.covariance[j, j])))}"]
    summary = cv_summary(result.cv)
    for _, r in summary.iterrows():
        lines += ["", "[[cross_validation]]", f"scheme = {toml_value(r['scheme'])}",
                  f"group = {toml_value(r['group'])}", f"method = {toml_value(r['method'])}",
                  f"points = {int(r['points'])}", f"rmse = {toml_value(float(r['rmse']))}",
                  f"max_abs = {toml_value(float(r['max_abs']))}",
                  f"noise_rms = {toml_value(float(r['noise_rms']))}"]
    return "\n".join(lines) + "\n"


def model_from_toml(text: str, what: str = "acceptance model") -> AcceptanceModel:
    """An :class:`AcceptanceModel` from :func:`model_to_toml`'s text."""
    doc = parse_toml(text, what)
    names = list(doc["names"])
    groups = list(dict.fromkeys(n.rsplit(":", 1)[0] for n in names
                                if n.endswith(":logit_kappa")))
    methods = [n.split(":")[1] for n in names if n.startswith("method:")]
    model = AcceptanceModel(names, np.asarray(doc["values"], float), np.asarray(doc["covariance"], float),
                            groups, methods, {k: float(v) for k, v in doc.get("residual_rel", {}).items()},
                            doc.get("fallback") or None)
    model.info = {"tables": dict(doc.get("tables", {})), "data_sha256": dict(doc.get("data_sha256", {})),
                  "method_tables": dict(doc.get("method_tables", {})),
                  "cross_validation": list(doc.get("cross_validation", [])),
                  "groups": dict(doc.get("groups", {})), "methods": dict(doc.get("methods", {}))}
    return model


@cache
def shipped_model() -> AcceptanceModel | None:
    """The shipped fitted model (``data/acceptance_model.toml``), or None if absent."""
    path = _package_path(MODEL_FILE)
    if not path.is_file():
        return None
    return model_from_toml(path.read_text(encoding="utf-8"), str(path))


def model_for_table(path: str | Path | None) -> AcceptanceModel | None:
    """The model to predict with under ``--acceptance-table path``: the shipped one, or, where the
    table has self-draft rows the model can use, the model refitted to the shipped data and those
    rows (which replace the shipped rows of the same model, draft, method and budget)."""
    if path is None:
        return shipped_model()
    user = fit_rows([path], published=False)
    if user.empty:
        return shipped_model()
    return _refit_with(hashlib.sha256(Path(path).read_bytes()).hexdigest(), str(path))


@cache
def _refit_with(digest: str, path: str) -> AcceptanceModel:
    user = fit_rows([path], published=False)
    base = fit_rows()
    keys = ["model", "draft", "method", "budget"]
    mine = pd.MultiIndex.from_frame(user[keys])
    base = base[~pd.MultiIndex.from_frame(base[keys]).isin(mine)]
    model = fit_model(pd.concat([user, base], ignore_index=True)).model
    model.info["origin"] = f"refitted with your table {Path(path).name}"
    return model


# ------------------------------------------------------------------- lookup with the model
@dataclass
class Estimate:
    """Acceptance per point, its standard error, where it came from, and on what it rests
    (``measured``, ``model`` or ``default``: a default, or a measurement at another budget or
    outside its measured contexts, clamped)."""

    value: np.ndarray
    sd: np.ndarray
    source: np.ndarray  # object array of str
    basis: np.ndarray  # object array of str


def estimate(table: pd.DataFrame, model: str, draft: str, method: str, budget: int,
             seq_len: np.ndarray, fitted: AcceptanceModel | None = None) -> Estimate:
    """Acceptance of (model, draft, method, budget) at each ``seq_len`` (tokens).

    1. rows of ``table`` (:func:`acceptance.load_table`; a user's rows replace the built-in ones
       of the same key) measured at this very budget, for seq_len inside their measured range:
       measured, or interpolated in log(seq_len) (:func:`acceptance.lookup`);
    2. else the acceptance model (``fitted``, default :func:`shipped_model`) where it covers the
       pair (self-drafts with a sparse KV), named as the source;
    3. else :func:`acceptance.lookup`'s rule (another budget's measurement, clamped, or the
       default), with no standard error.
    """
    from .acceptance import lookup, preferred_first

    S = np.asarray(seq_len, dtype=float)
    fitted = shipped_model() if fitted is None else fitted
    value = np.full(S.shape, np.nan)
    sd = np.zeros(S.shape)
    source = np.full(S.shape, "", dtype=object)
    basis = np.full(S.shape, "", dtype=object)
    rows = table[(table["model"] == model) & (table["draft"] == draft) & (table["method"] == method)
                 & (table["budget"] == budget)]
    if "origin" in rows.columns and (rows["origin"] == "user").any():
        rows = rows[rows["origin"] == "user"]
    if not rows.empty:
        rows = preferred_first(rows).drop_duplicates("seq_len").sort_values("seq_len")
        inside = (S >= rows["seq_len"].min()) & (S <= rows["seq_len"].max())
        if inside.any():
            found = lookup(rows, model, draft, method, budget, S[inside])
            value[inside] = found.value
            source[inside] = found.source
            sig = row_sigma(rows)
            sd[inside] = np.interp(np.log(S[inside]), np.log(rows["seq_len"].to_numpy(float)), sig)
            basis[inside] = "measured"
    rest = np.isnan(value)
    if rest.any() and fitted is not None and fitted.covers(model, draft, method):
        a, s, note = fitted.predict(model, draft, method, budget, S[rest])
        value[rest], sd[rest] = a, s
        source[rest] = [note if b < x else "budget >= seq_len: the draft is the target, acceptance 1"
                        for b, x in zip(np.full(a.shape, float(budget)), S[rest], strict=True)]
        basis[rest] = "model"
        rest = np.isnan(value)
    if rest.any():
        found = lookup(table, model, draft, method, budget, S[rest])
        value[rest] = found.value
        source[rest] = found.source
        basis[rest] = ["measured" if str(t).startswith(("measured", "interpolated")) else "default"
                       for t in found.source]
    return Estimate(value, sd, source, basis)


def acceptance(method: str, budget: Any, context: Any, position: int | None = None,
               model: str = "llama-3.1-8b", draft: str = "self") -> np.ndarray:
    """The shipped model's acceptance of a self-draft (``method``, ``budget`` tokens) at ``context``
    tokens: the i.i.d. per-token rate alpha, or with ``position`` i (1-based) the unconditional rate
    P(draft token i accepted) = alpha^i of that convention (:mod:`acceptance_conventions`)."""
    fitted = shipped_model()
    if fitted is None:
        raise InputError(f"no fitted acceptance model ({MODEL_FILE} is missing): run "
                         f"'magicdec-model acceptance fit'")
    a, _, _ = fitted.predict(model, draft, method, budget, context)
    if position is None:
        return a
    if isinstance(position, bool) or int(position) != position or position < 1:
        raise InputError(f"position {position!r} must be a draft position 1, 2, ...")
    return a ** int(position)
