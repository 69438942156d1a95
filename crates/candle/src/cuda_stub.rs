//! The CUDA path in a build without the `cuda` feature: every CUDA tensor is refused with
//! [`Error::CudaNotCompiledIn`], never copied to the CPU. (candle's `CudaStorage` is then
//! candle's own stub type, which no tensor holds unless candle's `cuda` feature is on through
//! another crate.)

use candle_core::{CudaStorage, Layout, Shape};

use crate::error::Error;
use crate::ops::{KyInplace2, KyOp};

/// Refuses: this build has no CUDA path.
pub(crate) fn run<const N: usize, O: KyOp<N>>(
    _op: &O,
    _ins: [(&CudaStorage, &Layout); N],
) -> candle_core::Result<(CudaStorage, Shape)> {
    Err(Error::CudaNotCompiledIn { op: O::NAME }.into_candle())
}

/// Refuses: this build has no CUDA path.
pub(crate) fn run_inplace2<O: KyInplace2>(
    _op: &O,
    _dst: (&mut CudaStorage, &Layout),
    _src: (&CudaStorage, &Layout),
) -> candle_core::Result<()> {
    Err(Error::CudaNotCompiledIn { op: O::NAME }.into_candle())
}
