"""Many GD runs in one compiled call (`fastmf.solve_batch`), in blocks of runs advanced as SIMD lanes.

The runs go in blocks of four SIMD registers' width (`lanes`: 32 float64 or 64 float32 runs,
four AVX-512 registers), each block's states stored with the run index innermost (rows x k x
lanes), so every operation of the stacked step (docs/maths.md section 3, eqs 6-9) is a vector
operation across runs with no BLAS call. The products (X H, the Grams, Up Vp^T) run in register
tiles (`_half_step`, `_grams`, `_product`): a tile's sums stay in registers across the k terms,
one fused multiply-add (`_fma`, rounded once) per term, so they run at FMA speed, not at the
speed of loads and stores. A block's padding lanes (past the last run) hold a zero state and are
never read back. A run's arithmetic never mixes with another's and has the same order in every
lane, so its numbers depend only on its start and settings: not on the number of threads, the
batch size or its place in the batch. They equal `fastmf.solve`'s to rounding (its products are
BLAS's, summed in another order). Blocks run on Python threads (`run_threads`; the kernel
releases the GIL), which costs no parallel compilation.

Recorded at each recorded step: the loss (as `diagnostics.record_cheap`: the four blocks in the
split form) and the stage tests (`passes_lanes`, the batch side of `stages.mark`); with
`extremes`, the per-run extremes of the quantities the proofs bound (`layout.EXT_B` ...): ||B||_F
at every record (`_prove_b`), and with `spectral` the eigenvalue-based ones lane by lane on the
spectral stride (`_prove_spectral`), from the same formulas as `diagnostics.record_spectral`. The loss,
||B||_F and the stage tests run in float64 registers (`_load64`: a float32 state's lanes widened
exactly), each lane's operations in the order of a plain per-lane loop. A run
advanced in several calls follows exactly the trajectory and records of one call: each call
starts from the state alone (its Grams are a function of it).
"""

import concurrent.futures

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.datamodel.models import PrimitiveModel
from numba.extending import intrinsic, register_model

from ._jit import kernel
from .blocks import _due
from .diagnostics import aat_minus_2s, cancelled, residual_gram, resolution
from .fpmode import mode_on, mode_restore
from .layout import (
    ALTERNATING,
    BALANCE,
    CONVERGED,
    DIVERGED,
    EXT_AAT,
    EXT_B,
    EXT_B_T0,
    EXT_DELTA,
    EXT_J,
    EXT_K,
    EXT_SIGMA_A,
    EXT_UV,
    FINAL_LOSS,
    N_ITER,
    N_PROOF_TRACKED,
    PRECONDITION,
    RUNNING,
    STATUS,
    T0,
    T1,
    T_DELTA,
)
from .spectral import extreme_eig
from .stages import gram_A

REGISTER_BYTES = 64  # one AVX-512 register; narrower machines split each operation in two or four
BLOCK_BYTES = 4 * REGISTER_BYTES  # a block's lanes: four registers, so that the loops over them vectorize
TILE_BYTES = 2 * REGISTER_BYTES  # a value of the register tiles (`Lanes`): two registers, half the tiles' overhead
LANES = BLOCK_BYTES // 8  # runs in a float64 block (`lanes`)
WIDE = TILE_BYTES // 8  # the lanes of a float64 value of the record and the stage tests (`_load64`)


def lanes(dtype) -> int:
    """The runs in a block of states of this dtype: four registers."""
    return BLOCK_BYTES // np.dtype(dtype).itemsize


def aligned_empty(shape, dtype):
    """np.empty(shape, dtype) starting on a register's boundary (`REGISTER_BYTES`): no register
    load of a lane row then straddles two cache lines (NumPy aligns to 16 bytes only)."""
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.empty(size + REGISTER_BYTES, np.uint8)
    start = -raw.ctypes.data % REGISTER_BYTES
    return raw[start : start + size].view(dtype).reshape(shape)


# -- SIMD registers as a numba value: loads and stores of a lane row, fused multiply-add --------------


class Lanes(types.Type):
    """`size` bytes of `dtype` values, one per lane (an LLVM vector; the compiler splits it into registers)."""

    def __init__(self, dtype, size=TILE_BYTES):
        self.dtype, self.width = dtype, size * 8 // dtype.bitwidth
        super().__init__(name=f"Lanes({dtype}, {self.width})")


@register_model(Lanes)
class _LanesModel(PrimitiveModel):
    def __init__(self, dmm, fe_type):
        element = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(element, fe_type.width))


def _row_pointer(context, builder, aryty, ary, i, j, v, vector, fixed=True):
    """The address of register v (a `vector`'s width) of A[i, j, :] as a vector pointer (of A[i, :]
    or A[:] for a 2-d or 1-d A, the last axis contiguous). `fixed`: A is a block array, C-contiguous
    (rows, cols, lanes) with a lane row of `BLOCK_BYTES` (as `run_batch` allocates its states), so
    that the compiler addresses A[i, j + 1, :] from A[i, j, :] at a fixed offset."""
    a = context.make_array(aryty)(context, builder, ary)
    size = ir.Constant(v.type, vector.count * (8 if isinstance(vector.element, ir.DoubleType) else 4))
    offset = builder.mul(v, size)
    if fixed:
        row = builder.add(builder.mul(i, cgutils.unpack_tuple(builder, a.shape)[1]), j)
        offset = builder.add(offset, builder.mul(row, ir.Constant(v.type, BLOCK_BYTES)))
    else:
        for index, stride in zip((i, j), cgutils.unpack_tuple(builder, a.strides)[:-1], strict=False):
            offset = builder.add(offset, builder.mul(index, stride))
    byte = builder.gep(builder.bitcast(a.data, ir.IntType(8).as_pointer()), [offset])
    return builder.bitcast(byte, vector.as_pointer())


def _vector_intrinsic(builder, name, vector, args):
    suffix = f"v{vector.count}f{64 if isinstance(vector.element, ir.DoubleType) else 32}"
    signature = ir.FunctionType(vector, [vector] * len(args))
    return builder.call(cgutils.get_or_insert_function(builder.module, signature, f"{name}.{suffix}"), args)


@intrinsic
def _load(typingctx, A, i, j, v):
    """Value v (`Lanes`) of A[i, j, :]: A[i, j, v * width:(v + 1) * width]."""
    lanes_type = Lanes(A.dtype)

    def codegen(context, builder, sig, args):
        vector = context.get_value_type(lanes_type)
        return builder.load(_row_pointer(context, builder, sig.args[0], *args, vector), align=4)

    return lanes_type(A, types.intp, types.intp, types.intp), codegen


@intrinsic
def _store(typingctx, A, i, j, v, x):
    """Value v (`Lanes`) of A[i, j, :] = x."""

    def codegen(context, builder, sig, args):
        vector = context.get_value_type(sig.args[4])
        builder.store(args[4], _row_pointer(context, builder, sig.args[0], *args[:4], vector), align=4)
        return context.get_dummy_value()

    return types.void(A, types.intp, types.intp, types.intp, x), codegen


@intrinsic
def _fma(typingctx, a, b, c):
    """a * b + c, rounded once, lane by lane."""

    def codegen(context, builder, sig, args):
        return _vector_intrinsic(builder, "llvm.fma", context.get_value_type(sig.return_type), list(args))

    return a(a, a, a), codegen


@intrinsic
def _zero(typingctx, A):
    """A register of zeros of A's dtype."""
    lanes_type = Lanes(A.dtype)

    def codegen(context, builder, sig, args):
        return ir.Constant(context.get_value_type(lanes_type), None)

    return lanes_type(A), codegen


@intrinsic
def _flush(typingctx, v):
    """v with its entries below the smallest normal number in size set to 0 (`fpmode`)."""

    def codegen(context, builder, sig, args):
        vector = context.get_value_type(sig.return_type)
        tiny = float(np.finfo(np.float64 if sig.return_type.dtype.bitwidth == 64 else np.float32).tiny)
        size = _vector_intrinsic(builder, "llvm.fabs", vector, [args[0]])
        small = builder.fcmp_ordered("<", size, ir.Constant(vector, [tiny] * vector.count))
        return builder.select(small, ir.Constant(vector, None), args[0])

    return v(v), codegen


# -- float64 values of any lane array (WIDE lanes; a float32 one's widened, exactly), for the record -------


@intrinsic
def _load64(typingctx, A, i, j, v):
    """Lanes WIDE v to WIDE (v + 1) - 1 of A[i, j, :] (of A[i, :] for a 2-d A, of A for a 1-d one) in float64."""
    wide = Lanes(types.float64, 8 * WIDE)

    def codegen(context, builder, sig, args):
        source = ir.VectorType(context.get_value_type(sig.args[0].dtype), wide.width)
        x = builder.load(_row_pointer(context, builder, sig.args[0], *args, source, fixed=False), align=4)
        return x if sig.args[0].dtype == types.float64 else builder.fpext(x, context.get_value_type(wide))

    return wide(A, types.intp, types.intp, types.intp), codegen


def _pair64(context, builder, sig, args, first, second, instruction):
    """x op y (fadd or fsub) of the source lanes at first = (array, i, j) and second, in their dtype, in float64."""
    wide = sig.return_type
    source = ir.VectorType(context.get_value_type(sig.args[first[0]].dtype), wide.width)
    x, y = (builder.load(_row_pointer(context, builder, sig.args[at[0]], *(args[n] for n in at), args[-1], source,
                                      fixed=False), align=4) for at in (first, second))  # fmt: skip
    d = getattr(builder, instruction)(x, y)
    return d if sig.args[first[0]].dtype == types.float64 else builder.fpext(d, context.get_value_type(wide))


@intrinsic
def _difference64(typingctx, X, Y, i, j, v):
    """Lanes WIDE v to WIDE (v + 1) - 1 of X[i, j, :] - Y[i, j, :] (as `_load64`), subtracted in X's dtype,
    in float64."""

    def codegen(context, builder, sig, args):
        return _pair64(context, builder, sig, args, (0, 2, 3), (1, 2, 3), "fsub")

    return Lanes(types.float64, 8 * WIDE)(X, X, types.intp, types.intp, types.intp), codegen


@intrinsic
def _sum64(typingctx, X, i, j, Y, i2, j2, v):
    """Lanes WIDE v to WIDE (v + 1) - 1 of X[i, j, :] + Y[i2, j2, :] (as `_load64`), added in X's dtype,
    in float64."""

    def codegen(context, builder, sig, args):
        return _pair64(context, builder, sig, args, (0, 1, 2), (3, 4, 5), "fadd")

    return Lanes(types.float64, 8 * WIDE)(X, types.intp, types.intp, X, types.intp, types.intp, types.intp), codegen


@intrinsic
def _store64(typingctx, A, i, j, v, x):
    """Lanes WIDE v to WIDE (v + 1) - 1 of A[i, j, :] (as `_load64`; A float64) = x."""

    def codegen(context, builder, sig, args):
        vector = context.get_value_type(sig.args[4])
        builder.store(args[4], _row_pointer(context, builder, sig.args[0], *args[:4], vector, fixed=False), align=4)
        return context.get_dummy_value()

    return types.void(A, types.intp, types.intp, types.intp, x), codegen


@intrinsic
def _splat64(typingctx, x):
    """A float64 register of x in every lane."""
    wide = Lanes(types.float64, 8 * WIDE)

    def codegen(context, builder, sig, args):
        vector = context.get_value_type(wide)
        value = context.cast(builder, args[0], sig.args[0], types.float64)
        return builder.shuffle_vector(
            builder.insert_element(ir.Constant(vector, ir.Undefined), value, ir.Constant(ir.IntType(32), 0)),
            ir.Constant(vector, ir.Undefined), ir.Constant(ir.VectorType(ir.IntType(32), wide.width), None),
        )  # fmt: skip

    return wide(x), codegen


def _arithmetic(instruction):
    def codegen(context, builder, sig, args):
        if instruction in ("fadd", "fsub", "fmul"):
            return getattr(builder, instruction)(*args)
        return _vector_intrinsic(builder, instruction, context.get_value_type(sig.return_type), list(args))

    return codegen


@intrinsic
def _add(typingctx, a, b):
    """a + b, lane by lane."""
    return a(a, a), _arithmetic("fadd")


@intrinsic
def _sub(typingctx, a, b):
    """a - b, lane by lane."""
    return a(a, a), _arithmetic("fsub")


@intrinsic
def _mul(typingctx, a, b):
    """a * b, lane by lane."""
    return a(a, a), _arithmetic("fmul")


@intrinsic
def _sqrt(typingctx, a):
    """The square root of a, lane by lane."""
    return a(a), _arithmetic("llvm.sqrt")


@intrinsic
def _inverse_root(typingctx, a):
    """1 / sqrt(a) where a > 0, else 1, lane by lane (each rounded once, as 1.0 / np.sqrt(a))."""

    def codegen(context, builder, sig, args):
        vector = context.get_value_type(sig.return_type)
        one = ir.Constant(vector, [1.0] * vector.count)
        positive = builder.fcmp_ordered(">", args[0], ir.Constant(vector, None))
        return builder.fdiv(
            one, _vector_intrinsic(builder, "llvm.sqrt", vector, [builder.select(positive, args[0], one)])
        )

    return a(a), codegen


@intrinsic
def _abs(typingctx, a):
    """|a|, lane by lane."""
    return a(a), _arithmetic("llvm.fabs")


if numba.config.DISABLE_JIT:  # plain Python (NUMBA_DISABLE_JIT=1, for coverage): a register is a NumPy slice

    def _load(A, i, j, v):
        width = TILE_BYTES // A.itemsize
        return A[i, j, v * width : (v + 1) * width].copy()

    def _store(A, i, j, v, x):
        width = TILE_BYTES // A.itemsize
        A[i, j, v * width : (v + 1) * width] = x

    def _fma(a, b, c):
        return a * b + c  # rounded twice: the interpreted batch matches the compiled one to rounding

    def _zero(A):
        return np.zeros(TILE_BYTES // A.itemsize, A.dtype)

    def _flush(v):
        return np.where(np.abs(v) < np.finfo(v.dtype).tiny, v.dtype.type(0), v)

    def _load64(A, i, j, v):
        return A[(i, j)[: A.ndim - 1]][WIDE * v : WIDE * (v + 1)].astype(np.float64)

    def _store64(A, i, j, v, x):
        A[(i, j)[: A.ndim - 1]][WIDE * v : WIDE * (v + 1)] = x

    def _difference64(X, Y, i, j, v):
        return (X[i, j, WIDE * v : WIDE * (v + 1)] - Y[i, j, WIDE * v : WIDE * (v + 1)]).astype(np.float64)

    def _sum64(X, i, j, Y, i2, j2, v):
        return (X[i, j, WIDE * v : WIDE * (v + 1)] + Y[i2, j2, WIDE * v : WIDE * (v + 1)]).astype(np.float64)

    def _splat64(x):
        return np.full(WIDE, x, np.float64)

    _add, _sub, _mul, _sqrt, _abs = np.add, np.subtract, np.multiply, np.sqrt, np.abs

    def _inverse_root(a):
        return 1.0 / np.sqrt(np.where(a > 0, a, 1.0))

# -- the products, in register tiles ------------------------------------------------------------------


@kernel
def _registers(A):
    """The tile values (`Lanes`, `TILE_BYTES`) of a lane row A[i, j, :]."""
    return A.shape[2] * A.itemsize // TILE_BYTES


@kernel
def _half_step(X, Y, Se, Ht, Xn):
    """Xn = X H + [Se o Y[:r]; 0] (eqs 6 and 8 with H = I - eta Y^T Y, or 7 and 9; Se[i, 0] = eta
    s[i] lane by lane, r = Se.shape[0]), subnormals flushed to zero (`fpmode`), from Ht = H^T (so
    that both factors' rows run along the sum's index, a fixed offset apart). X H in register
    tiles of 4 rows x 2 columns (a tile past the last row or column repeats it: the same numbers
    stored twice), then the principal term and the flush, register by register."""
    rows, k = X.shape[0], X.shape[1]
    for v in range(_registers(X)):
        for i in range(0, rows, 4):
            i1, i2, i3 = min(i + 1, rows - 1), min(i + 2, rows - 1), min(i + 3, rows - 1)
            for b in range(0, k, 2):
                b1 = min(b + 1, k - 1)
                c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = _zero(X)
                for a in range(k):
                    h0, h1 = _load(Ht, b, a, v), _load(Ht, b1, a, v)
                    x = _load(X, i, a, v)
                    c00, c01 = _fma(x, h0, c00), _fma(x, h1, c01)
                    x = _load(X, i1, a, v)
                    c10, c11 = _fma(x, h0, c10), _fma(x, h1, c11)
                    x = _load(X, i2, a, v)
                    c20, c21 = _fma(x, h0, c20), _fma(x, h1, c21)
                    x = _load(X, i3, a, v)
                    c30, c31 = _fma(x, h0, c30), _fma(x, h1, c31)
                _store(Xn, i, b, v, c00)
                _store(Xn, i, b1, v, c01)
                _store(Xn, i1, b, v, c10)
                _store(Xn, i1, b1, v, c11)
                _store(Xn, i2, b, v, c20)
                _store(Xn, i2, b1, v, c21)
                _store(Xn, i3, b, v, c30)
                _store(Xn, i3, b1, v, c31)
        for i in range(rows):
            for b in range(k):
                x = _load(Xn, i, b, v)
                if i < Se.shape[0]:
                    x = _fma(_load(Se, i, 0, v), _load(Y, i, b, v), x)
                _store(Xn, i, b, v, _flush(x))


@kernel
def _store_tile(A, i, i1, j, j1, j2, j3, wide, v, c):
    """Register v of A[i, j:j3 + 1] and A[i1, j:j3 + 1] = c (8 registers, row by row), or of the
    first two columns only where not `wide`."""
    c0, c1, c2, c3, c4, c5, c6, c7 = c
    _store(A, i, j, v, c0)
    _store(A, i, j1, v, c1)
    _store(A, i1, j, v, c4)
    _store(A, i1, j1, v, c5)
    if wide:
        _store(A, i, j2, v, c2)
        _store(A, i, j3, v, c3)
        _store(A, i1, j2, v, c6)
        _store(A, i1, j3, v, c7)


@kernel
def _grams(X, r, G, Gc):
    """Gc = the Gram of the complement rows r: of X, then G = Gc + that of the principal rows
    :r, i.e. X^T X: the step needs G, the loss both (Gc is not G minus the principal part,
    which would cancel once the complement is small). In register tiles of 2 x 4 entries over
    the tiles that reach the upper triangle (indices past k - 1 repeat the last), then its
    mirror (a tile's lower entries are already its mirror's numbers: fma(x, y, c) = fma(y, x, c))."""
    k, rows = X.shape[1], X.shape[0]
    for v in range(_registers(X)):
        for a in range(0, k, 2):
            a1 = min(a + 1, k - 1)
            for b in range(a, k, 4):
                b1, b2, b3 = min(b + 1, k - 1), min(b + 2, k - 1), min(b + 3, k - 1)
                wide = b + 2 < k
                c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = _zero(X)
                for part in range(2):
                    lo, hi = (r, rows) if part == 0 else (0, r)
                    for i in range(lo, hi):
                        x0, x1 = _load(X, i, a, v), _load(X, i, a1, v)
                        y = _load(X, i, b, v)
                        c0, c4 = _fma(x0, y, c0), _fma(x1, y, c4)
                        y = _load(X, i, b1, v)
                        c1, c5 = _fma(x0, y, c1), _fma(x1, y, c5)
                        if wide:
                            y = _load(X, i, b2, v)
                            c2, c6 = _fma(x0, y, c2), _fma(x1, y, c6)
                            y = _load(X, i, b3, v)
                            c3, c7 = _fma(x0, y, c3), _fma(x1, y, c7)
                    c = (c0, c1, c2, c3, c4, c5, c6, c7)
                    if part == 0:
                        _store_tile(Gc, a, a1, b, b1, b2, b3, wide, v, c)
                    else:
                        _store_tile(G, a, a1, b, b1, b2, b3, wide, v, c)
        for a in range(k):
            for b in range(a):
                _store(Gc, a, b, v, _load(Gc, b, a, v))
                _store(G, a, b, v, _load(G, b, a, v))


@kernel
def _product(X, Y, r, E):
    """E = Up Vp^T (r x r, lane by lane) in register tiles of 2 x 4, the last of a row pair 2 x 2
    where at most two columns remain (indices past r - 1 repeat the last)."""
    k = X.shape[1]
    for v in range(_registers(X)):
        for i in range(0, r, 2):
            i1 = min(i + 1, r - 1)
            for j in range(0, r, 4):
                j1, j2, j3 = min(j + 1, r - 1), min(j + 2, r - 1), min(j + 3, r - 1)
                wide = j + 2 < r
                c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = _zero(X)
                for c in range(k):
                    x0, x1 = _load(X, i, c, v), _load(X, i1, c, v)
                    y = _load(Y, j, c, v)
                    c0, c4 = _fma(x0, y, c0), _fma(x1, y, c4)
                    y = _load(Y, j1, c, v)
                    c1, c5 = _fma(x0, y, c1), _fma(x1, y, c5)
                    if wide:
                        y = _load(Y, j2, c, v)
                        c2, c6 = _fma(x0, y, c2), _fma(x1, y, c6)
                        y = _load(Y, j3, c, v)
                        c3, c7 = _fma(x0, y, c3), _fma(x1, y, c7)
                _store_tile(E, i, i1, j, j1, j2, j3, wide, v, (c0, c1, c2, c3, c4, c5, c6, c7))


@kernel
def _variant_factor(G, Go, Y, half_bal, lamp, eta, Ht, F, B, Yp):
    """Ht = H^T, H = I - eta (G + half_bal (Go - G)) P^-1, and Yp = Y[:r] P^-1, with P = G + lamp I
    (ScaledGD), or P = I when lamp < 0 (Yp is then left alone: the step reads Y). F (k, k,
    lanes) and B (k + r, k, lanes) are work: P = F F^T (Cholesky; a non-positive pivot gives
    NaN, which stops the run as diverged), B = [G + half_bal (Go - G); Y[:r]] solved row by row."""
    k, lanes = G.shape[1], G.shape[2]
    r = Yp.shape[0]
    for a in range(k):
        for b in range(k):
            for q in range(lanes):
                B[a, b, q] = G[a, b, q] + half_bal * (Go[a, b, q] - G[a, b, q])
    if lamp >= 0:
        for i in range(r):
            for b in range(k):
                for q in range(lanes):
                    B[k + i, b, q] = Y[i, b, q]
        for j in range(k):
            for i in range(j, k):
                for q in range(lanes):
                    F[i, j, q] = G[i, j, q] + (lamp if i == j else 0.0)
                for c in range(j):
                    for q in range(lanes):
                        F[i, j, q] -= F[i, c, q] * F[j, c, q]
            for q in range(lanes):
                F[j, j, q] = np.sqrt(F[j, j, q]) if F[j, j, q] > 0 else np.nan
            for i in range(j + 1, k):
                for q in range(lanes):
                    F[i, j, q] /= F[j, j, q]
        for i in range(k + r):  # row i of B times P^-1: F z = B[i], then F^T B[i] = z
            for j in range(k):
                for c in range(j):
                    for q in range(lanes):
                        B[i, j, q] -= F[j, c, q] * B[i, c, q]
                for q in range(lanes):
                    B[i, j, q] /= F[j, j, q]
            for j in range(k - 1, -1, -1):
                for c in range(j + 1, k):
                    for q in range(lanes):
                        B[i, j, q] -= F[c, j, q] * B[i, c, q]
                for q in range(lanes):
                    B[i, j, q] /= F[j, j, q]
        for i in range(r):
            for b in range(k):
                for q in range(lanes):
                    Yp[i, b, q] = B[k + i, b, q]
    for a in range(k):
        for b in range(k):
            for q in range(lanes):
                Ht[b, a, q] = (1.0 if a == b else 0.0) - eta[q] * B[a, b, q]


@kernel
def _side(X, Y, G, Go, Se, eta, variant, H, F, B, Yp, Xn):
    """Xn: X after one GD step of the variant (`layout` BALANCE, PRECONDITION) with G = Y^T Y
    and Go = X^T X (docs/maths.md section 6): X H + [(Se o Y[:r]) P^-1; 0], Se = eta s."""
    if variant is not None:  # (None: plain GD, whose code alone is then compiled)
        half_bal, lamp = 0.5 * variant[BALANCE], variant[PRECONDITION]
        if half_bal != 0 or lamp >= 0:
            _variant_factor(G, Go, Y, half_bal, lamp, eta, H, F, B, Yp)
            _half_step(X, Yp if lamp >= 0 else Y, Se, H, Xn)
            return
    k, lanes = G.shape[1], G.shape[2]  # plain GD: H = I - eta G (= H^T: G is symmetric, bit for bit)
    for a in range(k):
        for b in range(k):
            for q in range(lanes):
                H[a, b, q] = (1.0 if a == b else 0.0) - eta[q] * G[a, b, q]
    _half_step(X, Y, Se, H, Xn)


@kernel
def _perturb(X, r, Z, B, j, A, w, lo, runs):
    """Perturbed GD's noise of step j of the call (`fastmf.noise`, compressed form), lane by
    lane: lane q is run lo + q of Z and B (the first `runs` lanes; the padding lanes take none);
    X[:r] += Z[lo + q, j, :r]; the complement L = X[r:] becomes the R of the QR of
    [L + Z[lo + q, j, r:]; B[lo + q, j]] (Householder reflections), or L + Z[lo + q, j, r:] when
    B has no rows (the frame is then the whole complement: exact path by path). A is
    ((rows - r) + p, k, lanes) work, w (3, lanes)."""
    rows, k, lanes = X.shape[0], X.shape[1], runs
    p = B.shape[2]
    for i in range(rows):
        for b in range(k):
            for q in range(lanes):
                X[i, b, q] += Z[lo + q, j, i, b]
    if p == 0:
        return
    n = rows - r + p
    for i in range(n):
        for b in range(k):
            for q in range(lanes):
                A[i, b, q] = X[r + i, b, q] if i < rows - r else B[lo + q, j, i - rows + r, b]
    half, alpha, dot = w[0], w[1], w[2]
    for c in range(min(n, k)):  # A[c:, c] becomes v = A[c:, c] - alpha e_c, v^T v = 2 half
        for q in range(lanes):
            half[q] = 0.0
        for i in range(c, n):
            for q in range(lanes):
                half[q] += A[i, c, q] * A[i, c, q]
        for q in range(lanes):
            alpha[q] = -np.copysign(np.sqrt(half[q]), A[c, c, q])
            half[q] -= alpha[q] * A[c, c, q]
            A[c, c, q] -= alpha[q]
        for b in range(c + 1, k):  # A[c:, b] -= v (v^T A[c:, b]) / half
            for q in range(lanes):
                dot[q] = 0.0
            for i in range(c, n):
                for q in range(lanes):
                    dot[q] += A[i, c, q] * A[i, b, q]
            for q in range(lanes):
                dot[q] = dot[q] / half[q] if half[q] > 0 else 0.0
            for i in range(c, n):
                for q in range(lanes):
                    A[i, b, q] -= dot[q] * A[i, c, q]
        for q in range(lanes):
            A[c, c, q] = alpha[q]
        for i in range(c + 1, n):
            for q in range(lanes):
                A[i, c, q] = 0.0
    for c in range(min(n, k)):  # the diagonal of R >= 0, as `diagnostics.householder_r` leaves it
        for q in range(lanes):
            if A[c, c, q] < 0:
                for b in range(c, k):
                    A[c, b, q] = -A[c, b, q]
    for i in range(r, rows):
        for b in range(k):
            for q in range(lanes):
                X[i, b, q] = A[i - r, b, q]


@kernel(inline="always")
def _cross_lane(X, a0, a1, Y, b0, b1, q):
    """Lane q's ||X[a0:a1] Y[b0:b1]^T||_F^2 as a sum of squares (`diagnostics.cross_block`)."""
    total = 0.0
    for i in range(a0, a1):
        for j in range(b0, b1):
            e = 0.0
            for c in range(X.shape[1]):
                e += np.float64(X[i, c, q]) * np.float64(Y[j, c, q])
            total += e * e
    return total


@kernel
def _record(X, Y, s, N, M, GUc, GVc, E, blocks, loss):
    """loss[q] (float64) for the states X, Y with Grams N, M, complement Grams GUc, GVc and
    E = Up Vp^T (`_product`); blocks (6, lanes) float64 is work. In float64 registers of 8
    lanes (`_load64`), then lane by lane where a cross block cancelled. (The kernels it calls are
    called by `run_batch` itself: numba optimizes a function's code again in every caller.)"""
    rows, k, lanes = X.shape
    r = s.shape[0]
    half, zero = _splat64(0.5), _splat64(0.0)
    for v in range(lanes // WIDE):
        total = zero
        for i in range(r):
            for j in range(r):
                e = _sub(_splat64(s[i]) if i == j else zero, _load64(E, i, j, v))
                total = _add(total, _mul(_mul(half, e), e))
        _store64(loss, 0, 0, v, total)
        # the three cross blocks from the Grams, with the sums of their terms' sizes (bounds from the
        # diagonals), each summed again as the squares of its product's entries where it cancelled
        # (`diagnostics.cancelled`)
        b0 = b1 = b2 = b3 = b4 = b5 = zero
        for a in range(k):
            for b in range(k):
                n, cu = _load64(N, a, b, v), _load64(GUc, a, b, v)
                m, cv = _load64(M, a, b, v), _load64(GVc, a, b, v)
                b0 = _add(b0, _mul(_sub(n, cu), cv))
                b1 = _add(b1, _mul(cu, _sub(m, cv)))
                b2 = _add(b2, _mul(cu, cv))
            n, cu = _load64(N, a, a, v), _load64(GUc, a, a, v)
            m, cv = _load64(M, a, a, v), _load64(GVc, a, a, v)
            b3 = _add(b3, _sqrt(_mul(_abs(_add(n, cu)), _abs(cv))))
            b4 = _add(b4, _sqrt(_mul(_abs(cu), _abs(_add(m, cv)))))
            b5 = _add(b5, _sqrt(_mul(_abs(cu), _abs(cv))))
        _store64(blocks, 0, 0, v, b0)
        _store64(blocks, 1, 0, v, b1)
        _store64(blocks, 2, 0, v, b2)
        _store64(blocks, 3, 0, v, _mul(b3, b3))
        _store64(blocks, 4, 0, v, _mul(b4, b4))
        _store64(blocks, 5, 0, v, _mul(b5, b5))
    fraction = cancelled(N)
    for q in range(lanes):
        for block in range(3):  # Up L_V^T, L_U Vp^T, L_U L_V^T
            if blocks[block, q] < fraction * blocks[3 + block, q]:
                a0, a1 = (0, r) if block == 0 else (r, rows)
                c0, c1 = (0, r) if block == 1 else (r, Y.shape[0])
                blocks[block, q] = _cross_lane(X, a0, a1, Y, c0, c1, q)
        loss[q] += 0.5 * (blocks[0, q] + blocks[1, q] + blocks[2, q])


# -- the stage tests, lane by lane (the batch side of `stages.mark`) ----------------------------------


@kernel
def _lanes_dot(L, rows, i, j, v):
    """Value v (`_load64`) of the sum over b < rows of L[b, i, :] L[b, j, :], summed in order (L float64)."""
    x = _splat64(0.0)
    for b in range(rows):
        x = _add(x, _mul(_load64(L, b, i, v), _load64(L, b, j, v)))
    return x


@kernel
def passes_lanes(X, Y, s, E, A, L, active, pend1, pend0, ok1, ok0):
    """ok1[q] / ok0[q]: is T1 / T0 pending (pend1 / pend0) and passed by the state of lane q, an
    `active` lane, with E = Up Vp^T; T0 is tested only where T1 is reached (before or by this
    state), as `stages.mark` does for a single run. A and L are (n, n, lanes) float64 work, n = max(r, k).
    The arithmetic of `mark` (G and P in float64 from the state's sums and products, `spectral.posdef`'s
    Cholesky) lane by lane, the factorization in float64 registers (`_load64`): a state gets the same
    answers from both. As in `mark`, a lane whose diagonal already fails (a pivot c + sign M_jj
    not > 0: the Cholesky's pivots are that less squares) is answered no before the factorization,
    and the matrix is neither completed nor factored where no lane is left: the same answers.
    Compiled on its own, not inlined: Numba's copy of its IR into `_run_blocks` took 0.4 to 0.8 s
    of the first `fastmf.solve_batch`; the batch runs within about 1% of its time inlined."""
    r, k, lanes = s.shape[0], X.shape[1], X.shape[2]
    p = min(r, k)
    sd = s[r - 1]
    half = _splat64(0.5)
    for q in range(lanes):
        ok1[q] = pend1[q] and active[q]
    for test in range(3):  # T1: G - sigma_d / 2 I > 0, then T0: sigma_d / 4 I -+ P > 0
        ok = ok1 if test == 0 else ok0
        n, c, sign = (p, -0.5 * sd, 1.0) if test == 0 else (r, 0.25 * sd, -1.0 if test == 1 else 1.0)
        if test == 0:  # G = A A^T (r <= k) or A^T A (k < r), A^T or A stored in L
            if not ok1.any():
                continue
            rows, cols = (k, r) if r <= k else (r, k)
            for v in range(lanes // WIDE):
                for i in range(r):
                    for b in range(k):
                        _store64(L, b if r <= k else i, i if r <= k else b, v, _mul(half, _sum64(X, i, b, Y, i, b, v)))
                for i in range(cols):  # the diagonal first: where no lane passes it, nothing more
                    _store64(A, i, i, v, _lanes_dot(L, rows, i, i, v))
            for i in range(cols):
                for q in range(lanes):
                    ok1[q] &= A[i, i, q] + c > 0.0
            if not ok1.any():
                continue
            for v in range(lanes // WIDE):
                for i in range(cols):
                    for j in range(i + 1, cols):
                        x = _lanes_dot(L, rows, i, j, v)
                        _store64(A, i, j, v, x)
                        _store64(A, j, i, v, x)
        elif test == 1:  # P, where T1 is reached and both diagonals pass
            for q in range(lanes):
                ok0[q] = pend0[q] and active[q] and not (pend1[q] and not ok1[q])
            if not ok0.any():
                return
            for v in range(lanes // WIDE):
                for j in range(r):
                    _store64(A, j, j, v, _sub(_splat64(s[j]), _mul(half, _sum64(E, j, j, E, j, j, v))))
            for j in range(r):
                for q in range(lanes):
                    ok0[q] &= (-A[j, j, q] + c > 0.0) & (A[j, j, q] + c > 0.0)
            if not ok0.any():
                return
            for v in range(lanes // WIDE):
                for i in range(r):
                    for j in range(r):
                        if i != j:
                            _store64(A, i, j, v, _sub(_splat64(0.0), _mul(half, _sum64(E, i, j, E, j, i, v))))
        for j in range(n):  # c I + sign A = L L^T, L[j, j] holding 1 / L's diagonal entry
            for v in range(lanes // WIDE):  # column j, in float64 registers
                for i in range(j, n):
                    x = _mul(_splat64(sign), _load64(A, i, j, v))
                    if i == j:
                        x = _add(x, _splat64(c))
                    for b in range(j):
                        x = _sub(x, _mul(_load64(L, i, b, v), _load64(L, j, b, v)))
                    _store64(L, i, j, v, x)
            for q in range(lanes):
                ok[q] &= L[j, j, q] > 0.0
            for v in range(lanes // WIDE):
                root = _inverse_root(_load64(L, j, j, v))  # (a lane answered no stays finite)
                _store64(L, j, j, v, root)
                for i in range(j + 1, n):
                    _store64(L, i, j, v, _mul(_load64(L, i, j, v), root))


@kernel
def _lanes_in(Xs, lo, runs, X):
    """X[i, a, q] = Xs[lo + q, i, a] for the block's runs (q < runs), 0 in its padding lanes."""
    for i in range(X.shape[0]):
        for a in range(X.shape[1]):
            for q in range(X.shape[2]):
                X[i, a, q] = Xs[lo + q, i, a] if q < runs else 0.0


@kernel
def _retire(X, Y, Xs, Ys, lo, before, after):
    """Xs[lo + q], Ys[lo + q] = lane q of X, Y for the lanes that stopped: before[q] and not after[q]
    (a stopped lane keeps computing on, unread)."""
    for q in range(before.size):
        if before[q] and not after[q]:
            for i in range(X.shape[0]):
                for a in range(X.shape[1]):
                    Xs[lo + q, i, a] = X[i, a, q]
            for i in range(Y.shape[0]):
                for a in range(Y.shape[1]):
                    Ys[lo + q, i, a] = Y[i, a, q]


@kernel(inline="always")
def _note(summary, losses, lo, j, t, loss, active, pend1, pend0, ok1, ok0, delta, tol):
    """The record of step t (column j of `losses`) in each active lane's summary (lane q: run
    lo + q): its loss, the stages it reaches (T0 only once T1 is reached, as `stages.mark`),
    T_delta, convergence."""
    for q in range(active.size):
        if not active[q]:
            continue
        row = summary[lo + q]
        row[FINAL_LOSS] = loss[q]
        if j < losses.shape[1]:
            losses[lo + q, j] = loss[q]
        if pend1[q] and ok1[q]:
            row[T1] = t
            pend1[q] = False
        if not pend1[q] and pend0[q] and ok0[q]:
            row[T0] = t
            pend0[q] = False
        if row[T_DELTA] < 0 and loss[q] <= delta:
            row[T_DELTA] = t
        if loss[q] <= tol:
            row[STATUS] = CONVERGED
            active[q] = False


@kernel(inline="always")
def _overflows(N, M, summary, lo, active, diverged, t, unrecorded):
    """Stop the active lanes whose new state has (||X||^2 + ||Y||^2)^2 not finite in float64
    (`blocks.overflows`), marking in `diverged` those whose last finite state, at step t, is
    `unrecorded`; the others reach step t + 1."""
    for q in range(active.size):
        if active[q]:
            mass = 0.0
            for a in range(N.shape[0]):
                mass += np.float64(N[a, a, q]) + np.float64(M[a, a, q])
            if not np.isfinite(mass * mass):
                summary[lo + q, STATUS] = DIVERGED
                active[q] = False
                diverged[q] = unrecorded
            else:
                summary[lo + q, N_ITER] = t + 1


@kernel(inline="always")
def _raise(e, row, c, v):
    """e[row, c] = max(e[row, c], v), a NaN e[row, c] being "nothing yet" and a NaN v no value."""
    if v > e[row, c] or e[row, c] != e[row, c]:
        e[row, c] = v


@kernel(inline="always")
def _lower(e, row, c, v):
    """e[row, c] = min(e[row, c], v), as `_raise`."""
    if v < e[row, c] or e[row, c] != e[row, c]:
        e[row, c] = v


@kernel
def _lane_copy(src, q, rows, cols, dst):
    """dst[:rows, :cols] = src[:rows, :cols, q] in float64."""
    for i in range(rows):
        for j in range(cols):
            dst[i, j] = src[i, j, q]


# the tracked slots of `_prove_spectral`: sigma_d(A), lambda_max(A A^T - 2 diag(s)), ||J||_op, ||K||_op, sigma_d(Up),
# sigma_d(Vp), Delta_t: the extreme each goes to, whether it is the largest eigenvalue, its square root, the least
_EXTREME = (EXT_SIGMA_A, EXT_AAT, EXT_J, EXT_K, EXT_UV, EXT_UV, EXT_DELTA)
_LARGEST = (False, True, True, True, False, False, True)
_ROOT = (True, False, True, True, True, True, True)
_LOWER = (True, False, False, False, True, True, False)


@kernel
def _prove_b(X, Y, r, lanes_in, before0, extremes, lo, b2):
    """The ||B||_F extremes (`layout.EXT_B`, and `EXT_B_T0` where before0: T0 was pending before
    this record) of the lanes in `lanes_in` (lane q: run lo + q) at a record, as
    `diagnostics.record_cheap` sums it, in float64 registers (`_record`); b2 (lanes) float64 work."""
    k, lanes = X.shape[1], X.shape[2]
    half = _splat64(0.5)
    for v in range(lanes // WIDE):
        total = _splat64(0.0)
        for i in range(r):
            for c in range(k):
                d = _mul(half, _difference64(X, Y, i, c, v))
                total = _add(total, _mul(d, d))
        _store64(b2, 0, 0, v, _sqrt(total))
    for q in range(lanes):
        for c in (EXT_B, EXT_B_T0):  # (one call site: a literal slot would compile _raise once per slot)
            if lanes_in[q] and (c == EXT_B or before0[q]):
                _raise(extremes, lo + q, c, b2[q])


@kernel
def _prove_spectral(X, Y, s, E, Nc, Mc, t, lanes_in, before0, pend1, pend0, summary, extremes, spectral, lo, PW):
    """The eigenvalue-based extremes of the lanes in `lanes_in` at their record of step t, with the
    stages as that record left them (pend1, pend0) and before0: was T0 pending before it (so t <=
    T0)? Lane by lane (`spectral.extreme_eig`, the lane's tracked vectors) from the matrices
    `diagnostics.record_spectral` takes them from: sigma_d(A) from T1 on; lambda_max(A A^T - 2 diag(s)),
    ||J||_op, ||K||_op up to T0; sigma_d(Up), sigma_d(Vp) and Delta_t / delta_bound(t) from T0 on
    while the bound is above the resolution of Delta, 1e3 eps ||s|| (eps of the state's dtype).
    E = Up Vp^T (r x r x lanes), Nc, Mc the complement Grams; lane q is run lo + q of `summary`,
    `extremes` and `spectral` (`run_batch`); PW (7, n, n) float64 work."""
    vecs, valid, rates = spectral[0], spectral[1], spectral[2]
    r = s.shape[0]
    k = X.shape[1]
    p = min(r, k)
    res = resolution(s)
    floor = res * np.finfo(X.dtype).eps / 2.220446049250313e-16  # Delta's resolution in the state's dtype
    sizes = (p, r, k, k, p, p, r)
    floors = (res, res, 0.0, 0.0, res, res, res * res)
    Up, Vp, G, S, W, L, Eq = PW[0], PW[1], PW[2], PW[3], PW[4], PW[5], PW[6]
    for q in range(lanes_in.size):
        if not lanes_in[q]:
            continue
        v, ok = vecs[lo + q], valid[lo + q]
        _lane_copy(X, q, r, k, Up)
        _lane_copy(Y, q, r, k, Vp)
        bound = 0.4 * s[r - 1] * rates[lo + q] ** (t - summary[lo + q, T0])
        after0 = not pend0[q]
        # (below the floor, Delta_t is rounding: nothing to check)
        wanted = (not pend1[q], before0[q], before0[q], before0[q], after0, after0, after0 and bound > floor)
        for slot in range(N_PROOF_TRACKED):  # one call site: numba compiles extreme_eig once
            if not wanted[slot]:
                continue
            if slot == 0 or slot >= 4 and slot < 6:  # the Gram of A, Up or Vp (`diagnostics._proof_matrices`)
                gram_A(Vp if slot == 5 else Up, Up if slot == 4 else Vp, r, k, G, S)
            elif slot == 1:
                aat_minus_2s(Up, Vp, s, k, G, S, True)
            elif slot < 4:
                _lane_copy(Nc if slot == 2 else Mc, q, k, k, G)
            else:
                _lane_copy(E, q, r, r, Eq)
                residual_gram(Eq, s, W, G, True)
            value = extreme_eig(G, sizes[slot], _LARGEST[slot], floors[slot], v[slot], ok, slot, S, W, L)
            if _ROOT[slot]:
                value = np.sqrt(max(value, 0.0))
            if slot == 6:
                value /= bound
            c = _EXTREME[slot]
            if _LOWER[slot]:
                _lower(extremes, lo + q, c, value)
            else:
                _raise(extremes, lo + q, c, value)


@kernel(inline="always")
def _copy(src, dst):
    """dst[q] = src[q] (a loop: slice assignment compiles numba's shape checks and their messages)."""
    for q in range(src.size):
        dst[q] = src[q]


def run_batch(Xs, Ys, s, lrs, lr_scale, variant, noise, tol, t_start, t_stop, t_final, record_every, delta, summary,
              losses, extremes=None, spectral=None, first=0, last=-1):  # fmt: skip
    """Advance run i of GD from step t_start to t_stop, from (Xs[i], Ys[i]) with step sizes
    lrs[i] * lr_scale[...], in blocks of `lanes` runs: the blocks first to last (-1: every block);
    a run split into calls [0, a], [a, b], ... records exactly what one call [0, t_final] records.

    Xs, Ys : (runs, rows, k), (runs, rows2, k) C-contiguous states, updated in place: after
        the call run i's state is the one at step summary[i, N_ITER].
    lrs, lr_scale : the step size of run i at step t is lrs[i] * lr_scale[min(t - t_start,
        lr_scale.size - 1)] (a constant lr: lr_scale = [1]; a schedule shared by the runs: lrs = 1).
    variant : float64 (`layout.N_VARIANT`) or None
        The GD variant shared by the runs, in internal units (docs/maths.md section 6); None:
        plain GD (and then only its code is compiled).
    noise : (ZX, BX, ZY, BY) or None
        Perturbed GD's noise of each side (`fastmf.noise.NoiseStream.draw`, compressed form):
        (runs, steps, rows, k) and (runs, steps, p, k), step j of the call at [:, j]; None:
        no noise (and no noise code compiled).
    summary : (runs, N_SUMMARY) float64, in and out (`layout`): N_ITER, STATUS (RUNNING,
        CONVERGED, DIVERGED), FINAL_LOSS, T1, T0, T_DELTA (-1 until reached). The caller
        sets it once (N_ITER 0, STATUS RUNNING, FINAL_LOSS NaN, stages -1) and passes it
        back to every later call. Runs not RUNNING are left as they are; every RUNNING run
        must be at step t_start.
    t_final : the last step of the whole run (max_iter). The state at step t is recorded
        when t % record_every == 0 and t < t_stop, or t == t_final (`blocks._due`): a loss
        <= tol stops the run (CONVERGED), the first loss <= delta sets T_DELTA. A new state
        with (||X||^2 + ||Y||^2)^2 not finite in float64 stops it (DIVERGED) at its last
        finite state, whose loss goes to FINAL_LOSS.
    losses : (runs, n_cols) float64 out: the record of step t to column t // record_every,
        or t_final // record_every + 1 for an off-stride t_final, where that is < n_cols
        ((runs, 0): keep none).
    extremes : (runs, `layout.N_EXTREMES`) float64 or None
        The per-run extremes of the proofs' quantities, in and out, NaN until a step is checked:
        ||B||_F at every record (`_prove_b`), the others with `spectral`. None: none of it compiled.
    spectral : (vecs, valid, rates, spectral_every) or None
        The eigenvalue-based extremes (`_prove_spectral`): vecs (runs, `layout.N_PROOF_TRACKED`,
        max(r, k)) float64 and valid (runs, N_PROOF_TRACKED) int64, the tracked eigenvectors
        (zeros to start; carried from call to call like the state); rates (runs,) float64,
        1 - lr sigma_d / 2 of each run (NaN: no Delta bound); the eigenvalues are taken at the
        recorded steps that are multiples of spectral_every (and t_final). None: none of it
        compiled (needs `extremes`).
    """
    lanes_, (rows, k), r = lanes(Xs.dtype), Xs.shape[1:], s.shape[0]
    n, dtype = max(r, k), Xs.dtype

    def empty(*shape, dtype=dtype):
        return aligned_empty(shape + (lanes_,), dtype)

    if noise is None:
        AX = AY = empty(0, k)
    else:  # perturbed GD's QR
        AX, AY = empty(rows - r + noise[1].shape[2], k), empty(Ys.shape[1] - r + noise[3].shape[2], k)
    work = (empty(rows, k), empty(Ys.shape[1], k), empty(rows, k), empty(Ys.shape[1], k), empty(10, k, k),
            empty(r, k), empty(k + r, k), AX, AY, empty(), empty(r, 1), empty(3), empty(r, r))  # fmt: skip
    work64 = (empty(2, n, n, dtype=np.float64), empty(6, dtype=np.float64), empty(dtype=np.float64),
              empty(dtype=np.float64), np.empty((7, n, n)))  # fmt: skip
    _run_blocks(Xs, Ys, s, lrs, lr_scale, variant, noise, tol, t_start, t_stop, t_final, record_every, delta, summary,
                losses, extremes, spectral, first, last, work, work64, np.zeros((8, lanes_), np.bool_))  # fmt: skip


@kernel(entry=True)
def _run_blocks(Xs, Ys, s, lrs, lr_scale, variant, noise, tol, t_start, t_stop, t_final, record_every, delta, summary,
                losses, extremes, spectral, first, last, work, work64, flags):  # fmt: skip
    """`run_batch` with its work arrays allocated by the caller (numba's allocations are slow to compile):
    work the state's dtype, work64 float64, flags (8, lanes) bool, zero."""
    lanes = BLOCK_BYTES // Xs.itemsize
    n_blocks = (Xs.shape[0] + lanes - 1) // lanes
    r = s.shape[0]
    X, Y, Xn, Yn, G, P, B, AX, AY, eta, Se, w, E = work
    N, M, Nn, Mn, Nc, Mc, Nnc, Mnc, H, F = G[0], G[1], G[2], G[3], G[4], G[5], G[6], G[7], G[8], G[9]
    W, blocks, loss, b2, PW = work64
    active, pend1, pend0, ok1, ok0 = flags[0], flags[1], flags[2], flags[3], flags[4]
    diverged, before, before0 = flags[5], flags[6], flags[7]
    alternating = False
    if variant is not None:
        alternating = variant[ALTERNATING] != 0
    mode = mode_on()  # flush-to-zero on this thread (`fpmode`)
    for blk in range(first, n_blocks if last < 0 else last):
        lo = blk * lanes
        runs = min(lanes, Xs.shape[0] - lo)
        for q in range(lanes):  # the padding lanes: a zero state, stopped
            active[q] = q < runs and summary[lo + q, STATUS] == RUNNING
            pend1[q] = q < runs and summary[lo + q, T1] < 0
            pend0[q] = q < runs and summary[lo + q, T0] < 0
            eta[q] = 0.0
        if not active.any():
            continue
        _lanes_in(Xs, lo, runs, X)
        _lanes_in(Ys, lo, runs, Y)
        _grams(X, r, N, Nc)
        _grams(Y, r, M, Mc)
        t = t_start
        while True:
            _copy(active, before)
            if _due(t, t_stop, t_final, record_every):
                _product(X, Y, r, E)
                _record(X, Y, s, N, M, Nc, Mc, E, blocks, loss)
                passes_lanes(X, Y, s, E, W[0], W[1], active, pend1, pend0, ok1, ok0)
                j = t // record_every if t % record_every == 0 else t_final // record_every + 1
                _copy(pend0, before0)
                _note(summary, losses, lo, j, t, loss, active, pend1, pend0, ok1, ok0, delta, tol)
                if extremes is not None:
                    _prove_b(X, Y, r, before, before0, extremes, lo, b2)
                    if spectral is not None:
                        every = spectral[3]
                        if every > 0 and (t % every == 0 or t == t_final):
                            _prove_spectral(X, Y, s, E, Nc, Mc, t, before, before0, pend1, pend0, summary, extremes,
                                            spectral, lo, PW)  # fmt: skip
                _retire(X, Y, Xs, Ys, lo, before, active)
            if t >= t_stop or not active.any():
                break
            factor = lr_scale[min(t - t_start, lr_scale.size - 1)]
            for q in range(runs):
                eta[q] = lrs[lo + q] * factor
            for i in range(r):
                for q in range(lanes):
                    Se[i, 0, q] = eta[q] * s[i]
            _side(X, Y, M, N, Se, eta, variant, H, F, B, P, Xn)
            if alternating:  # the Y side steps from the new X
                _grams(Xn, r, Nn, Nnc)
            _side(Y, Xn if alternating else X, Nn if alternating else N, M, Se, eta, variant, H, F, B, P, Yn)
            if noise is not None:
                _perturb(Xn, r, noise[0], noise[1], t - t_start, AX, w, lo, runs)
                _perturb(Yn, r, noise[2], noise[3], t - t_start, AY, w, lo, runs)
            if noise is not None or not alternating:
                _grams(Xn, r, Nn, Nnc)
            _grams(Yn, r, Mn, Mnc)
            _copy(active, before)
            _overflows(Nn, Mn, summary, lo, active, diverged, t, not _due(t, t_stop, t_final, record_every))
            if diverged.any():  # its loss, as `fastmf.solve` records the state it returns (no stage test:
                _product(X, Y, r, E)  # it may have exploded)
                _record(X, Y, s, N, M, Nc, Mc, E, blocks, loss)
                if extremes is not None:  # the extremes take that record, as solve's history does
                    _prove_b(X, Y, r, diverged, pend0, extremes, lo, b2)
                    if spectral is not None and spectral[3] > 0:
                        _prove_spectral(X, Y, s, E, Nc, Mc, t, diverged, pend0, pend1, pend0, summary, extremes,
                                        spectral, lo, PW)  # fmt: skip
                for q in range(lanes):
                    if diverged[q]:
                        summary[lo + q, FINAL_LOSS] = loss[q]
                        if summary[lo + q, T_DELTA] < 0 and loss[q] <= delta:
                            summary[lo + q, T_DELTA] = t
                        diverged[q] = False
            _retire(X, Y, Xs, Ys, lo, before, active)  # a diverged lane keeps its last finite state
            X, Xn = Xn, X
            Y, Yn = Yn, Y
            N, Nn = Nn, N
            M, Mn = Mn, M
            Nc, Nnc = Nnc, Nc
            Mc, Mnc = Mnc, Mc
            t += 1
        _retire(X, Y, Xs, Ys, lo, active, diverged)  # (diverged: all False here)
    mode_restore(mode)


def run_threads(*args, threads=None):
    """`run_batch(*args)` with its blocks shared among `threads` Python threads (default: numba's
    thread count, `numba.set_num_threads`), in turns of a few blocks: the kernel releases the GIL,
    and the runs' numbers do not depend on how the blocks are shared."""
    Xs = args[0]
    n_blocks = -(-Xs.shape[0] // lanes(Xs.dtype))
    threads = min(numba.get_num_threads() if threads is None else threads, n_blocks)
    if threads <= 1:
        run_batch(*args, 0, n_blocks)
        return
    cuts = np.linspace(0, n_blocks, min(n_blocks, 4 * threads) + 1).astype(np.int64)
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for done in [pool.submit(run_batch, *args, int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]:
            done.result()
