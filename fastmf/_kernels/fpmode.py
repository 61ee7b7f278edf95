"""Subnormal numbers flushed to zero: a step costs the same long after convergence.

Long after convergence the complement keeps shrinking geometrically and reaches the
subnormal range (below about 2.2e-308, 1.2e-38 in float32), where many x86 CPUs (most
Intel ones) take 30-80 times longer per operation. Two mechanisms, used together:

* `flush`: every new state entry below the smallest normal number is set to exactly 0
  (what GD tends to there), on every platform; the kernels call it after each step.
* the processor's flush-to-zero and denormals-are-zero modes (x86-64 MXCSR bits FTZ and
  DAZ), so that no intermediate result computed on the calling thread is subnormal either
  (a large product that the BLAS splits over its own worker threads runs in their mode; the
  state flush above covers what it writes):
  `flushing()` sets them around a kernel call from Python and restores them after
  (the flow's ODE solver runs inside it too); `mode_on`/`mode_restore` do the same
  inside a kernel, for a call made on another thread (the batch's worker threads). Elsewhere
  they do nothing.

Neither changes a single bit of a run that never meets a subnormal number.
"""

import platform
from contextlib import contextmanager

import numpy as np
from llvmlite import ir
from numba import config, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._jit import kernel

X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
FTZ_DAZ = 0x8040  # MXCSR bit 15 (flush to zero) and bit 6 (denormals are zero)


def _mxcsr(builder, name, slot):
    fnty = ir.FunctionType(ir.VoidType(), [ir.PointerType(ir.IntType(8))])
    fn = cgutils.get_or_insert_function(builder.module, fnty, name)
    builder.call(fn, [builder.bitcast(slot, ir.PointerType(ir.IntType(8)))])


@intrinsic
def _get_mxcsr(typingctx):
    def codegen(context, builder, sig, args):
        slot = cgutils.alloca_once_value(builder, ir.Constant(ir.IntType(32), 0))
        if X86:
            _mxcsr(builder, "llvm.x86.sse.stmxcsr", slot)
        return builder.load(slot)

    return types.uint32(), codegen


@intrinsic
def _set_mxcsr(typingctx, value):
    def codegen(context, builder, sig, args):
        if X86:
            _mxcsr(builder, "llvm.x86.sse.ldmxcsr", cgutils.alloca_once_value(builder, args[0]))
        return context.get_dummy_value()

    return types.void(types.uint32), codegen


if config.DISABLE_JIT:  # plain Python (NUMBA_DISABLE_JIT=1, for coverage): the mode is left alone

    def _get_mxcsr():
        return np.uint32(0)

    def _set_mxcsr(value):
        pass


@kernel(entry=True)
def mode_on():
    """Turn the flush-to-zero modes on for this thread; returns the mode to restore."""
    old = _get_mxcsr()
    _set_mxcsr(old | np.uint32(FTZ_DAZ))
    return old


@kernel(entry=True)
def mode_restore(old):
    _set_mxcsr(old)


@kernel(entry=True)
def mode_bits():
    """This thread's MXCSR (0 off x86): for tests."""
    return _get_mxcsr()


@contextmanager
def flushing():
    """Run the body with flush-to-zero and denormals-are-zero on (x86-64), then restore."""
    old = mode_on()
    try:
        yield
    finally:
        mode_restore(old)


@kernel
def flush(A):
    """Set the entries of the 2-D A below the smallest normal number to exactly 0."""
    tiny = np.finfo(A.dtype).tiny
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            x = A[i, j]
            A[i, j] = 0.0 if abs(x) < tiny else x  # (a store either way: the loop vectorizes)
