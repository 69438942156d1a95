//! The portable batch-invariant GEMM of the AMD backend, `crates/kernels/kernels/gemm_bi_simt.cu`
//! (`kernelyard_kernels::gemm_bi_simt`), proven on an NVIDIA GPU: the source is written once
//! for hipRTC and NVRTC, so its logic (tiling, tails, transposes, strides, broadcast, the
//! epilogue and the fixed reduction order) is checked here, on the device we have.
//!
//! The kernel is launched directly, `kernelyard_cuda::launch::launch` with the plan's entry
//! point and shape (it is not registered with the CUDA backend: selection never returns it).
//! - every A/B dtype (f32, f16, bf16) and every layout, on an odd shape (m = 67, n = 45,
//!   k = 131: no dimension a multiple of a tile) in a batch of 2 with a broadcast B and padded
//!   row strides, C in A's dtype and in f32, with `accumulate` (beta = 0.5 over random C) and
//!   without (C poisoned with NaN): within the tolerance contract of the `f64` result
//!   (`kernelyard_suite::tolerance`), no NaN left, the padding of C untouched, two runs bitwise
//!   identical, and each batch entry bitwise equal to the entry computed alone;
//! - batch invariance: with M = 1000 (A's row stride exactly M when transposed), sub-batches of
//!   1, 7 and 129 rows at the start, the middle and the end give bitwise the rows of the full
//!   batch (not transposed: views into the same buffer at an offset, so the pointers change
//!   alignment; transposed: the columns packed anew), and the full batch twice the same bits.
//!
//! Every failure is collected and reported with the seed; no test returns early. Run with
//! `--include-ignored` on a CUDA device (sm_80 or newer); without one they panic with the
//! reason. Device, seed, NaN poisoning and bitwise comparisons are the helpers of
//! `gemm_batch_invariance/support.rs`; inputs are uniform in [-1, 1) rounded to their dtype.

// Not a test target of its own; this file uses a part of its helpers.
#[allow(dead_code)]
#[path = "gemm_batch_invariance/support.rs"]
mod support;

use std::ffi::c_void;
use std::ops::Range;

use kernelyard_core::half::{bf16, f16};
use kernelyard_core::ops::gemm::GemmProblem;
use kernelyard_core::{DType, DeviceBuffer, OpKind};
use kernelyard_kernels::gemm_bi_simt::{self, SOURCE};
use kernelyard_suite::rng::Rng;
use kernelyard_suite::tolerance::{coarser, tolerance};

use support::{c_value, diff_rows, download_bits, nan_check, poison, to_bits16, Gpu};

const DTYPES: [DType; 3] = [DType::F32, DType::F16, DType::BF16];
const LAYOUTS: [(bool, bool); 4] = [(false, false), (false, true), (true, false), (true, true)];

/// The odd shape of the value checks, and its batch.
const M: usize = 67;
const N: usize = 45;
const K: usize = 131;
const BATCH: usize = 2;
const ALPHA: f32 = 0.75;
const BETA: f32 = 0.5;

/// Rows of the full batch in the invariance check, and the sub-batch sizes.
const FULL: usize = 1000;
const SUB_BATCHES: [usize; 3] = [1, 7, 129];

// ---------------------------------------------------------------------------------------------
// Host data of any of the three dtypes, as bits (16-bit ones widened to u32).

/// `v` rounded to `dtype`, as bits.
fn to_bits(dtype: DType, v: f64) -> u32 {
    match dtype {
        DType::F32 => (v as f32).to_bits(),
        _ => u32::from(to_bits16(dtype, v)),
    }
}

/// `len` values of `dtype`, uniform in [-1, 1) before rounding.
fn random(dtype: DType, len: usize, rng: &mut Rng) -> Vec<u32> {
    (0..len)
        .map(|_| to_bits(dtype, rng.uniform(-1.0, 1.0)))
        .collect()
}

/// Rows `rows` of `logical` (`[_, k]` row-major) stored `[rows, ld]`, or with `trans` their
/// transpose `[k, ld]`; padding is NaN.
fn pack(
    dtype: DType,
    logical: &[u32],
    k: usize,
    rows: Range<usize>,
    trans: bool,
    ld: usize,
) -> Vec<u32> {
    let count = rows.len();
    let stored_rows = if trans { k } else { count };
    let mut out = vec![to_bits(dtype, f64::NAN); stored_rows * ld];
    for (r, src) in rows.enumerate() {
        for kk in 0..k {
            let at = if trans { kk * ld + r } else { r * ld + kk };
            out[at] = logical[src * k + kk];
        }
    }
    out
}

/// A device buffer holding `bits` as `dtype`.
fn upload(gpu: &Gpu, dtype: DType, bits: &[u32]) -> DeviceBuffer {
    let mut buf = gpu
        .rt
        .alloc(gpu.device, bits.len() * dtype.size())
        .unwrap_or_else(|e| panic!("alloc: {e}"));
    let done = match dtype {
        DType::F32 => buf.upload(&bits.iter().map(|&b| f32::from_bits(b)).collect::<Vec<_>>()),
        DType::F16 => buf.upload(
            &bits
                .iter()
                .map(|&b| f16::from_bits(b as u16))
                .collect::<Vec<_>>(),
        ),
        DType::BF16 => buf.upload(
            &bits
                .iter()
                .map(|&b| bf16::from_bits(b as u16))
                .collect::<Vec<_>>(),
        ),
        other => panic!("f32, f16 or bf16 here, not {other}"),
    };
    done.unwrap_or_else(|e| panic!("upload: {e}"));
    buf
}

// ---------------------------------------------------------------------------------------------
// The launch.

/// One past the last element a matrix of `batch` entries (`stride` apart) of stored shape
/// `dims` with row stride `ld`, starting at element `offset`, covers.
fn extent(offset: usize, batch: usize, stride: usize, dims: [usize; 2], ld: usize) -> usize {
    offset + (batch - 1) * stride + (dims[0] - 1) * ld + dims[1]
}

/// A problem of `dtype` with the given layout, sizes and strides (C `[m, n]`, row stride `ldc`).
fn problem(
    dtype: DType,
    c_dtype: DType,
    (trans_a, trans_b): (bool, bool),
    (batch, m, n, k): (usize, usize, usize, usize),
    (lda, ldb, ldc): (usize, usize, usize),
    (batch_stride_a, batch_stride_b, batch_stride_c): (usize, usize, usize),
    accumulate: bool,
) -> GemmProblem {
    GemmProblem {
        batch,
        m,
        n,
        k,
        trans_a,
        trans_b,
        dtype,
        c_dtype,
        lda,
        ldb,
        ldc,
        batch_stride_a,
        batch_stride_b,
        batch_stride_c,
        accumulate,
        align: dtype.size(),
    }
}

/// Runs `p` by `gemm_bi_simt` with A at element `a_off` of `a`, B at the start of `b`, C at the
/// start of `c`, and waits for it.
fn run(
    gpu: &Gpu,
    p: &GemmProblem,
    (a, a_off): (&DeviceBuffer, usize),
    b: &DeviceBuffer,
    c: &mut DeviceBuffer,
) -> Result<(), String> {
    let plan = gemm_bi_simt::plan(p).ok_or_else(|| format!("no plan for {}", p.dtype))?;
    let mut reasons = Vec::new();
    gemm_bi_simt::check_shape(p, &mut reasons);
    if !reasons.is_empty() {
        return Err(format!("rejected: {reasons:?}"));
    }
    // Every element the kernel may touch lies in the buffers (the launch's safety).
    let size = p.dtype.size();
    let a_end = extent(a_off, p.batch, p.batch_stride_a, p.a_dims(), p.lda);
    let b_end = extent(0, p.batch, p.batch_stride_b, p.b_dims(), p.ldb);
    let c_end = extent(0, p.batch, p.batch_stride_c, [p.m, p.n], p.ldc);
    assert!(a_end * size <= a.len(), "A: {a_end} elements");
    assert!(b_end * size <= b.len(), "B: {b_end} elements");
    assert!(c_end * p.c_dtype.size() <= c.len(), "C: {c_end} elements");

    let a_ptr: *const c_void = a.as_ptr().wrapping_add(a_off * size).cast();
    let b_ptr: *const c_void = b.as_ptr().cast();
    let c_ptr: *mut c_void = c.as_mut_ptr().cast();
    let (m, n, k) = (p.m as i64, p.n as i64, p.k as i64);
    let (lda, ldb, ldc) = (p.lda as i64, p.ldb as i64, p.ldc as i64);
    let stride_a = p.batch_stride_a as i64;
    let stride_b = p.batch_stride_b as i64;
    let stride_c = p.batch_stride_c as i64;
    let beta = if p.accumulate { BETA } else { 0.0f32 };
    let accumulate = i32::from(p.accumulate);
    let c_f32 = i32::from(p.c_dtype == DType::F32);
    // SAFETY: the parameters match `gemm_bi_simt_<dtype>_<ta><tb>(const void* a, const void*
    // b, void* c, long long m, n, k, lda, ldb, ldc, stride_a, stride_b, stride_c, float alpha,
    // float beta, int accumulate, int c_f32)`; A, B and C (of `p.c_dtype`) are device buffers
    // of the stream's device that hold every element the problem addresses (checked above),
    // C disjoint from A and B; `check_shape` accepted the sizes and the grid.
    unsafe {
        kernelyard_cuda::launch::launch(
            &gpu.stream,
            &SOURCE,
            plan.symbol,
            plan.dims(),
            &mut kernelyard_kernels::params![
                a_ptr, b_ptr, c_ptr, m, n, k, lda, ldb, ldc, stride_a, stride_b, stride_c, ALPHA,
                beta, accumulate, c_f32
            ],
        )
    }
    .map_err(|e| format!("launch of {}: {e}", plan.symbol))?;
    gpu.rt
        .synchronize(&gpu.stream)
        .map_err(|e| format!("synchronize after {}: {e}", plan.symbol))
}

/// `'n'` or `'t'`.
fn t(x: bool) -> char {
    if x {
        't'
    } else {
        'n'
    }
}

/// Panics with every failure, if any.
fn assert_none(gpu: &Gpu, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} failures (seed {:#x}):\n{}",
        failures.len(),
        gpu.seed,
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Values, run-to-run identity, batch entries alone.

/// One dtype, layout, C dtype and `accumulate` on the odd shape; failures pushed to `failures`.
fn check_values(
    gpu: &Gpu,
    dtype: DType,
    c_dtype: DType,
    layout: (bool, bool),
    accumulate: bool,
    failures: &mut Vec<String>,
) {
    let what = format!(
        "gemm_bi_simt {dtype}_{}{} -> {c_dtype}, accumulate {accumulate}",
        t(layout.0),
        t(layout.1)
    );
    let mut fail = |msg: String| failures.push(format!("{what}: {msg}"));
    let mut rng = Rng::derived(gpu.seed, &["gemm_simt_on_cuda", &what]);
    let (ta, tb) = layout;
    // Padded row strides: A stored [m, k] or [k, m], B [k, n] or [n, k], C [m, n].
    let lda = if ta { M } else { K } + 3;
    let ldb = if tb { K } else { N } + 5;
    let ldc = N + 7;
    let a_entry = if ta { K } else { M } * lda;
    // op(A)'s rows for both entries; op(B)'s columns as rows ([n, k]), broadcast.
    let logical_a = random(dtype, BATCH * M * K, &mut rng);
    let logical_b = random(dtype, N * K, &mut rng);
    let mut a_bits = Vec::with_capacity(BATCH * a_entry);
    for e in 0..BATCH {
        a_bits.extend(pack(dtype, &logical_a, K, e * M..(e + 1) * M, ta, lda));
    }
    // B stored [n, k] is op(B)'s columns as rows; stored [k, n] is their transpose.
    let b_bits = pack(dtype, &logical_b, K, 0..N, !tb, ldb);
    let nan = to_bits(c_dtype, f64::NAN);
    let c_old: Vec<u32> = (0..BATCH * M * ldc)
        .map(|i| {
            if accumulate && i % ldc < N {
                to_bits(c_dtype, rng.uniform(-1.0, 1.0))
            } else {
                nan
            }
        })
        .collect();
    let a = upload(gpu, dtype, &a_bits);
    let b = upload(gpu, dtype, &b_bits);
    let p = problem(
        dtype,
        c_dtype,
        layout,
        (BATCH, M, N, K),
        (lda, ldb, ldc),
        (a_entry, 0, M * ldc),
        accumulate,
    );
    let product = |p: &GemmProblem, a_off: usize, c_init: &[u32]| -> Result<Vec<u32>, String> {
        let mut c = upload(gpu, c_dtype, c_init);
        run(gpu, p, (&a, a_off), &b, &mut c)?;
        download_bits(&c, c_dtype, c_init.len()).map_err(|e| format!("download: {e}"))
    };

    let runs: Vec<Vec<u32>> = match (product(&p, 0, &c_old), product(&p, 0, &c_old)) {
        (Ok(x), Ok(y)) => vec![x, y],
        (Err(e), _) | (_, Err(e)) => {
            fail(e);
            Vec::new()
        }
    };
    if let [c, again] = &runs[..] {
        if let Some(d) = diff_rows(c, 0, again, 0, BATCH * M, ldc, c_dtype) {
            fail(format!("run 2 vs run 1: {d}"));
        }
        // The padding of C is untouched; the rest is written and within the contract.
        let padding = (0..c.len())
            .filter(|&i| i % ldc >= N && c[i] != c_old[i])
            .count();
        if padding > 0 {
            fail(format!("{padding} padding elements of C were written"));
        }
        let written: Vec<u32> = c
            .chunks(ldc)
            .flat_map(|row| row[..N].iter().copied())
            .collect();
        if let Some(e) = nan_check(&written, N, c_dtype) {
            fail(e);
        }
        let tol = tolerance(OpKind::Gemm, coarser(dtype, c_dtype)).expect("gemm tolerances");
        let (mut err2, mut want2, mut max_err, mut max_want) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        for row in 0..BATCH * M {
            let a_row = &logical_a[row * K..(row + 1) * K];
            for j in 0..N {
                let b_col = &logical_b[j * K..(j + 1) * K];
                let dot: f64 = a_row
                    .iter()
                    .zip(b_col)
                    .map(|(&x, &y)| c_value(dtype, x) * c_value(dtype, y))
                    .sum();
                let mut want = f64::from(ALPHA) * dot;
                if accumulate {
                    want += f64::from(BETA) * c_value(c_dtype, c_old[row * ldc + j]);
                }
                let e = (c_value(c_dtype, c[row * ldc + j]) - want).abs();
                err2 += e * e;
                want2 += want * want;
                max_err = max_err.max(e);
                max_want = max_want.max(want.abs());
            }
        }
        let rel_l2 = (err2 / want2).sqrt();
        let max_abs = max_err / max_want.max(1.0);
        println!("{what}: rel_l2 {rel_l2:.2e}, max_abs {max_abs:.2e}");
        if !(rel_l2 <= tol.rel_l2 && max_abs <= tol.max_abs) {
            fail(format!(
                "against the f64 result: rel_l2 {rel_l2:.3e} (bound {:.1e}), max_abs \
                 {max_abs:.3e} (bound {:.1e})",
                tol.rel_l2, tol.max_abs
            ));
        }
        // Each batch entry alone (batch 1, A at the entry's offset) gives the entry's bits.
        for e in 0..BATCH {
            let alone = GemmProblem {
                batch: 1,
                batch_stride_a: 0,
                batch_stride_c: 0,
                ..p.clone()
            };
            let init = &c_old[e * M * ldc..(e + 1) * M * ldc];
            match product(&alone, e * a_entry, init) {
                Ok(got) => {
                    if let Some(d) = diff_rows(c, e * M, &got, 0, M, ldc, c_dtype) {
                        fail(format!("entry {e} alone: {d}"));
                    }
                }
                Err(err) => fail(format!("entry {e} alone: {err}")),
            }
        }
    }
}

#[test]
#[ignore = "requires a CUDA device"]
fn every_dtype_and_layout_matches_the_f64_result_on_odd_shapes() {
    let gpu = Gpu::new();
    let mut failures = Vec::new();
    for dtype in DTYPES {
        let c_dtypes: &[DType] = if dtype == DType::F32 {
            &[DType::F32]
        } else {
            &[dtype, DType::F32]
        };
        for &c_dtype in c_dtypes {
            for layout in LAYOUTS {
                for accumulate in [false, true] {
                    check_values(&gpu, dtype, c_dtype, layout, accumulate, &mut failures);
                }
            }
        }
    }
    assert_none(&gpu, &failures);
}

// ---------------------------------------------------------------------------------------------
// Batch invariance.

/// One dtype and layout: the rows of [`FULL`] rows against [`SUB_BATCHES`] at the start, the
/// middle and the end, and the full batch twice. C is A's dtype (C poisoned with NaN first).
fn check_invariance(gpu: &Gpu, dtype: DType, layout: (bool, bool), failures: &mut Vec<String>) {
    let what = format!("gemm_bi_simt {dtype}_{}{}", t(layout.0), t(layout.1));
    let mut fail = |msg: String| failures.push(format!("{what}: {msg}"));
    let mut rng = Rng::derived(gpu.seed, &["gemm_simt_on_cuda invariance", &what]);
    let (ta, tb) = layout;
    let logical_a = random(dtype, FULL * K, &mut rng);
    let logical_b = random(dtype, N * K, &mut rng);
    let ldb = if tb { K } else { N };
    let b = upload(gpu, dtype, &pack(dtype, &logical_b, K, 0..N, !tb, ldb));
    // Not transposed: one A, sub-batches are views at a row offset. Transposed: A's row
    // stride is exactly the row count of op(A), so each sub-batch is packed anew.
    let a_full = upload(
        gpu,
        dtype,
        &pack(dtype, &logical_a, K, 0..FULL, ta, if ta { FULL } else { K }),
    );
    let product = |rows: Range<usize>| -> Result<Vec<u32>, String> {
        let count = rows.len();
        let lda = if ta { count } else { K };
        let p = problem(
            dtype,
            dtype,
            layout,
            (1, count, N, K),
            (lda, ldb, N),
            (0, 0, 0),
            false,
        );
        let mut c = gpu
            .rt
            .alloc(gpu.device, count * N * dtype.size())
            .map_err(|e| format!("alloc of C: {e}"))?;
        poison(&mut c, dtype, count * N).map_err(|e| format!("poisoning C: {e}"))?;
        if ta {
            let a = upload(gpu, dtype, &pack(dtype, &logical_a, K, rows, true, lda));
            run(gpu, &p, (&a, 0), &b, &mut c)?;
        } else {
            run(gpu, &p, (&a_full, rows.start * K), &b, &mut c)?;
        }
        download_bits(&c, dtype, count * N).map_err(|e| format!("download of C: {e}"))
    };

    let full = match (product(0..FULL), product(0..FULL)) {
        (Ok(x), Ok(y)) => {
            if let Some(d) = diff_rows(&x, 0, &y, 0, FULL, N, dtype) {
                fail(format!("run 2 vs run 1: {d}"));
            }
            if let Some(e) = nan_check(&x, N, dtype) {
                fail(format!("full batch: {e}"));
            }
            Some(x)
        }
        (Err(e), _) | (_, Err(e)) => {
            fail(format!("full batch: {e}"));
            None
        }
    };
    let mut compared = 0;
    if let Some(full) = &full {
        for size in SUB_BATCHES {
            let mut offsets = vec![0, (FULL - size) / 2, FULL - size];
            offsets.dedup();
            for off in offsets {
                compared += 1;
                match product(off..off + size) {
                    Ok(c) => {
                        if let Some(d) = diff_rows(full, off, &c, 0, size, N, dtype) {
                            fail(format!("{size} rows at {off}: {d}"));
                        }
                    }
                    Err(e) => fail(format!("{size} rows at {off}: {e}")),
                }
            }
        }
    }
    println!("{what}: {compared} sub-batches compared bitwise with {FULL} rows");
}

#[test]
#[ignore = "requires a CUDA device"]
fn rows_are_bitwise_batch_invariant_and_runs_identical() {
    let gpu = Gpu::new();
    let mut failures = Vec::new();
    for dtype in DTYPES {
        for layout in LAYOUTS {
            check_invariance(&gpu, dtype, layout, &mut failures);
        }
    }
    assert_none(&gpu, &failures);
}
