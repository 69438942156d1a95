//! kernelyard-candle: kernelyard's operators on candle tensors, as candle custom ops.
//!
//! Import [`KyTensorExt`] and call the operators as methods of `candle_core::Tensor`:
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use kernelyard_candle::{AttentionOptions, KyTensorExt, Policy};
//!
//! # fn main() -> candle_core::Result<()> {
//! let dev = Device::Cpu;
//! let x = Tensor::randn(0f32, 1.0, (2, 8, 64), &dev)?; // [batch, seq, hidden]
//! let w = Tensor::ones(64, DType::F32, &dev)?;
//! let y = x.ky_rms_norm(&w, 1e-6)?; // kernelyard's rms_norm, default policy (auto)
//! let p = y.ky_softmax()?; // over the last dimension
//!
//! // A Linear layer: `x @ w.t()` with the weight stored [out, in]; `w.t()` is taken as is
//! // (kernelyard's transposed-B layout), and the policy asks for a batch-invariant kernel.
//! let wq = Tensor::randn(0f32, 0.1, (64, 64), &dev)?;
//! let q = y.ky_matmul(&wq.t()?, Policy::auto().batch_invariant())?;
//!
//! // Attention takes [B, S, H, D]: the projection's output reshaped, no transpose.
//! let q = q.reshape((2, 8, 4, 16))?;
//! let positions = Tensor::arange(0i64, 8, &dev)?.repeat(2)?; // one per token
//! let q = q.ky_rope(&positions, 10_000.0)?;
//! let o = q.ky_attention(&q, &q, &AttentionOptions::causal())?;
//! assert_eq!(o.dims(), &[2, 8, 4, 16]);
//! assert_eq!(p.dims(), &[2, 8, 64]);
//! # Ok(())
//! # }
//! ```
//!
//! # Who is responsible for what
//! - **This crate** maps candle operands onto kernelyard's argument views without copying
//!   (the layout's start offset honoured; a layout an operator cannot take, such as a
//!   transposed `[B, H, S, D]` attention operand, refused with [`Error::NotContiguous`], never
//!   copied behind your back), allocates the output with candle's allocator, and launches on
//!   candle's own stream. Each op file under `ops/` says which layouts it takes. An operand
//!   at an offset that is not a multiple of 16 bytes is taken too, but kernels that need
//!   16-byte alignment (the CUDA attention and tensor-core GEMMs) are then not eligible: the
//!   selection report says so.
//! - **kernelyard** validates the arguments, selects a kernel for the device under the
//!   [`Policy`], and runs it: on the CPU its reference backend (every operator, in f64), on a
//!   CUDA device its CUDA backend (feature `cuda`).
//! - **candle** checks that operands share a device and owns every tensor.
//!
//! # The runtime and the policy
//! One process-wide [`kernelyard::Runtime`], built on first use ([`runtime`]:
//! `kernelyard::link_backends()` then `Runtime::new()`, which probes the compiled-in backends
//! once and reads `KERNELYARD_KERNELS`), or the one installed first with [`set_runtime`]. A
//! candle op has no other place to keep it, and selection's cache then serves every call.
//!
//! Every operator has a `_with` variant that takes the [`Policy`] (a named kernel, a backend,
//! `deterministic()`, `batch_invariant()`); the plain variant uses `Policy::auto()`, the best
//! kernel that can run the problem. `ky_matmul` always takes its policy, since batch
//! invariance is the usual reason to call it. There is **no hidden fallback**: if no kernel on
//! the tensor's device can run the problem under the policy, the call fails with kernelyard's
//! selection report (every candidate kernel with the reasons it was rejected) in the error
//! text; a CUDA tensor is never computed on the CPU, and without the `cuda` feature a CUDA
//! tensor is refused with [`Error::CudaNotCompiledIn`].
//!
//! # Errors
//! Errors are candle errors holding this crate's typed [`Error`] (candle's `WrappedContext`
//! variant); [`Error::from_candle`] gets it back, and the candle error's text is the full
//! message. See the [`error`] module.
//!
//! # Costs per call
//! Validation, one lookup in selection's cache and the launch; on CUDA the device pointers are
//! taken through cudarc's stream tracking (stream waits and event records, never a host
//! synchronisation). The exception is `token_logprobs` in its `checked` mode, which reads a
//! row index back. [`capture_plans`] shows which kernel each call ran.
//!
//! # Cargo features
//! - `cuda`: candle's CUDA backend (`candle-core/cuda`, whose build needs `nvcc`) and
//!   kernelyard's (`kernelyard/cuda`, which needs no toolkit to build). Without it, CPU only.
//!   With it, `release_stream(&CudaDevice)` frees what kernelyard keeps per stream (the
//!   stream workspace of cuBLASLt and split token_logprobs, 32 MiB) before a device made with `CudaDevice::new_with_stream` is
//!   dropped. Devices from `Device::new_cuda` share the calling thread's per-thread default
//!   stream: one workspace per thread that ran the cuBLASLt GEMM, for the life of the process.
//!
//! # Not covered
//! Gradients (the ops have no backward pass), the fused residual form of `rms_norm`, the
//! entropy output of `token_logprobs` and the `lse` output of `attention` (a candle custom op
//! returns one tensor), and Metal tensors ([`Error::UnsupportedDevice`]).
#![deny(missing_docs)]

pub mod error;

mod host;
mod operand;
mod ops;

#[cfg(feature = "cuda")]
mod cuda;
#[cfg(not(feature = "cuda"))]
#[path = "cuda_stub.rs"]
mod cuda;

use std::borrow::Borrow;
use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

use candle_core::Tensor;

#[cfg(feature = "cuda")]
pub use cuda::release_stream;
pub use error::Error;
pub use kernelyard::ops::rope::RopeStyle;
pub use kernelyard::{Plan, Policy, Runtime};
pub use ops::attention::AttentionOptions;
pub use ops::rope::RopeOptions;
pub use ops::token_logprobs::LogprobsOptions;

use ops::attention::Attention;
use ops::gemm::Matmul;
use ops::rms_norm::RmsNorm;
use ops::rope::{Rope, RopeInPlace};
use ops::rows::{LogSoftmax, Softmax};
use ops::silu_mul::{SiluMulFused, SiluMulSplit};
use ops::token_logprobs::TokenLogprobs;
use ops::Apply;

type Result<T> = candle_core::Result<T>;

static RUNTIME: OnceLock<std::result::Result<Runtime, Arc<kernelyard::Error>>> = OnceLock::new();

/// The process-wide kernelyard runtime every operator of this crate runs through: the one
/// given to [`set_runtime`], or else built on first use (`kernelyard::link_backends()`, then
/// `Runtime::new()`: the compiled-in backends probed once, `KERNELYARD_KERNELS` read once).
/// If building it failed, every call reports that error ([`Error::Runtime`]).
pub fn runtime() -> std::result::Result<&'static Runtime, Error> {
    let built = RUNTIME.get_or_init(|| {
        kernelyard::link_backends();
        Runtime::new().map_err(Arc::new)
    });
    match built {
        Ok(rt) => Ok(rt),
        Err(e) => Err(Error::Runtime { source: e.clone() }),
    }
}

/// Installs `rt` as the process-wide runtime (e.g. one built with `Runtime::builder()` and
/// explicit pins) if none was installed or built yet, and says whether it did (if not, `rt`
/// is dropped and the existing runtime stays).
pub fn set_runtime(rt: Runtime) -> bool {
    RUNTIME.set(Ok(rt)).is_ok()
}

thread_local! {
    static CAPTURED: RefCell<Option<Vec<Arc<Plan>>>> = const { RefCell::new(None) };
}

/// Runs `f` and returns, with its result, the plan of every kernelyard launch this crate made
/// on this thread meanwhile, in order: [`Plan::kernel_name`] is the kernel that ran and
/// [`Plan::report`] why it was chosen. Outside `capture_plans` nothing is recorded (one
/// thread-local check per call). A nested `capture_plans` returns the plans of its own
/// closure; the enclosing one does not see them.
pub fn capture_plans<R>(f: impl FnOnce() -> R) -> (R, Vec<Arc<Plan>>) {
    /// Puts back the enclosing capture's list (or none), also if `f` panics.
    struct Restore(Option<Vec<Arc<Plan>>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            let _ = CAPTURED.try_with(|c| *c.borrow_mut() = prev);
        }
    }
    let restore = Restore(CAPTURED.with(|c| c.replace(Some(Vec::new()))));
    let r = f();
    let plans = CAPTURED.with(|c| c.borrow_mut().take()).unwrap_or_default();
    drop(restore);
    (r, plans)
}

/// Validates, selects (cached) and launches `args` on `stream` under `policy`.
pub(crate) fn launch(
    op: &'static str,
    policy: &Policy,
    stream: &kernelyard::Stream,
    args: &mut kernelyard::Args<'_>,
) -> Result<()> {
    let rt = runtime().map_err(Error::into_candle)?;
    let plan = rt.run(policy, stream, args).map_err(error::ky(op))?;
    CAPTURED.with(|c| {
        if let Some(v) = c.borrow_mut().as_mut() {
            v.push(plan);
        }
    });
    Ok(())
}

/// kernelyard's operators as methods of `candle_core::Tensor`. See the crate docs for the
/// runtime, the policy and the errors, and each method for the layouts it takes.
pub trait KyTensorExt {
    /// RMS norm over the last dimension: `x [.., hidden]` and `weight [hidden]`, one float
    /// dtype, both contiguous. Like `candle_nn::ops::rms_norm`.
    fn ky_rms_norm(&self, weight: &Tensor, eps: f32) -> Result<Tensor>;
    /// [`KyTensorExt::ky_rms_norm`] under `policy`.
    fn ky_rms_norm_with(
        &self,
        weight: &Tensor,
        eps: f32,
        policy: impl Borrow<Policy>,
    ) -> Result<Tensor>;

    /// Softmax over the last dimension of a contiguous tensor. Like
    /// `candle_nn::ops::softmax_last_dim`.
    fn ky_softmax(&self) -> Result<Tensor>;
    /// [`KyTensorExt::ky_softmax`] under `policy`.
    fn ky_softmax_with(&self, policy: impl Borrow<Policy>) -> Result<Tensor>;

    /// Log-softmax over the last dimension of a contiguous tensor. Like
    /// `candle_nn::ops::log_softmax(x, D::Minus1)`.
    fn ky_log_softmax(&self) -> Result<Tensor>;
    /// [`KyTensorExt::ky_log_softmax`] under `policy`.
    fn ky_log_softmax_with(&self, policy: impl Borrow<Policy>) -> Result<Tensor>;

    /// SwiGLU of a fused `[.., 2*d]` tensor (gate the first `d` columns, up the last `d`):
    /// `silu(gate) * up`, `[.., d]`. Contiguous.
    fn ky_silu_mul(&self) -> Result<Tensor>;
    /// [`KyTensorExt::ky_silu_mul`] under `policy`.
    fn ky_silu_mul_with(&self, policy: impl Borrow<Policy>) -> Result<Tensor>;

    /// SwiGLU with `self` the gate and `up` apart, both `[.., d]` and contiguous:
    /// `silu(self) * up`.
    fn ky_silu_mul_split(&self, up: &Tensor) -> Result<Tensor>;
    /// [`KyTensorExt::ky_silu_mul_split`] under `policy`.
    fn ky_silu_mul_split_with(&self, up: &Tensor, policy: impl Borrow<Policy>) -> Result<Tensor>;

    /// NeoX-style rotary embedding with base `theta` of `x [B, T, H, D]` or `[T, H, D]`
    /// (contiguous) at `positions`, one per token (`[B, T]`; i64, i32 or u32). Like
    /// `candle_nn::rotary_emb::rope_thd` with `cos`/`sin` of `positions * theta^(-2i/D)`.
    fn ky_rope(&self, positions: &Tensor, theta: f32) -> Result<Tensor>;
    /// [`KyTensorExt::ky_rope`] with options (GPT-J style, partial rotary dim) under `policy`.
    fn ky_rope_with(
        &self,
        positions: &Tensor,
        opts: &RopeOptions,
        policy: impl Borrow<Policy>,
    ) -> Result<Tensor>;
    /// [`KyTensorExt::ky_rope`] in place: `self` is rotated where it is (a candle
    /// `InplaceOp2`).
    fn ky_rope_(&self, positions: &Tensor, theta: f32) -> Result<()>;
    /// [`KyTensorExt::ky_rope_`] with options under `policy`.
    fn ky_rope_with_(
        &self,
        positions: &Tensor,
        opts: &RopeOptions,
        policy: impl Borrow<Policy>,
    ) -> Result<()>;

    /// `log_softmax(logits)[target]` per row of `logits [.., V]` as f32 `[..]`, `targets` one
    /// id per row (i64, i32 or u32); a target of -100 gives 0.
    fn ky_token_logprobs(&self, targets: &Tensor) -> Result<Tensor>;
    /// [`KyTensorExt::ky_token_logprobs`] with options (temperature, ignore index, checked)
    /// under `policy`.
    fn ky_token_logprobs_with(
        &self,
        targets: &Tensor,
        opts: &LogprobsOptions,
        policy: impl Borrow<Policy>,
    ) -> Result<Tensor>;

    /// Attention `softmax(scale * q k^T + mask) v` with `self` the queries: `[B, S, H, D]`
    /// (or `[S, H, D]`) operands, contiguous, GQA when `k`/`v` have fewer heads; causal masking
    /// and the scale from `opts`. The result has the queries' shape.
    fn ky_attention(&self, k: &Tensor, v: &Tensor, opts: &AttentionOptions) -> Result<Tensor>;
    /// [`KyTensorExt::ky_attention`] under `policy`.
    fn ky_attention_with(
        &self,
        k: &Tensor,
        v: &Tensor,
        opts: &AttentionOptions,
        policy: impl Borrow<Policy>,
    ) -> Result<Tensor>;

    /// `self @ rhs` as candle's `matmul`, through kernelyard's `gemm` under `policy` (e.g.
    /// `Policy::auto().batch_invariant()`): each operand's last two dimensions row-major or
    /// column-major (`w.t()`), `rhs` one matrix or a batch like `self`'s; f32 accumulation,
    /// the result in `self`'s dtype.
    fn ky_matmul(&self, rhs: &Tensor, policy: impl Borrow<Policy>) -> Result<Tensor>;
}

impl KyTensorExt for Tensor {
    fn ky_rms_norm(&self, weight: &Tensor, eps: f32) -> Result<Tensor> {
        self.ky_rms_norm_with(weight, eps, Policy::auto())
    }

    fn ky_rms_norm_with(
        &self,
        weight: &Tensor,
        eps: f32,
        policy: impl Borrow<Policy>,
    ) -> Result<Tensor> {
        let op = RmsNorm {
            eps,
            policy: policy.borrow(),
        };
        self.apply_op2_no_bwd(weight, &Apply(op))
    }

    fn ky_softmax(&self) -> Result<Tensor> {
        self.ky_softmax_with(Policy::auto())
    }

    fn ky_softmax_with(&self, policy: impl Borrow<Policy>) -> Result<Tensor> {
        self.apply_op1_no_bwd(&Apply(Softmax(policy.borrow())))
    }

    fn ky_log_softmax(&self) -> Result<Tensor> {
        self.ky_log_softmax_with(Policy::auto())
    }

    fn ky_log_softmax_with(&self, policy: impl Borrow<Policy>) -> Result<Tensor> {
        self.apply_op1_no_bwd(&Apply(LogSoftmax(policy.borrow())))
    }

    fn ky_silu_mul(&self) -> Result<Tensor> {
        self.ky_silu_mul_with(Policy::auto())
    }

    fn ky_silu_mul_with(&self, policy: impl Borrow<Policy>) -> Result<Tensor> {
        self.apply_op1_no_bwd(&Apply(SiluMulFused(policy.borrow())))
    }

    fn ky_silu_mul_split(&self, up: &Tensor) -> Result<Tensor> {
        self.ky_silu_mul_split_with(up, Policy::auto())
    }

    fn ky_silu_mul_split_with(&self, up: &Tensor, policy: impl Borrow<Policy>) -> Result<Tensor> {
        self.apply_op2_no_bwd(up, &Apply(SiluMulSplit(policy.borrow())))
    }

    fn ky_rope(&self, positions: &Tensor, theta: f32) -> Result<Tensor> {
        self.ky_rope_with(positions, &RopeOptions::neox(theta), Policy::auto())
    }

    fn ky_rope_with(
        &self,
        positions: &Tensor,
        opts: &RopeOptions,
        policy: impl Borrow<Policy>,
    ) -> Result<Tensor> {
        let op = Rope {
            opts: *opts,
            policy: policy.borrow(),
        };
        self.apply_op2_no_bwd(positions, &Apply(op))
    }

    fn ky_rope_(&self, positions: &Tensor, theta: f32) -> Result<()> {
        self.ky_rope_with_(positions, &RopeOptions::neox(theta), Policy::auto())
    }

    fn ky_rope_with_(
        &self,
        positions: &Tensor,
        opts: &RopeOptions,
        policy: impl Borrow<Policy>,
    ) -> Result<()> {
        let op = RopeInPlace {
            opts: *opts,
            policy: policy.borrow(),
        };
        self.inplace_op2(positions, &Apply(op))
    }

    fn ky_token_logprobs(&self, targets: &Tensor) -> Result<Tensor> {
        self.ky_token_logprobs_with(targets, &LogprobsOptions::default(), Policy::auto())
    }

    fn ky_token_logprobs_with(
        &self,
        targets: &Tensor,
        opts: &LogprobsOptions,
        policy: impl Borrow<Policy>,
    ) -> Result<Tensor> {
        let op = TokenLogprobs {
            opts: *opts,
            policy: policy.borrow(),
        };
        self.apply_op2_no_bwd(targets, &Apply(op))
    }

    fn ky_attention(&self, k: &Tensor, v: &Tensor, opts: &AttentionOptions) -> Result<Tensor> {
        self.ky_attention_with(k, v, opts, Policy::auto())
    }

    fn ky_attention_with(
        &self,
        k: &Tensor,
        v: &Tensor,
        opts: &AttentionOptions,
        policy: impl Borrow<Policy>,
    ) -> Result<Tensor> {
        let op = Attention {
            opts: *opts,
            policy: policy.borrow(),
        };
        self.apply_op3_no_bwd(k, v, &Apply(op))
    }

    fn ky_matmul(&self, rhs: &Tensor, policy: impl Borrow<Policy>) -> Result<Tensor> {
        self.apply_op2_no_bwd(rhs, &Apply(Matmul(policy.borrow())))
    }
}
