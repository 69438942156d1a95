//! Host data, the device and bitwise comparisons for `gemm_batch_invariance.rs`.
//!
//! - **Host data**: A and B are random 16-bit values kept as raw bits; A is held as op(A)'s
//!   rows (`[rows, k]`, row-major) and packed into its stored layout per launch ([`pack_a`]),
//!   so a sub-batch or a padded batch is a list of row ranges whatever `trans_a` is.
//! - **The device**: [`Gpu`] runs a named kernel on views of device buffers, C poisoned with
//!   NaN first, and reads C back as raw bits (u16 widened to u32, or f32's).
//! - **Comparisons**: rows bitwise ([`diff_rows`]), NaN left in C ([`nan_check`]), sampled rows
//!   against an `f64` product under the tolerance contract ([`value_check`]).

use std::fmt;
use std::ops::Range;

use kernelyard_core::half::{bf16, f16};
use kernelyard_core::ops::gemm::GemmArgs;
use kernelyard_core::{
    Arch, Args, DType, DeviceBuffer, DeviceId, OpKind, Params, Policy, Problem, Reason, Runtime,
    SelectError, Sm, Stream, TensorView, TensorViewMut, Verdict,
};
use kernelyard_suite::rng::Rng;
use kernelyard_suite::tolerance::{coarser, tolerance};

pub(crate) const BI: &str = "cuda.gemm.batch_invariant";
pub(crate) const BI_SM90: &str = "cuda.gemm.batch_invariant.sm90";
/// The sm90 kernel with split-K (selected only when named, pinned or tuned).
pub(crate) const BI_SM90_SPLITK: &str = "cuda.gemm.batch_invariant.sm90.splitk";
pub(crate) const CUBLASLT: &str = "cuda.gemm.cublaslt";
pub(crate) const DEVICE: DeviceId = DeviceId::cuda(0);

/// Rows compared with the `f64` product (the first, the second, the middle, the last, and
/// random ones).
pub(crate) const SAMPLED_ROWS: usize = 8;

/// One GEMM shape: C `[m, n]` = op(A) op(B) with A and B of `dtype`, C of `c_dtype`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) m: usize,
    pub(crate) n: usize,
    pub(crate) k: usize,
    pub(crate) trans_a: bool,
    pub(crate) trans_b: bool,
    pub(crate) dtype: DType,
    pub(crate) c_dtype: DType,
    /// With `trans_a`, A's row stride is exactly the row count of op(A) (else rounded up to 8
    /// elements): the alignment of the problem then changes with the sub-batch.
    pub(crate) tight_lda: bool,
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (m={},n={},k={},trans_a={},trans_b={}, {} -> {})",
            self.name,
            self.m,
            self.n,
            self.k,
            u8::from(self.trans_a),
            u8::from(self.trans_b),
            self.dtype,
            self.c_dtype
        )
    }
}

/// A bf16 case with C in bf16; `t` is `(trans_a, trans_b)`.
pub(crate) const fn case(
    name: &'static str,
    m: usize,
    n: usize,
    k: usize,
    t: (bool, bool),
) -> Case {
    Case {
        name,
        m,
        n,
        k,
        trans_a: t.0,
        trans_b: t.1,
        dtype: DType::BF16,
        c_dtype: DType::BF16,
        tight_lda: false,
    }
}

// ---------------------------------------------------------------------------------------------
// Host data: 16-bit operands as raw bits, outputs as raw bits widened to u32.

/// `v` rounded to the 16-bit `dtype`, as bits.
pub(crate) fn to_bits16(dtype: DType, v: f64) -> u16 {
    match dtype {
        DType::BF16 => bf16::from_f64(v).to_bits(),
        DType::F16 => f16::from_f64(v).to_bits(),
        other => panic!("A and B are f16 or bf16 here, not {other}"),
    }
}

/// The value of 16-bit `dtype` bits.
pub(crate) fn value16(dtype: DType, bits: u16) -> f64 {
    match dtype {
        DType::BF16 => bf16::from_bits(bits).to_f64(),
        DType::F16 => f16::from_bits(bits).to_f64(),
        other => panic!("A and B are f16 or bf16 here, not {other}"),
    }
}

/// The value of an output element from its bits.
pub(crate) fn c_value(dtype: DType, bits: u32) -> f64 {
    match dtype {
        DType::F32 => f64::from(f32::from_bits(bits)),
        // The 16-bit dtypes' bits were widened from u16.
        _ => value16(dtype, bits as u16),
    }
}

/// `len` random values of `dtype` (as bits), uniform in [-1, 1) before rounding.
pub(crate) fn random16(dtype: DType, len: usize, rng: &mut Rng) -> Vec<u16> {
    (0..len)
        .map(|_| to_bits16(dtype, rng.uniform(-1.0, 1.0)))
        .collect()
}

/// A stored 2-D matrix: `rows` rows of `cols` elements, `ld` apart (padding is NaN).
pub(crate) struct Stored {
    pub(crate) bits: Vec<u16>,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) ld: usize,
}

/// The stored A of `case` for the logical rows `parts` of op(A) (`logical` is op(A), `[_, k]`,
/// row-major), concatenated: `[rows, k]`, or with `trans_a` `[k, ld]`, where `ld` is the row
/// count rounded up to 8 elements (16 bytes: every launch has the same 16-byte alignment; the
/// padding columns are NaN), or the row count itself when `case.tight_lda`.
pub(crate) fn pack_a(case: &Case, logical: &[u16], parts: &[Range<usize>]) -> Stored {
    let k = case.k;
    let rows: Vec<usize> = parts.iter().flat_map(|r| r.clone()).collect();
    if !case.trans_a {
        let mut bits = Vec::with_capacity(rows.len() * k);
        for &r in &rows {
            bits.extend_from_slice(&logical[r * k..(r + 1) * k]);
        }
        return Stored {
            bits,
            rows: rows.len(),
            cols: k,
            ld: k,
        };
    }
    let ld = if case.tight_lda {
        rows.len()
    } else {
        rows.len().next_multiple_of(8)
    };
    let mut bits = vec![to_bits16(case.dtype, f64::NAN); k * ld];
    for (col, &r) in rows.iter().enumerate() {
        for kk in 0..k {
            bits[kk * ld + col] = logical[r * k + kk];
        }
    }
    Stored {
        bits,
        rows: k,
        cols: rows.len(),
        ld,
    }
}

/// B as stored (`[k, n]`, or `[n, k]` with `trans_b`) and op(B) as `f64`, `[k, n]` row-major.
pub(crate) fn random_b(case: &Case, rng: &mut Rng) -> (Stored, Vec<f64>) {
    let (rows, cols) = if case.trans_b {
        (case.n, case.k)
    } else {
        (case.k, case.n)
    };
    let bits = random16(case.dtype, rows * cols, rng);
    let mut op_b = vec![0.0; case.k * case.n];
    for kk in 0..case.k {
        for j in 0..case.n {
            let stored = if case.trans_b {
                bits[j * cols + kk]
            } else {
                bits[kk * cols + j]
            };
            op_b[kk * case.n + j] = value16(case.dtype, stored);
        }
    }
    let b = Stored {
        bits,
        rows,
        cols,
        ld: cols,
    };
    (b, op_b)
}

// ---------------------------------------------------------------------------------------------
// The device.

/// The runtime, the device (cuda:0; the CPU for the harness's own test), its architecture,
/// its default stream (ordered with the synchronous copies) and the seed of this run.
pub(crate) struct Gpu {
    pub(crate) rt: Runtime,
    pub(crate) device: DeviceId,
    pub(crate) arch: Arch,
    pub(crate) stream: Stream,
    pub(crate) seed: u64,
}

impl Gpu {
    /// cuda:0; panics with the reason when there is no usable CUDA device.
    pub(crate) fn new() -> Gpu {
        kernelyard_cuda::link();
        Gpu::on(DEVICE)
    }

    /// The CPU with the reference backend: the harness checked against a GEMM that is
    /// deterministic and batch-invariant by construction.
    pub(crate) fn cpu() -> Gpu {
        kernelyard_reference::link();
        Gpu::on(DeviceId::CPU)
    }

    fn on(device: DeviceId) -> Gpu {
        let rt = Runtime::new().unwrap_or_else(|e| panic!("kernelyard runtime: {e}"));
        let caps = rt
            .capabilities(device)
            .unwrap_or_else(|e| panic!("{device} is required: {e}\nbackends: {:?}", rt.backends()));
        println!("{device}: {} ({})", caps.name, caps.arch);
        let arch = caps.arch.clone();
        let stream = rt
            .default_stream(device)
            .unwrap_or_else(|e| panic!("default stream: {e}"));
        let seed = match kernelyard_suite::seed_from_env() {
            Ok(Some(seed)) => seed,
            Ok(None) => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0x5eed, |d| d.as_nanos() as u64),
            Err(e) => panic!("{e}"),
        };
        println!("seed {seed:#x} (KERNELYARD_SEED={seed:#x} reproduces this run)");
        Gpu {
            rt,
            device,
            arch,
            stream,
            seed,
        }
    }

    /// The device's compute capability (panics on a device that is not CUDA).
    pub(crate) fn sm(&self) -> Sm {
        match self.arch {
            Arch::Cuda { sm } => sm,
            ref other => panic!("{} is not a CUDA device: {other:?}", self.device),
        }
    }

    /// The invariant kernels this device is meant to run; each one it is not meant to run is
    /// asserted to be rejected by selection with an architecture reason (printed as SKIP).
    pub(crate) fn invariant_kernels(&self) -> Vec<&'static str> {
        let probe = Problem::from_params(
            OpKind::Gemm,
            &Params::parse(OpKind::Gemm, "m=64,n=64,k=64").expect("params"),
            DType::BF16,
        )
        .expect("problem");
        let mut runnable = Vec::new();
        let sm = self.sm();
        for name in [BI, BI_SM90, BI_SM90_SPLITK] {
            let meant = meant_for(name, sm);
            match (
                meant,
                self.rt.select(self.device, &probe, &Policy::kernel(name)),
            ) {
                (true, Ok(_)) => runnable.push(name),
                (true, Err(e)) => panic!("{name} must run on {} ({sm}): {e}", self.device),
                (false, Ok(_)) => panic!(
                    "{name} was selected on {}, outside the architectures it is documented for",
                    sm
                ),
                (false, Err(e)) => {
                    let reasons = rejection(&e, name)
                        .unwrap_or_else(|| panic!("{name}: expected a rejection, got {e}"));
                    assert!(
                        reasons.iter().any(|r| matches!(
                            r,
                            Reason::ArchTooOld { .. }
                                | Reason::ArchTooNew { .. }
                                | Reason::ArchFamily { .. }
                        )),
                        "{name} on {}: rejected without an architecture reason: {reasons:?}",
                        sm
                    );
                    println!(
                        "SKIP {name} on {}: {}",
                        sm,
                        reasons
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("; ")
                    );
                }
            }
        }
        runnable
    }

    /// Uploads a stored matrix.
    pub(crate) fn upload(&self, dtype: DType, m: &Stored) -> DevMatrix {
        let mut buf = self
            .rt
            .alloc(self.device, m.bits.len() * 2)
            .unwrap_or_else(|e| panic!("alloc: {e}"));
        let done = match dtype {
            DType::BF16 => buf.upload(
                &m.bits
                    .iter()
                    .map(|&b| bf16::from_bits(b))
                    .collect::<Vec<_>>(),
            ),
            DType::F16 => buf.upload(
                &m.bits
                    .iter()
                    .map(|&b| f16::from_bits(b))
                    .collect::<Vec<_>>(),
            ),
            other => panic!("A and B are f16 or bf16 here, not {other}"),
        };
        done.unwrap_or_else(|e| panic!("upload: {e}"));
        DevMatrix {
            buf,
            device: self.device,
            dtype,
            rows: m.rows,
            cols: m.cols,
            ld: m.ld,
        }
    }

    /// C = op(A) op(B) by `kernel` (named: never replaced), C poisoned with NaN first; C's
    /// bits, `[batch * m, n]` row-major.
    pub(crate) fn product(
        &self,
        kernel: &str,
        a: TensorView<'_>,
        b: TensorView<'_>,
        (trans_a, trans_b): (bool, bool),
        c_dtype: DType,
        c_shape: &[usize],
    ) -> Result<Vec<u32>, String> {
        let len: usize = c_shape.iter().product();
        let mut c = self
            .rt
            .alloc(self.device, len * c_dtype.size())
            .map_err(|e| format!("alloc of C: {e}"))?;
        poison(&mut c, c_dtype, len).map_err(|e| format!("poisoning C: {e}"))?;
        {
            let c_view: TensorViewMut<'_> = c
                .view_mut(c_dtype, c_shape)
                .map_err(|e| format!("C view: {e}"))?;
            let mut args = Args::Gemm(GemmArgs {
                trans_a,
                trans_b,
                ..GemmArgs::new(a, b, c_view)
            });
            let plan = self
                .rt
                .run(&Policy::kernel(kernel), &self.stream, &mut args)
                .map_err(|e| e.to_string())?;
            if plan.kernel_name() != kernel {
                return Err(format!("ran {}, not {kernel}", plan.kernel_name()));
            }
        }
        self.rt
            .synchronize(&self.stream)
            .map_err(|e| format!("synchronize: {e}"))?;
        download_bits(&c, c_dtype, len).map_err(|e| format!("download of C: {e}"))
    }
}

/// Whether `kernel` is meant to run on `sm`, by its documented range (written here apart from
/// its `KernelMeta`, which selection reads, so that the two are checked against each other).
pub(crate) fn meant_for(kernel: &str, sm: Sm) -> bool {
    match kernel {
        BI => sm >= Sm::new(8, 0),
        BI_SM90 | BI_SM90_SPLITK => sm == Sm::new(9, 0),
        other => panic!("no documented range for {other}"),
    }
}

/// The invariant kernel constrained selection must return on `sm`, if any: the highest
/// priority one meant for the device (both take every layout).
pub(crate) fn expected_invariant(sm: Sm) -> Option<&'static str> {
    [BI_SM90, BI].into_iter().find(|&k| meant_for(k, sm))
}

/// The reasons `kernel` was rejected for, if `e` is its rejection.
pub(crate) fn rejection(e: &SelectError, kernel: &str) -> Option<Vec<Reason>> {
    let report = match e {
        SelectError::KernelRejected { report, .. } | SelectError::AllRejected { report } => report,
        _ => return None,
    };
    report
        .candidates
        .iter()
        .find(|c| c.kernel == kernel)
        .and_then(|c| match &c.verdict {
            Verdict::Rejected { reasons } => Some(reasons.clone()),
            _ => None,
        })
}

/// Fills the first `len` elements of `c` with NaN of `dtype`.
pub(crate) fn poison(
    c: &mut DeviceBuffer,
    dtype: DType,
    len: usize,
) -> Result<(), kernelyard_core::Error> {
    match dtype {
        DType::F32 => c.upload(&vec![f32::NAN; len]),
        DType::BF16 => c.upload(&vec![bf16::NAN; len]),
        DType::F16 => c.upload(&vec![f16::NAN; len]),
        other => panic!("C is f32, f16 or bf16 here, not {other}"),
    }
}

/// The first `len` elements of `c` (of `dtype`) as bits, 16-bit ones widened to u32.
pub(crate) fn download_bits(
    c: &DeviceBuffer,
    dtype: DType,
    len: usize,
) -> Result<Vec<u32>, kernelyard_core::Error> {
    Ok(match dtype {
        DType::F32 => c
            .download::<f32>(len)?
            .iter()
            .map(|v| v.to_bits())
            .collect(),
        DType::BF16 => c
            .download::<bf16>(len)?
            .iter()
            .map(|v| u32::from(v.to_bits()))
            .collect(),
        DType::F16 => c
            .download::<f16>(len)?
            .iter()
            .map(|v| u32::from(v.to_bits()))
            .collect(),
        other => panic!("C is f32, f16 or bf16 here, not {other}"),
    })
}

/// A matrix on the device: `rows` rows of `cols` elements, `ld` apart.
pub(crate) struct DevMatrix {
    pub(crate) buf: DeviceBuffer,
    pub(crate) device: DeviceId,
    pub(crate) dtype: DType,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) ld: usize,
}

impl DevMatrix {
    /// The whole matrix, `[rows, cols]`.
    pub(crate) fn view(&self) -> TensorView<'_> {
        self.rows_view(0, self.rows)
    }

    /// Stored rows `r0 .. r0 + rows` (a sub-view: no copy), `[rows, cols]`.
    pub(crate) fn rows_view(&self, r0: usize, rows: usize) -> TensorView<'_> {
        assert!(
            r0 + rows <= self.rows,
            "rows {r0}..{} of {}",
            r0 + rows,
            self.rows
        );
        // SAFETY: the buffer holds `self.rows * self.ld` elements of `self.dtype`, which cover
        // every element the shape and strides address (checked above); it is only read.
        unsafe {
            TensorView::from_raw_parts(
                self.buf.as_ptr().add(r0 * self.ld * 2).cast(),
                self.dtype,
                &[rows, self.cols],
                Some(&[self.ld as isize, 1]),
                self.device,
            )
        }
        .expect("rows view")
    }

    /// Batch entries `e0 .. e0 + entries` of `per` rows each, `[entries, per, cols]`.
    pub(crate) fn batch_view(&self, e0: usize, entries: usize, per: usize) -> TensorView<'_> {
        assert!((e0 + entries) * per <= self.rows);
        // SAFETY: as in `rows_view`: the addressed rows lie in the buffer (checked above).
        unsafe {
            TensorView::from_raw_parts(
                self.buf.as_ptr().add(e0 * per * self.ld * 2).cast(),
                self.dtype,
                &[entries, per, self.cols],
                Some(&[(per * self.ld) as isize, self.ld as isize, 1]),
                self.device,
            )
        }
        .expect("batch view")
    }
}

// ---------------------------------------------------------------------------------------------
// Comparisons.

/// Rows `got0 ..` of `got` against rows `want0 ..` of `want` (`rows` rows of `n`), bitwise:
/// `None` when identical, else how many rows differ and the first difference.
pub(crate) fn diff_rows(
    want: &[u32],
    want0: usize,
    got: &[u32],
    got0: usize,
    rows: usize,
    n: usize,
    dtype: DType,
) -> Option<String> {
    let mut first = None;
    let mut differing = 0;
    for r in 0..rows {
        let w = &want[(want0 + r) * n..(want0 + r + 1) * n];
        let g = &got[(got0 + r) * n..(got0 + r + 1) * n];
        if let Some(col) = (0..n).find(|&j| w[j] != g[j]) {
            differing += 1;
            first.get_or_insert((r, col, w[col], g[col]));
        }
    }
    first.map(|(r, col, w, g)| {
        format!(
            "{differing} of {rows} rows differ; first: row {} (row {} here), col {col}: \
             {} ({w:#x}) in the full batch, {} ({g:#x}) here",
            want0 + r,
            got0 + r,
            c_value(dtype, w),
            c_value(dtype, g)
        )
    })
}

/// An error if any element is NaN (unwritten: C was poisoned; the inputs are finite).
pub(crate) fn nan_check(c: &[u32], n: usize, dtype: DType) -> Option<String> {
    let nans = c.iter().filter(|&&b| c_value(dtype, b).is_nan()).count();
    let first = c.iter().position(|&b| c_value(dtype, b).is_nan())?;
    Some(format!(
        "{nans} elements are NaN (unwritten or produced), the first at row {}, col {}",
        first / n,
        first % n
    ))
}

/// An error if the rows `rows` of `c` (`[_, n]`, rows of op(A) `logical`) are outside the
/// tolerance contract of the `f64` product with `op_b` (`[k, n]`). Row `r` of C is row
/// `a0 + r` of `logical`.
pub(crate) fn value_check(
    case: &Case,
    c: &[u32],
    logical: &[u16],
    a0: usize,
    op_b: &[f64],
    rows: &[usize],
) -> Option<String> {
    let (n, k) = (case.n, case.k);
    let tol = tolerance(OpKind::Gemm, coarser(case.dtype, case.c_dtype))
        .expect("the tolerance contract has gemm rows");
    let (mut err2, mut want2, mut max_err, mut max_want) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    let mut acc = vec![0.0f64; n];
    for &r in rows {
        acc.iter_mut().for_each(|v| *v = 0.0);
        let a_row = &logical[(a0 + r) * k..(a0 + r + 1) * k];
        for (kk, &a) in a_row.iter().enumerate() {
            let a = value16(case.dtype, a);
            for (v, &b) in acc.iter_mut().zip(&op_b[kk * n..(kk + 1) * n]) {
                *v += a * b;
            }
        }
        for (j, &want) in acc.iter().enumerate() {
            let got = c_value(case.c_dtype, c[r * n + j]);
            let e = (got - want).abs();
            err2 += e * e;
            want2 += want * want;
            max_err = max_err.max(e);
            max_want = max_want.max(want.abs());
        }
    }
    let rel_l2 = (err2 / want2).sqrt();
    let max_abs = max_err / max_want.max(1.0);
    (!(rel_l2 <= tol.rel_l2 && max_abs <= tol.max_abs)).then(|| {
        format!(
            "rows {rows:?} against the f64 product: rel_l2 {rel_l2:.3e} (bound {:.1e}), \
             max_abs {max_abs:.3e} (bound {:.1e})",
            tol.rel_l2, tol.max_abs
        )
    })
}

/// The rows compared with the `f64` product: first, second, middle, last, and random ones.
pub(crate) fn sampled_rows(m: usize, rng: &mut Rng) -> Vec<usize> {
    let mut rows = vec![0, 1.min(m - 1), m / 2, m - 1];
    while rows.len() < SAMPLED_ROWS {
        rows.push(rng.below(m as u64) as usize);
    }
    rows.sort_unstable();
    rows.dedup();
    rows
}
