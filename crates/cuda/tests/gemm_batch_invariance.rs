//! The batch-invariant GEMM kernels at production sizes, bitwise, on a real device.
//!
//! For `cuda.gemm.batch_invariant` (mma.sync, sm_80 and newer) and
//! `cuda.gemm.batch_invariant.sm90` (wgmma/TMA, sm_90 only):
//! - every row of C computed in the full batch has the same bits when its row of op(A) is
//!   computed alone, in sub-batches of 1, 2, 7, 17, 64, 128, 129 and 1000 rows at the start,
//!   the middle and the end, and in batches padded with random rows (after; before and after);
//! - for the sm90 kernel this compares its two split-K schedules too: K = 2048 and 4096 with N
//!   of 1000 to 1536 are cut into 4 splits; sub-batches up to 1000 rows run them spread over
//!   blocks (partial sums, then a reduction kernel), the full batches serially (a block's
//!   running sum), and the bits must agree;
//! - three runs of the full batch are bitwise identical;
//! - the same holds for the forward layouts (`x @ W` and `x @ W^T`), the backward ones
//!   (dA = dC B^T with `trans_b`; dB = A^T dC with `trans_a`, whose M axis is A's columns) and
//!   a batched product with a broadcast weight (each batch entry as computed alone);
//! - with A's row stride exactly M (dB over an odd token count), the problem's alignment changes
//!   with the sub-batch, and with it the mma.sync kernel's loads (16-byte or element-wise) and
//!   the sm90 kernel's (TMA or its own): the bits must not;
//! - sampled rows of every full product are within the tolerance contract of an `f64` product
//!   (`kernelyard_suite::tolerance`, `docs/TOLERANCES.md`), and no output stays NaN (outputs
//!   are poisoned with NaN before every launch).
//!
//! The harness itself runs on the CPU against `reference.gemm` at small sizes (not ignored):
//! a failure on the GPU is then the kernel's. Host data, the device and the comparisons are in
//! `gemm_batch_invariance/support.rs`.
//!
//! cuBLASLt runs the same shapes and its batch dependence is printed, not asserted: it declares
//! neither determinism nor batch invariance, and selection with either constraint must never
//! return it (checked here on the device, and on simulated devices in `gemm_bi_selection.rs`).
//!
//! A kernel the device is not meant to run (the sm90 one off sm_90, both below sm_80) is
//! asserted to be rejected by selection for its architecture and printed as `SKIP`; anything
//! else the device is meant to run must run (both kernels take every layout: the sm90 one
//! loads an operand TMA cannot copy, such as A^T with an odd row stride, itself). No test returns early and
//! passes; without CUDA they panic with the reason. Run with `--include-ignored`
//! (`scripts/gpu_proof.sh` does, in its `tests` and `gemm_bi` stages). Inputs are uniform in
//! [-1, 1) from a fresh seed printed first; `KERNELYARD_SEED=<seed>` reproduces a run.

// Not a test target of its own: cargo only builds `tests/*.rs` and `tests/*/main.rs`.
#[path = "gemm_batch_invariance/support.rs"]
mod support;

use std::ops::Range;

use kernelyard_core::{DType, OpKind, Params, Policy, Problem, Reason, TensorView};
use kernelyard_suite::rng::Rng;

use support::{
    case, diff_rows, expected_invariant, nan_check, pack_a, random16, random_b, rejection,
    sampled_rows, value_check, Case, Gpu, BI, BI_SM90, CUBLASLT,
};

/// Sub-batch sizes (those below M), each at the start, the middle and the end of the batch.
const SUB_BATCHES: &[usize] = &[1, 2, 7, 17, 64, 128, 129, 1000];
/// Random rows of op(A) before the batch in the "padded before and after" run.
const PAD_BEFORE: usize = 17;
/// Random rows of op(A) after the batch in both padded runs.
const PAD_AFTER: usize = 23;
/// Runs of the full batch that must be identical.
const RUNS: usize = 3;

/// `(trans_a, trans_b)` of a case.
const NN: (bool, bool) = (false, false);
const NT: (bool, bool) = (false, true);
const TN: (bool, bool) = (true, false);

/// `x @ W`, tile multiples.
const FWD_NN: Case = case("x @ W", 2048, 1536, 4096, NN);
/// `x @ W^T` (a linear layer), odd M, N not a multiple of 128.
const FWD_NT: Case = case("x @ W^T", 2049, 1000, 4096, NT);
/// `x @ W` into f32.
const FWD_NN_F32: Case = Case {
    c_dtype: DType::F32,
    ..case("x @ W -> f32", 1000, 1152, 4096, NN)
};
/// f16 `x @ W^T`.
const FWD_NT_F16: Case = Case {
    dtype: DType::F16,
    c_dtype: DType::F16,
    ..case("f16 x @ W^T", 2048, 1024, 4096, NT)
};
/// The input gradient of `x @ W` (x `[2048, 4096]`, W `[4096, 1536]`): dC `[2048, 1536]` times
/// W^T, W stored `[n, k]`.
const BWD_DA: Case = case("dA = dC @ B^T", 2048, 4096, 1536, NT);
/// The weight gradient of the same: A^T `[4096, 2048]` times dC; M is A's columns.
const BWD_DB: Case = case("dB = A^T @ dC", 4096, 1536, 2048, TN);
/// A weight gradient over an odd token count (k = 2049) into f32, N not a multiple of 128, A's
/// row stride exactly M: the problem is 16-byte aligned for some sub-batches (64 and 1000 rows,
/// the full batch) and not for others (1, 2, 7, 129), so the mma.sync kernel switches between
/// its 16-byte and element-wise loads and the sm90 kernel between TMA and its own loads of A,
/// which must not change a bit.
const BWD_DB_ODD: Case = Case {
    c_dtype: DType::F32,
    tight_lda: true,
    ..case("dB = A^T @ dC, odd tokens -> f32", 1536, 1000, 2049, TN)
};

/// What a kernel is held to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Bitwise batch invariance and run-to-run identity are asserted.
    Invariant,
    /// Bit differences are printed, not failures (cuBLASLt); values and NaN still are.
    ReportOnly,
}

/// Collects failures and counts comparisons of one kernel on one case.
struct Log<'a> {
    what: String,
    expect: Expect,
    failures: &'a mut Vec<String>,
    compared: usize,
    differing: usize,
}

impl Log<'_> {
    fn fail(&mut self, msg: String) {
        self.failures.push(format!("{}: {msg}", self.what));
    }

    /// Records one bitwise comparison (`diff` from [`diff_rows`]).
    fn compare(&mut self, label: &str, diff: Option<String>) {
        self.compared += 1;
        let Some(d) = diff else { return };
        self.differing += 1;
        match self.expect {
            Expect::Invariant => self.fail(format!("{label}: {d}")),
            Expect::ReportOnly => println!("  {}: {label}: {d}", self.what),
        }
    }

    fn summary(&self) {
        let verdict = match (self.differing, self.expect) {
            (0, _) => "all bitwise identical".to_owned(),
            (d, Expect::Invariant) => format!("{d} differ: FAILED"),
            (d, Expect::ReportOnly) => format!("{d} differ (reported, not asserted)"),
        };
        println!("{}: {} comparisons, {verdict}", self.what, self.compared);
    }
}

// ---------------------------------------------------------------------------------------------
// The checks.

/// `case` by `kernel`: the full batch [`RUNS`] times, every sub-batch, the padded batches, and
/// sampled rows against the `f64` product. Failures are pushed to `failures`.
fn check_rows(gpu: &Gpu, kernel: &str, case: &Case, expect: Expect, failures: &mut Vec<String>) {
    let mut log = Log {
        what: format!("{kernel} {case}"),
        expect,
        failures,
        compared: 0,
        differing: 0,
    };
    let (m, n, k) = (case.m, case.n, case.k);
    let layout = (case.trans_a, case.trans_b);
    let mut rng = Rng::derived(gpu.seed, &["gemm_batch_invariance", case.name]);
    // op(A)'s rows: PAD_BEFORE random rows, the batch, PAD_AFTER random rows.
    let total = PAD_BEFORE + m + PAD_AFTER;
    let logical = random16(case.dtype, total * k, &mut rng);
    let batch = PAD_BEFORE..PAD_BEFORE + m;
    let (b_stored, op_b) = random_b(case, &mut rng);
    let b = gpu.upload(case.dtype, &b_stored);
    let a_full = gpu.upload(
        case.dtype,
        &pack_a(case, &logical, std::slice::from_ref(&batch)),
    );
    let run = |a: TensorView<'_>, rows: usize| {
        gpu.product(kernel, a, b.view(), layout, case.c_dtype, &[rows, n])
    };

    let mut full = Vec::new();
    for i in 0..RUNS {
        match run(a_full.view(), m) {
            Ok(c) => full.push(c),
            Err(e) => {
                log.fail(format!("full batch, run {i}: {e}"));
                log.summary();
                return;
            }
        }
    }
    for (i, c) in full.iter().enumerate().skip(1) {
        log.compare(
            &format!("run {i} vs run 0"),
            diff_rows(&full[0], 0, c, 0, m, n, case.c_dtype),
        );
    }
    let full = &full[0];
    if let Some(e) = nan_check(full, n, case.c_dtype) {
        log.fail(format!("full batch: {e}"));
    }
    let rows = sampled_rows(m, &mut rng);
    if let Some(e) = value_check(case, full, &logical, PAD_BEFORE, &op_b, &rows) {
        log.fail(format!("full batch: {e}"));
    }

    for &size in SUB_BATCHES.iter().filter(|&&s| s < m) {
        let mut offsets = vec![0, (m - size) / 2, m - size];
        offsets.dedup();
        for off in offsets {
            let label = format!("{size} rows at {off}");
            let got = if case.trans_a {
                // M is A's columns: copy them into a fresh buffer.
                let part = PAD_BEFORE + off..PAD_BEFORE + off + size;
                let a = gpu.upload(case.dtype, &pack_a(case, &logical, &[part]));
                run(a.view(), size)
            } else {
                run(a_full.rows_view(off, size), size)
            };
            match got {
                Ok(c) => log.compare(&label, diff_rows(full, off, &c, 0, size, n, case.c_dtype)),
                Err(e) => log.fail(format!("{label}: {e}")),
            }
        }
    }

    let padded: [(&str, Vec<Range<usize>>, usize); 2] = [
        ("padded after", vec![batch.clone(), batch.end..total], 0),
        (
            "padded before and after",
            vec![0..PAD_BEFORE, batch.clone(), batch.end..total],
            PAD_BEFORE,
        ),
    ];
    for (label, parts, at) in padded {
        let rows: usize = parts.iter().map(|r| r.len()).sum();
        let a = gpu.upload(case.dtype, &pack_a(case, &logical, &parts));
        match run(a.view(), rows) {
            Ok(c) => log.compare(label, diff_rows(full, 0, &c, at, m, n, case.c_dtype)),
            Err(e) => log.fail(format!("{label}: {e}")),
        }
    }
    log.summary();
}

/// A batch of [`BATCH`] `x @ W^T` products sharing the weight (B broadcast, batch stride 0).
const BROADCAST: Case = case("batch of 3, broadcast W^T", 683, 1000, 4096, NT);
/// Batch entries in [`check_broadcast`].
const BATCH: usize = 3;

/// A batch of [`BATCH`] entries of `case` (A not transposed) with a broadcast B: three
/// identical runs; each entry equals the entry computed alone; entries 1..3 as a batch of 2
/// equal theirs; 129 rows of entry 1 (from row 100) alone equal theirs; sampled rows within the
/// tolerance contract.
fn check_broadcast(gpu: &Gpu, kernel: &str, case: &Case, failures: &mut Vec<String>) {
    assert!(
        !case.trans_a && case.m >= 229,
        "{case}: A not transposed, 229 rows at least"
    );
    let mut log = Log {
        what: format!("{kernel} {case}"),
        expect: Expect::Invariant,
        failures,
        compared: 0,
        differing: 0,
    };
    let (m, n, k) = (case.m, case.n, case.k);
    let layout = (case.trans_a, case.trans_b);
    let mut rng = Rng::derived(gpu.seed, &["gemm_batch_invariance", case.name]);
    let logical = random16(case.dtype, BATCH * m * k, &mut rng);
    let (b_stored, op_b) = random_b(case, &mut rng);
    let b = gpu.upload(case.dtype, &b_stored);
    let a = gpu.upload(
        case.dtype,
        &pack_a(case, &logical, std::slice::from_ref(&(0..BATCH * m))),
    );
    let run = |a: TensorView<'_>, shape: &[usize]| {
        gpu.product(kernel, a, b.view(), layout, case.c_dtype, shape)
    };

    let mut full = Vec::new();
    for i in 0..RUNS {
        match run(a.batch_view(0, BATCH, m), &[BATCH, m, n]) {
            Ok(c) => full.push(c),
            Err(e) => {
                log.fail(format!("batched, run {i}: {e}"));
                log.summary();
                return;
            }
        }
    }
    for (i, c) in full.iter().enumerate().skip(1) {
        let d = diff_rows(&full[0], 0, c, 0, BATCH * m, n, case.c_dtype);
        log.compare(&format!("run {i} vs run 0"), d);
    }
    let full = &full[0];
    if let Some(e) = nan_check(full, n, case.c_dtype) {
        log.fail(format!("batched: {e}"));
    }
    let rows = sampled_rows(BATCH * m, &mut rng);
    if let Some(e) = value_check(case, full, &logical, 0, &op_b, &rows) {
        log.fail(format!("batched: {e}"));
    }
    for e in 0..BATCH {
        match run(a.rows_view(e * m, m), &[m, n]) {
            Ok(c) => log.compare(
                &format!("entry {e} alone"),
                diff_rows(full, e * m, &c, 0, m, n, case.c_dtype),
            ),
            Err(err) => log.fail(format!("entry {e} alone: {err}")),
        }
    }
    match run(a.batch_view(1, 2, m), &[2, m, n]) {
        Ok(c) => log.compare(
            "entries 1..3 as a batch of 2",
            diff_rows(full, m, &c, 0, 2 * m, n, case.c_dtype),
        ),
        Err(e) => log.fail(format!("entries 1..3: {e}")),
    }
    match run(a.rows_view(m + 100, 129), &[129, n]) {
        Ok(c) => log.compare(
            "129 rows of entry 1",
            diff_rows(full, m + 100, &c, 0, 129, n, case.c_dtype),
        ),
        Err(e) => log.fail(format!("129 rows of entry 1: {e}")),
    }
    log.summary();
}

/// Runs `cases` for every invariant kernel the device is meant to run; panics with every
/// failure.
fn check_invariant(cases: &[Case]) {
    let gpu = Gpu::new();
    let kernels = gpu.invariant_kernels();
    let mut failures = Vec::new();
    for kernel in &kernels {
        for case in cases {
            check_rows(&gpu, kernel, case, Expect::Invariant, &mut failures);
        }
    }
    assert_no_failures(&gpu, &failures);
}

/// Panics with every failure (and the seed that reproduces them) if there is any.
fn assert_no_failures(gpu: &Gpu, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} failures (seed {:#x}):\n{}",
        failures.len(),
        gpu.seed,
        failures.join("\n")
    );
}

#[test]
#[ignore = "requires a CUDA device"]
fn forward_bf16_rows_are_bitwise_batch_invariant() {
    check_invariant(&[FWD_NN, FWD_NT, FWD_NN_F32]);
}

#[test]
#[ignore = "requires a CUDA device"]
fn forward_f16_rows_are_bitwise_batch_invariant() {
    check_invariant(&[FWD_NT_F16]);
}

#[test]
#[ignore = "requires a CUDA device"]
fn backward_layouts_are_run_to_run_identical_and_batch_invariant() {
    check_invariant(&[BWD_DA, BWD_DB, BWD_DB_ODD]);
}

#[test]
#[ignore = "requires a CUDA device"]
fn a_broadcast_weight_over_a_batch_is_invariant() {
    let gpu = Gpu::new();
    let mut failures = Vec::new();
    for kernel in gpu.invariant_kernels() {
        check_broadcast(&gpu, kernel, &BROADCAST, &mut failures);
    }
    assert_no_failures(&gpu, &failures);
}

/// Host threads sharing one stream (an embedder's default stream). The sm90 kernel's spread
/// split-K passes partial sums through the stream's workspace to a second kernel: a launch by
/// another thread between the two would make both results wrong (the first GPU run of the
/// split path failed this way: the tests of this file share the default stream). Four threads
/// run products of their own (small M, so split and spread) on the same stream, 8 times each,
/// with every invariant kernel: each result must equal the thread's first bit for bit and be
/// within the tolerance contract.
#[test]
#[ignore = "requires a CUDA device"]
fn threads_sharing_a_stream_keep_their_partial_sums_apart() {
    let gpu = Gpu::new();
    let mut failures = Vec::new();
    let cases = [
        case("thread 0", 1, 1536, 4096, NN),
        case("thread 1", 17, 1000, 4096, NT),
        case("thread 2", 128, 1536, 2048, TN),
        case("thread 3", 64, 4096, 4096, NT),
    ];
    for kernel in gpu.invariant_kernels() {
        let gpu = &gpu;
        let results: Vec<Vec<String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = cases
                .iter()
                .map(|case| {
                    scope.spawn(move || {
                        let mut errors = Vec::new();
                        let mut rng = Rng::derived(gpu.seed, &["threads", case.name]);
                        let logical = random16(case.dtype, case.m * case.k, &mut rng);
                        let (b_stored, op_b) = random_b(case, &mut rng);
                        let b = gpu.upload(case.dtype, &b_stored);
                        let a = gpu.upload(
                            case.dtype,
                            &pack_a(case, &logical, std::slice::from_ref(&(0..case.m))),
                        );
                        let layout = (case.trans_a, case.trans_b);
                        let mut first: Option<Vec<u32>> = None;
                        for run in 0..8 {
                            let c = match gpu.product(
                                kernel,
                                a.view(),
                                b.view(),
                                layout,
                                case.c_dtype,
                                &[case.m, case.n],
                            ) {
                                Ok(c) => c,
                                Err(e) => {
                                    errors.push(format!("{kernel} {case} run {run}: {e}"));
                                    break;
                                }
                            };
                            match &first {
                                None => {
                                    let rows = sampled_rows(case.m, &mut rng);
                                    if let Some(e) =
                                        value_check(case, &c, &logical, 0, &op_b, &rows)
                                    {
                                        errors.push(format!("{kernel} {case}: {e}"));
                                    }
                                    first = Some(c);
                                }
                                Some(f) => {
                                    let d = diff_rows(f, 0, &c, 0, case.m, case.n, case.c_dtype);
                                    if let Some(d) = d {
                                        errors.push(format!("{kernel} {case} run {run}: {d}"));
                                    }
                                }
                            }
                        }
                        errors
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| vec!["a thread panicked".to_owned()])
                })
                .collect()
        });
        for errors in results {
            failures.extend(errors);
        }
        println!("{kernel}: 4 threads x 8 runs on one stream");
    }
    assert_no_failures(&gpu, &failures);
}

/// cuBLASLt on the same shapes: whether its rows change with the batch is printed (it is not
/// batch-invariant and does not claim to be); that it runs, writes every element and is within
/// the tolerance contract is asserted.
#[test]
#[ignore = "requires a CUDA device"]
fn cublaslt_batch_dependence_is_reported_not_asserted() {
    let gpu = Gpu::new();
    let mut failures = Vec::new();
    for case in [FWD_NN, FWD_NT, BWD_DB] {
        check_rows(&gpu, CUBLASLT, &case, Expect::ReportOnly, &mut failures);
    }
    assert_no_failures(&gpu, &failures);
}

/// On this device, selection with `batch_invariant` or `deterministic` returns the invariant
/// kernel with the highest priority the device is meant to run (on sm_90 the sm90 one, in
/// every layout), never cuBLASLt, which stays the unconstrained choice; an f32 problem has no invariant kernel and
/// fails with every candidate's reasons.
#[test]
#[ignore = "requires a CUDA device"]
fn constrained_selection_on_this_device_never_returns_cublaslt() {
    let gpu = Gpu::new();
    let problems = [
        ("m=2048,n=1536,k=4096", DType::BF16),
        ("m=1,n=4096,k=4096,trans_b=1", DType::BF16),
        ("m=4096,n=1536,k=2048,trans_a=1,c_dtype=f32", DType::F16),
    ];
    for (params, dtype) in problems {
        let p = Problem::from_params(
            OpKind::Gemm,
            &Params::parse(OpKind::Gemm, params).expect("params"),
            dtype,
        )
        .expect("problem");
        let expected = expected_invariant(gpu.sm());
        let auto = gpu
            .rt
            .select(gpu.device, &p, &Policy::auto())
            .unwrap_or_else(|e| panic!("{params} {dtype}, auto: {e}"));
        assert_eq!(auto.kernel_name(), CUBLASLT, "{params} {dtype}, auto");
        for policy in [
            Policy::auto().batch_invariant(),
            Policy::auto().deterministic(),
        ] {
            match (gpu.rt.select(gpu.device, &p, &policy), expected) {
                (Ok(plan), Some(want)) => {
                    assert_eq!(plan.kernel_name(), want, "{params} {dtype}, {policy}");
                    println!("{params} {dtype}, {policy}: {}", plan.kernel_name());
                }
                (Ok(plan), None) => panic!(
                    "{params} {dtype}, {policy}: {} selected on {}, where no invariant kernel \
                     is meant to run",
                    plan.kernel_name(),
                    gpu.sm()
                ),
                (Err(e), Some(want)) => panic!("{params} {dtype}, {policy}: expected {want}: {e}"),
                (Err(e), None) => {
                    let lt = rejection(&e, CUBLASLT).expect("cuBLASLt is in the report");
                    assert!(lt.contains(&Reason::NotDeterministic), "{e}");
                    println!(
                        "{params} {dtype}, {policy} on {}: fails as it must:\n{e}",
                        gpu.sm()
                    );
                }
            }
        }
    }
    let f32_problem = Problem::from_params(
        OpKind::Gemm,
        &Params::parse(OpKind::Gemm, "m=2048,n=1536,k=4096").expect("params"),
        DType::F32,
    )
    .expect("problem");
    let e = gpu
        .rt
        .select(gpu.device, &f32_problem, &Policy::auto().batch_invariant())
        .expect_err("no invariant kernel takes f32 A/B");
    let lt = rejection(&e, CUBLASLT).expect("cuBLASLt is in the report");
    assert!(lt.contains(&Reason::NotBatchInvariant), "{e}");
    for k in [BI, BI_SM90] {
        let reasons = rejection(&e, k).unwrap_or_else(|| panic!("{k} is in the report: {e}"));
        assert!(
            reasons.iter().any(|r| matches!(
                r,
                Reason::DtypeUnsupported {
                    dtype: DType::F32,
                    ..
                }
            )),
            "{k}: {reasons:?}"
        );
    }
    println!("f32 with batch_invariant fails as it must:\n{e}");
}

/// The harness itself, on the CPU with `reference.gemm` (an `f64` product rounded once:
/// deterministic and batch-invariant by construction) at small sizes: every check passes, so a
/// failure on the GPU is the kernel's, not the harness's (views and sub-views, A transposed
/// with a padded or an exact row stride, the rows of sub-batches and padded batches, a batch
/// with a broadcast B, the tolerance check).
#[test]
fn the_checks_pass_the_reference_gemm_on_the_cpu() {
    let cpu = Gpu::cpu();
    let cases = [
        case("cpu x @ W", 300, 40, 64, NN),
        Case {
            c_dtype: DType::F32,
            ..case("cpu x @ W^T -> f32", 257, 24, 48, NT)
        },
        Case {
            dtype: DType::F16,
            c_dtype: DType::F16,
            ..case("cpu f16 A^T @ dC", 131, 16, 33, TN)
        },
        Case {
            tight_lda: true,
            ..case("cpu A^T @ dC, exact lda", 139, 16, 33, TN)
        },
    ];
    let mut failures = Vec::new();
    for case in &cases {
        check_rows(
            &cpu,
            "reference.gemm",
            case,
            Expect::Invariant,
            &mut failures,
        );
    }
    let batched = case("cpu batch, broadcast W^T", 240, 24, 40, NT);
    check_broadcast(&cpu, "reference.gemm", &batched, &mut failures);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_row_that_differs_is_reported_with_its_place_and_values() {
    let one = u32::from(kernelyard_core::half::bf16::ONE.to_bits());
    let two = u32::from(kernelyard_core::half::bf16::from_f32(2.0).to_bits());
    let want = vec![one; 4 * 3];
    let mut got = vec![one; 3 * 3];
    assert_eq!(diff_rows(&want, 1, &got, 0, 3, 3, DType::BF16), None);
    got[2 * 3 + 1] = two;
    let d = diff_rows(&want, 1, &got, 0, 3, 3, DType::BF16).expect("a difference");
    assert!(d.starts_with("1 of 3 rows differ"), "{d}");
    assert!(
        d.contains("row 3 (row 2 here), col 1: 1 (0x3f80) in the full batch, 2 (0x4000) here"),
        "{d}"
    );
    got[0] = u32::from(kernelyard_core::half::bf16::NAN.to_bits());
    assert!(nan_check(&got, 3, DType::BF16).is_some_and(|e| e.contains("row 0, col 0")));
}
