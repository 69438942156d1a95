//! `rocm.rms_norm`, `rocm.softmax`, `rocm.log_softmax` and `rocm.rope`: the CUDA backend's
//! sources, plans and launch sequences (`kernelyard_kernels`), launched through HIP.

use kernelyard_core::{Args, Capabilities, Error, OpKind, Problem, Reason, Stream};

use super::{rocm_meta, RocmKernel};

/// Launches with the shared sequence of the op, or reports the stub.
macro_rules! shared_launch {
    ($variant:ident, $module:ident) => {{
        fn launch(
            stream: &Stream,
            caps: &Capabilities,
            args: &mut Args<'_>,
            problem: &Problem,
        ) -> Result<(), Error> {
            let (Args::$variant(a), Problem::$variant(p)) = (args, problem) else {
                return Err(Error::WrongOp {
                    kernel: concat!("rocm.", stringify!($module)),
                    op: OpKind::$variant,
                    got: problem.op(),
                });
            };
            #[cfg(feature = "hip")]
            return kernelyard_kernels::$module::launch(super::gpu(), stream, caps, a, p);
            #[cfg(not(feature = "hip"))]
            {
                let _ = (caps, a, p);
                Err(super::not_compiled_in(stream))
            }
        }
        launch
    }};
}

/// The shared checks of the op.
macro_rules! shared_check {
    ($variant:ident, $module:ident) => {{
        fn check(caps: &Capabilities, problem: &Problem, reasons: &mut Vec<Reason>) {
            if let Problem::$variant(p) = problem {
                kernelyard_kernels::$module::check(caps, p, reasons);
            }
        }
        check
    }};
}

/// The `rocm.rms_norm` kernel.
pub static RMS_NORM: RocmKernel = RocmKernel {
    meta: rocm_meta(
        "rocm.rms_norm",
        OpKind::RmsNorm,
        module_path!(),
        "RMSNorm over rows with the fused residual add, f32 math (kernels/rms_norm.cu via hiprtc)",
    ),
    check: shared_check!(RmsNorm, rms_norm),
    launch: shared_launch!(RmsNorm, rms_norm),
};
crate::register!(RMS_NORM);

/// The `rocm.softmax` kernel.
pub static SOFTMAX: RocmKernel = RocmKernel {
    meta: rocm_meta(
        "rocm.softmax",
        OpKind::Softmax,
        module_path!(),
        "softmax over rows, f32 math, online max/sum (kernels/softmax.cu via hiprtc)",
    ),
    check: shared_check!(Softmax, softmax),
    launch: shared_launch!(Softmax, softmax),
};
crate::register!(SOFTMAX);

/// The `rocm.log_softmax` kernel.
pub static LOG_SOFTMAX: RocmKernel = RocmKernel {
    meta: rocm_meta(
        "rocm.log_softmax",
        OpKind::LogSoftmax,
        module_path!(),
        "log-softmax over rows, f32 math (kernels/log_softmax.cu via hiprtc)",
    ),
    check: shared_check!(LogSoftmax, log_softmax),
    launch: shared_launch!(LogSoftmax, log_softmax),
};
crate::register!(LOG_SOFTMAX);

/// The `rocm.rope` kernel.
pub static ROPE: RocmKernel = RocmKernel {
    meta: rocm_meta(
        "rocm.rope",
        OpKind::Rope,
        module_path!(),
        "rotary embedding, NeoX and GPT-J pairs, f64 angles (kernels/rope.cu via hiprtc)",
    ),
    check: shared_check!(Rope, rope),
    launch: shared_launch!(Rope, rope),
};
crate::register!(ROPE);
