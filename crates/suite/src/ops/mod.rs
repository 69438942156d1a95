//! One driver per operator, mirroring `kernelyard_core::ops`: how to generate a problem's
//! inputs, which outputs it writes, what the oracle says, how to build its arguments from
//! device buffers, and which axis holds its independent rows (for batch invariance).
//!
//! Drivers know nothing of kernels or devices; [`crate::runner`] does the rest for every op
//! alike.

pub(crate) mod attention;
pub(crate) mod gemm;
pub(crate) mod rms_norm;
pub(crate) mod rope;
pub(crate) mod rows;
pub(crate) mod scaled_gemm;
pub(crate) mod selective_state_update;
pub(crate) mod silu_mul;
pub(crate) mod token_logprobs;

use kernelyard::ops::Listed;
use kernelyard::{Args, Error, OpKind, Problem};

use crate::cases::Scalars;
use crate::data::{concat_rows, select_rows, with_axis, HostTensor, Instance, OutputSpec};
use crate::exec::DeviceTensor;
use crate::rng::Rng;

/// The `O` problem inside `p`, or a harness-bug error naming both ops (through the catalog's
/// [`Listed`] link, so no driver matches on [`Problem`] itself).
pub(crate) fn expect<O: Listed>(p: &Problem) -> Result<&O::Problem, String> {
    O::problem(p).ok_or_else(|| {
        format!(
            "harness bug: a {} problem was given to the {} driver",
            p.op(),
            O::KIND
        )
    })
}

/// What the suite needs to know about one operator.
pub(crate) trait Driver: Sync {
    /// The number of independent rows (the unit of batch invariance).
    fn rows(&self, p: &Problem) -> Result<usize, String>;

    /// The same problem with `rows` rows.
    fn with_rows(&self, p: &Problem, rows: usize) -> Result<Problem, String>;

    /// Random inputs for `p`, each rounded to its dtype.
    fn generate(&self, p: &Problem, s: &Scalars, rng: &mut Rng) -> Result<Vec<HostTensor>, String>;

    /// The inputs [`Driver::generate`] makes for `p` (names, dtypes, shapes, batch axes in the
    /// same order) without their values (`data` empty, [`HostTensor::shape_only`]): what the
    /// bench sizes before anything is generated. Cheap for any problem; a unit test checks it
    /// against `generate` on every case.
    fn input_shapes(&self, p: &Problem) -> Result<Vec<HostTensor>, String>;

    /// The outputs `p` writes (`inputs` are the ones [`Driver::generate`] made, for in/out
    /// tensors; shape-only ones from [`Driver::input_shapes`] will do).
    fn outputs(&self, p: &Problem, inputs: &[HostTensor]) -> Result<Vec<OutputSpec>, String>;

    /// The oracle's values for every output, in the order of [`Driver::outputs`].
    fn oracle(&self, inst: &Instance) -> Result<Vec<Vec<f64>>, String>;

    /// The call's arguments over device tensors named as the instance's inputs and outputs.
    fn args<'a>(
        &self,
        inst: &Instance,
        ins: &'a [DeviceTensor],
        outs: &'a mut [DeviceTensor],
    ) -> Result<Args<'a>, String>;

    /// Adjusts the inputs of a batch whose first `rows` rows are an instance's and the rest
    /// were appended by the batch-invariance check (e.g. appended state indices must not name
    /// the first rows' slots).
    fn fix_appended(&self, inputs: &mut [HostTensor], rows: usize) -> Result<(), String> {
        let _ = (inputs, rows);
        Ok(())
    }

    /// The launch error the instance must produce instead of outputs, if any.
    fn expected_error(&self, inst: &Instance) -> Result<Option<ExpectedError>, String> {
        let _ = inst;
        Ok(None)
    }
}

/// A launch error a case expects (data-dependent errors, e.g. checked targets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ExpectedError {
    /// `token_logprobs` in the checked mode with a target outside `[0, vocab)`.
    TargetOutOfRange {
        /// The first such row.
        row: usize,
        /// Its target.
        target: i64,
        /// The vocabulary size.
        vocab: usize,
    },
}

impl ExpectedError {
    /// `Ok` if `err` is the expected error.
    pub(crate) fn check(&self, err: &Error) -> Result<(), String> {
        match (self, err) {
            (
                ExpectedError::TargetOutOfRange { row, target, vocab },
                Error::TargetOutOfRange {
                    row: r,
                    target: t,
                    vocab: v,
                },
            ) if (row, target, vocab) == (r, t, v) => Ok(()),
            _ => Err(format!("expected {}, got: {err}", self.describe())),
        }
    }

    /// The expected error in words.
    pub(crate) fn describe(&self) -> String {
        match self {
            ExpectedError::TargetOutOfRange { row, target, vocab } => {
                format!("Error::TargetOutOfRange for row {row} (target {target}, vocab {vocab})")
            }
        }
    }
}

/// An operator's place in the suite: its driver and its case file.
pub(crate) struct SuiteOp {
    /// The operator.
    pub op: OpKind,
    /// Its driver.
    pub driver: &'static dyn Driver,
    /// The case file's name in `crates/suite/cases/` (`<op>.json`).
    pub file: &'static str,
    /// The case file's text, compiled in.
    pub cases: &'static str,
}

/// Declares [`SUITE`]: `Variant => driver, "case_file.json";` per operator.
macro_rules! suite {
    ($( $variant:ident => $driver:expr, $file:literal; )+) => {
        /// Every operator the suite runs: one line each. Adding an op to the suite is its
        /// driver file, its case file and one line here; a unit test fails for an op of
        /// `OpKind::ALL` that has no line (and the runner reports its kernels as failing).
        pub(crate) static SUITE: &[SuiteOp] = &[
            $(
                SuiteOp {
                    op: OpKind::$variant,
                    driver: &$driver,
                    file: $file,
                    cases: include_str!(concat!("../../cases/", $file)),
                },
            )+
        ];
    };
}

suite! {
    Gemm => gemm::GemmDriver, "gemm.json";
    RmsNorm => rms_norm::RmsNormDriver, "rms_norm.json";
    Softmax => rows::RowsDriver { log: false }, "softmax.json";
    LogSoftmax => rows::RowsDriver { log: true }, "log_softmax.json";
    TokenLogprobs => token_logprobs::TokenLogprobsDriver, "token_logprobs.json";
    Rope => rope::RopeDriver, "rope.json";
    Attention => attention::AttentionDriver, "attention.json";
    SelectiveStateUpdate => selective_state_update::SsuDriver, "selective_state_update.json";
    SiluMul => silu_mul::SiluMulDriver, "silu_mul.json";
    ScaledGemm => scaled_gemm::ScaledGemmDriver, "scaled_gemm.json";
}

/// The suite's entry for `op`, or an error naming the list it is missing from.
pub(crate) fn suite_op(op: OpKind) -> Result<&'static SuiteOp, String> {
    SUITE.iter().find(|s| s.op == op).ok_or_else(|| {
        format!(
            "{op} has no driver and case file in the suite \
             (`SUITE` in crates/suite/src/ops/mod.rs)"
        )
    })
}

/// The driver of an operator.
pub(crate) fn driver(op: OpKind) -> Result<&'static dyn Driver, String> {
    suite_op(op).map(|s| s.driver)
}

/// A fresh instance of `problem` with random inputs.
pub(crate) fn instance(
    driver: &dyn Driver,
    problem: Problem,
    scalars: Scalars,
    rng: &mut Rng,
) -> Result<Instance, String> {
    let inputs = driver.generate(&problem, &scalars, rng)?;
    let outputs = driver.outputs(&problem, &inputs)?;
    Ok(Instance {
        problem,
        scalars,
        inputs,
        outputs,
    })
}

/// The instance restricted to `rows` (in that order); shared tensors are kept whole.
pub(crate) fn subset(
    driver: &dyn Driver,
    inst: &Instance,
    rows: &[usize],
) -> Result<Instance, String> {
    let problem = driver.with_rows(&inst.problem, rows.len())?;
    let inputs: Vec<HostTensor> = inst
        .inputs
        .iter()
        .map(|t| match t.batch_axis {
            Some(axis) => HostTensor::of(
                t.name,
                t.dtype,
                with_axis(&t.shape, axis, rows.len()),
                t.batch_axis,
                select_rows(&t.data, &t.shape, axis, rows),
            ),
            None => t.clone(),
        })
        .collect();
    let outputs = driver.outputs(&problem, &inputs)?;
    Ok(Instance {
        problem,
        scalars: inst.scalars.clone(),
        inputs,
        outputs,
    })
}

/// The instance with `extra` random rows appended; shared tensors are kept.
pub(crate) fn padded(
    driver: &dyn Driver,
    inst: &Instance,
    extra: usize,
    rng: &mut Rng,
) -> Result<Instance, String> {
    let n = driver.rows(&inst.problem)?;
    let more = driver.generate(&driver.with_rows(&inst.problem, extra)?, &inst.scalars, rng)?;
    let problem = driver.with_rows(&inst.problem, n + extra)?;
    let mut inputs = Vec::with_capacity(inst.inputs.len());
    for t in &inst.inputs {
        match t.batch_axis {
            Some(axis) => {
                let m = more
                    .iter()
                    .find(|x| x.name == t.name)
                    .ok_or_else(|| format!("harness bug: no extra rows for `{}`", t.name))?;
                inputs.push(HostTensor::of(
                    t.name,
                    t.dtype,
                    with_axis(&t.shape, axis, n + extra),
                    t.batch_axis,
                    concat_rows(&t.data, &t.shape, &m.data, &m.shape, axis),
                ));
            }
            None => inputs.push(t.clone()),
        }
    }
    driver.fix_appended(&mut inputs, n)?;
    let outputs = driver.outputs(&problem, &inputs)?;
    Ok(Instance {
        problem,
        scalars: inst.scalars.clone(),
        inputs,
        outputs,
    })
}

/// Per-row shifts and spreads for logits-like rows: row `r` is `shift + spread * u` with `u`
/// uniform in `[-1, 1)`, shifts up to 100 (so a kernel that does not subtract the row max
/// overflows `exp` in f32) and spreads from 0.4 to 40 (nearly flat to very peaked rows).
/// Large tensors are generated on every core (see [`crate::data::PARALLEL_MIN`]).
pub(crate) fn logit_rows(
    rng: &mut Rng,
    dtype: kernelyard::DType,
    rows: usize,
    cols: usize,
) -> Vec<f64> {
    if rows * cols >= crate::data::PARALLEL_MIN {
        // Whole rows per chunk, each chunk with its own stream (see `PARALLEL_MIN`).
        let base = rng.next_u64();
        let rows_per_chunk = (crate::data::CHUNK / cols).max(1);
        let mut data = vec![0.0; rows * cols];
        crate::data::par_chunks(&mut data, rows_per_chunk * cols, |i, chunk| {
            let mut rng = Rng::stream(base, i as u64);
            for row in chunk.chunks_mut(cols) {
                logit_row(&mut rng, dtype, row);
            }
        });
        return data;
    }
    let mut data = Vec::with_capacity(rows * cols);
    for _ in 0..rows {
        let shift = rng.uniform(-30.0, 100.0);
        let spread = 4.0 * 10f64.powf(rng.uniform(-1.0, 1.0));
        for _ in 0..cols {
            data.push(crate::data::nonzero(
                rng,
                dtype,
                shift - spread,
                shift + spread,
            ));
        }
    }
    data
}

/// One row of [`logit_rows`] (its shift, its spread, its values), written in place.
fn logit_row(rng: &mut Rng, dtype: kernelyard::DType, row: &mut [f64]) {
    let shift = rng.uniform(-30.0, 100.0);
    let spread = 4.0 * 10f64.powf(rng.uniform(-1.0, 1.0));
    for v in row {
        *v = crate::data::nonzero(rng, dtype, shift - spread, shift + spread);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_has_one_driver_and_its_case_file() {
        for op in OpKind::ALL {
            let n = SUITE.iter().filter(|s| s.op == op).count();
            assert_eq!(n, 1, "{op}: {n} entries in SUITE");
            let entry = suite_op(op).unwrap();
            assert_eq!(entry.file, format!("{}.json", op.name()), "{op}");
            assert!(!entry.cases.trim().is_empty(), "{op}: empty case file");
        }
        assert_eq!(SUITE.len(), OpKind::ALL.len());
    }

    /// `input_shapes` (what the bench sizes before generating) describes exactly the inputs
    /// `generate` makes, on every case of every op and dtype.
    #[test]
    fn input_shapes_match_generate() {
        let describe = |ts: &[HostTensor]| -> Vec<String> {
            ts.iter()
                .map(|t| format!("{} {} {:?} {:?}", t.name, t.dtype, t.shape, t.batch_axis))
                .collect()
        };
        let mut checked = 0;
        for entry in SUITE {
            for case in crate::cases::cases_for(entry.op).unwrap() {
                for &dtype in &case.dtypes {
                    let p = case.problem(entry.op, dtype).unwrap();
                    let s = case.scalars().unwrap();
                    let shapes = entry.driver.input_shapes(&p).unwrap();
                    assert!(shapes.iter().all(|t| t.data.is_empty()));
                    let made = entry.driver.generate(&p, &s, &mut Rng::new(1)).unwrap();
                    assert_eq!(
                        describe(&shapes),
                        describe(&made),
                        "{} {} {dtype}",
                        entry.op,
                        case.name
                    );
                    // The outputs are described from shape-only inputs alike.
                    let a = entry.driver.outputs(&p, &shapes).unwrap();
                    let b = entry.driver.outputs(&p, &made).unwrap();
                    assert_eq!(format!("{a:?}"), format!("{b:?}"));
                    checked += 1;
                }
            }
        }
        assert!(checked > 100, "{checked} cases");
    }
}
