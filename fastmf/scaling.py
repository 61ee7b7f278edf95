"""The exact change of units that lets every engine run at scale 1 (docs/maths.md section 5).

GD on (Sigma / c, U / sqrt(c), V / sqrt(c), lr c) is GD on (Sigma, U, V, lr) with every
iterate divided by sqrt(c), and the loss by c^2. With c = 4^e, sqrt(c) = 2^e is a power of
2, so the change of units is exact in binary floating point: it changes no bit of a run
whose numbers stay representable, and it keeps any finite scale of Sigma (1e-300 to 1e300)
away from overflow and underflow. The engines run in the units of c = the power of 4
nearest the scale of Sigma; everything a user sees is in their own units.

A quantity scaling as c^p (p = `POWERS` for the history's columns, 1/2 for the state,
1 for s, -1 for lr and for time, 2 for the loss) is multiplied by 2^(-2 e p) on the way in
(``ldexp``: exact, and it saturates to inf or 0 rather than raising).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# powers of c of the history's columns (fastmf._kernels.diagnostics.KEYS, in order)
POWERS = {
    "loss": 2, "imbalance": 1, "loss_E": 2, "loss_Up_LV": 2, "loss_LU_Vp": 2, "loss_LU_LV": 2, "B_fro": 0.5,
    "Q_fro": 1, "sigma_min_A": 0.5, "lambda_min_P": 1, "P_op": 1, "J_op": 0.5, "K_op": 0.5, "E_op": 1,
    "sigma_min_Up": 0.5, "sigma_min_Vp": 0.5, "lambda_max_AAt_2S": 1, "grad_fro": 1.5, "imbalance_drift": 1,
}  # fmt: skip


@dataclass(frozen=True)
class Scale:
    """Internal units of a run: c = 4^e."""

    e: int = 0

    @classmethod
    def of(cls, size: float) -> Scale:
        """The power of 4 nearest `size` (sigma_1, or max |Sigma_ij| for the direct path)."""
        size = float(size)
        if not (np.isfinite(size) and size > 0):
            return cls(0)
        return cls(int(np.round(np.log2(size) / 2)))

    def inward(self, x, power):
        """x (user units, scaling as c^power) in internal units; arrays keep their dtype."""
        return self._ldexp(x, -round(2 * self.e * power))

    def outward(self, x, power):
        """x (internal units, scaling as c^power) in the user's units."""
        return self._ldexp(x, round(2 * self.e * power))

    @staticmethod
    def _ldexp(x, n):
        if n == 0 or x is None:
            return x
        with np.errstate(over="ignore", under="ignore"):
            if isinstance(x, np.ndarray):
                return np.ldexp(x, np.int32(n)).astype(x.dtype, copy=False)
            return float(np.ldexp(float(x), n))

    def history_outward(self, history: dict) -> dict:
        """A recorded history (dict of columns) in the user's units."""
        return {key: self.outward(col, POWERS[key]) if key in POWERS else col for key, col in history.items()}

    def history_inward(self, history: dict) -> dict:
        """A history in the user's units back in internal units (exact where representable)."""
        return {key: self.inward(col, POWERS[key]) if key in POWERS else col for key, col in history.items()}
