//! What the selection tests on simulated CUDA devices share (no GPU needed): a runtime with one
//! simulated device, a problem from `--problem`-style parameters, and the reasons a named kernel
//! was rejected for. Each test binary uses what it needs.
#![allow(dead_code)]

use kernelyard_core::{DType, OpKind, Params, Problem, Reason, Runtime, SelectError, Sm, Verdict};

/// The opt-in shared memory of an H100-like device (227 KiB).
pub const H100_OPTIN: u64 = 227 << 10;

/// A runtime with one simulated device of capability `sm` and `optin` bytes of opt-in shared
/// memory, and no pins (whatever `KERNELYARD_KERNELS` says).
pub fn runtime(sm: Sm, optin: u64) -> Runtime {
    kernelyard_cuda::link();
    Runtime::builder()
        .no_probe()
        .pins("")
        .simulated_device(kernelyard_cuda::device::simulated_caps(sm, optin))
        .build()
        .expect("runtime")
}

/// The `op` problem of `params` (as `--problem` takes them) in `dtype`; panics with the reason
/// when they do not make one.
pub fn problem(op: OpKind, params: &str, dtype: DType) -> Problem {
    let parsed = Params::parse(op, params).unwrap_or_else(|e| panic!("{params}: {e}"));
    Problem::from_params(op, &parsed, dtype).unwrap_or_else(|e| panic!("{params}: {e}"))
}

/// The reasons `kernel` was rejected for, from a `KernelRejected` error.
pub fn rejection(err: SelectError, kernel: &str) -> Vec<Reason> {
    let SelectError::KernelRejected { name, report } = err else {
        panic!("expected {kernel} to be rejected, got {err}");
    };
    assert_eq!(name, kernel);
    let candidate = report.candidates.iter().find(|c| c.kernel == kernel);
    match candidate.map(|c| &c.verdict) {
        Some(Verdict::Rejected { reasons }) => reasons.clone(),
        other => panic!("{kernel}: expected a rejection, got {other:?}:\n{report}"),
    }
}
