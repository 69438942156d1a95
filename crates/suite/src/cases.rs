//! The cases: one JSON file per operator in `tests/cases/<op>.json`, compiled into the binary.
//!
//! A file is `{"op": "<op>", "about": "...", "cases": [...]}`; each case has a `name`, the
//! problem `params` in the CLI's `--problem` format (`"m=17,n=33,k=65,trans_a=1"`), the
//! `dtypes` it runs with, an optional `why` (what it covers), and the op's scalars where they
//! apply. Unknown fields, scalars of another op, duplicate names and problems that do not build
//! are errors, found by [`cases_for`] (and by this crate's unit tests, so a broken file never
//! reaches a run).

use serde::{Deserialize, Serialize};

use kernelyard::ops::params::Params;
use kernelyard::ops::token_logprobs::DEFAULT_IGNORE_INDEX;
use kernelyard::{DType, OpKind, Problem};

/// One case of an operator's file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Unique within the op's file: lowercase letters, digits and `_`.
    pub name: String,
    /// The problem in the CLI's `--problem` format.
    pub params: String,
    /// The dtypes to run (the problem's primary dtype).
    pub dtypes: Vec<DType>,
    /// What the case covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// gemm: scale of the product (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// gemm: scale of C; non-zero exactly when the params say `accumulate=1` (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta: Option<f64>,
    /// rms_norm: added to the mean square (default 1e-6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eps: Option<f64>,
    /// token_logprobs: softmax temperature (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// token_logprobs: fraction of rows whose target is `ignore_index` (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_fraction: Option<f64>,
    /// token_logprobs: the ignored target value (default -100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_index: Option<i64>,
    /// token_logprobs: fraction of rows whose target is outside `[0, vocab)` (default 0):
    /// NaN in the unchecked mode, a launch error in the checked mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_of_range_fraction: Option<f64>,
    /// rope: base of the frequencies (default 10000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theta: Option<f64>,
    /// attention: score scale (default `1 / sqrt(head_dim)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<f64>,
}

/// The scalars of one case with defaults applied, each rounded to the `f32` the kernels take
/// (the oracle sees exactly what the kernel sees).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Scalars {
    pub alpha: f32,
    pub beta: f32,
    pub eps: f32,
    pub temperature: f32,
    pub ignore_fraction: f64,
    pub ignore_index: i64,
    pub out_of_range_fraction: f64,
    pub theta: f32,
    pub scale: Option<f32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    op: OpKind,
    #[allow(dead_code)]
    about: String,
    cases: Vec<Case>,
}

/// The text of an operator's case file, as compiled into the binary.
pub fn case_file(op: OpKind) -> &'static str {
    match op {
        OpKind::Gemm => include_str!("../cases/gemm.json"),
        OpKind::RmsNorm => include_str!("../cases/rms_norm.json"),
        OpKind::Softmax => include_str!("../cases/softmax.json"),
        OpKind::LogSoftmax => include_str!("../cases/log_softmax.json"),
        OpKind::TokenLogprobs => include_str!("../cases/token_logprobs.json"),
        OpKind::Rope => include_str!("../cases/rope.json"),
        OpKind::Attention => include_str!("../cases/attention.json"),
        OpKind::SelectiveStateUpdate => include_str!("../cases/selective_state_update.json"),
    }
}

/// The path of an operator's case file, relative to the workspace, for messages.
pub fn case_path(op: OpKind) -> String {
    format!("tests/cases/{}.json", op.name())
}

/// Parses and checks an operator's cases. The error names the file and the case.
pub fn cases_for(op: OpKind) -> Result<Vec<Case>, String> {
    let path = case_path(op);
    let file: CaseFile = serde_json::from_str(case_file(op)).map_err(|e| format!("{path}: {e}"))?;
    if file.op != op {
        return Err(format!("{path}: the file says op `{}`", file.op));
    }
    if file.cases.is_empty() {
        return Err(format!("{path}: no cases"));
    }
    let mut seen = std::collections::HashSet::new();
    for case in &file.cases {
        if !seen.insert(case.name.as_str()) {
            return Err(format!("{path}: case `{}` appears twice", case.name));
        }
        case.check(op)
            .map_err(|e| format!("{path}: case `{}`: {e}", case.name))?;
    }
    Ok(file.cases)
}

/// The scalar fields each op takes; any other one given is an error.
pub(crate) fn allowed_scalars(op: OpKind) -> &'static [&'static str] {
    match op {
        OpKind::Gemm => &["alpha", "beta"],
        OpKind::RmsNorm => &["eps"],
        OpKind::TokenLogprobs => &[
            "temperature",
            "ignore_fraction",
            "ignore_index",
            "out_of_range_fraction",
        ],
        OpKind::Rope => &["theta"],
        OpKind::Attention => &["scale"],
        OpKind::Softmax | OpKind::LogSoftmax | OpKind::SelectiveStateUpdate => &[],
    }
}

impl Case {
    /// The names of the scalar fields this case sets.
    fn scalars_given(&self) -> Vec<&'static str> {
        let given = [
            ("alpha", self.alpha.is_some()),
            ("beta", self.beta.is_some()),
            ("eps", self.eps.is_some()),
            ("temperature", self.temperature.is_some()),
            ("ignore_fraction", self.ignore_fraction.is_some()),
            ("ignore_index", self.ignore_index.is_some()),
            (
                "out_of_range_fraction",
                self.out_of_range_fraction.is_some(),
            ),
            ("theta", self.theta.is_some()),
            ("scale", self.scale.is_some()),
        ];
        given
            .into_iter()
            .filter(|(_, set)| *set)
            .map(|(n, _)| n)
            .collect()
    }

    /// Checks the case for `op`: name, dtypes, scalars and that its problem builds.
    pub fn check(&self, op: OpKind) -> Result<(), String> {
        let name_ok = !self.name.is_empty()
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !name_ok {
            return Err("the name must be non-empty lowercase letters, digits and `_`".into());
        }
        if self.dtypes.is_empty() {
            return Err("no dtypes".into());
        }
        for (i, d) in self.dtypes.iter().enumerate() {
            if !d.is_float() {
                return Err(format!("dtype {d} is not a float type"));
            }
            if self.dtypes[..i].contains(d) {
                return Err(format!("dtype {d} is listed twice"));
            }
        }
        let allowed = allowed_scalars(op);
        for s in self.scalars_given() {
            if !allowed.contains(&s) {
                return Err(format!(
                    "`{s}` is not a scalar of {op} (it takes: {})",
                    if allowed.is_empty() {
                        "none".to_string()
                    } else {
                        allowed.join(", ")
                    }
                ));
            }
        }
        let finite = |name: &str, v: Option<f64>| match v {
            Some(x) if !x.is_finite() => Err(format!("`{name}` must be finite")),
            _ => Ok(()),
        };
        finite("alpha", self.alpha)?;
        finite("beta", self.beta)?;
        for (name, v) in [
            ("eps", self.eps),
            ("temperature", self.temperature),
            ("theta", self.theta),
        ] {
            finite(name, v)?;
            if v.is_some_and(|x| x < 0.0 || (name != "eps" && x == 0.0)) {
                return Err(format!("`{name}` is out of range"));
            }
        }
        finite("scale", self.scale)?;
        let fractions =
            self.ignore_fraction.unwrap_or(0.0) + self.out_of_range_fraction.unwrap_or(0.0);
        for v in [self.ignore_fraction, self.out_of_range_fraction]
            .into_iter()
            .flatten()
        {
            if !(0.0..=1.0).contains(&v) {
                return Err("fractions must lie in [0, 1]".into());
            }
        }
        if fractions > 1.0 {
            return Err("ignore_fraction + out_of_range_fraction exceeds 1".into());
        }
        for &dtype in &self.dtypes {
            let p = self
                .problem(op, dtype)
                .map_err(|e| format!("{dtype}: {e}"))?;
            if let Problem::Gemm(g) = &p {
                let beta = self.beta.unwrap_or(0.0) as f32;
                if g.accumulate != (beta != 0.0) {
                    return Err(
                        "`accumulate=1` in the params needs a non-zero `beta`, and a non-zero `beta` needs `accumulate=1`"
                            .into(),
                    );
                }
            }
        }
        Ok(())
    }

    /// The problem this case describes for `op` and `dtype`, as the CLI would build it.
    pub fn problem(&self, op: OpKind, dtype: DType) -> Result<Problem, String> {
        let params = Params::parse(op, &self.params).map_err(|e| e.to_string())?;
        Problem::from_params(op, &params, dtype).map_err(|e| e.to_string())
    }

    /// The scalars with defaults applied, rounded to `f32`.
    pub(crate) fn scalars(&self) -> Scalars {
        Scalars {
            ignore_fraction: self.ignore_fraction.unwrap_or(0.0),
            out_of_range_fraction: self.out_of_range_fraction.unwrap_or(0.0),
            ..defaulted(
                self.alpha,
                self.beta,
                self.eps,
                self.temperature,
                self.ignore_index,
                self.theta,
                self.scale,
            )
        }
    }
}

/// Scalars with the suite's default for each one not given (no ignored or out-of-range
/// targets), rounded to `f32`: shared by cases and `bench`.
pub(crate) fn defaulted(
    alpha: Option<f64>,
    beta: Option<f64>,
    eps: Option<f64>,
    temperature: Option<f64>,
    ignore_index: Option<i64>,
    theta: Option<f64>,
    scale: Option<f64>,
) -> Scalars {
    Scalars {
        alpha: alpha.unwrap_or(1.0) as f32,
        beta: beta.unwrap_or(0.0) as f32,
        eps: eps.unwrap_or(1e-6) as f32,
        temperature: temperature.unwrap_or(1.0) as f32,
        ignore_fraction: 0.0,
        ignore_index: ignore_index.unwrap_or(DEFAULT_IGNORE_INDEX),
        out_of_range_fraction: 0.0,
        theta: theta.unwrap_or(f64::from(kernelyard::ops::rope::DEFAULT_THETA)) as f32,
        scale: scale.map(|s| s as f32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_file_parses_and_checks() {
        for op in OpKind::ALL {
            let cases = cases_for(op).unwrap_or_else(|e| panic!("{e}"));
            assert!(!cases.is_empty(), "{op}");
        }
    }

    #[test]
    fn bad_cases_are_rejected() {
        let case = |json: &str| serde_json::from_str::<Case>(json);
        assert!(
            case(r#"{"name":"a","params":"rows=1,cols=1","dtypes":["f32"],"typo":1}"#).is_err()
        );
        let eps_on_softmax =
            case(r#"{"name":"a","params":"rows=1,cols=1","dtypes":["f32"],"eps":1e-5}"#).unwrap();
        assert!(eps_on_softmax
            .check(OpKind::Softmax)
            .unwrap_err()
            .contains("eps"));
        let bad_key = case(r#"{"name":"a","params":"rows=1,colz=1","dtypes":["f32"]}"#).unwrap();
        assert!(bad_key.check(OpKind::Softmax).is_err());
        let beta_without_accumulate =
            case(r#"{"name":"a","params":"m=1,n=1,k=1","dtypes":["f32"],"beta":1.0}"#).unwrap();
        assert!(beta_without_accumulate.check(OpKind::Gemm).is_err());
        let int_dtype = case(r#"{"name":"a","params":"rows=1,cols=1","dtypes":["i32"]}"#).unwrap();
        assert!(int_dtype.check(OpKind::Softmax).is_err());
    }

    #[test]
    fn broadcast_sets_a_zero_batch_stride() {
        let c: Case = serde_json::from_str(
            r#"{"name":"a","params":"batch=3,m=2,n=2,k=2,broadcast=b","dtypes":["f32"]}"#,
        )
        .unwrap();
        let Problem::Gemm(g) = c.problem(OpKind::Gemm, DType::F32).unwrap() else {
            panic!("not gemm")
        };
        assert_eq!((g.batch_stride_a, g.batch_stride_b), (4, 0));
    }
}
