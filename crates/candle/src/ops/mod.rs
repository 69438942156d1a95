//! One file per operator: the views of candle operands it needs (or the typed refusal of a
//! layout it cannot take without a copy) and the kernelyard arguments it builds from them.
//! [`Apply`] turns any of them into a candle `CustomOp1/2/3` whose `cpu_fwd` runs the host path
//! ([`crate::host`]) and whose `cuda_fwd` runs the CUDA path ([`crate::cuda`]).
//!
//! Responsibility: an op file checks what candle's layout says (rank, contiguity, dtype
//! families) and maps it onto the kernelyard operator's argument shapes; kernelyard validates
//! the arguments themselves (sizes, dtypes agreeing, aliasing) and says what is wrong.

pub(crate) mod attention;
pub(crate) mod gemm;
pub(crate) mod rms_norm;
pub(crate) mod rope;
pub(crate) mod rows;
pub(crate) mod silu_mul;
pub(crate) mod token_logprobs;

use candle_core::{
    CpuStorage, CudaStorage, CustomOp1, CustomOp2, CustomOp3, InplaceOp2, Layout, MetalStorage,
    Shape,
};
use kernelyard::{Args, Policy, TensorView, TensorViewMut};

use crate::error::Error;
use crate::operand::{Input, OpPlan, ViewSpec};

/// An operator over `N` candle operands that writes one new tensor.
pub(crate) trait KyOp<const N: usize> {
    /// Its name: the extension method's (`ky_rms_norm`).
    const NAME: &'static str;
    /// The policy the call selects under.
    fn policy(&self) -> &Policy;
    /// The views of the operands and the output, or a typed refusal.
    fn plan(&self, ins: [Input<'_>; N]) -> Result<OpPlan<N>, Error>;
    /// The kernelyard arguments over the views of `plan` (a view that could not be made is
    /// an error here).
    fn args<'a>(
        &self,
        plan: &OpPlan<N>,
        ins: [Result<TensorView<'a>, Error>; N],
        out: TensorViewMut<'a>,
    ) -> Result<Args<'a>, Error>;
}

/// An operator that updates its first operand in place, reading a second one.
pub(crate) trait KyInplace2 {
    /// Its name (`ky_rope_`).
    const NAME: &'static str;
    /// The policy the call selects under.
    fn policy(&self) -> &Policy;
    /// The views of the operand written and the one read, or a typed refusal.
    fn plan(&self, ins: [Input<'_>; 2]) -> Result<[ViewSpec; 2], Error>;
    /// The kernelyard arguments over the views.
    fn args<'a>(
        &self,
        dst: TensorViewMut<'a>,
        src: Result<TensorView<'a>, Error>,
    ) -> Result<Args<'a>, Error>;
}

/// A kernelyard operator as a candle custom op.
pub(crate) struct Apply<O>(pub O);

/// The refusal of a Metal tensor.
fn metal<T>(op: &'static str) -> candle_core::Result<T> {
    Err(Error::UnsupportedDevice {
        op,
        device: "Metal",
    }
    .into_candle())
}

impl<O: KyOp<1>> CustomOp1 for Apply<O> {
    fn name(&self) -> &'static str {
        O::NAME
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        crate::host::run(&self.0, [(s, l)])
    }

    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> candle_core::Result<(CudaStorage, Shape)> {
        crate::cuda::run(&self.0, [(s, l)])
    }

    fn metal_fwd(
        &self,
        _: &MetalStorage,
        _: &Layout,
    ) -> candle_core::Result<(MetalStorage, Shape)> {
        metal(O::NAME)
    }
}

impl<O: KyOp<2>> CustomOp2 for Apply<O> {
    fn name(&self) -> &'static str {
        O::NAME
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        crate::host::run(&self.0, [(s1, l1), (s2, l2)])
    }

    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        crate::cuda::run(&self.0, [(s1, l1), (s2, l2)])
    }

    fn metal_fwd(
        &self,
        _: &MetalStorage,
        _: &Layout,
        _: &MetalStorage,
        _: &Layout,
    ) -> candle_core::Result<(MetalStorage, Shape)> {
        metal(O::NAME)
    }
}

impl<O: KyOp<3>> CustomOp3 for Apply<O> {
    fn name(&self) -> &'static str {
        O::NAME
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        crate::host::run(&self.0, [(s1, l1), (s2, l2), (s3, l3)])
    }

    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
        s3: &CudaStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        crate::cuda::run(&self.0, [(s1, l1), (s2, l2), (s3, l3)])
    }

    fn metal_fwd(
        &self,
        _: &MetalStorage,
        _: &Layout,
        _: &MetalStorage,
        _: &Layout,
        _: &MetalStorage,
        _: &Layout,
    ) -> candle_core::Result<(MetalStorage, Shape)> {
        metal(O::NAME)
    }
}

impl<O: KyInplace2> InplaceOp2 for Apply<O> {
    fn name(&self) -> &'static str {
        O::NAME
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        crate::host::run_inplace2(&self.0, (s1, l1), (s2, l2))
    }

    fn cuda_fwd(
        &self,
        s1: &mut CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        crate::cuda::run_inplace2(&self.0, (s1, l1), (s2, l2))
    }

    fn metal_fwd(
        &self,
        _: &mut MetalStorage,
        _: &Layout,
        _: &MetalStorage,
        _: &Layout,
    ) -> candle_core::Result<()> {
        metal(O::NAME)
    }
}
