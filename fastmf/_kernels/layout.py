"""Every slot and column the kernels share with the Python layer, by name.

Numba reads module-level integers as compile-time constants, so naming an index costs
nothing. A single run's ``info`` (int64, N_INFO slots) and a batch's ``summary`` (float64,
one row of N_SUMMARY columns per run) keep the step, the status and the stages at the same
indices, so STATUS, T1 and T0 name both.
"""

# a run's status (info[STATUS], summary[:, STATUS])
RUNNING, CONVERGED, DIVERGED = 0, 1, 2

# info[] of a single run (blocks.run_blocks, direct.run_direct)
STEP = 0  # the step the state is at
N_RECORDS = 1  # records written so far
STATUS = 2
BAD_STEP = 3  # a diverged run: the step whose state overflowed
T1 = 4  # the stages (Ye and Du 2021, Theorem 3.1; `stages`): the step reached, -1 until then
T0 = 5
N_INFO = 6

# summary[q] of batch run q (batch.run_batch): STATUS, T1, T0 as in info[]
N_ITER = STEP  # the step the state is at
FINAL_LOSS = 1  # the last recorded loss (a diverged run: the loss of its last finite state)
T_DELTA = 3  # the first recorded step with loss <= delta, -1 until then
N_SUMMARY = 6

# extremes[q] of batch run q (batch.run_batch with `proofs`; `fastmf.invariants` for their meaning),
# in internal units, NaN until a step is checked: max ||B_t||_F over every record and over t <= T0,
# min sigma_d(A) over t >= T1, max lambda_max(A A^T - 2 diag(s)), ||J||_op, ||K||_op over t <= T0,
# min of sigma_d(Up), sigma_d(Vp) over t >= T0, max Delta_t / delta_bound(t) over t >= T0 (the last
# five on the spectral stride)
EXT_B, EXT_B_T0, EXT_SIGMA_A, EXT_AAT, EXT_J, EXT_K, EXT_UV, EXT_DELTA = range(8)
N_EXTREMES = 8
# the batch's tracked eigenvectors, one per eigenvalue behind them: sigma_d(A), lambda_max(A A^T -
# 2 diag(s)), ||J||_op, ||K||_op, sigma_d(Up), sigma_d(Vp), ||diag(s) - Up Vp^T||_op
N_PROOF_TRACKED = 7

# the columns of a record row (diagnostics.record_cheap and record_spectral; direct.run_direct writes the first two)
KEYS = (
    "loss", "imbalance", "loss_E", "loss_Up_LV", "loss_LU_Vp", "loss_LU_LV", "B_fro", "Q_fro",
    "sigma_min_A", "lambda_min_P", "P_op", "J_op", "K_op", "E_op", "sigma_min_Up", "sigma_min_Vp",
    "lambda_max_AAt_2S", "grad_fro",
)  # fmt: skip
N_KEYS = len(KEYS)
(LOSS, IMBALANCE, LOSS_E, LOSS_UP_LV, LOSS_LU_VP, LOSS_LU_LV, B_FRO, Q_FRO,
 SIGMA_MIN_A, LAMBDA_MIN_P, P_OP, J_OP, K_OP, E_OP, SIGMA_MIN_UP, SIGMA_MIN_VP,
 LAMBDA_MAX_AAT_2S, GRAD_FRO) = range(N_KEYS)  # fmt: skip
N_CHEAP = SIGMA_MIN_A  # KEYS[:N_CHEAP] need no eigenvalue
# the spectral columns KEYS[N_CHEAP:GRAD_FRO] come from one tracked extreme eigenvalue each
# (diagnostics.record_spectral), whose eigenvectors are carried from record to record; grad_fro, the last,
# is recorded with them (it costs about a step)
N_TRACKED = GRAD_FRO - N_CHEAP

# variant[] of a run (float64, N_VARIANT slots; `fastmf.options.Options` names the variants),
# in the run's internal units (`fastmf.scaling`)
BALANCE = 0  # lam of the balancing regularizer (lam / 8) ||U^T U - V^T V||_F^2; 0: none
ALTERNATING = 1  # 1: the Y side steps from the new X (alternating GD); 0: simultaneous
PRECONDITION = 2  # lam of ScaledGD's (G + lam I)^-1; < 0: none
N_VARIANT = 3
