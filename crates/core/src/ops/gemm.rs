//! `gemm`: `C = alpha * op(A) @ op(B) + beta * C`, optionally batched.
//!
//! `op(X)` is `X` or `X^T`. A and B are f32, f16 or bf16 (the same dtype); C is that dtype or
//! f32; accumulation is in f32 (or better). Matrices are row-major with a unit inner stride and
//! a row stride (`ld`) of at least their column count. A batch dimension comes first; an
//! operand of rank 2 next to a rank-3 C is broadcast over the batch (batch stride 0). With
//! `beta == 0`, C is not read (NaN in C does not propagate).
//!
//! In place: C is read (when `beta != 0`) and written through its one writable view,
//! [`GemmArgs::c`]; there is no separate read view of C, so safe code cannot hold a shared and
//! a mutable view of it. C must not overlap A or B.

use serde::{Deserialize, Serialize};

use crate::device::DeviceId;
use crate::dtype::DType;
use crate::error::{Error, ValidationError};
use crate::ops::check::{
    dim, dtype_in, finite, no_alias, nonzero, same_dtype, Checker, Implied, ViewMeta,
};
use crate::ops::params::{ParamKey, Params};
use crate::ops::{Example, Op, OpKind, ScalarKey, Work};
use crate::tensor::{TensorView, TensorViewMut};

/// The dtypes allowed for A and B.
pub const AB_DTYPES: &[DType] = DType::FLOATS;

/// A `gemm` problem.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GemmProblem {
    /// Batch count (1 when unbatched).
    pub batch: usize,
    /// Rows of C and of op(A).
    pub m: usize,
    /// Columns of C and of op(B).
    pub n: usize,
    /// The reduction dimension.
    pub k: usize,
    /// A is stored `[k, m]` and used transposed.
    pub trans_a: bool,
    /// B is stored `[n, k]` and used transposed.
    pub trans_b: bool,
    /// dtype of A and B.
    pub dtype: DType,
    /// dtype of C (A's dtype or f32).
    pub c_dtype: DType,
    /// Row stride of A, elements.
    pub lda: usize,
    /// Row stride of B, elements.
    pub ldb: usize,
    /// Row stride of C, elements.
    pub ldc: usize,
    /// Batch stride of A, elements (0 = broadcast).
    pub batch_stride_a: usize,
    /// Batch stride of B, elements (0 = broadcast).
    pub batch_stride_b: usize,
    /// Batch stride of C, elements.
    pub batch_stride_c: usize,
    /// `beta != 0`: C is read and accumulated into.
    pub accumulate: bool,
    /// Least alignment of pointers and row strides, bytes (capped at 16).
    pub align: usize,
}

impl GemmProblem {
    /// Stored shape of A (without batch): `[m, k]`, or `[k, m]` when transposed.
    pub fn a_dims(&self) -> [usize; 2] {
        if self.trans_a {
            [self.k, self.m]
        } else {
            [self.m, self.k]
        }
    }

    /// Stored shape of B (without batch): `[k, n]`, or `[n, k]` when transposed.
    pub fn b_dims(&self) -> [usize; 2] {
        if self.trans_b {
            [self.n, self.k]
        } else {
            [self.k, self.n]
        }
    }

    /// Floating-point operations: `2 * batch * m * n * k`.
    pub fn flops(&self) -> f64 {
        2.0 * self.batch as f64 * self.m as f64 * self.n as f64 * self.k as f64
    }

    /// A contiguous problem from `--problem` keys.
    pub fn from_params(params: &Params, dtype: DType) -> Result<Self, Error> {
        let r = params.reader(OpKind::Gemm);
        r.check_keys()?;
        let (m, n, k, batch) = (
            r.usize("m")?,
            r.usize("n")?,
            r.usize("k")?,
            r.usize("batch")?,
        );
        let (trans_a, trans_b) = (r.flag("trans_a")?, r.flag("trans_b")?);
        let mut p = GemmProblem {
            batch,
            m,
            n,
            k,
            trans_a,
            trans_b,
            dtype,
            c_dtype: r.dtype("c_dtype", dtype)?,
            lda: 0,
            ldb: 0,
            ldc: n,
            batch_stride_a: 0,
            batch_stride_b: 0,
            batch_stride_c: 0,
            accumulate: r.flag("accumulate")?,
            align: r.usize("align")?,
        };
        p.lda = p.a_dims()[1];
        p.ldb = p.b_dims()[1];
        let broadcast = r.choice("broadcast", &["none", "a", "b"])?;
        if batch > 1 {
            // One matrix's elements: a product that overflows is a matrix too large anyway.
            let matrix = |arg, [rows, cols]: [usize; 2]| {
                rows.checked_mul(cols)
                    .ok_or_else(|| ValidationError::Overflow {
                        arg,
                        what: format!("the element count of one [{rows}, {cols}] matrix"),
                    })
            };
            p.batch_stride_c = matrix("c", [m, n])?;
            if broadcast != "a" {
                p.batch_stride_a = matrix("a", p.a_dims())?;
            }
            if broadcast != "b" {
                p.batch_stride_b = matrix("b", p.b_dims())?;
            }
        }
        p.align = p.implied()?.align_param(p.align)?;
        p.check()?;
        Ok(p)
    }

    /// A, B and C as their sizes and strides describe them, after the rules
    /// [`GemmArgs::validate`] enforces on them: each row stride at least the row's length (and
    /// exactly it for a one-row matrix, as validation records it), batch strides 0 without a
    /// batch, C's batches apart, A's and B's dtype a float and C's one of [`c_dtypes`].
    fn implied(&self) -> Result<Implied, ValidationError> {
        nonzero(&[self.batch, self.m, self.n, self.k])?;
        dtype_in("a", self.dtype, AB_DTYPES)?;
        dtype_in("c", self.c_dtype, c_dtypes(self.dtype))?;
        let operands = [
            (
                "a",
                self.dtype,
                self.a_dims(),
                self.lda,
                self.batch_stride_a,
            ),
            (
                "b",
                self.dtype,
                self.b_dims(),
                self.ldb,
                self.batch_stride_b,
            ),
            (
                "c",
                self.c_dtype,
                [self.m, self.n],
                self.ldc,
                self.batch_stride_c,
            ),
        ];
        let mut t = Implied::new();
        for (arg, dtype, [rows, cols], ld, batch_stride) in operands {
            let strides_error = |need| ValidationError::ProblemStrides {
                arg,
                rows,
                cols,
                ld,
                batch_stride,
                need,
            };
            if ld < cols {
                return Err(strides_error(
                    "the row stride must be at least the column count",
                ));
            }
            if rows == 1 && ld != cols {
                return Err(strides_error(
                    "a one-row matrix has the row stride of its column count",
                ));
            }
            if self.batch == 1 && batch_stride != 0 {
                return Err(strides_error("without a batch, batch strides are 0"));
            }
            if batch_stride == 0 {
                // Unbatched, or one matrix broadcast over the batch.
                t.strided(arg, dtype, &[rows, cols], &[ld, 1])?;
            } else {
                let shape = [self.batch, rows, cols];
                t.strided(arg, dtype, &shape, &[batch_stride, ld, 1])?;
            }
        }
        // The span check above bounds m * ldc.
        if self.batch > 1 && self.batch_stride_c < self.m.saturating_mul(self.ldc) {
            return Err(ValidationError::ProblemStrides {
                arg: "c",
                rows: self.m,
                cols: self.n,
                ld: self.ldc,
                batch_stride: self.batch_stride_c,
                need: "C's batches must not overlap (batch stride at least m * ldc)",
            });
        }
        Ok(t)
    }

    /// The invariants [`GemmArgs::validate`] enforces (see [`Op::check_problem`]).
    pub fn check(&self) -> Result<(), ValidationError> {
        self.implied()?.check_align(self.align)
    }
}

/// The dtypes C may have next to A and B of `ab`: `ab` itself or f32.
pub fn c_dtypes(ab: DType) -> &'static [DType] {
    match ab {
        DType::F16 => &[DType::F16, DType::F32],
        DType::BF16 => &[DType::BF16, DType::F32],
        _ => &[DType::F32],
    }
}

/// Keys of `--problem` for `gemm`.
pub const PARAMS: &[ParamKey] = &[
    ParamKey {
        key: "m",
        default: None,
        help: "rows of C",
    },
    ParamKey {
        key: "n",
        default: None,
        help: "columns of C",
    },
    ParamKey {
        key: "k",
        default: None,
        help: "reduction length",
    },
    ParamKey {
        key: "batch",
        default: Some("1"),
        help: "batch count",
    },
    ParamKey {
        key: "trans_a",
        default: Some("0"),
        help: "A stored [k, m]",
    },
    ParamKey {
        key: "trans_b",
        default: Some("0"),
        help: "B stored [n, k]",
    },
    ParamKey {
        key: "broadcast",
        default: Some("none"),
        help: "none, a or b: that operand is one matrix for every batch",
    },
    ParamKey {
        key: "c_dtype",
        default: Some("same"),
        help: "dtype of C: same or f32",
    },
    ParamKey {
        key: "accumulate",
        default: Some("0"),
        help: "beta != 0",
    },
    ParamKey {
        key: "align",
        default: Some("16"),
        help: "pointer alignment in bytes",
    },
];

/// Arguments of `gemm`.
#[derive(Debug)]
pub struct GemmArgs<'a> {
    /// A: `[m, k]` (`[k, m]` if `trans_a`), optionally with a leading batch dimension.
    pub a: TensorView<'a>,
    /// B: `[k, n]` (`[n, k]` if `trans_b`), optionally with a leading batch dimension.
    pub b: TensorView<'a>,
    /// C: `[m, n]` or `[batch, m, n]`; read when `beta != 0`, written.
    pub c: TensorViewMut<'a>,
    /// Use A transposed.
    pub trans_a: bool,
    /// Use B transposed.
    pub trans_b: bool,
    /// Scale of the product.
    pub alpha: f32,
    /// Scale of the existing C (0 means C is not read).
    pub beta: f32,
}

impl<'a> GemmArgs<'a> {
    /// `C = A @ B` with no transposes, `alpha = 1`, `beta = 0`.
    pub fn new(a: TensorView<'a>, b: TensorView<'a>, c: TensorViewMut<'a>) -> Self {
        GemmArgs {
            a,
            b,
            c,
            trans_a: false,
            trans_b: false,
            alpha: 1.0,
            beta: 0.0,
        }
    }
}

/// A matrix operand's layout: optional batch, rows, cols, row stride, batch stride.
struct Matrix {
    batch: Option<usize>,
    rows: usize,
    cols: usize,
    ld: usize,
    batch_stride: usize,
}

fn matrix(
    ck: &mut Checker,
    arg: &'static str,
    v: &dyn ViewMeta,
    allowed: &'static [DType],
) -> Result<Matrix, ValidationError> {
    let rank = if v.shape().len() == 3 { 3 } else { 2 };
    let layout = if rank == 3 {
        "[batch, rows, cols]"
    } else {
        "[rows, cols] or [batch, rows, cols]"
    };
    let shape = ck.tensor(arg, v, rank, layout, allowed)?;
    let s = v.strides();
    let (rows, cols) = (shape[rank - 2], shape[rank - 1]);
    let (ld, inner) = (s[rank - 2] as usize, s[rank - 1]);
    let strides_error = |need| ValidationError::Strides {
        arg,
        shape: shape.to_vec(),
        strides: s.to_vec(),
        need,
    };
    if inner != 1 && cols > 1 {
        return Err(strides_error("the innermost stride must be 1"));
    }
    let ld = if rows == 1 { cols } else { ld };
    if ld < cols {
        return Err(strides_error(
            "the row stride must be at least the column count",
        ));
    }
    Ok(Matrix {
        batch: (rank == 3).then(|| shape[0]),
        rows,
        cols,
        ld,
        batch_stride: if rank == 3 && shape[0] > 1 {
            s[0] as usize
        } else {
            0
        },
    })
}

impl GemmArgs<'_> {
    /// Validates the arguments into a problem and their device.
    pub fn validate(&self) -> Result<(GemmProblem, DeviceId), ValidationError> {
        let mut ck = Checker::new();
        let a = matrix(&mut ck, "a", &self.a, AB_DTYPES)?;
        let dtype = self.a.dtype();
        same_dtype("b", &self.b, dtype)?;
        let b = matrix(&mut ck, "b", &self.b, AB_DTYPES)?;
        let c = matrix(&mut ck, "c", &self.c, c_dtypes(dtype))?;
        let (m, k) = if self.trans_a {
            (a.cols, a.rows)
        } else {
            (a.rows, a.cols)
        };
        let (kb, n) = if self.trans_b {
            (b.cols, b.rows)
        } else {
            (b.rows, b.cols)
        };
        dim(
            "b",
            "k",
            kb,
            k,
            "op(B) must have k rows, the columns of op(A)",
        )?;
        dim("c", "m", c.rows, m, "C must have the rows of op(A)")?;
        dim("c", "n", c.cols, n, "C must have the columns of op(B)")?;
        let batch = c.batch.unwrap_or(1);
        for (arg, x) in [("a", &a), ("b", &b)] {
            if let Some(bx) = x.batch {
                dim(arg, "batch", bx, batch, "operands' batch must match C's")?;
            }
        }
        if batch > 1 && c.batch_stride < m * c.ld {
            return Err(ValidationError::Strides {
                arg: "c",
                shape: self.c.shape().to_vec(),
                strides: self.c.strides().to_vec(),
                need: "C's batches must not overlap (batch stride at least m * ldc)",
            });
        }
        no_alias("c", &self.c, "a", &self.a)?;
        no_alias("c", &self.c, "b", &self.b)?;
        finite("alpha", self.alpha, false)?;
        finite("beta", self.beta, false)?;
        let p = GemmProblem {
            batch,
            m,
            n,
            k,
            trans_a: self.trans_a,
            trans_b: self.trans_b,
            dtype,
            c_dtype: self.c.dtype(),
            lda: a.ld,
            ldb: b.ld,
            ldc: c.ld,
            batch_stride_a: if a.batch.is_some() { a.batch_stride } else { 0 },
            batch_stride_b: if b.batch.is_some() { b.batch_stride } else { 0 },
            batch_stride_c: c.batch_stride,
            accumulate: self.beta != 0.0,
            align: ck.align(),
        };
        p.check()?;
        Ok((p, ck.device()))
    }
}

/// The `gemm` operator's descriptor.
pub struct Gemm;

impl Op for Gemm {
    const KIND: OpKind = OpKind::Gemm;
    const PARAMS: &'static [ParamKey] = PARAMS;
    const SCALARS: &'static [ScalarKey] = &[
        ScalarKey {
            name: "alpha",
            default: Some("1"),
            help: "scale of the product",
        },
        ScalarKey {
            name: "beta",
            default: Some("0"),
            help: "scale of C (non-zero exactly when the problem accumulates)",
        },
    ];
    const EXAMPLE: Example = Example {
        params: "m=128,n=128,k=128",
        dtype: DType::BF16,
    };
    const BATCH_FIELDS: &'static [&'static str] = &["m", "batch"];
    const BUCKETED: &'static [&'static str] = &["m", "n", "k", "batch"];
    type Problem = GemmProblem;
    type Args<'a> = GemmArgs<'a>;

    fn from_params(params: &Params, dtype: DType) -> Result<GemmProblem, Error> {
        GemmProblem::from_params(params, dtype)
    }

    fn check_problem(p: &GemmProblem) -> Result<(), ValidationError> {
        p.check()
    }

    fn validate(args: &GemmArgs<'_>) -> Result<(GemmProblem, DeviceId), ValidationError> {
        args.validate()
    }

    /// `2*m*n*k` FLOPs per batch entry.
    fn work(p: &GemmProblem) -> Work {
        Work::Flops(2.0 * p.m as f64 * p.n as f64 * p.k as f64 * p.batch as f64)
    }

    /// `[m, n, k]`, with the batch last when there is one.
    fn shape(p: &GemmProblem) -> Vec<usize> {
        if p.batch > 1 {
            vec![p.m, p.n, p.k, p.batch]
        } else {
            vec![p.m, p.n, p.k]
        }
    }

    /// `nn`, `nt`, `tn` or `tt`: A's letter then B's (`t`: stored transposed).
    fn layout(p: &GemmProblem) -> Option<&'static str> {
        Some(match (p.trans_a, p.trans_b) {
            (false, false) => "nn",
            (false, true) => "nt",
            (true, false) => "tn",
            (true, true) => "tt",
        })
    }
}
