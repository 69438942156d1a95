//! The operator catalog: one file per operator.
//!
//! Each operator file holds its problem descriptor (`XxxProblem`: shapes, dtypes, layout and
//! flags; hashable and serializable, no data), its argument views (`XxxArgs`), the validation
//! that turns views into a problem or a [`ValidationError`], and the problem's parameter keys
//! for the CLI (`--problem k=v,...`).
//!
//! Responsibility: core validates arguments before any backend sees a call, so kernels may
//! assume valid, in-bounds, non-aliasing arguments and report only device faults.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::device::DeviceId;
use crate::dtype::DType;
use crate::error::{Error, ValidationError};

pub mod attention;
pub mod check;
pub mod gemm;
pub mod log_softmax;
pub mod params;
pub mod rms_norm;
pub mod rope;
pub mod selective_state_update;
pub mod softmax;
pub mod token_logprobs;

use attention::{AttentionArgs, AttentionProblem};
use gemm::{GemmArgs, GemmProblem};
use log_softmax::{LogSoftmaxArgs, LogSoftmaxProblem};
use params::{ParamKey, Params};
use rms_norm::{RmsNormArgs, RmsNormProblem};
use rope::{RopeArgs, RopeProblem};
use selective_state_update::{SelectiveStateUpdateArgs, SelectiveStateUpdateProblem};
use softmax::{SoftmaxArgs, SoftmaxProblem};
use token_logprobs::{TokenLogprobsArgs, TokenLogprobsProblem};

/// An operator of the catalog.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// `C = alpha * op(A) @ op(B) + beta * C`.
    Gemm,
    /// Root-mean-square normalisation, with an optional fused residual add.
    RmsNorm,
    /// Softmax over the last dimension.
    Softmax,
    /// Log-softmax over the last dimension.
    LogSoftmax,
    /// Log-probability (and optionally entropy) of target tokens under softmax(logits / T).
    TokenLogprobs,
    /// Rotary position embedding (NeoX or GPT-J style).
    Rope,
    /// Attention forward (prefill), with GQA/MQA and bottom-right causal masking.
    Attention,
    /// One Mamba decode step (`mamba_ssm` semantics).
    SelectiveStateUpdate,
}

impl OpKind {
    /// Every operator of the catalog.
    pub const ALL: [OpKind; 8] = [
        OpKind::Gemm,
        OpKind::RmsNorm,
        OpKind::Softmax,
        OpKind::LogSoftmax,
        OpKind::TokenLogprobs,
        OpKind::Rope,
        OpKind::Attention,
        OpKind::SelectiveStateUpdate,
    ];

    /// The operator's name (`gemm`, `rms_norm`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            OpKind::Gemm => "gemm",
            OpKind::RmsNorm => "rms_norm",
            OpKind::Softmax => "softmax",
            OpKind::LogSoftmax => "log_softmax",
            OpKind::TokenLogprobs => "token_logprobs",
            OpKind::Rope => "rope",
            OpKind::Attention => "attention",
            OpKind::SelectiveStateUpdate => "selective_state_update",
        }
    }

    /// Every operator's name.
    pub fn names() -> Vec<&'static str> {
        OpKind::ALL.iter().map(|o| o.name()).collect()
    }

    /// The keys `--problem k=v,...` takes for this operator.
    pub fn params(self) -> &'static [ParamKey] {
        match self {
            OpKind::Gemm => gemm::PARAMS,
            OpKind::RmsNorm => rms_norm::PARAMS,
            OpKind::Softmax => softmax::PARAMS,
            OpKind::LogSoftmax => log_softmax::PARAMS,
            OpKind::TokenLogprobs => token_logprobs::PARAMS,
            OpKind::Rope => rope::PARAMS,
            OpKind::Attention => attention::PARAMS,
            OpKind::SelectiveStateUpdate => selective_state_update::PARAMS,
        }
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OpKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        OpKind::ALL
            .into_iter()
            .find(|o| o.name() == s.trim())
            .ok_or_else(|| Error::UnknownOp {
                name: s.to_string(),
            })
    }
}

/// A problem: what one call computes, without its data. The key of selection and its cache.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Problem {
    /// A `gemm` problem.
    Gemm(GemmProblem),
    /// An `rms_norm` problem.
    RmsNorm(RmsNormProblem),
    /// A `softmax` problem.
    Softmax(SoftmaxProblem),
    /// A `log_softmax` problem.
    LogSoftmax(LogSoftmaxProblem),
    /// A `token_logprobs` problem.
    TokenLogprobs(TokenLogprobsProblem),
    /// A `rope` problem.
    Rope(RopeProblem),
    /// An `attention` problem.
    Attention(AttentionProblem),
    /// A `selective_state_update` problem.
    SelectiveStateUpdate(SelectiveStateUpdateProblem),
}

macro_rules! each_problem {
    ($self:expr, $p:ident => $e:expr) => {
        match $self {
            Problem::Gemm($p) => $e,
            Problem::RmsNorm($p) => $e,
            Problem::Softmax($p) => $e,
            Problem::LogSoftmax($p) => $e,
            Problem::TokenLogprobs($p) => $e,
            Problem::Rope($p) => $e,
            Problem::Attention($p) => $e,
            Problem::SelectiveStateUpdate($p) => $e,
        }
    };
}

impl Problem {
    /// The operator.
    pub fn op(&self) -> OpKind {
        match self {
            Problem::Gemm(_) => OpKind::Gemm,
            Problem::RmsNorm(_) => OpKind::RmsNorm,
            Problem::Softmax(_) => OpKind::Softmax,
            Problem::LogSoftmax(_) => OpKind::LogSoftmax,
            Problem::TokenLogprobs(_) => OpKind::TokenLogprobs,
            Problem::Rope(_) => OpKind::Rope,
            Problem::Attention(_) => OpKind::Attention,
            Problem::SelectiveStateUpdate(_) => OpKind::SelectiveStateUpdate,
        }
    }

    /// The primary dtype (the main input's), which kernels' dtype lists refer to.
    pub fn dtype(&self) -> DType {
        each_problem!(self, p => p.dtype)
    }

    /// The least alignment, in bytes (capped at 16), of every tensor pointer and row stride.
    pub fn align(&self) -> usize {
        each_problem!(self, p => p.align)
    }

    /// Builds a problem from `--problem k=v,...` parameters and the primary dtype.
    pub fn from_params(op: OpKind, params: &Params, dtype: DType) -> Result<Problem, Error> {
        Ok(match op {
            OpKind::Gemm => Problem::Gemm(GemmProblem::from_params(params, dtype)?),
            OpKind::RmsNorm => Problem::RmsNorm(RmsNormProblem::from_params(params, dtype)?),
            OpKind::Softmax => Problem::Softmax(SoftmaxProblem::from_params(params, dtype)?),
            OpKind::LogSoftmax => {
                Problem::LogSoftmax(log_softmax::problem_from_params(params, dtype)?)
            }
            OpKind::TokenLogprobs => {
                Problem::TokenLogprobs(TokenLogprobsProblem::from_params(params, dtype)?)
            }
            OpKind::Rope => Problem::Rope(RopeProblem::from_params(params, dtype)?),
            OpKind::Attention => Problem::Attention(AttentionProblem::from_params(params, dtype)?),
            OpKind::SelectiveStateUpdate => Problem::SelectiveStateUpdate(
                SelectiveStateUpdateProblem::from_params(params, dtype)?,
            ),
        })
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The problem's fields as compact JSON: stable, complete and readable.
        let json = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        f.write_str(&json)
    }
}

/// The arguments of one call: views of the tensors and the scalar parameters.
///
/// Variants differ in size (a view is about 120 bytes and `selective_state_update` has ten);
/// they are built on the stack once per call, so boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Args<'a> {
    /// `gemm` arguments.
    Gemm(GemmArgs<'a>),
    /// `rms_norm` arguments.
    RmsNorm(RmsNormArgs<'a>),
    /// `softmax` arguments.
    Softmax(SoftmaxArgs<'a>),
    /// `log_softmax` arguments.
    LogSoftmax(LogSoftmaxArgs<'a>),
    /// `token_logprobs` arguments.
    TokenLogprobs(TokenLogprobsArgs<'a>),
    /// `rope` arguments.
    Rope(RopeArgs<'a>),
    /// `attention` arguments.
    Attention(AttentionArgs<'a>),
    /// `selective_state_update` arguments.
    SelectiveStateUpdate(SelectiveStateUpdateArgs<'a>),
}

macro_rules! each_args {
    ($self:expr, $a:ident => $e:expr) => {
        match $self {
            Args::Gemm($a) => $e,
            Args::RmsNorm($a) => $e,
            Args::Softmax($a) => $e,
            Args::LogSoftmax($a) => $e,
            Args::TokenLogprobs($a) => $e,
            Args::Rope($a) => $e,
            Args::Attention($a) => $e,
            Args::SelectiveStateUpdate($a) => $e,
        }
    };
}

impl Args<'_> {
    /// The operator.
    pub fn op(&self) -> OpKind {
        match self {
            Args::Gemm(_) => OpKind::Gemm,
            Args::RmsNorm(_) => OpKind::RmsNorm,
            Args::Softmax(_) => OpKind::Softmax,
            Args::LogSoftmax(_) => OpKind::LogSoftmax,
            Args::TokenLogprobs(_) => OpKind::TokenLogprobs,
            Args::Rope(_) => OpKind::Rope,
            Args::Attention(_) => OpKind::Attention,
            Args::SelectiveStateUpdate(_) => OpKind::SelectiveStateUpdate,
        }
    }

    /// Validates the arguments, returning the problem they describe and their one device.
    pub fn validate(&self) -> Result<(Problem, DeviceId), ValidationError> {
        Ok(match self {
            Args::Gemm(a) => {
                let (p, d) = a.validate()?;
                (Problem::Gemm(p), d)
            }
            Args::RmsNorm(a) => {
                let (p, d) = a.validate()?;
                (Problem::RmsNorm(p), d)
            }
            Args::Softmax(a) => {
                let (p, d) = a.validate()?;
                (Problem::Softmax(p), d)
            }
            Args::LogSoftmax(a) => {
                let (p, d) = a.validate()?;
                (Problem::LogSoftmax(p), d)
            }
            Args::TokenLogprobs(a) => {
                let (p, d) = a.validate()?;
                (Problem::TokenLogprobs(p), d)
            }
            Args::Rope(a) => {
                let (p, d) = a.validate()?;
                (Problem::Rope(p), d)
            }
            Args::Attention(a) => {
                let (p, d) = a.validate()?;
                (Problem::Attention(p), d)
            }
            Args::SelectiveStateUpdate(a) => {
                let (p, d) = a.validate()?;
                (Problem::SelectiveStateUpdate(p), d)
            }
        })
    }

    /// A short description of the arguments for logs.
    pub fn describe(&self) -> String {
        each_args!(self, a => format!("{a:?}"))
    }
}
