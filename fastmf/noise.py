"""The noise of perturbed GD (`Options.noise`): iid N(0, nu^2) added to every entry of U and V
after each step (Ge et al. 2015, Jin et al. 2017, cited by Ye and Du 2021 section 1.1).

A run's noise comes from streams of its seed, kept apart from those of the start
(`fastmf.init.seed_streams`): for each side (U, V), one for Z, one for the normals of B
and one for its chi-squares. Each chunk of steps draws its noise in step order from them, so the numbers a
step gets do not depend on how the run was cut into chunks, and the streams' states, saved
with a checkpoint, continue a run bit for bit.

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

import functools

import numpy as np

from .init import seed_streams

# spawn keys of the noise streams under a run's seed (0, 1, 2 are the start's: `seed_streams`):
# side i (0: U, 1: V) draws Z from key 3 + 3 i, the normals of B from 4 + 3 i, its chi-squares from 5 + 3 i
_FIRST_KEY = 3


class NoiseStream:
    """The noise of one run, drawn chunk by chunk from its seed (see the module docstring)."""

    def __init__(self, seed):
        base = seed_streams(seed)[0]  # spawn_key (..., 0): its parent's key is the seed's own
        key, entropy, pool = base.spawn_key[:-1], base.entropy, base.pool_size
        self.streams = [
            np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy, spawn_key=key + (i,), pool_size=pool)))
            for i in range(_FIRST_KEY, _FIRST_KEY + 6)
        ]

    def state(self) -> list:
        """The streams' positions, JSON-able: what `set_state` continues from."""
        return [stream.bit_generator.state for stream in self.streams]

    def set_state(self, state: list) -> None:
        for stream, saved in zip(self.streams, state, strict=True):
            stream.bit_generator.state = saved

    def draw(self, n_steps: int, nu: float, sides) -> list[tuple[np.ndarray, np.ndarray]]:
        """The noise of the next n_steps steps, times nu, for each side (rows, k, rest) (at most two).

        rest=None: the original coordinates, Z (n_steps, rows, k) and an empty B. rest >= 0:
        the compressed form, Z (n_steps, rows, k) and B (n_steps, p, k), p = k when rest >= k
        (Bartlett, upper triangular), rest when 0 < rest < k, 0 when rest = 0. Each side has
        its own streams, consumed in step order: the numbers do not depend on the chunks.
        """
        out = []
        for i, (rows, k, rest) in enumerate(sides):
            normal, normal_b, chi = self.streams[3 * i : 3 * i + 3]
            Z = normal.standard_normal((n_steps, rows, k))
            Z *= nu
            if rest is not None and rest >= k:  # Bartlett: N(0, 1) above the diagonal, chi on it
                B = normal_b.standard_normal((n_steps, k, k))
                B *= _strictly_upper(k)
                B.reshape(n_steps, k * k)[:, :: k + 1] = np.sqrt(chi.chisquare(rest - np.arange(k), (n_steps, k)))
            else:
                B = normal_b.standard_normal((n_steps, rest or 0, k))
            B *= nu
            out.append((Z, B))
        return out


@functools.cache
def _strictly_upper(k: int) -> np.ndarray:
    """The k x k mask of the entries above the diagonal."""
    return np.triu(np.ones((k, k)), 1)
