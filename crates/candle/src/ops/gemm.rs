//! `ky_matmul`: `a @ b` as candle's `matmul` computes it, through kernelyard's `gemm`
//! (`C = op(A) @ op(B)`, f32 accumulation, C in A's dtype).
//!
//! # Layouts taken (zero-copy)
//! Each operand's last two dimensions `[rows, cols]` must be one of kernelyard's matrix
//! layouts:
//! - **row-major**: unit column stride, row stride `ld >= cols` (contiguous, or narrowed along
//!   its columns), used as stored; or
//! - **column-major**: unit row stride, column stride `ld >= rows`: the transpose of a row-major
//!   matrix, such as `w.t()` of a `[n, k]` weight. It is passed as the stored matrix with
//!   kernelyard's `trans_a` / `trans_b`, so `x.ky_matmul(&w.t()?, ..)` (a Linear layer) is the
//!   `nt` layout and copies nothing.
//!
//! Anything else (e.g. a matrix with both strides above 1) is refused with
//! [`Error::NotContiguous`].
//!
//! # Batches
//! - `b [k, n]` with `a [.., m, k]`: when `a` is row-major and its leading dimensions fold into
//!   its rows (the usual `[batch, seq, hidden]` activation), one `[batch * seq, k] @ [k, n]`
//!   product (so a row's bits do not depend on how the rows are split into a batch); otherwise
//!   a batched product with `b` broadcast (batch stride 0), if `a`'s leading dimensions
//!   collapse into one batch stride.
//! - `b [.., k, n]` with `a [.., m, k]`: the same leading dimensions (candle's `matmul` rule),
//!   each operand's collapsing into one batch stride (a `broadcast_as` operand has stride 0 and
//!   is broadcast without a copy).
//!
//! The result is a new contiguous `[.., m, n]` tensor of `a`'s dtype.

use kernelyard::ops::gemm::GemmArgs;
use kernelyard::{Args, Policy, TensorView, TensorViewMut};

use candle_core::Shape;

use crate::error::Error;
use crate::operand::{float_dtype, not_contiguous, shape_error, Input, OpPlan, OutSpec, ViewSpec};
use crate::ops::KyOp;

const LAYOUTS: &str = "ky_matmul takes matrices whose last two dimensions are row-major (unit \
                       column stride) or column-major (unit row stride, e.g. `w.t()`), with \
                       leading dimensions that collapse into one batch stride";

/// `a @ b`.
pub(crate) struct Matmul<'p>(pub &'p Policy);

/// How one operand's matrices are stored.
struct Operand {
    /// Leading (batch) dimensions and their strides.
    lead: Vec<usize>,
    lead_strides: Vec<usize>,
    /// Logical rows and columns (as candle sees them).
    rows: usize,
    cols: usize,
    /// Stored transposed (column-major): kernelyard's `trans_*`.
    trans: bool,
    /// The stored matrix's row stride.
    ld: usize,
    /// The stored matrix's shape (`[cols, rows]` when transposed).
    stored: [usize; 2],
}

fn operand(op: &'static str, arg: &'static str, x: &Input<'_>) -> Result<Operand, Error> {
    let dims = x.dims();
    let st = x.layout.stride();
    let n = dims.len();
    if n < 2 {
        return Err(shape_error(
            op,
            arg,
            x,
            "ky_matmul operands are [.., rows, cols]",
        ));
    }
    let (r, c, sr, sc) = (dims[n - 2], dims[n - 1], st[n - 2], st[n - 1]);
    let (trans, ld, stored) = if (c == 1 || sc == 1) && (r == 1 || sr >= c) {
        (false, if r == 1 { c } else { sr }, [r, c])
    } else if (r == 1 || sr == 1) && (c == 1 || sc >= r) {
        (true, if c == 1 { r } else { sc }, [c, r])
    } else {
        return Err(not_contiguous(op, arg, x, LAYOUTS));
    };
    Ok(Operand {
        lead: dims[..n - 2].to_vec(),
        lead_strides: st[..n - 2].to_vec(),
        rows: r,
        cols: c,
        trans,
        ld,
        stored,
    })
}

/// Dimensions that collapse into one: `(count, stride)`, or `None` if their strides do not
/// chain (`stride[i] == dim[i + 1] * stride[i + 1]` over the dimensions above 1). A count of 1
/// has stride 0.
fn collapse(dims: &[usize], strides: &[usize]) -> Option<(usize, usize)> {
    let kept: Vec<(usize, usize)> = dims
        .iter()
        .zip(strides)
        .filter(|(&d, _)| d != 1)
        .map(|(&d, &s)| (d, s))
        .collect();
    for w in kept.windows(2) {
        if w[0].1 != w[1].0.checked_mul(w[1].1)? {
            return None;
        }
    }
    match kept.last() {
        None => Some((1, 0)),
        Some(&(_, s)) => Some((kept.iter().map(|(d, _)| d).product(), s)),
    }
}

/// The view of a stored matrix, batched (`Some((count, stride))`) or not.
fn spec(
    arg: &'static str,
    x: &Operand,
    dtype: kernelyard::DType,
    batch: Option<(usize, usize)>,
) -> ViewSpec {
    match batch {
        None => ViewSpec {
            arg,
            dtype,
            shape: x.stored.to_vec(),
            strides: vec![x.ld, 1],
            transposed: x.trans,
        },
        Some((count, stride)) => ViewSpec {
            arg,
            dtype,
            shape: vec![count, x.stored[0], x.stored[1]],
            strides: vec![stride, x.ld, 1],
            transposed: x.trans,
        },
    }
}

/// The views of `a` and `b` (each stored as is or transposed) and of C.
fn plan(op: &'static str, a_in: Input<'_>, b_in: Input<'_>) -> Result<OpPlan<2>, Error> {
    let dtype = float_dtype(op, "a", a_in.dtype)?;
    let b_dtype = float_dtype(op, "b", b_in.dtype)?;
    let a = operand(op, "a", &a_in)?;
    let b = operand(op, "b", &b_in)?;
    if a.cols != b.rows {
        return Err(shape_error(
            op,
            "b",
            &b_in,
            format!("b has {} rows, the columns of a {:?}", a.cols, a_in.dims()),
        ));
    }
    let (m, n) = (a.rows, b.cols);
    let mut out_shape = a.lead.clone();
    out_shape.extend([m, n]);
    let plan = |inputs: [ViewSpec; 2], view: Vec<usize>| OpPlan {
        inputs,
        out: OutSpec {
            dtype,
            view,
            shape: Shape::from(out_shape.clone()),
        },
    };
    if b.lead.is_empty() {
        if a.lead.is_empty() {
            let p = plan(
                [spec("a", &a, dtype, None), spec("b", &b, b_dtype, None)],
                vec![m, n],
            );
            return Ok(p);
        }
        // Fold a's leading dimensions into its rows: one [rows, k] @ [k, n].
        if !a.trans {
            let mut dims = a.lead.clone();
            dims.push(a.rows);
            let mut strides = a.lead_strides.clone();
            strides.push(a.ld);
            if let Some((rows, ld)) = collapse(&dims, &strides) {
                let ld = if rows == 1 { a.cols } else { ld };
                let a_spec = ViewSpec {
                    arg: "a",
                    dtype,
                    shape: vec![rows, a.cols],
                    strides: vec![ld, 1],
                    transposed: false,
                };
                let p = plan([a_spec, spec("b", &b, b_dtype, None)], vec![rows, n]);
                return Ok(p);
            }
        }
        // Otherwise a batch of a's matrices against one b.
        let Some((count, stride)) = collapse(&a.lead, &a.lead_strides) else {
            return Err(not_contiguous(op, "a", &a_in, LAYOUTS));
        };
        let p = plan(
            [
                spec("a", &a, dtype, Some((count, stride))),
                spec("b", &b, b_dtype, None),
            ],
            vec![count, m, n],
        );
        return Ok(p);
    }
    if a.lead != b.lead {
        return Err(shape_error(
            op,
            "b",
            &b_in,
            format!(
                "b's leading (batch) dimensions must be a's, {:?}, or b must be one [k, n] matrix",
                a.lead
            ),
        ));
    }
    let Some((count, a_stride)) = collapse(&a.lead, &a.lead_strides) else {
        return Err(not_contiguous(op, "a", &a_in, LAYOUTS));
    };
    let Some((_, b_stride)) = collapse(&b.lead, &b.lead_strides) else {
        return Err(not_contiguous(op, "b", &b_in, LAYOUTS));
    };
    if count == 1 {
        let p = plan(
            [spec("a", &a, dtype, None), spec("b", &b, b_dtype, None)],
            vec![m, n],
        );
        return Ok(p);
    }
    let p = plan(
        [
            spec("a", &a, dtype, Some((count, a_stride))),
            spec("b", &b, b_dtype, Some((count, b_stride))),
        ],
        vec![count, m, n],
    );
    Ok(p)
}

impl KyOp<2> for Matmul<'_> {
    const NAME: &'static str = "ky_matmul";

    fn policy(&self) -> &Policy {
        self.0
    }

    fn plan(&self, [a, b]: [Input<'_>; 2]) -> Result<OpPlan<2>, Error> {
        plan(Self::NAME, a, b)
    }

    fn args<'a>(
        &self,
        plan: &OpPlan<2>,
        [a, b]: [Result<TensorView<'a>, Error>; 2],
        out: TensorViewMut<'a>,
    ) -> Result<Args<'a>, Error> {
        let mut g = GemmArgs::new(a?, b?, out);
        g.trans_a = plan.inputs[0].transposed;
        g.trans_b = plan.inputs[1].transposed;
        Ok(Args::Gemm(g))
    }
}
