//! `attention` forward (prefill): `out = softmax(scale * q k^T + mask) v` per batch and head.
//!
//! `q [B, Sq, Hq, D]`, `k, v [B, Skv, Hkv, D]`, `out [B, Sq, Hq, D]`, one float dtype,
//! contiguous; `Hq % Hkv == 0` and query head `h` uses key/value head `h / (Hq / Hkv)` (GQA;
//! MQA when `Hkv == 1`). `scale` defaults to `1 / sqrt(D)`. Causal masking is bottom-right
//! aligned: query `i` sees keys `j <= i + Skv - Sq`. A query that sees no key (causal with
//! `Sq > Skv`) gets `out = 0` and `lse = -inf`. The optional `lse [B, Hq, Sq]` (f32) is the
//! natural-log log-sum-exp of the scaled, masked scores. Outputs must not overlap inputs.

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

/// An `attention` problem.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AttentionProblem {
    /// Batch.
    pub batch: usize,
    /// Query length.
    pub seq_q: usize,
    /// Key/value length.
    pub seq_kv: usize,
    /// Query heads.
    pub heads_q: usize,
    /// Key/value heads (divides `heads_q`).
    pub heads_kv: usize,
    /// Head dimension.
    pub head_dim: usize,
    /// dtype of q, k, v and out.
    pub dtype: DType,
    /// Bottom-right aligned causal mask.
    pub causal: bool,
    /// The log-sum-exp output is requested.
    pub lse: bool,
    /// Least alignment of the pointers and row strides of q, k, v and out, bytes (capped at
    /// 16). The lse output does not count: kernels write it one f32 at a time.
    pub align: usize,
}

impl AttentionProblem {
    /// Floating-point operations of the two matmuls (halved when causal with `Sq == Skv`,
    /// counting only visible scores otherwise).
    pub fn flops(&self) -> f64 {
        let (sq, skv) = (self.seq_q as f64, self.seq_kv as f64);
        let pairs = if self.causal {
            // Query i sees clamp(x, 0, Skv) keys, x = i + Skv - Sq + 1. Summed in closed form
            // over x in [lo, hi] (in f64: no size overflows, and no loop of Sq steps): x in
            // [1, Skv - 1] sees x keys, x >= Skv all Skv.
            let (lo, hi) = (skv - sq + 1.0, skv);
            let (a, b) = (lo.max(1.0), hi.min(skv - 1.0));
            let partial = if a <= b {
                (a + b) * (b - a + 1.0) / 2.0
            } else {
                0.0
            };
            let a = lo.max(skv);
            let full = if a <= hi { (hi - a + 1.0) * skv } else { 0.0 };
            partial + full
        } else {
            sq * skv
        };
        4.0 * self.batch as f64 * self.heads_q as f64 * pairs * self.head_dim as f64
    }

    /// A problem from `--problem` keys.
    pub fn from_params(params: &Params, dtype: DType) -> Result<Self, Error> {
        let r = params.reader(OpKind::Attention);
        r.check_keys()?;
        let seq_q = r.usize("seq_q")?;
        let heads_q = r.usize("heads_q")?;
        let mut p = AttentionProblem {
            batch: r.usize("batch")?,
            seq_q,
            seq_kv: match params.get("seq_kv") {
                None => seq_q,
                Some(_) => r.usize("seq_kv")?,
            },
            heads_q,
            heads_kv: match params.get("heads_kv") {
                None => heads_q,
                Some(_) => r.usize("heads_kv")?,
            },
            head_dim: r.usize("head_dim")?,
            dtype,
            causal: r.flag("causal")?,
            lse: r.flag("lse")?,
            align: r.usize("align")?,
        };
        p.align = p.implied()?.align_param(p.align)?;
        p.check()?;
        Ok(p)
    }

    /// `q` and `out [batch, seq_q, heads_q, head_dim]`, `k` and `v [batch, seq_kv, heads_kv,
    /// head_dim]`, and with the lse `lse [batch, heads_q, seq_q]` (f32, not counted in
    /// `align`).
    fn implied(&self) -> Result<Implied, ValidationError> {
        nonzero(&[
            self.batch,
            self.seq_q,
            self.seq_kv,
            self.heads_q,
            self.heads_kv,
            self.head_dim,
        ])?;
        check_heads(self.heads_q, self.heads_kv)?;
        dtype_in("q", self.dtype, DType::FLOATS)?;
        let mut t = Implied::new();
        let q = [self.batch, self.seq_q, self.heads_q, self.head_dim];
        let kv = [self.batch, self.seq_kv, self.heads_kv, self.head_dim];
        t.contiguous("q", self.dtype, &q)?;
        t.contiguous("k", self.dtype, &kv)?;
        t.contiguous("v", self.dtype, &kv)?;
        t.contiguous("out", self.dtype, &q)?;
        if self.lse {
            let lse = [self.batch, self.heads_q, self.seq_q];
            t.contiguous_uncounted("lse", DType::F32, &lse)?;
        }
        Ok(t)
    }

    /// The invariants [`AttentionArgs::validate`] enforces (see [`Op::check_problem`]).
    pub fn check(&self) -> Result<(), ValidationError> {
        self.implied()?.check_align(self.align)
    }
}

fn check_heads(heads_q: usize, heads_kv: usize) -> Result<(), ValidationError> {
    if !heads_q.is_multiple_of(heads_kv) {
        return Err(ValidationError::Relation {
            rule: "heads_q % heads_kv == 0",
            detail: format!("heads_q = {heads_q}, heads_kv = {heads_kv}"),
        });
    }
    Ok(())
}

/// Keys of `--problem` for `attention`.
pub const PARAMS: &[ParamKey] = &[
    ParamKey {
        key: "batch",
        default: Some("1"),
        help: "batch",
    },
    ParamKey {
        key: "seq_q",
        default: None,
        help: "query length",
    },
    ParamKey {
        key: "seq_kv",
        default: Some("seq_q"),
        help: "key/value length",
    },
    ParamKey {
        key: "heads_q",
        default: None,
        help: "query heads",
    },
    ParamKey {
        key: "heads_kv",
        default: Some("heads_q"),
        help: "key/value heads",
    },
    ParamKey {
        key: "head_dim",
        default: None,
        help: "head dimension",
    },
    ParamKey {
        key: "causal",
        default: Some("0"),
        help: "bottom-right causal mask",
    },
    ParamKey {
        key: "lse",
        default: Some("0"),
        help: "also write log-sum-exp",
    },
    ParamKey {
        key: "align",
        default: Some("16"),
        help: "pointer alignment in bytes",
    },
];

/// Arguments of `attention`.
#[derive(Debug)]
pub struct AttentionArgs<'a> {
    /// Queries `[B, Sq, Hq, D]`.
    pub q: TensorView<'a>,
    /// Keys `[B, Skv, Hkv, D]`.
    pub k: TensorView<'a>,
    /// Values `[B, Skv, Hkv, D]`.
    pub v: TensorView<'a>,
    /// Output `[B, Sq, Hq, D]`.
    pub out: TensorViewMut<'a>,
    /// Optional log-sum-exp `[B, Hq, Sq]`, f32.
    pub lse: Option<TensorViewMut<'a>>,
    /// Bottom-right aligned causal mask.
    pub causal: bool,
    /// Score scale; `None` means `1 / sqrt(D)`.
    pub scale: Option<f32>,
}

impl<'a> AttentionArgs<'a> {
    /// Non-causal attention with the default scale and no LSE output.
    pub fn new(
        q: TensorView<'a>,
        k: TensorView<'a>,
        v: TensorView<'a>,
        out: TensorViewMut<'a>,
    ) -> Self {
        AttentionArgs {
            q,
            k,
            v,
            out,
            lse: None,
            causal: false,
            scale: None,
        }
    }

    /// The scale in effect.
    pub fn effective_scale(&self) -> f32 {
        let d = self.q.shape().last().copied().unwrap_or(1).max(1);
        self.scale.unwrap_or(1.0 / (d as f32).sqrt())
    }

    /// Validates the arguments into a problem and their device.
    pub fn validate(&self) -> Result<(AttentionProblem, DeviceId), ValidationError> {
        let mut ck = Checker::new();
        let layout = "[batch, seq, heads, head_dim]";
        let q = ck.contiguous("q", &self.q, 4, layout, DType::FLOATS)?;
        let dtype = self.q.dtype();
        let (batch, seq_q, heads_q, head_dim) = (q[0], q[1], q[2], q[3]);
        let k = ck.contiguous("k", &self.k, 4, layout, DType::FLOATS)?;
        same_dtype("k", &self.k, dtype)?;
        dim("k", "batch", k[0], batch, "k has q's batch")?;
        dim("k", "head_dim", k[3], head_dim, "k has q's head_dim")?;
        let (seq_kv, heads_kv) = (k[1], k[2]);
        let v = ck.contiguous("v", &self.v, 4, layout, DType::FLOATS)?;
        same_dtype("v", &self.v, dtype)?;
        for (i, name) in ["batch", "seq_kv", "heads_kv", "head_dim"]
            .into_iter()
            .enumerate()
        {
            dim("v", name, v[i], k[i], "v has k's shape")?;
        }
        check_heads(heads_q, heads_kv)?;
        let o = ck.contiguous("out", &self.out, 4, layout, DType::FLOATS)?;
        same_dtype("out", &self.out, dtype)?;
        for (i, name) in ["batch", "seq_q", "heads_q", "head_dim"]
            .into_iter()
            .enumerate()
        {
            dim("out", name, o[i], q[i], "out has q's shape")?;
        }
        let inputs: [(&'static str, &dyn ViewMeta); 3] =
            [("q", &self.q), ("k", &self.k), ("v", &self.v)];
        for (name, input) in inputs {
            no_alias("out", &self.out, name, input)?;
        }
        // The problem's alignment is that of q, k, v and out: every kernel writes lse one f32
        // at a time, and its rows (Sq floats) would otherwise make most problems unaligned.
        let align = ck.align();
        if let Some(lse) = &self.lse {
            let l = ck.contiguous("lse", lse, 3, "[batch, heads_q, seq_q]", &[DType::F32])?;
            for (i, (name, want)) in [("batch", batch), ("heads_q", heads_q), ("seq_q", seq_q)]
                .into_iter()
                .enumerate()
            {
                dim("lse", name, l[i], want, "lse is [batch, heads_q, seq_q]")?;
            }
            for (name, input) in inputs {
                no_alias("lse", lse, name, input)?;
            }
            no_alias("lse", lse, "out", &self.out)?;
        }
        if let Some(s) = self.scale {
            finite("scale", s, false)?;
        }
        let p = AttentionProblem {
            batch,
            seq_q,
            seq_kv,
            heads_q,
            heads_kv,
            head_dim,
            dtype,
            causal: self.causal,
            lse: self.lse.is_some(),
            align,
        };
        p.check()?;
        Ok((p, ck.device()))
    }
}

/// The `attention` operator's descriptor.
pub struct Attention;

impl Op for Attention {
    const KIND: OpKind = OpKind::Attention;
    const PARAMS: &'static [ParamKey] = PARAMS;
    const SCALARS: &'static [ScalarKey] = &[ScalarKey {
        name: "scale",
        default: None,
        help: "score scale (default 1/sqrt(head_dim))",
    }];
    const EXAMPLE: Example = Example {
        params: "batch=1,seq_q=1024,heads_q=32,heads_kv=8,head_dim=128,causal=1",
        dtype: DType::BF16,
    };
    const BATCH_FIELDS: &'static [&'static str] = &["batch"];
    const BUCKETED: &'static [&'static str] = &["batch", "seq_q", "seq_kv", "heads_q", "heads_kv"];
    type Problem = AttentionProblem;
    type Args<'a> = AttentionArgs<'a>;

    fn from_params(params: &Params, dtype: DType) -> Result<AttentionProblem, Error> {
        AttentionProblem::from_params(params, dtype)
    }

    fn check_problem(p: &AttentionProblem) -> Result<(), ValidationError> {
        p.check()
    }

    fn validate(args: &AttentionArgs<'_>) -> Result<(AttentionProblem, DeviceId), ValidationError> {
        args.validate()
    }

    /// `4*b*hq*sq*skv*d` FLOPs, halved when causal (torch's convention, whatever `Sq` and
    /// `Skv`).
    fn work(p: &AttentionProblem) -> Work {
        let full = 4.0
            * p.batch as f64
            * p.heads_q as f64
            * p.seq_q as f64
            * p.seq_kv as f64
            * p.head_dim as f64;
        Work::Flops(if p.causal { full / 2.0 } else { full })
    }

    /// `[batch, seq_q, heads_q, heads_kv, head_dim, causal]`, with `seq_kv` last when it
    /// differs from `seq_q`.
    fn shape(p: &AttentionProblem) -> Vec<usize> {
        let mut s = vec![
            p.batch,
            p.seq_q,
            p.heads_q,
            p.heads_kv,
            p.head_dim,
            usize::from(p.causal),
        ];
        if p.seq_kv != p.seq_q {
            s.push(p.seq_kv);
        }
        s
    }
}
