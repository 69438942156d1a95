//! The equivalence suite as cargo tests: every registered kernel on every present device
//! against the reference oracle, with the fixed seed and, when `KERNELYARD_SEED` is set, that
//! seed too.
//!
//! One test per operator (so a failure names its op), each asserting no failures and at least
//! one pass for every kernel of that op on every present device: a kernel whose every case was
//! skipped fails the test. `every_kernel_on_every_device` asserts the same over everything and
//! prints the whole summary. Each op's suite runs once per process: the per-op reports are
//! shared between the tests.
//!
//! Run `cargo test -p kernelyard-suite --test equivalence -- --nocapture` to see the summaries.

use std::sync::OnceLock;

use kernelyard::{OpKind, Runtime};
use kernelyard_suite::{
    kernels_without_pass, run_suite, seed_from_env, summary_table, SuiteOptions, SuiteReport,
    DEFAULT_SEED,
};

/// The runtime: every backend linked into this binary, no pins from the environment.
fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        kernelyard_reference::link();
        Runtime::builder()
            .pins("")
            .build()
            .expect("the runtime starts")
    })
}

/// The fixed seed, then `KERNELYARD_SEED` if set (and different).
fn seeds() -> Vec<u64> {
    let mut seeds = vec![DEFAULT_SEED];
    match seed_from_env() {
        Ok(Some(s)) if s != DEFAULT_SEED => seeds.push(s),
        Ok(_) => {}
        Err(e) => panic!("{e}"),
    }
    seeds
}

/// The reports of one op, one per seed; computed once per process.
fn op_reports(op: OpKind) -> &'static [SuiteReport] {
    static REPORTS: [OnceLock<Vec<SuiteReport>>; OpKind::ALL.len()] =
        [const { OnceLock::new() }; OpKind::ALL.len()];
    let slot = OpKind::ALL
        .iter()
        .position(|&o| o == op)
        .expect("every op is in OpKind::ALL");
    REPORTS[slot].get_or_init(|| {
        seeds()
            .into_iter()
            .map(|seed| {
                let opts = SuiteOptions {
                    op: Some(op),
                    device: None,
                    seed,
                };
                run_suite(runtime(), &opts, &mut |_| {})
            })
            .collect()
    })
}

/// Asserts no failures, and a pass for every kernel of `op` (or of every op) on every present
/// device, in every report.
fn check(op: Option<OpKind>, reports: &[SuiteReport]) {
    for report in reports {
        let summary = summary_table(report);
        println!("{summary}");
        assert_eq!(
            report.failed(),
            0,
            "failures (seed {}):\n{summary}",
            report.seed
        );
        let opts = SuiteOptions {
            op,
            device: None,
            seed: report.seed,
        };
        let uncovered = kernels_without_pass(runtime(), &opts, report);
        assert!(
            uncovered.is_empty(),
            "kernels that passed no case (every case skipped), seed {}: {uncovered:?}\n{summary}",
            report.seed
        );
        assert!(report.passed() > 0, "nothing passed:\n{summary}");
    }
}

fn check_op(op: OpKind) {
    check(Some(op), op_reports(op));
}

#[test]
fn gemm() {
    check_op(OpKind::Gemm);
}

#[test]
fn rms_norm() {
    check_op(OpKind::RmsNorm);
}

#[test]
fn softmax() {
    check_op(OpKind::Softmax);
}

#[test]
fn log_softmax() {
    check_op(OpKind::LogSoftmax);
}

#[test]
fn token_logprobs() {
    check_op(OpKind::TokenLogprobs);
}

#[test]
fn rope() {
    check_op(OpKind::Rope);
}

#[test]
fn attention() {
    check_op(OpKind::Attention);
}

#[test]
fn selective_state_update() {
    check_op(OpKind::SelectiveStateUpdate);
}

#[test]
fn silu_mul() {
    check_op(OpKind::SiluMul);
}

#[test]
fn scaled_gemm() {
    check_op(OpKind::ScaledGemm);
}

/// Everything, over every op: the whole summary per seed.
#[test]
fn every_kernel_on_every_device() {
    let rt = runtime();
    assert!(
        rt.devices().next().is_some(),
        "no device present: {:?}",
        rt.backends()
    );
    let merged: Vec<SuiteReport> = seeds()
        .into_iter()
        .enumerate()
        .map(|(i, seed)| SuiteReport {
            seed,
            results: OpKind::ALL
                .iter()
                .flat_map(|&op| op_reports(op)[i].results.iter().cloned())
                .collect(),
        })
        .collect();
    check(None, &merged);
}

/// The same seed gives the same inputs, so the same results (a rerun reproduces a failure).
#[test]
fn a_seed_reproduces_its_run() {
    let opts = SuiteOptions {
        op: Some(OpKind::Softmax),
        device: None,
        seed: 12345,
    };
    let a = run_suite(runtime(), &opts, &mut |_| {});
    let b = run_suite(runtime(), &opts, &mut |_| {});
    assert_eq!(a, b);
    let other = run_suite(
        runtime(),
        &SuiteOptions {
            seed: 54321,
            ..opts.clone()
        },
        &mut |_| {},
    );
    assert_ne!(a, other, "a different seed should give different inputs");
}
