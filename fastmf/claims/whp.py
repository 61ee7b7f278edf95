"""Claims about stage one of Ye and Du 2021 (arXiv:2106.14289): its two discrete-time lemmas
along real trajectories, and its "with high probability" invariants as failure rates over seeds."""

from __future__ import annotations

import numpy as np

from .. import theory
from ..batch import solve_batch
from ..init import SplitStart
from ..problem import Problem
from ..solver import solve
from . import Outcome, claim

_BETA = 0.5  # the lemmas' beta in (0, 1); they need lr <= beta / (8 sigma_1)


def trajectory(problem: Problem, k: int, lr: float, init_scale: float, seed: int, steps: int) -> list:
    """The principal blocks (Up, Vp) of a GD run at steps 0..steps, one `solve` step at a time
    from the state before (bitwise the trajectory of one run: its state is all a step needs)."""
    run = solve(problem, k=k, lr=lr, max_iter=0, init_scale=init_scale, seed=seed, spectral_every=0)
    states = [(run.Up, run.Vp)]
    for _ in range(steps):
        start = SplitStart(run.Up, run.Vp, run.L_U, run.L_V)
        run = solve(problem, k=k, lr=lr, max_iter=1, start=start, spectral_every=0)
        states.append((run.Up, run.Vp))
        if run.loss <= 1e-10 * problem.sigma_1**2:
            break
    return states


def lemma_margins(states, s, lr: float) -> dict:
    """At each step t where Lemma 3.2's (3.3's) assumptions hold for S_t = A A^T (P_t), the
    lemma's bound on lambda_d of the next matrix, and that lambda_d for the lemma's map of the
    state (`theory.lemma_3_2_map`, `lemma_3_3_map`) and for the real next state S_{t+1}."""
    Sigma, sigma_1, sigma_d = np.diag(s), float(s[0]), float(s[-1])
    rows = []
    for t in range(len(states) - 1):
        (Up, Vp), (Un, Vn) = states[t], states[t + 1]
        A, B, An, Bn = (Up + Vp) / 2, (Up - Vp) / 2, (Un + Vn) / 2, (Un - Vn) / 2
        S, Sn = A @ A.T, An @ An.T
        P, Pn = Sigma - S + B @ B.T, Sigma - Sn + Bn @ Bn.T
        low = np.linalg.eigvalsh
        eS, eP = low(S), low(P)
        row = {"step": t, "s": eS[0], "p": eP[0], "lemma_3_2": False, "lemma_3_3": False}
        if eS[0] > 0 and eS[-1] <= 2 * sigma_1:  # Lemma 3.2: S positive definite, sigma_1(S) <= 2 sigma_1
            row |= {"lemma_3_2": True, "s_bound": theory.lemma_3_2_bound(eS[0], sigma_d, sigma_1, lr, _BETA),
                    "s_map": low(theory.lemma_3_2_map(S, Sigma, lr))[0], "s_next": low(Sn)[0]}  # fmt: skip
        if np.abs(eP).max() <= 2 * sigma_1:  # Lemma 3.3: sigma_1(P) <= 2 sigma_1
            row |= {"lemma_3_3": True, "p_bound": theory.lemma_3_3_bound(eP[0], sigma_d, sigma_1, lr, _BETA),
                    "p_map": low(theory.lemma_3_3_map(P, Sigma, lr))[0], "p_next": low(Pn)[0]}  # fmt: skip
        rows.append(row)
    keys = ("step", "s", "s_bound", "s_map", "s_next", "p", "p_bound", "p_map", "p_next", "lemma_3_2", "lemma_3_3")
    return {key: np.array([row.get(key, np.nan) for row in rows]) for key in keys}


@claim(
    "lemmas",
    "Ye and Du 2021, Lemmas 3.2 and 3.3",
    "for lr <= beta / (8 sigma_1), lambda_d of (I + lr (Sigma - S)) S (I + lr (Sigma - S)) is at least "
    "(1 + lr (sigma_d - s))^2 s - (8 + 6 beta) / (1 - beta) sigma_1^3 lr^2, and its twin for P",
)
def lemmas(quick: bool) -> Outcome:
    s = np.array([3.0, 2.0, 1.5, 1.0])
    lr = 0.8 * _BETA / (8 * s[0])
    shapes = [(40, 30)] if quick else [(40, 30), (400, 300), (4000, 3000)]
    seeds = range(2) if quick else range(8)
    steps = 600 if quick else 1500
    columns = []
    for m, n in shapes:
        problem = Problem.from_spectrum(s, m, n)
        for seed in seeds:
            found = lemma_margins(trajectory(problem, s.size, lr, 1e-3, seed, steps), s, lr)
            found |= {"m": np.full(found["step"].size, m), "seed": np.full(found["step"].size, seed)}
            columns.append(found)
    table = {key: np.concatenate([c[key] for c in columns]) for key in columns[0]}
    slack = (8 + 6 * _BETA) / (1 - _BETA) * s[0] ** 3 * lr**2  # the lemmas' second-order term
    on2, on3 = table["lemma_3_2"].astype(bool), table["lemma_3_3"].astype(bool)
    tol = 1e-12 * s[0]  # rounding of eigenvalues of matrices of size sigma_1
    values = {
        "steps_3_2": int(on2.sum()),
        "steps_3_3": int(on3.sum()),
        "worst_map_3_2": float(np.min(table["s_map"][on2] - table["s_bound"][on2]) / slack),
        "worst_map_3_3": float(np.min(table["p_map"][on3] - table["p_bound"][on3]) / slack),
        "real_held_3_2": float(np.mean(table["s_next"][on2] >= table["s_bound"][on2] - tol)),
        "real_held_3_3": float(np.mean(table["p_next"][on3] >= table["p_bound"][on3] - tol)),
        "worst_real_3_2": float(np.min(table["s_next"][on2] - table["s_bound"][on2]) / slack),
        "worst_real_3_3": float(np.min(table["p_next"][on3] - table["p_bound"][on3]) / slack),
        "informative_3_2": float(np.mean(table["s_bound"][on2] > 0)),
    }
    holds = values["worst_map_3_2"] * slack >= -tol and values["worst_map_3_3"] * slack >= -tol
    runs = len(shapes) * len(seeds)
    measured = (
        f"over {values['steps_3_2']} and {values['steps_3_3']} steps of {runs} runs (lr = {lr:.4g}, beta = {_BETA}), "
        f"the lemmas' maps of the real states stay above their bounds by at least "
        f"{values['worst_map_3_2']:.3g} and {values['worst_map_3_3']:.3g} times the lr^2 term; the real next "
        f"states (with B, J, K) meet the bounds at {100 * values['real_held_3_2']:.4g}% and "
        f"{100 * values['real_held_3_3']:.4g}% of the steps (Lemma 3.2's bound is > 0 at "
        f"{100 * values['informative_3_2']:.3g}% of them)"
    )

    def draw(fig):
        first = (table["m"] == shapes[0][0]) & (table["seed"] == 0)
        axes = fig.subplots(1, 2)
        titles = ("$S = AA^T$", "$P = \\Sigma - AA^T + BB^T$")
        for ax, key, title, lemma in zip(axes, "SP", titles, ("3.2", "3.3"), strict=True):
            on = first & table[f"lemma_{lemma.replace('.', '_')}"].astype(bool)
            t = table["step"][on] + 1
            low, bound = table[f"{key.lower()}_next"][on], table[f"{key.lower()}_bound"][on]
            ax.plot(t, low, color="C0", lw=2, label=f"$\\lambda_d({key}_{{t+1}})$, GD")
            ax.plot(t, table[f"{key.lower()}_map"][on], color="C1", lw=1,
                    label=f"$\\lambda_d$ of the lemma's map of ${key}_t$")  # fmt: skip
            note = "" if key == "S" else f"\n($-${slack:.2g}, its $\\eta^2$ term, once $\\lambda_d(P_t) < 0$)"
            ax.plot(t, bound, color="k", ls="--", lw=1, label=f"Lemma {lemma}'s lower bound{note}")
            vacuous = t[bound <= 0]
            if key == "S" and vacuous.size:
                ax.axvspan(t[0], vacuous[-1], color="0.9", zorder=0, label="bound $\\leq 0$ (vacuous)")
            ax.set_xlabel("step $t$")
            ax.set_title(f"Lemma {lemma}: {title}", fontsize=10)
            ax.legend(fontsize=7, loc="lower right" if key == "S" else "lower left")
        axes[0].set_yscale("log")
        axes[0].set_ylabel("smallest eigenvalue $\\lambda_d$")
        axes[1].set_ylabel("smallest eigenvalue $\\lambda_d$ (symmetric log scale)")
        axes[1].set_yscale("symlog", linthresh=1e-4)
        fig.suptitle(f"Ye and Du 2021, Lemmas 3.2-3.3 along GD ($m \\times n$ = {shapes[0][0]} x {shapes[0][1]}, "
                     f"$\\eta$ = {lr:.3g}, seed 0)", fontsize=10)  # fmt: skip

    return Outcome(table, measured, bool(holds), values, draw)


def invariant_ratios(inv, c, s) -> dict:
    """Per run, each invariant of the w.h.p. statements as the ratio of its worst value to its
    bound (<= 1: it held throughout), with the common constant c where the bound has one.
    `inv`: `BatchResult.invariants`; the A A^T one is 1 + max_t lambda_max(A A^T - 2 Sigma) / (2 sigma_d)."""
    root = np.sqrt(float(s[-1]) / 2)
    return {
        "$AA^T \\preceq 2\\Sigma$ ($t \\leq T_0$)": 1 + inv["max_lambda_AAt_2S"] / (2 * float(s[-1])),
        "$\\|B_t\\|_F \\leq 2cd\\epsilon$ ($t \\leq T_0$)": inv["c_B"] / (2 * c),
        "$\\|J_t\\|, \\|K_t\\| \\leq c\\epsilon\\sqrt{\\max(m', d)}$ ($t \\leq T_0$)": inv["c_JK"] / c,
        "$\\sigma_d(A_t) \\geq \\sqrt{\\sigma_d/2}$ ($t \\geq T_1$)": root / inv["min_sigma_A"],
        "$\\sigma_d(U_p), \\sigma_d(V_p) \\geq \\sqrt{\\sigma_d/2}$ ($t \\geq T_0$)": root / inv["min_sigma_UV"],
        "$\\Delta_t \\leq \\frac{2}{5}\\sigma_d(1 - \\eta\\sigma_d/2)^{t - T_0}$ ($t \\geq T_0$)": inv[
            "max_Delta_ratio"
        ],
    }


@claim(
    "whp-invariants",
    "Ye and Du 2021, section 3.1, Theorem 3.1 and section 3.3",
    "with high probability over the start, for a constant c, the section 3.1 bounds hold at t = 0 and "
    "A A^T <= 2 Sigma, ||B_t||_F <= 2 c d eps and ||J_t||, ||K_t|| <= c eps sqrt(max(m', d)) hold up to T0, "
    "then sigma_d(A), sigma_d(Up), sigma_d(Vp) >= sqrt(sigma_d / 2) and Delta_t under its bound",
)
def whp_invariants(quick: bool) -> Outcome:
    s = np.geomspace(2.0, 1.0, 5)
    m = n = 10**4
    problem = Problem.from_spectrum(s, m, n)
    runs = 200 if quick else 10**4
    lrs = (0.02, 0.1)  # times 1 / sigma_1: a small step and a common one
    share = 0.99  # c is the share-quantile of the runs' c0: the section 3.1 event then has this probability
    table, rates, ratios, c_of, own = {}, {}, {}, {}, {}
    for lr in lrs:
        batch = solve_batch(problem, k=s.size, lr=lr / s[0], max_iter=int(60 / (lr / s[0] * s[-1])),
                            seeds=range(runs), delta=1e-10, spectral_every=64)  # fmt: skip
        inv = batch.invariants
        c_of[lr] = c = float(np.quantile(inv["c0"], share))
        ratios[lr] = invariant_ratios(inv, c, s)
        # a NaN ratio: never checked (e.g. T0 not reached); it counts as a failure
        rates[lr] = {label: float(np.mean(~(ratio <= 1 + 1e-12))) for label, ratio in ratios[lr].items()}
        own[lr] = float(np.mean(~np.all([inv[flag] for flag in ("held_AAt", "held_B", "held_JK", "held_sigma_UV",
                                                                "held_Delta")], axis=0)))  # fmt: skip
        table |= {f"lr{lr}_{key}": np.asarray(inv[key]) for key in ("c0", "c_B", "c_JK", "min_sigma_A",
                  "max_lambda_AAt_2S", "min_sigma_UV", "max_Delta_ratio")}  # fmt: skip
        table[f"lr{lr}_T0"] = batch.T0
    worst = max(max(r.values()) for r in rates.values())
    values = {"c": c_of[lrs[0]], "worst_failure_rate": worst, "runs": runs,
              "median_c0": float(np.median(table[f"lr{lrs[0]}_c0"]))}  # fmt: skip
    values |= {f"failure_{lr}_{i}": rate for lr in lrs for i, rate in enumerate(rates[lr].values())}
    values |= {f"failure_own_c0_{lr}": own[lr] for lr in lrs}
    values |= {f"worst_ratio_{lr}_{i}": float(np.nanmax(r)) for lr in lrs for i, r in enumerate(ratios[lr].values())}
    holds = worst <= 2 * (1 - share)
    measured = (
        f"over {runs} seeds (d = 5, m = n = 10^4, eta sigma_1 = {lrs[0]} and {lrs[1]}) with c = {c_of[lrs[0]]:.3g}, "
        f"the {100 * share:g}th percentile of the starts' section 3.1 constant c0 (median {values['median_c0']:.3g}: "
        f"sigma_min of a square Gaussian A0 has a heavy tail), the invariants fail in at most {100 * worst:.3g}% of "
        f"the runs; with each run's own c0 in {100 * max(own.values()):.3g}%"
    )

    def draw(fig):
        left, right = fig.subplots(1, 2, width_ratios=(1, 1.5))
        c0 = np.sort(table[f"lr{lrs[0]}_c0"])  # the starts do not depend on lr
        left.step(c0, 1 - np.arange(c0.size) / c0.size, where="post", color="C0", label="seeds")
        left.axvline(c_of[lrs[0]], color="k", ls="--", lw=1, label=f"$c$ = {c_of[lrs[0]]:.3g} ({100 * share:g}%)")
        left.set_xscale("log")
        left.set_yscale("log")
        left.set_xlabel("section 3.1 constant $c_0$ of the start")
        left.set_ylabel("share of seeds with a larger $c_0$")
        left.legend(fontsize=8)
        labels = list(ratios[lrs[0]])
        for i, lr in enumerate(lrs):
            for j, label in enumerate(labels):
                x = ratios[lr][label]
                x = x[np.isfinite(x) & (x > 0)]
                y = j + 0.2 * (1 - 2 * i) + np.linspace(-0.08, 0.08, x.size)
                right.scatter(x, y, s=2, color=f"C{i}", alpha=0.3, label=f"$\\eta\\sigma_1$ = {lr}" if j == 0 else None)
        right.axvline(1, color="k", ls="--", lw=1, label="the bound")
        right.set_xscale("log")
        right.set_yticks(np.arange(len(labels)), labels, fontsize=7)
        right.invert_yaxis()
        right.set_xlabel("worst over a run / the bound (a dot per seed)")
        right.legend(fontsize=7, loc="lower left", markerscale=4)
        fig.suptitle(f"Ye and Du 2021: the w.h.p. invariants over {runs} seeds ($d$ = 5, $m = n = 10^4$)",
                     fontsize=10)  # fmt: skip

    return Outcome(table, measured, bool(holds), values, draw)
