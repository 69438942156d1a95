//! One file per operator, mirroring `kernelyard_core::ops`: each holds the oracle (a plain
//! `f64` function over dense logical-order arrays) and the registered `reference.<op>` kernel,
//! a `static` [`KernelDef`](kernelyard_core::KernelDef) whose launch gathers the arguments, calls
//! the oracle and scatters the results once.
//!
//! The statics are written `KernelDef::<Op>::new(..)`: naming the operator fixes `O` before the
//! launch function is coerced to its pointer type (inferred from the static's type alone, rustc
//! cannot normalize `O::Args<'a>` under the pointer's binder and reports a type mismatch).

pub mod attention;
pub mod gemm;
pub mod log_softmax;
pub mod rms_norm;
pub mod rope;
pub mod scaled_gemm;
pub mod selective_state_update;
pub mod silu_mul;
pub mod softmax;
pub mod token_logprobs;

use kernelyard_core::{ArchReq, DeviceKind, Error, KernelMeta, LaunchCtx, Listed};

use crate::BACKEND;

/// The reference kernels' one tactic: the same computation on one thread (the default uses
/// every core through rayon). The results are the same bits: every reduction's order is fixed
/// whatever the thread count.
pub const SERIAL: &str = "serial";

/// Runs a reference kernel's launch under `ctx`'s tactic: the default (rayon's global pool) or
/// [`SERIAL`] (a one-thread pool).
pub(crate) fn with_tactic<R: Send>(
    ctx: &LaunchCtx<'_>,
    kernel: &'static str,
    f: impl FnOnce() -> Result<R, Error> + Send,
) -> Result<R, Error> {
    match ctx.tactic {
        None => f(),
        Some(SERIAL) => {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .map_err(|e| Error::Device {
                    backend: BACKEND,
                    source: Box::new(e),
                })?;
            pool.install(f)
        }
        Some(tactic) => Err(Error::NoSuchTactic { kernel, tactic }),
    }
}

/// The reference backend's defaults over [`KernelMeta::new`]: CPU, any arch, lowest priority
/// (a GPU kernel is for another device kind anyway; on the CPU this is the only kernel), and
/// the tactic [`SERIAL`].
/// Everything else is core's default: version 1, deterministic and batch-invariant (rows are
/// independent and each reduction's order is fixed), f32/f16/bf16, element alignment.
pub(crate) const fn meta<O: Listed>(
    name: &'static str,
    source: &'static str,
    summary: &'static str,
) -> KernelMeta {
    KernelMeta::new::<O>(
        name,
        BACKEND,
        DeviceKind::Cpu,
        ArchReq::Any,
        source,
        summary,
    )
    .priority(0)
    .tactics(&[SERIAL])
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernelyard_core::{Capabilities, Stream};

    fn run(tactic: Option<&'static str>) -> Result<usize, Error> {
        let caps = Capabilities::host();
        let stream = Stream::host();
        let ctx = LaunchCtx {
            stream: &stream,
            caps: &caps,
            tactic,
        };
        with_tactic(&ctx, "reference.test", || Ok(rayon::current_num_threads()))
    }

    #[test]
    fn serial_runs_on_one_thread_and_unknown_tactics_are_errors() {
        assert_eq!(run(Some(SERIAL)).unwrap(), 1);
        assert_eq!(run(None).unwrap(), rayon::current_num_threads());
        match run(Some("t999")) {
            Err(Error::NoSuchTactic { kernel, tactic }) => {
                assert_eq!((kernel, tactic), ("reference.test", "t999"))
            }
            other => panic!("{other:?}"),
        }
    }
}
