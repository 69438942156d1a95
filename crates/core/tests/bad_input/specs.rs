//! Descriptions of valid calls for every operator, made into views over fake addresses.
//!
//! Each tensor is a [`T`]: an address, dtype, shape, strides and device, turned into a view only
//! when a case runs. Views are made with `from_raw_parts` over fake, never-dereferenced addresses
//! on `cuda:0`: validation reads only metadata, so no device is needed.

use std::ffi::c_void;

use kernelyard_core::ops::attention::AttentionArgs;
use kernelyard_core::ops::gemm::GemmArgs;
use kernelyard_core::ops::log_softmax::LogSoftmaxArgs;
use kernelyard_core::ops::rms_norm::RmsNormArgs;
use kernelyard_core::ops::rope::{RopeArgs, RopeInput, RopeStyle};
use kernelyard_core::ops::scaled_gemm::{ScaleMode, ScaledGemmArgs};
use kernelyard_core::ops::selective_state_update::SelectiveStateUpdateArgs;
use kernelyard_core::ops::silu_mul::{SiluMulArgs, SiluMulInput};
use kernelyard_core::ops::softmax::SoftmaxArgs;
use kernelyard_core::ops::token_logprobs::TokenLogprobsArgs;
use kernelyard_core::{Args, DType, DeviceId, TensorView, TensorViewMut, ValidationError};

pub const GPU: DeviceId = DeviceId::cuda(0);
pub const OTHER_GPU: DeviceId = DeviceId::cuda(1);
/// Fake tensors live 256 MiB apart, so they never overlap unless a case puts them together.
pub const REGION: usize = 1 << 28;

/// A tensor's description; made into a view only when a case runs.
#[derive(Clone, Debug)]
pub struct T {
    pub addr: usize,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub strides: Option<Vec<isize>>,
    pub device: DeviceId,
}

/// A contiguous tensor in fake region `region` on `cuda:0`.
pub fn t(region: usize, dtype: DType, shape: &[usize]) -> T {
    T {
        addr: region * REGION,
        dtype,
        shape: shape.to_vec(),
        strides: None,
        device: GPU,
    }
}

impl T {
    pub fn view(&self) -> Result<TensorView<'static>, ValidationError> {
        // SAFETY: these views are only validated (tests here never launch or read them), and
        // validation reads the address as a number, never through it.
        unsafe {
            TensorView::from_raw_parts(
                self.addr as *const c_void,
                self.dtype,
                &self.shape,
                self.strides.as_deref(),
                self.device,
            )
        }
    }

    pub fn view_mut(&self) -> Result<TensorViewMut<'static>, ValidationError> {
        // SAFETY: as in `view`; nothing writes through the pointer.
        unsafe {
            TensorViewMut::from_raw_parts(
                self.addr as *mut c_void,
                self.dtype,
                &self.shape,
                self.strides.as_deref(),
                self.device,
            )
        }
    }
}

pub fn opt_view(t: &Option<T>) -> Result<Option<TensorView<'static>>, ValidationError> {
    t.as_ref().map(T::view).transpose()
}

pub fn opt_view_mut(t: &Option<T>) -> Result<Option<TensorViewMut<'static>>, ValidationError> {
    t.as_ref().map(T::view_mut).transpose()
}

pub type Built = Result<Args<'static>, ValidationError>;

/// A call's description: its tensors and scalars, mutable by cases and by the fuzzer.
pub trait Spec: std::fmt::Debug {
    fn args(&self) -> Built;
    fn tensors(&mut self) -> Vec<&mut T>;
    fn optional(&mut self) -> Vec<&mut Option<T>>;
    fn scalars(&mut self) -> Vec<&mut f32>;
    fn sizes(&mut self) -> Vec<&mut usize>;
}

// ---------------------------------------------------------------------------------------------
// Valid baselines, one per operator.

#[derive(Clone, Debug)]
pub struct Gemm {
    pub a: T,
    pub b: T,
    pub c: T,
    pub trans_a: bool,
    pub trans_b: bool,
    pub alpha: f32,
    pub beta: f32,
}

/// `C[8, 32] = A[8, 16] @ B[16, 32]`, f32.
pub fn gemm() -> Gemm {
    Gemm {
        a: t(1, DType::F32, &[8, 16]),
        b: t(2, DType::F32, &[16, 32]),
        c: t(3, DType::F32, &[8, 32]),
        trans_a: false,
        trans_b: false,
        alpha: 1.0,
        beta: 0.0,
    }
}

impl Spec for Gemm {
    fn args(&self) -> Built {
        Ok(Args::Gemm(GemmArgs {
            a: self.a.view()?,
            b: self.b.view()?,
            c: self.c.view_mut()?,
            trans_a: self.trans_a,
            trans_b: self.trans_b,
            alpha: self.alpha,
            beta: self.beta,
        }))
    }
    fn tensors(&mut self) -> Vec<&mut T> {
        vec![&mut self.a, &mut self.b, &mut self.c]
    }
    fn optional(&mut self) -> Vec<&mut Option<T>> {
        vec![]
    }
    fn scalars(&mut self) -> Vec<&mut f32> {
        vec![&mut self.alpha, &mut self.beta]
    }
    fn sizes(&mut self) -> Vec<&mut usize> {
        vec![]
    }
}

#[derive(Clone, Debug)]
pub struct RmsNorm {
    pub x: T,
    pub weight: T,
    pub residual: Option<T>,
    pub out: T,
    pub residual_out: Option<T>,
    pub eps: f32,
}

/// `x[4, 64]` bf16, no residual.
pub fn rms_norm() -> RmsNorm {
    RmsNorm {
        x: t(1, DType::BF16, &[4, 64]),
        weight: t(2, DType::BF16, &[64]),
        residual: None,
        out: t(3, DType::BF16, &[4, 64]),
        residual_out: None,
        eps: 1e-6,
    }
}

/// The fused residual variant of [`rms_norm`].
pub fn rms_norm_residual() -> RmsNorm {
    RmsNorm {
        residual: Some(t(4, DType::BF16, &[4, 64])),
        residual_out: Some(t(5, DType::BF16, &[4, 64])),
        ..rms_norm()
    }
}

impl Spec for RmsNorm {
    fn args(&self) -> Built {
        Ok(Args::RmsNorm(RmsNormArgs {
            x: self.x.view()?,
            weight: self.weight.view()?,
            residual: opt_view(&self.residual)?,
            out: self.out.view_mut()?,
            residual_out: opt_view_mut(&self.residual_out)?,
            eps: self.eps,
        }))
    }
    fn tensors(&mut self) -> Vec<&mut T> {
        let mut v = vec![&mut self.x, &mut self.weight, &mut self.out];
        v.extend(self.residual.as_mut());
        v.extend(self.residual_out.as_mut());
        v
    }
    fn optional(&mut self) -> Vec<&mut Option<T>> {
        vec![&mut self.residual, &mut self.residual_out]
    }
    fn scalars(&mut self) -> Vec<&mut f32> {
        vec![&mut self.eps]
    }
    fn sizes(&mut self) -> Vec<&mut usize> {
        vec![]
    }
}

/// `softmax` and `log_softmax` take the same arguments.
#[derive(Clone, Debug)]
pub struct Rows {
    pub log: bool,
    pub x: T,
    pub out: T,
}

/// `x[8, 128]` f32.
pub fn softmax() -> Rows {
    Rows {
        log: false,
        x: t(1, DType::F32, &[8, 128]),
        out: t(2, DType::F32, &[8, 128]),
    }
}

impl Spec for Rows {
    fn args(&self) -> Built {
        let (x, out) = (self.x.view()?, self.out.view_mut()?);
        Ok(if self.log {
            Args::LogSoftmax(LogSoftmaxArgs { x, out })
        } else {
            Args::Softmax(SoftmaxArgs { x, out })
        })
    }
    fn tensors(&mut self) -> Vec<&mut T> {
        vec![&mut self.x, &mut self.out]
    }
    fn optional(&mut self) -> Vec<&mut Option<T>> {
        vec![]
    }
    fn scalars(&mut self) -> Vec<&mut f32> {
        vec![]
    }
    fn sizes(&mut self) -> Vec<&mut usize> {
        vec![]
    }
}

#[derive(Clone, Debug)]
pub struct TokenLogprobs {
    pub logits: T,
    pub targets: T,
    pub out: T,
    pub entropy: Option<T>,
    pub temperature: f32,
}

/// `logits[16, 1000]` bf16, i64 targets, with entropy.
pub fn token_logprobs() -> TokenLogprobs {
    TokenLogprobs {
        logits: t(1, DType::BF16, &[16, 1000]),
        targets: t(2, DType::I64, &[16]),
        out: t(3, DType::F32, &[16]),
        entropy: Some(t(4, DType::F32, &[16])),
        temperature: 1.0,
    }
}

impl Spec for TokenLogprobs {
    fn args(&self) -> Built {
        Ok(Args::TokenLogprobs(TokenLogprobsArgs {
            logits: self.logits.view()?,
            targets: self.targets.view()?,
            out: self.out.view_mut()?,
            entropy: opt_view_mut(&self.entropy)?,
            temperature: self.temperature,
            ignore_index: -100,
            checked: false,
        }))
    }
    fn tensors(&mut self) -> Vec<&mut T> {
        let mut v = vec![&mut self.logits, &mut self.targets, &mut self.out];
        v.extend(self.entropy.as_mut());
        v
    }
    fn optional(&mut self) -> Vec<&mut Option<T>> {
        vec![&mut self.entropy]
    }
    fn scalars(&mut self) -> Vec<&mut f32> {
        vec![&mut self.temperature]
    }
    fn sizes(&mut self) -> Vec<&mut usize> {
        vec![]
    }
}

#[derive(Clone, Debug)]
pub struct Rope {
    pub x: T,
    pub positions: T,
    /// The output; unused in place (`x` is written).
    pub out: T,
    /// `RopeInput::InPlace` with `x`, else `RopeInput::OutOfPlace` with `x` and `out`.
    pub in_place: bool,
    pub rotary_dim: usize,
    pub theta: f32,
}

/// `x[4, 8, 64]` f16, i32 positions, full rotary dim, out of place.
pub fn rope() -> Rope {
    Rope {
        x: t(1, DType::F16, &[4, 8, 64]),
        positions: t(2, DType::I32, &[4]),
        out: t(3, DType::F16, &[4, 8, 64]),
        in_place: false,
        rotary_dim: 64,
        theta: 10000.0,
    }
}

/// [`rope`] in place: `x` is the one view read and written.
pub fn rope_in_place() -> Rope {
    Rope {
        in_place: true,
        ..rope()
    }
}

impl Spec for Rope {
    fn args(&self) -> Built {
        let input = if self.in_place {
            RopeInput::InPlace(self.x.view_mut()?)
        } else {
            RopeInput::OutOfPlace {
                x: self.x.view()?,
                out: self.out.view_mut()?,
            }
        };
        Ok(Args::Rope(RopeArgs {
            input,
            positions: self.positions.view()?,
            rotary_dim: self.rotary_dim,
            style: RopeStyle::Gptj,
            theta: self.theta,
        }))
    }
    fn tensors(&mut self) -> Vec<&mut T> {
        if self.in_place {
            return vec![&mut self.x, &mut self.positions];
        }
        vec![&mut self.x, &mut self.positions, &mut self.out]
    }
    fn optional(&mut self) -> Vec<&mut Option<T>> {
        vec![]
    }
    fn scalars(&mut self) -> Vec<&mut f32> {
        vec![&mut self.theta]
    }
    fn sizes(&mut self) -> Vec<&mut usize> {
        vec![&mut self.rotary_dim]
    }
}

#[derive(Clone, Debug)]
pub struct Attention {
    pub q: T,
    pub k: T,
    pub v: T,
    pub out: T,
    pub lse: Option<T>,
    pub scale: f32,
}

/// `q[2, 16, 8, 64]`, `k, v[2, 32, 2, 64]` bf16 (GQA 8/2), with LSE.
pub fn attention() -> Attention {
    Attention {
        q: t(1, DType::BF16, &[2, 16, 8, 64]),
        k: t(2, DType::BF16, &[2, 32, 2, 64]),
        v: t(3, DType::BF16, &[2, 32, 2, 64]),
        out: t(4, DType::BF16, &[2, 16, 8, 64]),
        lse: Some(t(5, DType::F32, &[2, 8, 16])),
        scale: 0.125,
    }
}

impl Spec for Attention {
    fn args(&self) -> Built {
        Ok(Args::Attention(AttentionArgs {
            q: self.q.view()?,
            k: self.k.view()?,
            v: self.v.view()?,
            out: self.out.view_mut()?,
            lse: opt_view_mut(&self.lse)?,
            causal: true,
            scale: Some(self.scale),
        }))
    }
    fn tensors(&mut self) -> Vec<&mut T> {
        let mut v = vec![&mut self.q, &mut self.k, &mut self.v, &mut self.out];
        v.extend(self.lse.as_mut());
        v
    }
    fn optional(&mut self) -> Vec<&mut Option<T>> {
        vec![&mut self.lse]
    }
    fn scalars(&mut self) -> Vec<&mut f32> {
        vec![&mut self.scale]
    }
    fn sizes(&mut self) -> Vec<&mut usize> {
        vec![]
    }
}

#[derive(Clone, Debug)]
pub struct Ssu {
    pub state: T,
    pub x: T,
    pub dt: T,
    pub dt_bias: Option<T>,
    pub a: T,
    pub bm: T,
    pub cm: T,
    pub d: Option<T>,
    pub z: Option<T>,
    pub out: T,
    pub state_indices: Option<T>,
}

/// `state[2, 4, 16, 8]` f32, activations bf16, one group, every optional input given.
pub fn ssu() -> Ssu {
    Ssu {
        state: t(1, DType::F32, &[2, 4, 16, 8]),
        x: t(2, DType::BF16, &[2, 4, 16]),
        dt: t(3, DType::BF16, &[2, 4, 16]),
        dt_bias: Some(t(4, DType::F32, &[4, 16])),
        a: t(5, DType::F32, &[4, 16, 8]),
        bm: t(6, DType::BF16, &[2, 1, 8]),
        cm: t(7, DType::BF16, &[2, 1, 8]),
        d: Some(t(8, DType::F32, &[4, 16])),
        z: Some(t(9, DType::BF16, &[2, 4, 16])),
        out: t(10, DType::BF16, &[2, 4, 16]),
        state_indices: None,
    }
}

/// [`ssu`] over a state cache `[5, 4, 16, 8]` with `state_indices [2]` (i32).
pub fn ssu_indexed() -> Ssu {
    let mut s = ssu();
    s.state.shape = vec![5, 4, 16, 8];
    s.state_indices = Some(t(11, DType::I32, &[2]));
    s
}

impl Spec for Ssu {
    fn args(&self) -> Built {
        Ok(Args::SelectiveStateUpdate(SelectiveStateUpdateArgs {
            state: self.state.view_mut()?,
            x: self.x.view()?,
            dt: self.dt.view()?,
            dt_bias: opt_view(&self.dt_bias)?,
            a: self.a.view()?,
            bm: self.bm.view()?,
            cm: self.cm.view()?,
            d: opt_view(&self.d)?,
            z: opt_view(&self.z)?,
            out: self.out.view_mut()?,
            dt_softplus: true,
            state_indices: opt_view(&self.state_indices)?,
        }))
    }
    fn tensors(&mut self) -> Vec<&mut T> {
        let mut v = vec![
            &mut self.state,
            &mut self.x,
            &mut self.dt,
            &mut self.a,
            &mut self.bm,
            &mut self.cm,
            &mut self.out,
        ];
        v.extend(self.dt_bias.as_mut());
        v.extend(self.d.as_mut());
        v.extend(self.z.as_mut());
        v.extend(self.state_indices.as_mut());
        v
    }
    fn optional(&mut self) -> Vec<&mut Option<T>> {
        vec![&mut self.dt_bias, &mut self.d, &mut self.z]
    }
    fn scalars(&mut self) -> Vec<&mut f32> {
        vec![]
    }
    fn sizes(&mut self) -> Vec<&mut usize> {
        vec![]
    }
}

/// `silu_mul`'s input is one fused tensor or gate and up apart: `x` is the fused input when
/// `up` is `None`, and the gate when it is `Some`.
#[derive(Clone, Debug)]
pub struct SiluMul {
    pub x: T,
    pub up: Option<T>,
    pub out: T,
}

/// Fused `x[4, 256]` bf16 (gate `x[:, :128]`, up `x[:, 128:]`), `out[4, 128]`.
pub fn silu_mul() -> SiluMul {
    SiluMul {
        x: t(1, DType::BF16, &[4, 256]),
        up: None,
        out: t(3, DType::BF16, &[4, 128]),
    }
}

/// Split `gate[4, 128]` and `up[4, 128]` bf16 (the gate is `x`).
pub fn silu_mul_split() -> SiluMul {
    SiluMul {
        x: t(1, DType::BF16, &[4, 128]),
        up: Some(t(2, DType::BF16, &[4, 128])),
        out: t(3, DType::BF16, &[4, 128]),
    }
}

impl Spec for SiluMul {
    fn args(&self) -> Built {
        let input = match &self.up {
            None => SiluMulInput::Fused(self.x.view()?),
            Some(up) => SiluMulInput::Split {
                gate: self.x.view()?,
                up: up.view()?,
            },
        };
        Ok(Args::SiluMul(SiluMulArgs {
            input,
            out: self.out.view_mut()?,
        }))
    }
    fn tensors(&mut self) -> Vec<&mut T> {
        let mut v = vec![&mut self.x, &mut self.out];
        v.extend(self.up.as_mut());
        v
    }
    fn optional(&mut self) -> Vec<&mut Option<T>> {
        vec![&mut self.up]
    }
    fn scalars(&mut self) -> Vec<&mut f32> {
        vec![]
    }
    fn sizes(&mut self) -> Vec<&mut usize> {
        vec![]
    }
}

/// `scaled_gemm`'s tensors and scale modes.
#[derive(Clone, Debug)]
pub struct ScaledGemm {
    pub a: T,
    pub b: T,
    pub scale_a: T,
    pub scale_b: T,
    pub modes: (ScaleMode, ScaleMode),
    pub bias: Option<T>,
    pub out: T,
}

/// e4m3 `a[4, 256]` and `b[128, 256]` with block scales (`scale_a[2, 4]`, `scale_b[1, 2]`),
/// a bf16 `bias[128]` and `out[4, 128]`.
pub fn scaled_gemm() -> ScaledGemm {
    ScaledGemm {
        a: t(1, DType::F8E4M3, &[4, 256]),
        b: t(2, DType::F8E4M3, &[128, 256]),
        scale_a: t(3, DType::F32, &[2, 4]),
        scale_b: t(4, DType::F32, &[1, 2]),
        modes: (ScaleMode::Block, ScaleMode::Block),
        bias: Some(t(5, DType::BF16, &[128])),
        out: t(6, DType::BF16, &[4, 128]),
    }
}

/// FP4 `a[4, 128]` and `b[128, 128]` (pairs: k = 256) with NVFP4 scales (e4m3
/// `scale_a[4, 16]`, `scale_b[128, 16]`), a bf16 `bias[128]` and `out[4, 128]`.
pub fn scaled_gemm_nvfp4() -> ScaledGemm {
    ScaledGemm {
        a: t(1, DType::F4E2M1X2, &[4, 128]),
        b: t(2, DType::F4E2M1X2, &[128, 128]),
        scale_a: t(3, DType::F8E4M3, &[4, 16]),
        scale_b: t(4, DType::F8E4M3, &[128, 16]),
        modes: (ScaleMode::Nvfp4, ScaleMode::Nvfp4),
        bias: Some(t(5, DType::BF16, &[128])),
        out: t(6, DType::BF16, &[4, 128]),
    }
}

impl Spec for ScaledGemm {
    fn args(&self) -> Built {
        Ok(Args::ScaledGemm(ScaledGemmArgs {
            a: self.a.view()?,
            b: self.b.view()?,
            scale_a: self.scale_a.view()?,
            scale_b: self.scale_b.view()?,
            scale_a_mode: self.modes.0,
            scale_b_mode: self.modes.1,
            bias: opt_view(&self.bias)?,
            out: self.out.view_mut()?,
        }))
    }
    fn tensors(&mut self) -> Vec<&mut T> {
        let mut v = vec![
            &mut self.a,
            &mut self.b,
            &mut self.scale_a,
            &mut self.scale_b,
            &mut self.out,
        ];
        v.extend(self.bias.as_mut());
        v
    }
    fn optional(&mut self) -> Vec<&mut Option<T>> {
        vec![&mut self.bias]
    }
    fn scalars(&mut self) -> Vec<&mut f32> {
        vec![]
    }
    fn sizes(&mut self) -> Vec<&mut usize> {
        vec![]
    }
}

/// Builds the baseline `base`, changed by `f`.
pub fn with<S: Spec>(mut base: S, f: impl FnOnce(&mut S)) -> Built {
    f(&mut base);
    base.args()
}
