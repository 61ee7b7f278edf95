"""The noise of perturbed GD (`Options.noise`): iid N(0, nu^2) added to every entry of U and V
after each step (Ge et al. 2015, Jin et al. 2017, cited by Ye and Du 2021 section 1.1).

A run's noise comes from two streams of its seed, kept apart from those of the start
(`fastmf.init.seed_streams`): one of standard normals, one of chi-squares. Each chunk of
steps draws its noise in step order, X side then Y side within a step, in one call per
stream, so the numbers a step gets do not depend on how the run was cut into chunks, and
the streams' states, saved with a checkpoint, continue a run bit for bit.

Two forms (docs/maths.md section 6):

* original coordinates (`draw` with rest=None): Z, dim x k, what plain NumPy perturbed GD
  adds. The direct path adds it as it is and the full complement adds it split into
  principal and complement parts: the same trajectory, path by path.
* compressed: the complement is J = W L with an orthonormal frame W of k' columns, and the
  noise's part outside the frame, W_perp Z2 with Z2 (rest x k), enters the dynamics only
  through Z2^T Z2. So a side gets Z ((r + k') x k: principal rows and the frame's part)
  and B, a factor with B^T B distributed as Z2^T Z2: the Bartlett factor when rest >= k
  (chi variables on the diagonal, normals above), else Z2 itself. L+ is then the R of the QR
  of [L H + Z_frame; B]: the law of the run, not its path, is that of perturbed GD.
"""

from __future__ import annotations

import numpy as np

from .init import seed_streams

# spawn keys of the noise streams under a run's seed (0, 1, 2 are the start's: `seed_streams`)
_NORMAL, _CHI = 3, 4


class NoiseStream:
    """The noise of one run, drawn chunk by chunk from its seed (see the module docstring)."""

    def __init__(self, seed):
        base = seed_streams(seed)[0]  # spawn_key (..., 0): its parent's key is the seed's own
        key, entropy, pool = base.spawn_key[:-1], base.entropy, base.pool_size
        self.normal, self.chi = (
            np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy, spawn_key=key + (i,), pool_size=pool)))
            for i in (_NORMAL, _CHI)
        )

    def state(self) -> dict:
        """The streams' positions, JSON-able: what `set_state` continues from."""
        return {"normal": self.normal.bit_generator.state, "chi": self.chi.bit_generator.state}

    def set_state(self, state: dict) -> None:
        self.normal.bit_generator.state = state["normal"]
        self.chi.bit_generator.state = state["chi"]

    def draw(self, n_steps: int, nu: float, sides) -> list[tuple[np.ndarray, np.ndarray]]:
        """The noise of the next n_steps steps, times nu, for each side (rows, k, rest).

        rest=None: the original coordinates, Z (n_steps, rows, k) and an empty B. rest >= 0:
        the compressed form, Z (n_steps, rows, k) and B (n_steps, p, k), p = k when rest >= k
        (Bartlett, upper triangular), rest when 0 < rest < k, 0 when rest = 0.
        """
        plan = []
        n_normal = n_chi = 0
        for rows, k, rest in sides:
            p = 0 if not rest else min(rest, k)
            bartlett = rest is not None and rest >= k
            plan.append((rows, k, rest, p, bartlett, n_normal, n_chi))
            n_normal += (rows + p) * k
            n_chi += k if bartlett else 0
        normals = self.normal.standard_normal((n_steps, n_normal))
        df = np.concatenate([rest - np.arange(k) for rows, k, rest, p, bart, *_ in plan if bart] or [np.zeros(0)])
        chis = self.chi.chisquare(df, size=(n_steps, n_chi)) if n_chi else np.zeros((n_steps, 0))
        out = []
        for rows, k, _, p, bartlett, at, at_chi in plan:
            Z = normals[:, at : at + rows * k].reshape(n_steps, rows, k) * nu
            B = normals[:, at + rows * k : at + (rows + p) * k].reshape(n_steps, p, k) * nu
            if bartlett:
                B = np.triu(B, 1)
                B[:, np.arange(k), np.arange(k)] = nu * np.sqrt(chis[:, at_chi : at_chi + k])
            out.append((np.ascontiguousarray(Z), np.ascontiguousarray(B)))
        return out
