//! The source of the log-softmax kernels, `crates/kernels/kernels/log_softmax.cu`:
//! `y = x - max - log(sum(exp(x - max)))` over each row, f32 math for every dtype, the output
//! `(x - max) - ln(s)` with an accurate `logf`. The same plan ([`rows`](crate::rows)),
//! entry-point families and signature as [`softmax`](crate::softmax):
//! `log_softmax_<dtype>_<variant>`, the variant named by
//! [`RowPlan::variant`](crate::rows::RowPlan::variant); and the same [`check`] and [`launch`]
//! sequence.
//!
//! Responsibility: core validated the views (contiguous `[rows, cols]`, one dtype, one device,
//! no overlap) into the [`LogSoftmaxProblem`]; [`check`] rejects the shapes the kernels cannot
//! run; [`launch`] picks the entry point and launch shape and launches through the backend;
//! the kernel assumes valid inputs.

use kernelyard_core::ops::log_softmax::{LogSoftmaxArgs, LogSoftmaxProblem};
use kernelyard_core::{Capabilities, Error, Reason, Stream};

use crate::launch::Launch;
use crate::rows::{check_rows, launch_rows};
use crate::source::KernelSource;

/// The source and its entry points (the variants of [`softmax`](crate::softmax::SOURCE)).
pub static SOURCE: KernelSource = KernelSource {
    file: "log_softmax.cu",
    code: include_str!("../kernels/log_softmax.cu"),
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
        "log_softmax_f32_pv1",
        "log_softmax_f32_pv2",
        "log_softmax_f32_pv4",
        "log_softmax_f32_pv8",
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
        "log_softmax_f16_pv1",
        "log_softmax_f16_pv2",
        "log_softmax_f16_pv4",
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
        "log_softmax_bf16_pv1",
        "log_softmax_bf16_pv2",
        "log_softmax_bf16_pv4",
    ],
};

/// Pushes the reasons the kernels cannot run `p` (the row length and the grid; no device
/// property matters).
pub fn check(_caps: &Capabilities, p: &LogSoftmaxProblem, reasons: &mut Vec<Reason>) {
    check_rows(p.rows, p.cols, p.dtype.size(), reasons);
}

/// Launches `p` on `stream` through `gpu`, the row kept in shared memory on the two-pass path
/// when it fits `caps.shared_mem_per_block_optin`. Core validated `a` into `p`, and [`check`]
/// accepted it.
pub fn launch(
    gpu: &dyn Launch,
    stream: &Stream,
    caps: &Capabilities,
    a: &mut LogSoftmaxArgs<'_>,
    p: &LogSoftmaxProblem,
) -> Result<(), Error> {
    launch_tactic(gpu, stream, caps, a, p, None)
}

/// [`launch`] with one of the row kernels' tactics ([`crate::rows::TACTICS`]), or `None` for
/// the default configuration.
pub fn launch_tactic(
    gpu: &dyn Launch,
    stream: &Stream,
    caps: &Capabilities,
    a: &mut LogSoftmaxArgs<'_>,
    p: &LogSoftmaxProblem,
    tactic: Option<&str>,
) -> Result<(), Error> {
    let io = (a.x.as_ptr(), a.out.as_mut_ptr());
    launch_rows(gpu, stream, caps, (&SOURCE, "log_softmax", tactic), p, io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::tests::Recorder;
    use crate::rows::{symbol, RowPlan};
    use kernelyard_core::{DType, TensorView, TensorViewMut};

    #[test]
    fn the_launch_names_a_log_softmax_entry_point() {
        let (rows, cols) = (5, 100);
        let x = vec![1.0f32; rows * cols];
        let mut y = vec![0.0f32; rows * cols];
        let mut a = LogSoftmaxArgs {
            x: TensorView::from_slice(&x, &[rows, cols]).unwrap(),
            out: TensorViewMut::from_slice(&mut y, &[rows, cols]).unwrap(),
        };
        let (p, _) = a.validate().unwrap();
        let gpu = Recorder::default();
        let caps = Capabilities::host();
        launch(&gpu, &Stream::host(), &caps, &mut a, &p).unwrap();
        let plan = RowPlan::new(cols, 4, p.align, Some(caps.shared_mem_per_block_optin));
        let calls = gpu.0.take();
        assert_eq!(calls.len(), 1);
        let want = format!("log_softmax_f32_{}", plan.variant());
        assert_eq!(
            (calls[0].file, calls[0].symbol),
            ("log_softmax.cu", want.as_str())
        );
        assert_eq!((calls[0].dims, calls[0].params), (plan.dims(rows), 5));
    }

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
        assert!(symbol(&SOURCE, "softmax", DType::F32, "v1", "").is_none());
        assert!(symbol(&crate::softmax::SOURCE, "log_softmax", DType::F32, "v1", "").is_none());
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
