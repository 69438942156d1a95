//! The operator catalog: one file per operator, one list that names them.
//!
//! Each operator file holds its descriptor (a unit struct implementing [`Op`]): its problem
//! (`XxxProblem`: shapes, dtypes, layout and flags; hashable and serializable, no data), its
//! argument views (`XxxArgs`), the validation that turns views into a problem or a
//! [`ValidationError`], its `--problem` keys and scalars with defaults and docs, an example
//! problem and its work model. The `catalog!` list below generates [`OpKind`], [`Problem`],
//! [`Args`] and their dispatch from those descriptors; adding an operator is a new file and one
//! line there.
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
pub mod scaled_gemm;
pub mod selective_state_update;
pub mod silu_mul;
pub mod softmax;
pub mod token_logprobs;

use params::{ParamKey, Params};

/// What one run of a problem costs, in the unit its operator is judged in (`bench` reports
/// TFLOP/s for FLOPs and TB/s, with the fraction of the device's copy bandwidth, for bytes).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Work {
    /// Floating-point operations (compute-bound ops: gemm, attention).
    Flops(f64),
    /// Bytes that must cross device memory (memory-bound ops).
    Bytes(f64),
}

/// A scalar argument of an operator (it lives in the `Args`, never in the `Problem`, so the
/// selection cache is not keyed by it).
#[derive(Clone, Copy, Debug)]
pub struct ScalarKey {
    /// Its name (`eps`, `alpha`, ...), as `--scalars` and the suite's case files spell it.
    pub name: &'static str,
    /// Its default, as text, or `None` where the default depends on the problem.
    pub default: Option<&'static str>,
    /// What it means.
    pub help: &'static str,
}

/// A representative problem of an operator (`doctor` explains selection for it; the compile
/// matrix and tests select with it).
#[derive(Clone, Copy, Debug)]
pub struct Example {
    /// `--problem` parameters.
    pub params: &'static str,
    /// The primary dtype.
    pub dtype: DType,
}

/// An operator's descriptor: everything about the operator that is not a kernel.
///
/// Each operator file `ops/<op>.rs` declares a unit struct implementing `Op`, and one line in
/// this module's catalog list (`catalog!`) makes it part of [`OpKind`], [`Problem`] and
/// [`Args`] (and implements [`Listed`] for it). The CLI, the suite, `bench` and the tests read
/// the descriptor; nothing else keeps a per-operator table.
pub trait Op: Send + Sync + 'static {
    /// The operator's kind (its catalog entry).
    const KIND: OpKind;
    /// Keys `--problem k=v,...` takes, with defaults and docs.
    const PARAMS: &'static [ParamKey];
    /// Scalars the arguments carry, with defaults and docs.
    const SCALARS: &'static [ScalarKey];
    /// A representative problem.
    const EXAMPLE: Example;
    /// Problem fields that count batch rows (m, rows, tokens, batch): a tuning key leaves them
    /// out under a determinism or batch-invariance constraint, so no tuned choice can depend
    /// on them ([`crate::tune`]).
    const BATCH_FIELDS: &'static [&'static str] = &[];
    /// Problem fields that are sizes whose power-of-two bucket is enough to key a tuned choice
    /// (never alignment, strides, dtypes or flags, which stay exact).
    const BUCKETED: &'static [&'static str] = &[];

    /// The problem descriptor: shapes, dtypes, layout, flags and least alignment; no data and no
    /// scalars. It has `dtype` and `align` fields (the catalog reads them).
    type Problem: Clone
        + fmt::Debug
        + PartialEq
        + Eq
        + std::hash::Hash
        + Serialize
        + Send
        + Sync
        + 'static;
    /// The argument views and scalars of one call.
    type Args<'a>: fmt::Debug;

    /// Builds a problem from `--problem` parameters and the primary dtype, with the same
    /// invariants [`Op::validate`] enforces (it ends with [`Op::check_problem`]). `align` is
    /// the pointers' alignment, lowered to what the row strides of contiguous tensors of the
    /// problem's shape allow (as validation of such tensors records it).
    fn from_params(params: &Params, dtype: DType) -> Result<Self::Problem, Error>;

    /// The invariants [`Op::validate`] enforces, checked on a problem however it was built
    /// (`from_params`, deserialized, or constructed field by field): non-zero sizes, the
    /// operator's size relations, its dtype rules, the byte size and span of every tensor the
    /// problem implies (and of all of them together) within `isize` in checked arithmetic, and
    /// an `align` that is a power of two, at least the smallest element size, at most 16 and
    /// no more than its row strides allow. Selection refuses a problem that fails it
    /// ([`SelectError::InvalidProblem`](crate::SelectError::InvalidProblem)), so kernels' checks
    /// and plans only ever see problems that some arguments could describe; `validate` ends
    /// with it.
    fn check_problem(p: &Self::Problem) -> Result<(), ValidationError>;

    /// Validates the arguments into the problem they describe and their one device.
    fn validate(args: &Self::Args<'_>) -> Result<(Self::Problem, DeviceId), ValidationError>;

    /// The work of one run, by the torch peer's conventions (`bench`).
    fn work(p: &Self::Problem) -> Work;

    /// The problem's shape as the torch peer (`torch_ops.py`) keys its rows.
    fn shape(p: &Self::Problem) -> Vec<usize>;

    /// A layout label for benchmark rows (`nn`, `nt`, ... for gemm); `None` by default.
    fn layout(p: &Self::Problem) -> Option<&'static str> {
        let _ = p;
        None
    }
}

/// The link between an [`Op`] and the catalog's enums, implemented by `catalog!` for every
/// listed operator: the one place where a [`Problem`] or [`Args`] is matched to its op's type.
pub trait Listed: Op {
    /// The problem as a catalog [`Problem`].
    fn wrap(p: Self::Problem) -> Problem;
    /// The op's problem inside `p`, or `None` if `p` is another op's.
    fn problem(p: &Problem) -> Option<&Self::Problem>;
    /// The op's arguments inside `a`, or `None` if `a` holds another op's.
    fn args<'b, 'a>(a: &'b mut Args<'a>) -> Option<&'b mut Self::Args<'a>>;
}

/// Declares the catalog: `Variant => module::Descriptor` per operator, with the variant's doc.
/// Generates [`OpKind`], [`Problem`], [`Args`], their dispatch, and [`Listed`].
macro_rules! catalog {
    ($( $(#[$doc:meta])* $variant:ident => $module:ident :: $op:ident, )+) => {
        /// An operator of the catalog.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum OpKind {
            $( $(#[$doc])* $variant, )+
        }

        impl OpKind {
            /// Every operator of the catalog, in catalog order.
            pub const ALL: [OpKind; [$(stringify!($variant)),+].len()] = [$(OpKind::$variant),+];

            /// The operator's name (`gemm`, `rms_norm`, ...): its module's name.
            pub const fn name(self) -> &'static str {
                match self {
                    $( OpKind::$variant => stringify!($module), )+
                }
            }

            /// The keys `--problem k=v,...` takes for this operator.
            pub fn params(self) -> &'static [ParamKey] {
                match self {
                    $( OpKind::$variant => <$module::$op as Op>::PARAMS, )+
                }
            }

            /// The scalars the operator's arguments carry.
            pub fn scalars(self) -> &'static [ScalarKey] {
                match self {
                    $( OpKind::$variant => <$module::$op as Op>::SCALARS, )+
                }
            }

            /// The problem fields that count batch rows (see [`Op::BATCH_FIELDS`]).
            pub fn batch_fields(self) -> &'static [&'static str] {
                match self {
                    $( OpKind::$variant => <$module::$op as Op>::BATCH_FIELDS, )+
                }
            }

            /// The problem fields a tuning key buckets (see [`Op::BUCKETED`]).
            pub fn bucketed(self) -> &'static [&'static str] {
                match self {
                    $( OpKind::$variant => <$module::$op as Op>::BUCKETED, )+
                }
            }

            /// A representative problem of the operator.
            pub fn example(self) -> Example {
                match self {
                    $( OpKind::$variant => <$module::$op as Op>::EXAMPLE, )+
                }
            }
        }

        /// A problem: what one call computes, without its data. The key of selection and its
        /// cache.
        #[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(tag = "op", rename_all = "snake_case")]
        pub enum Problem {
            $(
                #[doc = concat!("A `", stringify!($module), "` problem.")]
                $variant(<$module::$op as Op>::Problem),
            )+
        }

        impl Problem {
            /// The operator.
            pub fn op(&self) -> OpKind {
                match self {
                    $( Problem::$variant(_) => OpKind::$variant, )+
                }
            }

            /// The primary dtype (the main input's), which kernels' dtype lists refer to.
            pub fn dtype(&self) -> DType {
                match self {
                    $( Problem::$variant(p) => p.dtype, )+
                }
            }

            /// The least alignment, in bytes (capped at 16), of every tensor pointer and row
            /// stride.
            pub fn align(&self) -> usize {
                match self {
                    $( Problem::$variant(p) => p.align, )+
                }
            }

            /// Builds a problem from `--problem k=v,...` parameters and the primary dtype.
            pub fn from_params(op: OpKind, params: &Params, dtype: DType) -> Result<Problem, Error> {
                Ok(match op {
                    $( OpKind::$variant => Problem::$variant(<$module::$op as Op>::from_params(params, dtype)?), )+
                })
            }

            /// Checks the invariants validation enforces (see [`Op::check_problem`]).
            pub fn check(&self) -> Result<(), ValidationError> {
                match self {
                    $( Problem::$variant(p) => <$module::$op as Op>::check_problem(p), )+
                }
            }

            /// The work of one run (see [`Op::work`]).
            pub fn work(&self) -> Work {
                match self {
                    $( Problem::$variant(p) => <$module::$op as Op>::work(p), )+
                }
            }

            /// The shape the torch peer keys its rows by (see [`Op::shape`]).
            pub fn shape(&self) -> Vec<usize> {
                match self {
                    $( Problem::$variant(p) => <$module::$op as Op>::shape(p), )+
                }
            }

            /// The layout label of a benchmark row (see [`Op::layout`]).
            pub fn layout(&self) -> Option<&'static str> {
                match self {
                    $( Problem::$variant(p) => <$module::$op as Op>::layout(p), )+
                }
            }
        }

        /// The arguments of one call: views of the tensors and the scalar parameters.
        ///
        /// Variants differ in size (a view is about 120 bytes and `selective_state_update` has
        /// ten); they are built on the stack once per call, so boxing would only add an
        /// allocation.
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug)]
        pub enum Args<'a> {
            $(
                #[doc = concat!("`", stringify!($module), "` arguments.")]
                $variant(<$module::$op as Op>::Args<'a>),
            )+
        }

        impl Args<'_> {
            /// The operator.
            pub fn op(&self) -> OpKind {
                match self {
                    $( Args::$variant(_) => OpKind::$variant, )+
                }
            }

            /// Validates the arguments, returning the problem they describe and their one
            /// device.
            pub fn validate(&self) -> Result<(Problem, DeviceId), ValidationError> {
                Ok(match self {
                    $( Args::$variant(a) => {
                        let (p, d) = <$module::$op as Op>::validate(a)?;
                        (Problem::$variant(p), d)
                    } )+
                })
            }

            /// A short description of the arguments for logs.
            pub fn describe(&self) -> String {
                match self {
                    $( Args::$variant(a) => format!("{a:?}"), )+
                }
            }
        }

        $(
            impl Listed for $module::$op {
                fn wrap(p: Self::Problem) -> Problem {
                    Problem::$variant(p)
                }
                fn problem(p: &Problem) -> Option<&Self::Problem> {
                    match p {
                        Problem::$variant(q) => Some(q),
                        #[allow(unreachable_patterns)]
                        _ => None,
                    }
                }
                fn args<'b, 'a>(a: &'b mut Args<'a>) -> Option<&'b mut Self::Args<'a>> {
                    match a {
                        Args::$variant(q) => Some(q),
                        #[allow(unreachable_patterns)]
                        _ => None,
                    }
                }
            }
        )+
    };
}

catalog! {
    /// `C = alpha * op(A) @ op(B) + beta * C`.
    Gemm => gemm::Gemm,
    /// Root-mean-square normalisation, with an optional fused residual add.
    RmsNorm => rms_norm::RmsNorm,
    /// Softmax over the last dimension.
    Softmax => softmax::Softmax,
    /// Log-softmax over the last dimension.
    LogSoftmax => log_softmax::LogSoftmax,
    /// Log-probability (and optionally entropy) of target tokens under softmax(logits / T).
    TokenLogprobs => token_logprobs::TokenLogprobs,
    /// Rotary position embedding (NeoX or GPT-J style).
    Rope => rope::Rope,
    /// Attention forward (prefill), with GQA/MQA and bottom-right causal masking.
    Attention => attention::Attention,
    /// One Mamba decode step (`mamba_ssm` semantics).
    SelectiveStateUpdate => selective_state_update::SelectiveStateUpdate,
    /// The SwiGLU activation: `out = silu(gate) * up`.
    SiluMul => silu_mul::SiluMul,
    /// FP8 GEMM with per-tensor, per-row or block scales: `out = (sa * A) @ (sb * B)^T (+ bias)`.
    ScaledGemm => scaled_gemm::ScaledGemm,
}

impl OpKind {
    /// Every operator's name.
    pub fn names() -> Vec<&'static str> {
        OpKind::ALL.iter().map(|o| o.name()).collect()
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

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The problem's fields as compact JSON: stable, complete and readable.
        let json = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        f.write_str(&json)
    }
}
