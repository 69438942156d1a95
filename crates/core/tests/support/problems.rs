//! Random problems and their arguments, for property tests of problem validation
//! (`crates/core/tests/problem_props.rs`) and of selection on any problem
//! (`crates/suite/tests/select_never_panics.rs`, which includes this file by path).
//!
//! - [`params`]: `--problem` keys of an operator with random values (sizes from 0 to
//!   `usize::MAX`, powers of two and their neighbours, garbage now and then) and a random
//!   primary dtype, as `Problem::from_params` takes them.
//! - [`direct`]: a problem constructed field by field with random values (valid or not).
//! - [`args`]: the argument views of a problem that passes its check, over fake device
//!   addresses of a simulated device (never dereferenced: only validated), laid out so that
//!   outputs never overlap inputs and the least alignment is exactly the problem's `align`.

#![allow(dead_code)]

use std::ffi::c_void;

use kernelyard_core::ops::attention::{AttentionArgs, AttentionProblem};
use kernelyard_core::ops::gemm::{GemmArgs, GemmProblem};
use kernelyard_core::ops::log_softmax::LogSoftmaxArgs;
use kernelyard_core::ops::rms_norm::{RmsNormArgs, RmsNormProblem};
use kernelyard_core::ops::rope::{RopeArgs, RopeProblem, RopeStyle};
use kernelyard_core::ops::scaled_gemm::{ScaleMode, ScaledGemmArgs, ScaledGemmProblem};
use kernelyard_core::ops::selective_state_update::{
    SelectiveStateUpdateArgs, SelectiveStateUpdateProblem,
};
use kernelyard_core::ops::silu_mul::{SiluMulArgs, SiluMulInput, SiluMulProblem};
use kernelyard_core::ops::softmax::{RowsProblem, SoftmaxArgs};
use kernelyard_core::ops::token_logprobs::{TokenLogprobsArgs, TokenLogprobsProblem};
use kernelyard_core::{Args, DType, DeviceId, OpKind, Params, Problem, TensorView, TensorViewMut};
use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;

/// The simulated device every view is on.
pub const DEVICE: DeviceId = DeviceId::cuda(0);

/// Every dtype, floats most often.
pub fn dtype() -> BoxedStrategy<DType> {
    prop_oneof![
        3 => Just(DType::F32),
        3 => Just(DType::F16),
        3 => Just(DType::BF16),
        1 => Just(DType::I32),
        1 => Just(DType::I64),
        1 => Just(DType::F8E4M3),
        1 => Just(DType::F8E5M2),
    ]
    .boxed()
}

/// Every dtype, FP8 most often (the primary dtype of `scaled_gemm`).
pub fn fp8_dtype() -> BoxedStrategy<DType> {
    prop_oneof![
        4 => Just(DType::F8E4M3),
        4 => Just(DType::F8E5M2),
        1 => dtype(),
    ]
    .boxed()
}

/// A scale mode.
pub fn scale_mode() -> BoxedStrategy<ScaleMode> {
    prop::sample::select(ScaleMode::ALL.to_vec()).boxed()
}

/// A size: mostly small, often a power of two or its neighbour up to 2^64, sometimes any
/// `usize`, zero or the very largest.
pub fn size() -> BoxedStrategy<usize> {
    prop_oneof![
        4 => 1usize..=8,
        3 => 1usize..=300,
        2 => (0u32..64).prop_map(|k| 1usize << k),
        2 => (0u32..=64, -2i128..=2).prop_map(|(k, d)| {
            ((1i128 << k) + d).clamp(0, usize::MAX as i128) as usize
        }),
        1 => any::<usize>(),
        1 => Just(0usize),
        1 => (usize::MAX - 4)..=usize::MAX,
    ]
    .boxed()
}

/// A small size (for the dimensions that have to be small for a problem to pass).
pub fn small() -> BoxedStrategy<usize> {
    prop_oneof![4 => 1usize..=8, 1 => 1usize..=200].boxed()
}

/// An alignment value: the valid ones most often, and some that are not.
pub fn align() -> BoxedStrategy<usize> {
    prop_oneof![
        6 => prop::sample::select(vec![1usize, 2, 4, 8, 16]),
        1 => prop::sample::select(vec![0usize, 3, 12, 32, 64, 1 << 20]),
        1 => any::<usize>(),
    ]
    .boxed()
}

fn flag_text() -> BoxedStrategy<String> {
    prop_oneof![
        8 => prop::sample::select(vec!["0", "1"]).prop_map(str::to_owned),
        1 => prop::sample::select(vec!["2", "yes", "true", "-1", ""]).prop_map(str::to_owned),
    ]
    .boxed()
}

fn size_text() -> BoxedStrategy<String> {
    prop_oneof![
        12 => size().prop_map(|s| s.to_string()),
        1 => prop::sample::select(vec!["-1", "x", "1e3", "18446744073709551616", ""])
            .prop_map(str::to_owned),
    ]
    .boxed()
}

/// The random text of one `--problem` key, or `None` (left out).
fn key_value(
    op: OpKind,
    key: &'static str,
    default: Option<&'static str>,
) -> BoxedStrategy<Option<String>> {
    let value: BoxedStrategy<String> = match (op, key, default) {
        (_, "align", _) => align().prop_map(|a| a.to_string()).boxed(),
        (_, "style", _) => prop::sample::select(vec!["neox", "gptj", "llama"])
            .prop_map(str::to_owned)
            .boxed(),
        (_, "broadcast", _) => prop::sample::select(vec!["none", "a", "b", "c"])
            .prop_map(str::to_owned)
            .boxed(),
        (_, "scale_a" | "scale_b", _) => {
            prop::sample::select(vec!["same", "tensor", "row", "block", "col"])
                .prop_map(str::to_owned)
                .boxed()
        }
        (_, k, _) if k.ends_with("dtype") => {
            let names = vec![
                "same", "f32", "f16", "bf16", "i32", "i64", "f8", "f8e4m3", "f8e5m2",
            ];
            prop::sample::select(names).prop_map(str::to_owned).boxed()
        }
        (_, "batch" | "groups", _) => size_text(),
        (_, _, Some("0" | "1")) => flag_text(),
        _ => size_text(),
    };
    // Required keys are almost always given; the others often left to their default.
    let given = if default.is_none() { 0.97 } else { 0.6 };
    proptest::option::weighted(given, value).boxed()
}

/// Random `--problem` parameters of `op` and a random primary dtype.
pub fn params(op: OpKind) -> BoxedStrategy<(Params, DType)> {
    let keys: Vec<BoxedStrategy<Option<String>>> = op
        .params()
        .iter()
        .map(|k| key_value(op, k.key, k.default))
        .collect();
    let names: Vec<&'static str> = op.params().iter().map(|k| k.key).collect();
    let primary = if op == OpKind::ScaledGemm {
        fp8_dtype()
    } else {
        dtype()
    };
    (keys, primary)
        .prop_map(move |(values, dtype)| {
            let pairs = names
                .iter()
                .zip(values)
                .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)));
            (Params::from_pairs(pairs), dtype)
        })
        .boxed()
}

/// A problem of `op` built field by field from random values: sizes from [`size`] (or
/// [`small`] where noted), random flags, dtypes and alignment; strides near the contiguous
/// ones or arbitrary.
pub fn direct(op: OpKind) -> BoxedStrategy<Problem> {
    let any_size = || prop_oneof![3 => small(), 1 => size()].boxed();
    match op {
        OpKind::Gemm => {
            let stride = || prop_oneof![4 => Just(0usize), 2 => 1usize..=64, 1 => size()].boxed();
            (
                (
                    any_size(),
                    any_size(),
                    any_size(),
                    prop_oneof![1usize..=4, size()],
                ),
                (any::<bool>(), any::<bool>(), dtype(), dtype()),
                (stride(), stride(), stride()),
                (stride(), stride(), stride()),
                (any::<bool>(), align()),
            )
                .prop_map(
                    |(
                        (m, n, k, batch),
                        (ta, tb, dtype, c_dtype),
                        (xa, xb, xc),
                        (sa, sb, sc),
                        (acc, align),
                    )| {
                        let mut p = GemmProblem {
                            batch,
                            m,
                            n,
                            k,
                            trans_a: ta,
                            trans_b: tb,
                            dtype,
                            c_dtype,
                            lda: 0,
                            ldb: 0,
                            ldc: 0,
                            batch_stride_a: 0,
                            batch_stride_b: 0,
                            batch_stride_c: 0,
                            accumulate: acc,
                            align,
                        };
                        // Row strides of at least a row, more by a random amount; batch
                        // strides 0 (broadcast), a random amount past the matrix, or anything.
                        p.lda = p.a_dims()[1].saturating_add(xa % 7);
                        p.ldb = p.b_dims()[1].saturating_add(xb % 7);
                        p.ldc = n.saturating_add(xc % 7);
                        if batch > 1 {
                            let past = |rows: usize, ld: usize, s: usize| {
                                if s == 0 {
                                    0
                                } else {
                                    rows.saturating_mul(ld).saturating_add(s - 1)
                                }
                            };
                            p.batch_stride_a = past(p.a_dims()[0], p.lda, sa);
                            p.batch_stride_b = past(p.b_dims()[0], p.ldb, sb);
                            p.batch_stride_c = past(m, p.ldc, sc.max(1));
                        }
                        Problem::Gemm(p)
                    },
                )
                .boxed()
        }
        OpKind::RmsNorm => (any_size(), any_size(), dtype(), any::<bool>(), align())
            .prop_map(|(rows, hidden, dtype, residual, align)| {
                Problem::RmsNorm(RmsNormProblem {
                    rows,
                    hidden,
                    dtype,
                    residual,
                    align,
                })
            })
            .boxed(),
        OpKind::Softmax | OpKind::LogSoftmax => (any_size(), any_size(), dtype(), align())
            .prop_map(move |(rows, cols, dtype, align)| {
                let p = RowsProblem {
                    rows,
                    cols,
                    dtype,
                    align,
                };
                if op == OpKind::Softmax {
                    Problem::Softmax(p)
                } else {
                    Problem::LogSoftmax(p)
                }
            })
            .boxed(),
        OpKind::TokenLogprobs => (
            any_size(),
            any_size(),
            dtype(),
            dtype(),
            any::<bool>(),
            any::<bool>(),
            align(),
        )
            .prop_map(
                |(tokens, vocab, dtype, target_dtype, entropy, checked, align)| {
                    Problem::TokenLogprobs(TokenLogprobsProblem {
                        tokens,
                        vocab,
                        dtype,
                        target_dtype,
                        entropy,
                        checked,
                        align,
                    })
                },
            )
            .boxed(),
        OpKind::Rope => (
            (any_size(), any_size(), any_size(), any_size()),
            (any::<bool>(), dtype(), dtype(), any::<bool>(), align()),
        )
            .prop_map(
                |((tokens, heads, head_dim, rotary), (gptj, dtype, pos_dtype, in_place, align))| {
                    Problem::Rope(RopeProblem {
                        tokens,
                        heads,
                        head_dim,
                        // Often a valid rotary dim (even, at most head_dim).
                        rotary_dim: if rotary % 2 == 0 {
                            rotary
                        } else {
                            head_dim & !1
                        },
                        style: if gptj {
                            RopeStyle::Gptj
                        } else {
                            RopeStyle::Neox
                        },
                        dtype,
                        pos_dtype,
                        in_place,
                        align,
                    })
                },
            )
            .boxed(),
        OpKind::Attention => (
            (any_size(), any_size(), any_size(), any_size(), 1usize..=4),
            prop_oneof![Just(64usize), Just(128usize), any_size()],
            (dtype(), any::<bool>(), any::<bool>(), align()),
        )
            .prop_map(
                |(
                    (batch, seq_q, seq_kv, heads_kv, group),
                    head_dim,
                    (dtype, causal, lse, align),
                )| {
                    Problem::Attention(AttentionProblem {
                        batch,
                        seq_q,
                        seq_kv,
                        heads_q: heads_kv.saturating_mul(group),
                        heads_kv,
                        head_dim,
                        dtype,
                        causal,
                        lse,
                        align,
                    })
                },
            )
            .boxed(),
        OpKind::SelectiveStateUpdate => (
            (any_size(), any_size(), any_size(), any_size(), 1usize..=4),
            (dtype(), dtype()),
            (
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
            ),
            (
                align(),
                prop_oneof![Just(None), Just(Some(DType::I32)), Just(Some(DType::I64))],
                any_size(),
            ),
        )
            .prop_map(
                |(
                    (batch, groups, head_dim, state_dim, per),
                    (dtype, state_dtype),
                    (a, b, d, z, sp),
                    (align, index_dtype, slots),
                )| {
                    Problem::SelectiveStateUpdate(SelectiveStateUpdateProblem {
                        batch,
                        heads: groups.saturating_mul(per),
                        head_dim,
                        state_dim,
                        groups,
                        dtype,
                        state_dtype,
                        a_per_head: a,
                        dt_bias: b,
                        d,
                        z,
                        dt_softplus: sp,
                        align,
                        cache_slots: if index_dtype.is_some() { slots } else { batch },
                        index_dtype,
                    })
                },
            )
            .boxed(),
        OpKind::SiluMul => (any_size(), any_size(), dtype(), any::<bool>(), align())
            .prop_map(|(rows, d, dtype, split, align)| {
                Problem::SiluMul(SiluMulProblem {
                    rows,
                    d,
                    dtype,
                    split,
                    align,
                })
            })
            .boxed(),
        OpKind::ScaledGemm => (
            (any_size(), any_size(), any_size()),
            (fp8_dtype(), fp8_dtype(), dtype()),
            (scale_mode(), scale_mode(), any::<bool>(), align()),
        )
            .prop_map(
                |((m, n, k), (dtype, b_dtype, out_dtype), (scale_a, scale_b, bias, align))| {
                    Problem::ScaledGemm(ScaledGemmProblem {
                        m,
                        n,
                        k,
                        dtype,
                        b_dtype,
                        out_dtype,
                        scale_a,
                        scale_b,
                        bias,
                        align,
                    })
                },
            )
            .boxed(),
    }
}

/// Any problem of `op`: from random parameters (when `from_params` accepts them) or built
/// directly.
pub fn problem(op: OpKind) -> BoxedStrategy<Problem> {
    prop_oneof![
        params(op).prop_map(move |(params, dtype)| Problem::from_params(op, &params, dtype).ok()),
        direct(op).prop_map(Some),
    ]
    .prop_filter_map("from_params refused the parameters", |p| p)
    .boxed()
}

// ---------------------------------------------------------------------------------------------
// Arguments over fake addresses.

/// One tensor a problem implies: dtype, shape, strides (elements) and whether its pointer
/// counts in the problem's `align`.
struct Spec {
    dtype: DType,
    shape: Vec<usize>,
    strides: Option<Vec<usize>>,
    counted: bool,
}

fn spec(dtype: DType, shape: &[usize]) -> Spec {
    Spec {
        dtype,
        shape: shape.to_vec(),
        strides: None,
        counted: true,
    }
}

impl Spec {
    fn strides(&self) -> Vec<usize> {
        self.strides.clone().unwrap_or_else(|| {
            let mut s = vec![1usize; self.shape.len()];
            for i in (0..self.shape.len().saturating_sub(1)).rev() {
                s[i] = s[i + 1] * self.shape[i + 1];
            }
            s
        })
    }

    /// Bytes from the first element to the end of the last (the problem's check bounds it).
    fn span(&self) -> u128 {
        let reach: u128 = self
            .shape
            .iter()
            .zip(self.strides())
            .map(|(&d, s)| (d as u128 - 1) * s as u128)
            .sum();
        (reach + 1) * self.dtype.size() as u128
    }
}

/// Fake addresses for `specs`: disjoint slots (so outputs never overlap inputs) in the upper
/// half of the address space first (from `2^63`, where a view's span is computed without
/// crossing `isize::MAX`), then the lower half; every slot 16-byte aligned, except that the
/// counted tensor of the smallest element size sits `align` bytes into its slot, so the least
/// alignment of the pointers is exactly `align`. Largest tensors first. `None` if they do not
/// fit (the problem's check says the spans add up to at most `isize::MAX`, so they always do).
fn place(specs: &[Spec], align: usize) -> Option<Vec<usize>> {
    let top: u128 = 1 << 63;
    let misaligned = (0..specs.len())
        .filter(|&i| specs[i].counted)
        .min_by_key(|&i| specs[i].dtype.size());
    let mut order: Vec<usize> = (0..specs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(specs[i].span()));
    let (mut high, mut low) = (0u128, 0u128);
    let mut addrs = vec![0usize; specs.len()];
    for i in order {
        let slot = specs[i].span().div_ceil(16) * 16 + 16;
        let shift = if Some(i) == misaligned && align < 16 {
            align as u128
        } else {
            0
        };
        // Upper half: `2^63 + offset + span <= 2^64 - 1`; lower half, from 16: `<= 2^63 - 1`.
        let base = if high + slot < top {
            high += slot;
            top + high - slot
        } else if 16 + low + slot < top {
            low += slot;
            16 + low - slot
        } else {
            return None;
        };
        addrs[i] = usize::try_from(base + shift).ok()?;
    }
    Some(addrs)
}

/// The views of `specs` at the addresses [`place`] gives them.
struct Views {
    specs: Vec<Spec>,
    addrs: Vec<usize>,
}

impl Views {
    fn new(specs: Vec<Spec>, align: usize) -> Option<Views> {
        let addrs = place(&specs, align)?;
        Some(Views { specs, addrs })
    }

    fn strides(&self, i: usize) -> Option<Vec<isize>> {
        self.specs[i]
            .strides
            .as_ref()
            .map(|s| s.iter().map(|&x| x as isize).collect())
    }

    fn view(&self, i: usize) -> TensorView<'static> {
        let s = &self.specs[i];
        let strides = self.strides(i);
        // SAFETY: a fake address on a simulated device, never dereferenced: these views are
        // only validated (no kernel runs them, and `as_slice` refuses a non-host device).
        unsafe {
            TensorView::from_raw_parts(
                self.addrs[i] as *const c_void,
                s.dtype,
                &s.shape,
                strides.as_deref(),
                DEVICE,
            )
        }
        .expect("a view of rank at most 4")
    }

    fn view_mut(&self, i: usize) -> TensorViewMut<'static> {
        let s = &self.specs[i];
        let strides = self.strides(i);
        // SAFETY: as in `view`: never dereferenced, and no other view covers its slot.
        unsafe {
            TensorViewMut::from_raw_parts(
                self.addrs[i] as *mut c_void,
                s.dtype,
                &s.shape,
                strides.as_deref(),
                DEVICE,
            )
        }
        .expect("a view of rank at most 4")
    }
}

/// Arguments that describe `p` (which passed its check) on [`DEVICE`], or `None` if its
/// tensors could not be laid out in the address space.
pub fn args(problem: &Problem) -> Option<Args<'static>> {
    Some(match problem {
        Problem::Gemm(p) => {
            let matrix = |dtype, [rows, cols]: [usize; 2], ld, batch_stride: usize| {
                if batch_stride == 0 {
                    Spec {
                        dtype,
                        shape: vec![rows, cols],
                        strides: Some(vec![ld, 1]),
                        counted: true,
                    }
                } else {
                    Spec {
                        dtype,
                        shape: vec![p.batch, rows, cols],
                        strides: Some(vec![batch_stride, ld, 1]),
                        counted: true,
                    }
                }
            };
            let v = Views::new(
                vec![
                    matrix(p.dtype, p.a_dims(), p.lda, p.batch_stride_a),
                    matrix(p.dtype, p.b_dims(), p.ldb, p.batch_stride_b),
                    matrix(p.c_dtype, [p.m, p.n], p.ldc, p.batch_stride_c),
                ],
                p.align,
            )?;
            Args::Gemm(GemmArgs {
                a: v.view(0),
                b: v.view(1),
                c: v.view_mut(2),
                trans_a: p.trans_a,
                trans_b: p.trans_b,
                alpha: 1.0,
                beta: if p.accumulate { 1.0 } else { 0.0 },
            })
        }
        Problem::RmsNorm(p) => {
            let rh = [p.rows, p.hidden];
            let mut specs = vec![
                spec(p.dtype, &rh),
                spec(p.dtype, &[p.hidden]),
                spec(p.dtype, &rh),
            ];
            if p.residual {
                specs.extend([spec(p.dtype, &rh), spec(p.dtype, &rh)]);
            }
            let v = Views::new(specs, p.align)?;
            Args::RmsNorm(RmsNormArgs {
                x: v.view(0),
                weight: v.view(1),
                residual: p.residual.then(|| v.view(3)),
                out: v.view_mut(2),
                residual_out: p.residual.then(|| v.view_mut(4)),
                eps: 1e-6,
            })
        }
        Problem::Softmax(p) | Problem::LogSoftmax(p) => {
            let rc = [p.rows, p.cols];
            let v = Views::new(vec![spec(p.dtype, &rc), spec(p.dtype, &rc)], p.align)?;
            let (x, out) = (v.view(0), v.view_mut(1));
            if problem.op() == OpKind::Softmax {
                Args::Softmax(SoftmaxArgs { x, out })
            } else {
                Args::LogSoftmax(LogSoftmaxArgs { x, out })
            }
        }
        Problem::TokenLogprobs(p) => {
            let mut specs = vec![
                spec(p.dtype, &[p.tokens, p.vocab]),
                spec(p.target_dtype, &[p.tokens]),
                spec(DType::F32, &[p.tokens]),
            ];
            if p.entropy {
                specs.push(spec(DType::F32, &[p.tokens]));
            }
            let v = Views::new(specs, p.align)?;
            let mut a = TokenLogprobsArgs::new(v.view(0), v.view(1), v.view_mut(2));
            a.entropy = p.entropy.then(|| v.view_mut(3));
            a.checked = p.checked;
            Args::TokenLogprobs(a)
        }
        Problem::Rope(p) => {
            let x = [p.tokens, p.heads, p.head_dim];
            let mut specs = vec![spec(p.dtype, &x), spec(p.pos_dtype, &[p.tokens])];
            if !p.in_place {
                specs.push(spec(p.dtype, &x));
            }
            let v = Views::new(specs, p.align)?;
            let mut a = if p.in_place {
                RopeArgs::in_place(v.view_mut(0), v.view(1))
            } else {
                RopeArgs::new(v.view(0), v.view(1), v.view_mut(2))
            };
            a.rotary_dim = p.rotary_dim;
            a.style = p.style;
            Args::Rope(a)
        }
        Problem::Attention(p) => {
            let q = [p.batch, p.seq_q, p.heads_q, p.head_dim];
            let kv = [p.batch, p.seq_kv, p.heads_kv, p.head_dim];
            let mut specs = vec![
                spec(p.dtype, &q),
                spec(p.dtype, &kv),
                spec(p.dtype, &kv),
                spec(p.dtype, &q),
            ];
            if p.lse {
                specs.push(Spec {
                    counted: false,
                    ..spec(DType::F32, &[p.batch, p.heads_q, p.seq_q])
                });
            }
            let v = Views::new(specs, p.align)?;
            let mut a = AttentionArgs::new(v.view(0), v.view(1), v.view(2), v.view_mut(3));
            a.lse = p.lse.then(|| v.view_mut(4));
            a.causal = p.causal;
            Args::Attention(a)
        }
        Problem::SelectiveStateUpdate(p) => {
            let (b, h, pp, n, g) = (p.batch, p.heads, p.head_dim, p.state_dim, p.groups);
            let a_shape: Vec<usize> = if p.a_per_head {
                vec![h]
            } else {
                vec![h, pp, n]
            };
            let mut specs = vec![
                spec(p.state_dtype, &[p.cache_slots, h, pp, n]),
                spec(p.dtype, &[b, h, pp]),
                spec(p.dtype, &[b, h, pp]),
                spec(DType::F32, &[h, pp]),
                spec(DType::F32, &a_shape),
                spec(p.dtype, &[b, g, n]),
                spec(p.dtype, &[b, g, n]),
                spec(DType::F32, &[h, pp]),
                spec(p.dtype, &[b, h, pp]),
                spec(p.dtype, &[b, h, pp]),
            ];
            // Leave out the optional tensors the problem does not have.
            let ix = p.index_dtype.unwrap_or(DType::I32);
            specs.push(Spec {
                counted: false,
                ..spec(ix, &[b])
            });
            let keep = [
                true,
                true,
                true,
                p.dt_bias,
                true,
                true,
                true,
                p.d,
                p.z,
                true,
                p.index_dtype.is_some(),
            ];
            let index: Vec<Option<usize>> = keep
                .iter()
                .scan(0usize, |next, &k| {
                    Some(k.then(|| {
                        *next += 1;
                        *next - 1
                    }))
                })
                .collect();
            let specs: Vec<Spec> = specs
                .into_iter()
                .zip(keep)
                .filter_map(|(s, k)| k.then_some(s))
                .collect();
            let v = Views::new(specs, p.align)?;
            let at = |i: usize| index[i].map(|j| v.view(j));
            Args::SelectiveStateUpdate(SelectiveStateUpdateArgs {
                state: v.view_mut(index[0]?),
                x: at(1)?,
                dt: at(2)?,
                dt_bias: at(3),
                a: at(4)?,
                bm: at(5)?,
                cm: at(6)?,
                d: at(7),
                z: at(8),
                out: v.view_mut(index[9]?),
                dt_softplus: p.dt_softplus,
                state_indices: at(10),
            })
        }
        Problem::SiluMul(p) => {
            let rd = [p.rows, p.d];
            let specs = if p.split {
                vec![spec(p.dtype, &rd), spec(p.dtype, &rd), spec(p.dtype, &rd)]
            } else {
                vec![
                    spec(p.dtype, &[p.rows, p.d.checked_mul(2)?]),
                    spec(p.dtype, &rd),
                ]
            };
            let v = Views::new(specs, p.align)?;
            let input = if p.split {
                SiluMulInput::Split {
                    gate: v.view(0),
                    up: v.view(1),
                }
            } else {
                SiluMulInput::Fused(v.view(0))
            };
            let out = v.view_mut(if p.split { 2 } else { 1 });
            Args::SiluMul(SiluMulArgs { input, out })
        }
        Problem::ScaledGemm(p) => {
            let uncounted = |shape: &[usize]| Spec {
                counted: false,
                ..spec(DType::F32, shape)
            };
            let mut specs = vec![
                spec(p.dtype, &[p.m, p.k]),
                spec(p.b_dtype, &[p.n, p.k]),
                uncounted(&p.scale_a_shape()),
                uncounted(&p.scale_b_shape()),
                spec(p.out_dtype, &[p.m, p.n]),
            ];
            if p.bias {
                let bias = kernelyard_core::ops::scaled_gemm::bias_dtypes(p.out_dtype)[0];
                specs.push(spec(bias, &[p.n]));
            }
            let v = Views::new(specs, p.align)?;
            Args::ScaledGemm(ScaledGemmArgs {
                a: v.view(0),
                b: v.view(1),
                scale_a: v.view(2),
                scale_b: v.view(3),
                scale_a_mode: p.scale_a,
                scale_b_mode: p.scale_b,
                bias: p.bias.then(|| v.view(5)),
                out: v.view_mut(4),
            })
        }
    })
}
