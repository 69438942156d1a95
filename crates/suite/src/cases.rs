//! The cases: one JSON file per operator in `crates/suite/cases/<op>.json`, compiled into the
//! binary.
//!
//! A file is `{"op": "<op>", "about": "...", "cases": [...]}`; each case has a `name`, the
//! problem `params` in the CLI's `--problem` format (`"m=17,n=33,k=65,trans_a=1"`), the
//! `dtypes` it runs with, an optional `why` (what it covers), and the op's scalars where they
//! apply. Unknown fields, scalars of another op, duplicate names and problems that do not build
//! are errors, found by [`cases_for`] (and by this crate's unit tests, so a broken file never
//! reaches a run).

use serde::{Deserialize, Serialize};

use kernelyard::ops::gemm::Gemm;
use kernelyard::ops::params::Params;
use kernelyard::ops::Listed;
use kernelyard::{DType, OpKind, Problem};

use crate::ops::suite_op;

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

/// The text of an operator's case file, as compiled into the binary (see the suite's list in
/// `crates/suite/src/ops/mod.rs`); an error for an operator the suite does not list.
pub fn case_file(op: OpKind) -> Result<&'static str, String> {
    suite_op(op).map(|s| s.cases)
}

/// The path of an operator's case file, relative to the workspace, for messages.
pub fn case_path(op: OpKind) -> String {
    let file = suite_op(op).map_or_else(|_| format!("{}.json", op.name()), |s| s.file.into());
    format!("crates/suite/cases/{file}")
}

/// Parses and checks an operator's cases. The error names the file and the case.
pub fn cases_for(op: OpKind) -> Result<Vec<Case>, String> {
    let path = case_path(op);
    let text = case_file(op)?;
    let file: CaseFile = serde_json::from_str(text).map_err(|e| format!("{path}: {e}"))?;
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

/// Case fields that are not scalars of the op's call but knobs of the suite's input
/// generation (so no descriptor lists them): the share of `token_logprobs` rows whose target
/// is `ignore_index`, and of those whose target lies outside `[0, vocab)`.
const CASE_KNOBS: &[(OpKind, &str)] = &[
    (OpKind::TokenLogprobs, "ignore_fraction"),
    (OpKind::TokenLogprobs, "out_of_range_fraction"),
];

/// The scalar fields a case of `op` may set: the op's scalars ([`OpKind::scalars`]), then the
/// suite's knobs for it. Any other one given is an error.
pub(crate) fn allowed_scalars(op: OpKind) -> Vec<&'static str> {
    op.scalars()
        .iter()
        .map(|s| s.name)
        .chain(
            CASE_KNOBS
                .iter()
                .filter(|(o, _)| *o == op)
                .map(|(_, name)| *name),
        )
        .collect()
}

/// The default of the scalar `name` as its operator's descriptor states it
/// ([`kernelyard::ops::ScalarKey::default`]); `None` where the default depends on the problem
/// (attention's `scale`). Scalar names are unique across the catalog (a unit test checks it).
pub(crate) fn descriptor_default(name: &str) -> Result<Option<f64>, String> {
    let key = OpKind::ALL
        .iter()
        .flat_map(|op| op.scalars())
        .find(|k| k.name == name)
        .ok_or_else(|| format!("harness bug: no operator has a scalar `{name}`"))?;
    key.default
        .map(|text| {
            text.trim().parse::<f64>().map_err(|_| {
                format!("harness bug: the default of `{name}` (`{text}`) is not a number")
            })
        })
        .transpose()
}

/// `v`, or the descriptor's default of `name`, which must have one.
fn or_default(v: Option<f64>, name: &str) -> Result<f64, String> {
    match v {
        Some(x) => Ok(x),
        None => descriptor_default(name)?
            .ok_or_else(|| format!("harness bug: the scalar `{name}` has no default")),
    }
}

impl Case {
    /// Every scalar field of a case (the case files' schema), with whether this case sets it.
    fn scalar_fields(&self) -> [(&'static str, bool); 9] {
        [
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
        ]
    }

    /// The names of the scalar fields this case sets.
    fn scalars_given(&self) -> Vec<&'static str> {
        self.scalar_fields()
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
            if !d.is_float() && !d.is_fp8() && !d.is_fp4() {
                return Err(format!("dtype {d} is not a float, FP8 or FP4 type"));
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
            if let Some(g) = Gemm::problem(&p) {
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
    pub(crate) fn scalars(&self) -> Result<Scalars, String> {
        Ok(Scalars {
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
            )?
        })
    }
}

/// Scalars with the descriptor's default ([`descriptor_default`]) for each one not given (no
/// ignored or out-of-range targets), rounded to `f32`: shared by cases and `bench`.
pub(crate) fn defaulted(
    alpha: Option<f64>,
    beta: Option<f64>,
    eps: Option<f64>,
    temperature: Option<f64>,
    ignore_index: Option<i64>,
    theta: Option<f64>,
    scale: Option<f64>,
) -> Result<Scalars, String> {
    let ignore_index = match ignore_index {
        Some(i) => i,
        None => {
            let d = or_default(None, "ignore_index")?;
            if d.fract() != 0.0 {
                return Err(format!(
                    "harness bug: the default of `ignore_index` ({d}) is not an integer"
                ));
            }
            d as i64
        }
    };
    Ok(Scalars {
        alpha: or_default(alpha, "alpha")? as f32,
        beta: or_default(beta, "beta")? as f32,
        eps: or_default(eps, "eps")? as f32,
        temperature: or_default(temperature, "temperature")? as f32,
        ignore_fraction: 0.0,
        ignore_index,
        out_of_range_fraction: 0.0,
        theta: or_default(theta, "theta")? as f32,
        scale: match scale {
            Some(s) => Some(s),
            None => descriptor_default("scale")?,
        }
        .map(|s| s as f32),
    })
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
        let p = c.problem(OpKind::Gemm, DType::F32).unwrap();
        let g = Gemm::problem(&p).expect("a gemm problem");
        assert_eq!((g.batch_stride_a, g.batch_stride_b), (4, 0));
    }

    #[test]
    fn every_scalar_of_every_op_is_a_case_field() {
        let c: Case =
            serde_json::from_str(r#"{"name":"a","params":"rows=1,cols=1","dtypes":["f32"]}"#)
                .unwrap();
        let fields: Vec<&str> = c.scalar_fields().iter().map(|(n, _)| *n).collect();
        let mut seen = Vec::new();
        for op in OpKind::ALL {
            for k in op.scalars() {
                assert!(
                    fields.contains(&k.name),
                    "{op}'s scalar `{}` is no case field",
                    k.name
                );
                assert!(
                    !seen.contains(&k.name),
                    "`{}` is a scalar of two ops",
                    k.name
                );
                seen.push(k.name);
                // Every stated default is a number (the suite applies it).
                descriptor_default(k.name).unwrap_or_else(|e| panic!("{e}"));
            }
            for name in allowed_scalars(op) {
                assert!(fields.contains(&name), "{op}: `{name}` is no case field");
            }
        }
        // Every field is some op's scalar or a knob: none is dead.
        for name in fields {
            assert!(
                OpKind::ALL
                    .iter()
                    .any(|op| allowed_scalars(*op).contains(&name)),
                "the case field `{name}` belongs to no op"
            );
        }
    }

    #[test]
    fn defaults_are_the_descriptors() {
        let s = defaulted(None, None, None, None, None, None, None).unwrap();
        assert_eq!(s.alpha, 1.0);
        assert_eq!(s.beta, 0.0);
        assert_eq!(s.eps, 1e-6);
        assert_eq!(s.temperature, 1.0);
        assert_eq!(
            s.ignore_index,
            kernelyard::ops::token_logprobs::DEFAULT_IGNORE_INDEX
        );
        assert_eq!(s.theta, kernelyard::ops::rope::DEFAULT_THETA);
        assert_eq!(s.scale, None);
        assert_eq!(allowed_scalars(OpKind::SiluMul), Vec::<&str>::new());
        assert_eq!(
            allowed_scalars(OpKind::TokenLogprobs),
            vec![
                "temperature",
                "ignore_index",
                "ignore_fraction",
                "out_of_range_fraction"
            ]
        );
    }
}
