"""Discrete-event simulation of one engine replica serving requests with continuous batching.

Events are arrivals and engine-step completions; between them nothing changes.  Each engine step
(vLLM V1-like, docs/serving.md):

1. arrivals up to now join the waiting queue (FIFO; preempted requests go back to its front);
2. the policy picks the step's gamma (from the running count, or ``optimal`` from the batch);
3. decoding sequences are scheduled first, each with 1 + gamma tokens (gamma with probability
   ``draft_fraction`` for an n-gram draft, else 1); prefilling sequences get chunks of their
   prompt (chunked prefill) from what is left of ``max_batched_tokens``; waiting requests are
   admitted while the running count is below ``max_seqs``, tokens are left and their first chunk
   fits the KV pool;
4. KV: every running sequence holds paged blocks for its cached tokens plus gamma + 1 reserved
   slots when it speculates, in the target's cache and the draft's; when they exceed the pool the
   most recently admitted sequences are preempted (recompute: their prompt and generated tokens
   are prefilled again when they are readmitted);
5. the step's time comes from the analytic model (:meth:`.costs.ServingModel.step_time`); each
   decoding sequence emits 1 + the draft tokens accepted (i.i.d. at its own rate, at most gamma,
   at most what it has left); a sequence whose prefill completes emits its first token.

The hot loop is vectorised over the running batch (numpy arrays of the running requests); Python
work per step does not grow with the batch, except the admission of a request (once each).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from .costs import ServingModel
from .policy import Policy, choose_optimal
from .workload import Requests

#: ITL histogram: log-spaced bins from 1 us to 1000 s, 2 % wide.
ITL_BINS = np.exp(np.arange(np.log(1e-6), np.log(1e3), np.log(1.02)))


@dataclass(frozen=True)
class SchedulerConfig:
    """vLLM-like scheduler limits (vLLM V1 defaults: max_num_seqs 256, chunked prefill on)."""

    max_seqs: int = 256
    max_batched_tokens: int = 8192
    watermark: float = 0.01  # share of the KV pool kept free when admitting (vLLM's default)


@dataclass
class SimResult:
    """Per-request times (seconds) and per-step counters of one simulation."""

    arrival: np.ndarray
    first_token: np.ndarray
    finish: np.ndarray
    prompt: np.ndarray
    output: np.ndarray
    generated: np.ndarray
    steps: int = 0
    decode_steps: int = 0
    busy_s: float = 0.0
    batch_sum: float = 0.0
    gamma_sum: float = 0.0
    decode_tokens: float = 0.0
    decode_seq_steps: float = 0.0  # sum over steps of the decoding sequences
    preemptions: int = 0
    in_system_area: float = 0.0  # integral over time of requests arrived and not finished
    max_kv_fraction: float = 0.0
    itl_hist: np.ndarray = field(default_factory=lambda: np.zeros(len(ITL_BINS) + 1))
    gamma_by_batch: dict = field(default_factory=dict)  # (batch, gamma) -> steps


def _accepted(rng: np.random.Generator, inv_log_rate: np.ndarray, gamma: int) -> np.ndarray:
    """Draft tokens accepted per sequence: the leading successes of i.i.d. trials, at most gamma.

    P(at least k accepted) = a^k = P(u <= a^k) = P(log u / log a >= k) for u uniform in [0, 1);
    ``inv_log_rate`` = 1 / log a per sequence (rates clipped into (0, 1) beforehand).
    """
    k = np.floor(np.log(rng.random(len(inv_log_rate))) * inv_log_rate)
    return np.minimum(k, gamma).astype(np.int64)


def simulate(model: ServingModel, req: Requests, policy: Policy, rates: np.ndarray,
             sched: SchedulerConfig, seed: int, concurrency: int = 0, macro: bool = True) -> SimResult:
    """Run ``req`` through one replica under ``policy``; ``rates`` per request (acceptance).

    ``concurrency`` > 0: a closed loop (request i + concurrency arrives when one finishes).
    ``macro``: steps with only decoding sequences and no admission are advanced together up to
    the next event (:func:`_window`); False takes every step alone (same model, other draws).
    """
    rng = np.random.default_rng(seed)
    with np.errstate(divide="ignore"):
        inv_log_rate = 1.0 / np.log(np.clip(rates, 1e-300, 1.0 - 1e-12))
    n = len(req)
    arrival = req.arrival.astype(float).copy()
    prompt, out = req.prompt, req.output
    target_len = prompt.copy()  # tokens to prefill (prompt + generated after a preemption)
    done = np.zeros(n, np.int64)  # tokens of target_len already prefilled
    gen = np.zeros(n, np.int64)
    first = np.full(n, np.nan)
    finish = np.full(n, np.nan)
    last_emit = np.zeros(n)
    res = SimResult(arrival, first, finish, prompt, out, gen)
    sd = policy.speculative
    pool = model.pool_bytes(sd)
    omega = model.omega(np.arange(max(policy.gamma_max, policy.max_gamma) + 1))
    F = model.draft_fraction
    limit_tok = sched.max_batched_tokens
    admitted_limit = pool * (1.0 - sched.watermark)

    run = np.zeros(0, np.int64)
    waiting: deque[int] = deque()
    assigned = min(concurrency, n) if concurrency else n  # arrivals known (closed loop: grows)
    nxt = 0
    finished = 0
    now = 0.0
    while finished < n:
        # 1. arrivals
        if nxt < assigned:
            k = nxt + int(np.searchsorted(arrival[nxt:assigned], now, side="right"))
            if k > nxt:
                waiting.extend(range(nxt, k))
                nxt = k
        if not len(run) and not waiting:
            if nxt >= assigned:  # nothing left that can arrive
                break
            now = max(now, float(arrival[nxt]))
            continue
        # 2. gamma of the step (optimal: after the batch is known)
        decoding = done[run] >= target_len[run]
        dec = run[decoding]
        g_rule = policy.gamma_at(max(len(run), 1)) if policy.kind in ("fixed", "schedule") else 0
        g_res = policy.max_gamma if sd else 0  # KV reserved per speculating sequence: gamma + 1
        g_res = g_rule if policy.kind in ("fixed", "schedule") else g_res
        # 3. token budget: decodes first, then prefill chunks of running sequences
        budget = limit_tok - len(dec) * (1 + g_res)
        pre = run[~decoding]
        rem = target_len[pre] - done[pre]
        before = np.cumsum(rem) - rem
        chunk = np.clip(budget - before, 0, rem)
        budget -= int(chunk.sum())
        # 4. KV of the running sequences after this step; preempt the newest while over the pool
        ctx = np.where(decoding, prompt[run] + gen[run], done[run])
        ctx[~decoding] += chunk
        reserve = np.where(decoding, g_res + 1 if g_res else 0, 0)
        need = model.kv_bytes(ctx, reserve, sd)
        total = float(need.sum())
        if total > pool:
            keep = len(run)
            while keep > 1 and total > pool:
                keep -= 1
                total -= float(need[keep])
                victim = int(run[keep])
                target_len[victim] = prompt[victim] + gen[victim]
                done[victim] = 0
                waiting.appendleft(victim)
                res.preemptions += 1
            run, need, ctx, decoding = run[:keep], need[:keep], ctx[:keep], decoding[:keep]
            dec = run[decoding]
            pre_mask = ~decoding
            pre = run[pre_mask]
            chunk = chunk[: int(pre_mask.sum())]
            budget = limit_tok - len(dec) * (1 + g_res) - int(chunk.sum())
        # admission (once per request, FIFO)
        new_ids, new_chunks = [], []
        while waiting and len(run) + len(new_ids) < sched.max_seqs and budget > 0:
            r = waiting[0]
            c = min(int(target_len[r] - done[r]), budget)
            b = float(model.kv_bytes(np.asarray([done[r] + c]), 0, sd)[0])
            if total + b > admitted_limit:
                break
            waiting.popleft()
            new_ids.append(r)
            new_chunks.append(c)
            total += b
            budget -= c
        if new_ids:
            run = np.concatenate([run, np.asarray(new_ids, np.int64)])
            pre = np.concatenate([pre, np.asarray(new_ids, np.int64)])
            chunk = np.concatenate([chunk, np.asarray(new_chunks, np.int64)])
        if not len(run):  # nothing fits: the pool is too small for the first request
            r = waiting[0]
            raise InputError(f"a request of {int(target_len[r])} prompt tokens does not fit the KV pool "
                             f"({pool / 2**30:.3g} GiB per GPU after the weights); allowed: shorter "
                             f"prompts, more --gpus or a larger GPU")
        res.max_kv_fraction = max(res.max_kv_fraction, total / pool)
        # 5. the step's shape and time
        nd = len(dec)
        ctx_d = prompt[dec] + gen[dec]
        kv_d = ctx_d - 1
        draft_ctx = model.draft_kv(ctx_d.astype(float)) if sd else np.zeros(0)
        moving = chunk > 0  # a prefilling sequence left without tokens this step is not in it
        kv_p = done[pre][moving].astype(float)
        q_p = chunk[moving].astype(float)
        if policy.kind == "optimal" and nd:
            gs = np.arange(policy.gamma_max + 1)
            qd = np.broadcast_to(1.0 + gs[:, None], (len(gs), nd)).astype(float)
            q_all = np.concatenate([qd, np.broadcast_to(q_p, (len(gs), len(q_p)))], axis=1)
            kv_all = np.broadcast_to(np.concatenate([kv_d.astype(float), kv_p]), q_all.shape)
            times = model.step_time(q_all, kv_all, gs, draft_ctx, nd, q_p, kv_p, True)
            gamma = choose_optimal(times, omega, nd)
        else:
            gamma = g_rule if sd else 0
        if macro and nd and nd == len(run):
            # only decodes, nobody admitted: advance up to the next event in one go
            # a request that waits now was not admitted (no seat, tokens or KV): none will be
            # until a sequence finishes (the KV held only grows), so arrivals do not end the window
            blocked = bool(waiting)
            t_next = float(arrival[nxt]) if nxt < assigned and not blocked else np.inf
            cap = 16 if policy.kind == "optimal" else 256
            w = _window(model, rng, F, gamma, ctx_d, out[dec] - gen[dec], inv_log_rate[dec], sd,
                        g_res, pool, now, t_next, cap, float(omega[gamma]))
            steps, dt, emitted, times, kv_peak = w
            # requests in the system at each step's start, as steps taken one at a time count them
            starts = now + np.concatenate([[0.0], np.cumsum(times[:-1])])
            arrived = nxt + np.searchsorted(arrival[nxt:assigned], starts, side="right")
            res.in_system_area += float(((arrived - finished) * times).sum())
            itl0 = now + times[0] - last_emit[dec]
            now += dt
            gen[dec] += emitted
            res.steps += steps
            res.busy_s += dt
            res.batch_sum += nd * steps
            res.itl_hist += np.bincount(np.searchsorted(ITL_BINS, itl0), minlength=len(ITL_BINS) + 1)
            if steps > 1:
                res.itl_hist += nd * np.bincount(np.searchsorted(ITL_BINS, times[1:]),
                                                 minlength=len(ITL_BINS) + 1)
            last_emit[dec] = now
            res.decode_steps += steps
            res.gamma_sum += gamma * steps
            res.decode_tokens += float(emitted.sum())
            res.decode_seq_steps += nd * steps
            key = (nd, gamma)
            res.gamma_by_batch[key] = res.gamma_by_batch.get(key, 0) + steps
            res.max_kv_fraction = max(res.max_kv_fraction, kv_peak / pool)
            pre = pre[:0]
        else:
            now = _one_step(model, rng, res, F, gamma, dec, pre, chunk, ctx_d, kv_d, draft_ctx, q_p, kv_p,
                            sd, now, nxt - finished, out, gen, done, target_len, first, last_emit,
                            inv_log_rate, len(run))
        # finished requests leave
        fin_mask = gen[run] >= out[run]
        if fin_mask.any():
            gone = run[fin_mask]
            finish[gone] = now
            finished += len(gone)
            run = run[~fin_mask]
            if concurrency:
                k = min(len(gone), n - assigned)
                arrival[assigned: assigned + k] = now
                assigned += k
    return res


def _one_step(model, rng, res, F, gamma, dec, pre, chunk, ctx_d, kv_d, draft_ctx, q_p, kv_p, sd, now,
              in_system, out, gen, done, target_len, first, last_emit, inv_log_rate, batch) -> float:
    """One engine step of any composition (decodes and prefill chunks); returns the new time."""
    nd = len(dec)
    prop = np.ones(nd, bool) if F >= 1.0 or gamma == 0 else rng.random(nd) < F
    q = np.concatenate([1.0 + gamma * prop, q_p])
    kv = np.concatenate([kv_d.astype(float), kv_p])
    dt = float(model.step_time(q, kv, gamma, draft_ctx[prop] if gamma else draft_ctx[:0], nd,
                               q_p, kv_p, sd))
    res.in_system_area += in_system * dt
    now += dt
    res.steps += 1
    res.busy_s += dt
    res.batch_sum += batch
    # 6. tokens: decodes
    if nd:
        emit = np.ones(nd, np.int64)
        if gamma:
            acc = _accepted(rng, inv_log_rate[dec], gamma)
            emit += np.where(prop, acc, 0)
        emit = np.minimum(emit, out[dec] - gen[dec])
        gen[dec] += emit
        itl = now - last_emit[dec]
        res.itl_hist += np.bincount(np.searchsorted(ITL_BINS, itl), minlength=len(ITL_BINS) + 1)
        last_emit[dec] = now
        res.decode_steps += 1
        res.gamma_sum += gamma
        res.decode_tokens += float(emit.sum())
        res.decode_seq_steps += nd
        key = (nd, gamma)
        res.gamma_by_batch[key] = res.gamma_by_batch.get(key, 0) + 1
    # prefill progress; a completed prefill emits a token (the first, or the next after a
    # recompute)
    if len(pre):
        done[pre] += chunk
        complete = pre[done[pre] >= target_len[pre]]
        if len(complete):
            fresh = complete[gen[complete] == 0]
            first[fresh] = now
            gen[complete] += 1
            last_emit[complete] = now
    return now


def _window(model: ServingModel, rng: np.random.Generator, F: float, gamma: int, ctx0: np.ndarray,
            rem: np.ndarray, inv_log_rate: np.ndarray, sd: bool, g_res: int, pool: float, now: float,
            t_next: float, cap: int, omega_hint: float = 1.0):
    """Up to ``cap`` decode-only steps at ``gamma`` as arrays over (steps, sequences), ended by the
    first event: a sequence finishing, the next arrival (``t_next``) or the KV pool filling.

    Returns (steps taken, their seconds, tokens emitted per sequence, each step's seconds, the
    largest KV bytes).  The same step model and draws as steps taken one at a time.
    """
    # the shortest sequence finishes within rem.min() steps, most likely near rem.min() / Omega:
    # arrays a little longer than that (an event ends the window early; none: another window)
    K = int(min(cap, rem.min(), np.ceil(rem.min() / omega_hint * 1.25) + 2))
    nd = len(ctx0)
    if gamma:
        acc = np.minimum(np.floor(np.log(rng.random((K, nd))) * inv_log_rate), gamma)
        if F < 1.0:
            prop = rng.random((K, nd)) < F
            acc = acc * prop
        else:
            prop = np.ones((K, nd), bool)
        emit = 1 + acc.astype(np.int64)
    else:
        prop = np.zeros((K, nd), bool)
        emit = np.ones((K, nd), np.int64)
    cum = np.cumsum(emit, axis=0)
    ctx = ctx0 + (cum - emit)  # context at the start of each step
    q = 1.0 + gamma * prop
    if gamma and model.draft is not None:
        dk = model.draft_kv(ctx.astype(float)) * prop
    else:
        dk = np.zeros((K, 0))
    times = _window_times(model, q, ctx - 1.0, gamma, dk, prop, nd)
    # events: first finish, the step during which the next arrival comes, a full KV pool
    fin = (cum >= rem).any(axis=1)
    last = int(np.argmax(fin)) if fin.any() else K - 1
    if np.isfinite(t_next):
        ends = now + np.cumsum(times)
        hit = ends >= t_next
        if hit.any():
            last = min(last, int(np.argmax(hit)))
    need = model.kv_bytes(ctx, (g_res + 1) if g_res else 0, sd).sum(axis=1)
    over = need > pool
    if over.any():
        last = min(last, max(int(np.argmax(over)) - 1, 0))
    steps = last + 1
    emitted = np.minimum(cum[last], rem)
    return steps, float(times[:steps].sum()), emitted, times[:steps], float(need[:steps].max())


def _window_times(model: ServingModel, q: np.ndarray, kv: np.ndarray, gamma: int, dk: np.ndarray,
                  prop: np.ndarray, nd: int) -> np.ndarray:
    """Seconds of each decode-only step of a window (rows of ``q``, ``kv``)."""
    t = model.target.time(nd, q.sum(axis=1), q, kv)
    if gamma:
        if model.draft is not None:
            n_prop = prop.sum(axis=1).astype(float)
            t = t + gamma * model.draft.time(n_prop, n_prop, prop.astype(float), dk)
        t = t + model.phase(nd) + model.loop_s
    return t
