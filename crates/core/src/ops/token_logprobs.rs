//! `token_logprobs`: `out[t] = log_softmax(logits[t] / temperature)[targets[t]]`, as f32.
//!
//! `logits [T, V]` (f32/f16/bf16, contiguous), `targets [T]` (i32/i64), `out [T]` f32, and
//! optionally `entropy [T]` f32: the entropy of each row's distribution
//! `-sum_v p_v log p_v` with `p = softmax(logits[t] / temperature)`.
//!
//! Targets equal to `ignore_index` (default -100) give `out[t] = 0`; the entropy is still
//! computed for those rows. Targets outside `[0, V)` that are not `ignore_index` give NaN in
//! the unchecked mode; in the checked mode (`checked = true`) the launch fails with
//! [`crate::Error::TargetOutOfRange`] naming the first such row.
//! Outputs must not overlap inputs.

use serde::{Deserialize, Serialize};

use crate::device::DeviceId;
use crate::dtype::DType;
use crate::error::{Error, ValidationError};
use crate::ops::check::{dim, dtype_in, finite, no_alias, nonzero, Checker, Implied};
use crate::ops::params::{ParamKey, Params};
use crate::ops::{Example, Op, OpKind, ScalarKey, Work};
use crate::tensor::{TensorView, TensorViewMut};

/// The default `ignore_index`.
pub const DEFAULT_IGNORE_INDEX: i64 = -100;

/// A `token_logprobs` problem.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TokenLogprobsProblem {
    /// Tokens (rows of logits).
    pub tokens: usize,
    /// Vocabulary size (columns of logits).
    pub vocab: usize,
    /// dtype of the logits.
    pub dtype: DType,
    /// dtype of the targets (i32 or i64).
    pub target_dtype: DType,
    /// The entropy output is requested.
    pub entropy: bool,
    /// Out-of-range targets are reported as an error instead of NaN.
    pub checked: bool,
    /// Least alignment of pointers and row strides, bytes (capped at 16).
    pub align: usize,
}

/// Keys of `--problem` for `token_logprobs`.
pub const PARAMS: &[ParamKey] = &[
    ParamKey {
        key: "tokens",
        default: None,
        help: "tokens (rows of logits)",
    },
    ParamKey {
        key: "vocab",
        default: None,
        help: "vocabulary size",
    },
    ParamKey {
        key: "target_dtype",
        default: Some("i64"),
        help: "i32 or i64",
    },
    ParamKey {
        key: "entropy",
        default: Some("0"),
        help: "also compute each row's entropy",
    },
    ParamKey {
        key: "checked",
        default: Some("0"),
        help: "report out-of-range targets as errors",
    },
    ParamKey {
        key: "align",
        default: Some("16"),
        help: "pointer alignment in bytes",
    },
];

impl TokenLogprobsProblem {
    /// A problem from `--problem` keys.
    pub fn from_params(params: &Params, dtype: DType) -> Result<Self, Error> {
        let r = params.reader(OpKind::TokenLogprobs);
        r.check_keys()?;
        let mut p = TokenLogprobsProblem {
            tokens: r.usize("tokens")?,
            vocab: r.usize("vocab")?,
            dtype,
            target_dtype: r.dtype("target_dtype", DType::I64)?,
            entropy: r.flag("entropy")?,
            checked: r.flag("checked")?,
            align: r.usize("align")?,
        };
        p.align = p.implied()?.align_param(p.align)?;
        p.check()?;
        Ok(p)
    }

    /// `logits [tokens, vocab]`, `targets [tokens]`, `out [tokens]` (f32) and, with the
    /// entropy, `entropy [tokens]` (f32).
    fn implied(&self) -> Result<Implied, ValidationError> {
        nonzero(&[self.tokens, self.vocab])?;
        dtype_in("logits", self.dtype, DType::FLOATS)?;
        dtype_in("targets", self.target_dtype, DType::INDICES)?;
        let mut t = Implied::new();
        t.contiguous("logits", self.dtype, &[self.tokens, self.vocab])?;
        t.contiguous("targets", self.target_dtype, &[self.tokens])?;
        t.contiguous("out", DType::F32, &[self.tokens])?;
        if self.entropy {
            t.contiguous("entropy", DType::F32, &[self.tokens])?;
        }
        Ok(t)
    }

    /// The invariants [`TokenLogprobsArgs::validate`] enforces (see [`Op::check_problem`]).
    pub fn check(&self) -> Result<(), ValidationError> {
        self.implied()?.check_align(self.align)
    }
}

/// Arguments of `token_logprobs`.
#[derive(Debug)]
pub struct TokenLogprobsArgs<'a> {
    /// Logits `[T, V]`.
    pub logits: TensorView<'a>,
    /// Target token ids `[T]`, i32 or i64.
    pub targets: TensorView<'a>,
    /// Log-probabilities `[T]`, f32.
    pub out: TensorViewMut<'a>,
    /// Optional entropies `[T]`, f32.
    pub entropy: Option<TensorViewMut<'a>>,
    /// Softmax temperature; finite and greater than zero (default 1).
    pub temperature: f32,
    /// Targets equal to this give 0 (default -100).
    pub ignore_index: i64,
    /// Report out-of-range targets as an error instead of writing NaN.
    pub checked: bool,
}

impl<'a> TokenLogprobsArgs<'a> {
    /// Arguments with temperature 1, ignore_index -100, unchecked, no entropy.
    pub fn new(logits: TensorView<'a>, targets: TensorView<'a>, out: TensorViewMut<'a>) -> Self {
        TokenLogprobsArgs {
            logits,
            targets,
            out,
            entropy: None,
            temperature: 1.0,
            ignore_index: DEFAULT_IGNORE_INDEX,
            checked: false,
        }
    }

    /// Validates the arguments into a problem and their device.
    pub fn validate(&self) -> Result<(TokenLogprobsProblem, DeviceId), ValidationError> {
        let mut ck = Checker::new();
        let s = ck.contiguous("logits", &self.logits, 2, "[tokens, vocab]", DType::FLOATS)?;
        let (tokens, vocab) = (s[0], s[1]);
        let t = ck.contiguous("targets", &self.targets, 1, "[tokens]", DType::INDICES)?;
        dim(
            "targets",
            "tokens",
            t[0],
            tokens,
            "one target per row of logits",
        )?;
        let o = ck.contiguous("out", &self.out, 1, "[tokens]", &[DType::F32])?;
        dim(
            "out",
            "tokens",
            o[0],
            tokens,
            "one output per row of logits",
        )?;
        no_alias("out", &self.out, "logits", &self.logits)?;
        no_alias("out", &self.out, "targets", &self.targets)?;
        if let Some(e) = &self.entropy {
            let es = ck.contiguous("entropy", e, 1, "[tokens]", &[DType::F32])?;
            dim(
                "entropy",
                "tokens",
                es[0],
                tokens,
                "one entropy per row of logits",
            )?;
            no_alias("entropy", e, "logits", &self.logits)?;
            no_alias("entropy", e, "targets", &self.targets)?;
            no_alias("entropy", e, "out", &self.out)?;
        }
        finite("temperature", self.temperature, true)?;
        let p = TokenLogprobsProblem {
            tokens,
            vocab,
            dtype: self.logits.dtype(),
            target_dtype: self.targets.dtype(),
            entropy: self.entropy.is_some(),
            checked: self.checked,
            align: ck.align(),
        };
        p.check()?;
        Ok((p, ck.device()))
    }
}

/// The `token_logprobs` operator's descriptor.
pub struct TokenLogprobs;

impl Op for TokenLogprobs {
    const KIND: OpKind = OpKind::TokenLogprobs;
    const PARAMS: &'static [ParamKey] = PARAMS;
    const SCALARS: &'static [ScalarKey] = &[
        ScalarKey {
            name: "temperature",
            default: Some("1"),
            help: "softmax temperature (finite, positive)",
        },
        ScalarKey {
            name: "ignore_index",
            default: Some("-100"),
            help: "a target equal to it gives 0 (and 0 entropy)",
        },
    ];
    const EXAMPLE: Example = Example {
        params: "tokens=128,vocab=32000",
        dtype: DType::BF16,
    };
    const BATCH_FIELDS: &'static [&'static str] = &["tokens"];
    const BUCKETED: &'static [&'static str] = &["tokens", "vocab"];
    type Problem = TokenLogprobsProblem;
    type Args<'a> = TokenLogprobsArgs<'a>;

    fn from_params(params: &Params, dtype: DType) -> Result<TokenLogprobsProblem, Error> {
        TokenLogprobsProblem::from_params(params, dtype)
    }

    fn check_problem(p: &TokenLogprobsProblem) -> Result<(), ValidationError> {
        p.check()
    }

    fn validate(
        args: &TokenLogprobsArgs<'_>,
    ) -> Result<(TokenLogprobsProblem, DeviceId), ValidationError> {
        args.validate()
    }

    /// `tokens*vocab*elem` bytes (the logits read once).
    fn work(p: &TokenLogprobsProblem) -> Work {
        Work::Bytes(p.tokens as f64 * p.vocab as f64 * p.dtype.size() as f64)
    }

    /// `[tokens, vocab]`.
    fn shape(p: &TokenLogprobsProblem) -> Vec<usize> {
        vec![p.tokens, p.vocab]
    }
}
