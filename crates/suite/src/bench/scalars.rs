//! The scalars of a benchmarked call (`--scalars k=v,...`), checked as the suite checks a
//! case's. Which op takes which scalar, and its default, is the op's descriptor's
//! ([`OpKind::scalars`]); the fields here are the values a call can carry.

use kernelyard::ops::gemm::Gemm;
use kernelyard::ops::Listed;
use kernelyard::{OpKind, Problem};
use serde::Serialize;

use crate::cases::{defaulted, Scalars};

/// The op's scalars; `None` takes the default its operator's descriptor states
/// ([`kernelyard::ops::ScalarKey::default`]: alpha 1, beta 0, eps 1e-6, temperature 1, ignore_index
/// -100, theta 10000, scale `1/sqrt(head_dim)`), except that beta is 1 when the gemm
/// accumulates. Setting one the op does not take is an error.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BenchScalars {
    /// gemm: scale of the product.
    pub alpha: Option<f64>,
    /// gemm: scale of C; non-zero exactly when the problem says `accumulate=1`.
    pub beta: Option<f64>,
    /// rms_norm: added to the mean square.
    pub eps: Option<f64>,
    /// token_logprobs: softmax temperature.
    pub temperature: Option<f64>,
    /// token_logprobs: the ignored target value (no target is ignored in a bench).
    pub ignore_index: Option<i64>,
    /// rope: base of the frequencies.
    pub theta: Option<f64>,
    /// attention: score scale.
    pub scale: Option<f64>,
}

impl BenchScalars {
    /// Every scalar name of the catalog, in catalog order ([`OpKind::scalars`] of each op):
    /// the keys [`BenchScalars::parse`] takes.
    pub fn names() -> Vec<&'static str> {
        let mut names: Vec<&'static str> = Vec::new();
        for op in OpKind::ALL {
            for k in op.scalars() {
                if !names.contains(&k.name) {
                    names.push(k.name);
                }
            }
        }
        names
    }

    /// Parses `key=value,...` (keys: [`BenchScalars::names`]). An empty string sets none.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut s = BenchScalars::default();
        for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| format!("`{item}` is not key=value"))?;
            let (key, value) = (key.trim(), value.trim());
            let float = || {
                value
                    .parse::<f64>()
                    .map_err(|_| format!("`{key}={value}` is not a number"))
            };
            let slot = match key {
                "alpha" => &mut s.alpha,
                "beta" => &mut s.beta,
                "eps" => &mut s.eps,
                "temperature" => &mut s.temperature,
                "theta" => &mut s.theta,
                "scale" => &mut s.scale,
                "ignore_index" => {
                    let v = value
                        .parse::<i64>()
                        .map_err(|_| format!("`{key}={value}` is not an integer"))?;
                    if s.ignore_index.replace(v).is_some() {
                        return Err(format!("`{key}` is given twice"));
                    }
                    continue;
                }
                _ => {
                    return Err(format!(
                        "unknown scalar `{key}`; the scalars are {}",
                        Self::names().join(", ")
                    ))
                }
            };
            if slot.replace(float()?).is_some() {
                return Err(format!("`{key}` is given twice"));
            }
        }
        Ok(s)
    }

    /// Every scalar field, with whether it is set.
    fn fields(&self) -> [(&'static str, bool); 7] {
        [
            ("alpha", self.alpha.is_some()),
            ("beta", self.beta.is_some()),
            ("eps", self.eps.is_some()),
            ("temperature", self.temperature.is_some()),
            ("ignore_index", self.ignore_index.is_some()),
            ("theta", self.theta.is_some()),
            ("scale", self.scale.is_some()),
        ]
    }

    /// The names of the scalars set.
    fn given(&self) -> Vec<&'static str> {
        self.fields()
            .into_iter()
            .filter(|(_, set)| *set)
            .map(|(n, _)| n)
            .collect()
    }

    /// The scalars for `problem` with defaults applied, checked as the suite checks a case's.
    pub(crate) fn resolve(&self, problem: &Problem) -> Result<Scalars, String> {
        let op = problem.op();
        let allowed: Vec<&str> = op.scalars().iter().map(|k| k.name).collect();
        for s in self.given() {
            if !allowed.contains(&s) {
                let takes = if allowed.is_empty() {
                    "none".to_string()
                } else {
                    allowed.join(", ")
                };
                return Err(format!("`{s}` is not a scalar of {op} (it takes: {takes})"));
            }
        }
        for (name, v) in [
            ("alpha", self.alpha),
            ("beta", self.beta),
            ("eps", self.eps),
            ("temperature", self.temperature),
            ("theta", self.theta),
            ("scale", self.scale),
        ] {
            // The call carries f32: check the value it will carry, not the f64 typed.
            let Some(x) = v else { continue };
            let y = x as f32;
            if !x.is_finite() {
                return Err(format!("`{name}` must be finite"));
            }
            if !y.is_finite() {
                return Err(format!(
                    "`{name}` = {x} does not fit in f32 (its largest finite value is {:e})",
                    f32::MAX
                ));
            }
            if name == "eps" && x < 0.0 {
                return Err("`eps` must not be negative".into());
            }
            if matches!(name, "temperature" | "theta") && y <= 0.0 {
                return Err(if x > 0.0 {
                    format!("`{name}` = {x} is zero in f32; it must be greater than zero")
                } else {
                    format!("`{name}` must be greater than zero")
                });
            }
        }
        let accumulate = Gemm::problem(problem).is_some_and(|g| g.accumulate);
        let beta = self.beta.unwrap_or(if accumulate { 1.0 } else { 0.0 }) as f32;
        if accumulate != (beta != 0.0) {
            return Err(
                "`accumulate=1` in the problem needs a non-zero `beta`, and a non-zero `beta` \
                 needs `accumulate=1`"
                    .into(),
            );
        }
        Ok(Scalars {
            beta,
            ..defaulted(
                self.alpha,
                None,
                self.eps,
                self.temperature,
                self.ignore_index,
                self.theta,
                self.scale,
            )?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_takes_each_scalar_once() {
        let s = BenchScalars::parse("eps=1e-5, temperature=0.5,ignore_index=-1").unwrap();
        assert_eq!(s.eps, Some(1e-5));
        assert_eq!(s.temperature, Some(0.5));
        assert_eq!(s.ignore_index, Some(-1));
        assert_eq!(BenchScalars::parse("").unwrap(), BenchScalars::default());
        assert!(BenchScalars::parse("eps=1,eps=2")
            .unwrap_err()
            .contains("twice"));
        assert!(BenchScalars::parse("epsilon=1")
            .unwrap_err()
            .contains("unknown scalar"));
        assert!(BenchScalars::parse("eps").is_err());
        assert!(BenchScalars::parse("ignore_index=0.5").is_err());
    }

    /// The call carries f32: a value finite in f64 but not in f32, or positive in f64 and zero
    /// in f32, is refused here rather than by the arguments' validation.
    #[test]
    fn values_are_checked_as_f32() {
        use kernelyard::{DType, Params};
        let problem = |op: OpKind, params: &str| {
            Problem::from_params(op, &Params::parse(op, params).unwrap(), DType::F32).unwrap()
        };
        let gemm = problem(OpKind::Gemm, "m=2,n=2,k=2");
        let err = BenchScalars::parse("alpha=1e40")
            .unwrap()
            .resolve(&gemm)
            .unwrap_err();
        assert_eq!(
            err,
            "`alpha` = 10000000000000000000000000000000000000000 does not fit in f32 (its \
             largest finite value is 3.4028235e38)"
        );
        assert!(BenchScalars::parse("alpha=3e38")
            .unwrap()
            .resolve(&gemm)
            .is_ok());
        let tl = problem(OpKind::TokenLogprobs, "tokens=2,vocab=8");
        let err = BenchScalars::parse("temperature=1e-50")
            .unwrap()
            .resolve(&tl)
            .unwrap_err();
        assert!(err.contains("is zero in f32"), "{err}");
        let rope = problem(OpKind::Rope, "tokens=2,heads=1,head_dim=8");
        assert!(BenchScalars::parse("theta=1e39")
            .unwrap()
            .resolve(&rope)
            .is_err());
        let rms = problem(OpKind::RmsNorm, "rows=2,hidden=8");
        // A tiny eps is 0 in f32: allowed (eps >= 0).
        assert!(BenchScalars::parse("eps=1e-50")
            .unwrap()
            .resolve(&rms)
            .is_ok());
        assert!(BenchScalars::parse("eps=-1e-50")
            .unwrap()
            .resolve(&rms)
            .is_err());
    }

    #[test]
    fn the_keys_are_the_descriptors_scalars() {
        assert_eq!(
            BenchScalars::names(),
            [
                "alpha",
                "beta",
                "eps",
                "temperature",
                "ignore_index",
                "theta",
                "scale"
            ]
        );
        let fields: Vec<&str> = BenchScalars::default()
            .fields()
            .iter()
            .map(|(n, _)| *n)
            .collect();
        for name in BenchScalars::names() {
            assert!(fields.contains(&name), "`{name}` has no field");
            let s = BenchScalars::parse(&format!("{name}=1")).unwrap();
            assert_eq!(s.given(), vec![name]);
        }
        assert_eq!(
            fields.len(),
            BenchScalars::names().len(),
            "a field of no op"
        );
        let err = BenchScalars::parse("epsilon=1").unwrap_err();
        assert!(
            err.ends_with(
                "the scalars are alpha, beta, eps, temperature, ignore_index, theta, scale"
            ),
            "{err}"
        );
    }
}
