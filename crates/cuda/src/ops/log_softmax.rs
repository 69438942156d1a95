//! `cuda.log_softmax`: `y = x - max - log(sum(exp(x - max)))` over each row, from
//! `kernels/log_softmax.cu`.
//!
//! # Who does what
//! Core validated the views (contiguous `[rows, cols]`, one dtype, one device, no overlap) into
//! the [`RowsProblem`](kernelyard_core::ops::softmax::RowsProblem); this file launches; the
//! kernel assumes valid inputs. Math is f32 for every dtype; the output is `(x - max) - ln(s)`
//! with an accurate `logf`.
//!
//! # Launch configuration
//! The same plan, entry-point families and reasons as [`softmax`](crate::ops::softmax) (see
//! its table): [`RowPlan`](crate::ops::softmax::RowPlan) from `cols` and the element size alone
//! (register path up to 16384 columns, several rows per block up to 1024; two passes beyond,
//! with the row kept in shared memory when it fits), so the results are deterministic and
//! batch-invariant.
//!
//! # Bytes moved
//! `2 * rows * cols * size` on the register and shared-memory paths (x read once, y written
//! once); the L2 path for rows too long for shared memory reads x twice, the second time from
//! L2 while the rows in flight fit in it.

use kernelyard_core::{
    Args, Capabilities, Error, Kernel, KernelMeta, OpKind, Problem, Reason, Stream,
};

use crate::ops::softmax::{check_rows, launch_rows};
use crate::ops::{nvrtc_meta, wrong_op};
use crate::source::KernelSource;

pub(crate) static SOURCE: KernelSource = KernelSource {
    file: "log_softmax.cu",
    code: include_str!("../../../../kernels/log_softmax.cu"),
    symbols: &[
        "log_softmax_f32_v1",
        "log_softmax_f32_v2",
        "log_softmax_f32_v4",
        "log_softmax_f32_v8",
        "log_softmax_f32_s1",
        "log_softmax_f32_s2",
        "log_softmax_f32_s4",
        "log_softmax_f32_s8",
        "log_softmax_f32_smem_v",
        "log_softmax_f32_smem_s",
        "log_softmax_f32_long_v",
        "log_softmax_f32_long_s",
        "log_softmax_f16_v1",
        "log_softmax_f16_v2",
        "log_softmax_f16_v4",
        "log_softmax_f16_s1",
        "log_softmax_f16_s2",
        "log_softmax_f16_s4",
        "log_softmax_f16_smem_v",
        "log_softmax_f16_smem_s",
        "log_softmax_f16_long_v",
        "log_softmax_f16_long_s",
        "log_softmax_bf16_v1",
        "log_softmax_bf16_v2",
        "log_softmax_bf16_v4",
        "log_softmax_bf16_s1",
        "log_softmax_bf16_s2",
        "log_softmax_bf16_s4",
        "log_softmax_bf16_smem_v",
        "log_softmax_bf16_smem_s",
        "log_softmax_bf16_long_v",
        "log_softmax_bf16_long_s",
    ],
};

/// The `cuda.log_softmax` kernel.
pub struct CudaLogSoftmax;

/// Its registration.
pub static LOG_SOFTMAX: CudaLogSoftmax = CudaLogSoftmax;
crate::register!(LOG_SOFTMAX);

const META: KernelMeta = nvrtc_meta(
    "cuda.log_softmax",
    OpKind::LogSoftmax,
    module_path!(),
    "log-softmax over rows, f32 math; row in registers (or shared memory for long rows), 16-byte accesses",
);

impl Kernel for CudaLogSoftmax {
    fn meta(&self) -> &KernelMeta {
        &META
    }

    fn check_problem(&self, _caps: &Capabilities, problem: &Problem, reasons: &mut Vec<Reason>) {
        if let Problem::LogSoftmax(p) = problem {
            check_rows(p.rows, p.cols, p.dtype.size(), reasons);
        }
    }

    fn launch(&self, stream: &Stream, args: &mut Args<'_>, problem: &Problem) -> Result<(), Error> {
        let (Args::LogSoftmax(a), Problem::LogSoftmax(p)) = (args, problem) else {
            return Err(wrong_op(META.name, META.op, problem.op()));
        };
        launch_rows(
            stream,
            &SOURCE,
            "log_softmax",
            p,
            a.x.as_ptr(),
            a.out.as_mut_ptr(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::softmax::{symbol, RowPlan};
    use kernelyard_core::DType;

    #[test]
    fn every_plan_names_a_listed_entry_point() {
        for dtype in DType::FLOATS.iter().copied() {
            let cols = (1..=20_000).chain([32_768, 32_769, 131_072, 131_073]);
            for cols in cols {
                for align in [dtype.size(), 16] {
                    for limit in [Some(227 * 1024), None] {
                        let v = RowPlan::new(cols, dtype.size(), align, limit).variant();
                        symbol(&SOURCE, "log_softmax", dtype, v, "").unwrap();
                    }
                }
            }
        }
        // `softmax_...` names are not `log_softmax_...` names, and the reverse.
        assert!(symbol(&SOURCE, "softmax", DType::F32, "v1", "").is_err());
        assert!(symbol(
            &crate::ops::softmax::SOURCE,
            "log_softmax",
            DType::F32,
            "v1",
            ""
        )
        .is_err());
    }

    #[test]
    fn every_listed_entry_point_is_in_the_source() {
        for s in SOURCE.symbols {
            let variant = s
                .strip_prefix("log_softmax_")
                .and_then(|r| r.split_once('_'))
                .map(|(_, v)| v)
                .unwrap();
            let per_dtype = format!("log_softmax_##D##_{variant},");
            assert!(
                SOURCE.code.contains(&per_dtype) || SOURCE.code.contains(&format!("({s},")),
                "{s}"
            );
        }
    }
}
