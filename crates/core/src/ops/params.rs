//! `--problem k=v,...` parameters: parsing, typed reading, and unknown-key errors.

use std::collections::BTreeMap;
use std::str::FromStr;

use crate::dtype::DType;
use crate::error::Error;
use crate::ops::OpKind;

/// One key an operator's problem takes.
#[derive(Clone, Copy, Debug)]
pub struct ParamKey {
    /// The key.
    pub key: &'static str,
    /// Its default, or `None` if required.
    pub default: Option<&'static str>,
    /// What it means.
    pub help: &'static str,
}

/// Renders an operator's keys for help and error texts: `m (required: rows of C), batch=1 (...)`.
pub fn describe_keys(keys: &[ParamKey]) -> String {
    keys.iter()
        .map(|k| match k.default {
            Some(d) => format!("{}={} ({})", k.key, d, k.help),
            None => format!("{} (required: {})", k.key, k.help),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parsed `k=v` pairs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params {
    entries: BTreeMap<String, String>,
}

impl Params {
    /// Parses `k=v,k=v` (whitespace around items is ignored; an empty string is no pairs).
    pub fn parse(op: OpKind, s: &str) -> Result<Params, Error> {
        let mut entries = BTreeMap::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| param_error(op, format!("`{item}` is not `key=value`")))?;
            if entries
                .insert(k.trim().to_string(), v.trim().to_string())
                .is_some()
            {
                return Err(param_error(
                    op,
                    format!("key `{}` is given twice", k.trim()),
                ));
            }
        }
        Ok(Params { entries })
    }

    /// Pairs from an iterator (for tests and test data).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Params {
        Params {
            entries: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The raw value of a key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// A reader that checks keys against an operator's list.
    pub fn reader(&self, op: OpKind) -> ParamReader<'_> {
        ParamReader { op, params: self }
    }
}

fn param_error(op: OpKind, what: String) -> Error {
    Error::Param {
        op,
        what,
        keys: describe_keys(op.params()),
    }
}

/// Reads typed values for one operator, rejecting unknown keys.
pub struct ParamReader<'a> {
    op: OpKind,
    params: &'a Params,
}

impl ParamReader<'_> {
    /// Fails on any key the operator does not take. Call first.
    pub fn check_keys(&self) -> Result<(), Error> {
        let keys = self.op.params();
        for k in self.params.entries.keys() {
            if !keys.iter().any(|p| p.key == k) {
                return Err(param_error(self.op, format!("unknown key `{k}`")));
            }
        }
        Ok(())
    }

    fn raw(&self, key: &'static str) -> Result<&str, Error> {
        let spec = self.op.params().iter().find(|p| p.key == key);
        match (self.params.get(key), spec.and_then(|s| s.default)) {
            (Some(v), _) => Ok(v),
            (None, Some(d)) => Ok(d),
            (None, None) => Err(param_error(self.op, format!("missing key `{key}`"))),
        }
    }

    fn parse<T: FromStr>(&self, key: &'static str, expected: &str) -> Result<T, Error> {
        let v = self.raw(key)?;
        v.parse::<T>()
            .map_err(|_| param_error(self.op, format!("`{key}={v}` is not {expected}")))
    }

    /// A non-negative integer.
    pub fn usize(&self, key: &'static str) -> Result<usize, Error> {
        self.parse(key, "a non-negative integer")
    }

    /// A flag: `0`/`1`/`true`/`false`.
    pub fn flag(&self, key: &'static str) -> Result<bool, Error> {
        match self.raw(key)? {
            "1" | "true" | "yes" => Ok(true),
            "0" | "false" | "no" => Ok(false),
            v => Err(param_error(self.op, format!("`{key}={v}` is not 0 or 1"))),
        }
    }

    /// A dtype name; the default `same` means `fallback`.
    pub fn dtype(&self, key: &'static str, fallback: DType) -> Result<DType, Error> {
        match self.raw(key)? {
            "same" => Ok(fallback),
            v => v
                .parse()
                .map_err(|_| param_error(self.op, format!("`{key}={v}` is not a dtype"))),
        }
    }

    /// One of a fixed set of words.
    pub fn choice(
        &self,
        key: &'static str,
        choices: &[&'static str],
    ) -> Result<&'static str, Error> {
        let v = self.raw(key)?;
        choices.iter().copied().find(|c| *c == v).ok_or_else(|| {
            param_error(
                self.op,
                format!("`{key}={v}` is not one of {}", choices.join(", ")),
            )
        })
    }
}
