//! The command line's error classes, their exit codes, and how an error is printed.
//!
//! Every error a command returns carries its [`Class`]; `main` prints the human text on
//! stderr (`error: ...`, everything the library says, never shortened) and, when `--json` is
//! among the arguments, one line of JSON on stdout:
//! `{"error": {"class": "selection", "message": "...", "exit_code": 2}}` ([`ErrorJson`]).
//! Commands whose JSON output has room for it (`explain`, `doctor`, `verify`) put the same
//! object under `"error"` in their own JSON instead.
//!
//! Exit codes: 0 ok; 1 a run failed (`verify` found a failing case, a `bench` run failed);
//! 2 anything the caller asked for that cannot be had (usage, problem, pins, device, kernel,
//! selection, resources, runtime).

use std::fmt;

use kernelyard::{Error, SelectError};
use kernelyard_suite::BenchError;
use serde::Serialize;

/// What kind of error ended a command; each has one exit code ([`Class::exit_code`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// The command line itself (clap): an unknown subcommand, flag, operator or dtype, a
    /// malformed device or number, conflicting or missing arguments; a bad `KERNELYARD_SEED`.
    Usage,
    /// `--problem` or `--scalars` values the operator does not accept, or a problem that breaks
    /// an invariant of its operator (sizes that overflow, dtypes that do not go together).
    Problem,
    /// `KERNELYARD_KERNELS` is malformed or names what does not exist.
    Pins,
    /// The device asked for is not present (its backend not compiled in, unavailable, or no
    /// such index).
    Device,
    /// The kernel or backend named does not exist or implements another operator.
    Kernel,
    /// No kernel (or not the one named) can run the problem on the device; every reason is in
    /// the message.
    Selection,
    /// `bench` was refused before it started: more runs than its bound, or sizes that overflow
    /// or exceed the device's or the host's memory.
    Resources,
    /// The runtime could not start for another reason (e.g. two kernels with one name).
    Runtime,
    /// Writing the output failed (other than a reader that went away, which ends quietly).
    Output,
    /// `bench`: a run failed (a launch, an allocation, a kernel that panicked, a harness bug).
    Run,
    /// `verify`: at least one case failed.
    Verify,
}

impl Class {
    /// 1 for run failures (`run`, `verify`), 2 for everything else.
    pub fn exit_code(self) -> u8 {
        match self {
            Class::Run | Class::Verify => 1,
            _ => 2,
        }
    }

    /// The class of a selection error.
    pub fn of_select(err: &SelectError) -> Class {
        match err {
            SelectError::InvalidProblem { .. } => Class::Problem,
            SelectError::UnknownDevice { .. } => Class::Device,
            SelectError::UnknownKernel { .. }
            | SelectError::KernelForOtherOp { .. }
            | SelectError::UnknownBackend { .. } => Class::Kernel,
            _ => Class::Selection,
        }
    }

    /// The class of a benchmark error.
    pub fn of_bench(err: &BenchError) -> Class {
        match err {
            BenchError::Select(e) => Class::of_select(e),
            BenchError::Scalars(_) => Class::Problem,
            BenchError::Options(_) => Class::Usage,
            BenchError::NoneRunnable { .. } => Class::Selection,
            BenchError::Refused(_) => Class::Resources,
            _ => Class::Run,
        }
    }
}

/// An error of a command with its class.
#[derive(Debug)]
pub struct CliError {
    /// The class, which decides the exit code.
    pub class: Class,
    /// The error, printed with its whole chain.
    pub error: anyhow::Error,
}

impl CliError {
    /// `error` in class `class`.
    pub fn new(class: Class, error: impl Into<anyhow::Error>) -> Self {
        CliError {
            class,
            error: error.into(),
        }
    }

    /// A selection error, classified.
    pub fn select(err: SelectError) -> Self {
        CliError::new(Class::of_select(&err), err)
    }

    /// The error's message: everything the library says, the whole chain.
    pub fn message(&self) -> String {
        format!("{:#}", self.error).trim_end().to_string()
    }

    /// The JSON object describing it.
    pub fn json(&self) -> ErrorJson {
        ErrorJson::new(self.class, self.message())
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

/// Writing the output (the only untyped errors a command sees).
impl From<anyhow::Error> for CliError {
    fn from(error: anyhow::Error) -> Self {
        CliError {
            class: Class::Output,
            error,
        }
    }
}

/// The result of a command: its exit code, or a classified error.
pub type Result<T> = std::result::Result<T, CliError>;

/// The problem's parameters or values are not accepted.
pub fn problem(err: Error) -> CliError {
    CliError::new(Class::Problem, err)
}

/// An error starting the runtime: a bad `KERNELYARD_KERNELS` is [`Class::Pins`].
pub fn runtime(err: Error) -> CliError {
    let class = match err {
        Error::EnvOverride { .. } => Class::Pins,
        _ => Class::Runtime,
    };
    CliError::new(
        class,
        anyhow::Error::new(err).context("cannot start the kernelyard runtime"),
    )
}

/// `{"class", "message", "exit_code"}`: an error as JSON, under the key `"error"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ErrorJson {
    /// [`Class`], in snake case.
    pub class: Class,
    /// The human text (the same as on stderr, without `error: `).
    pub message: String,
    /// The process's exit code.
    pub exit_code: u8,
}

impl ErrorJson {
    /// The error object of class `class` saying `message`.
    pub fn new(class: Class, message: String) -> Self {
        ErrorJson {
            class,
            message,
            exit_code: class.exit_code(),
        }
    }
}

/// `{"error": {...}}`: what `--json` prints on stdout for an error.
#[derive(Serialize)]
struct ErrorLine<'a> {
    error: &'a ErrorJson,
}

/// Prints `err` on stdout as one line of JSON (`{"error": {...}}`). A failure to write it
/// cannot be reported anywhere else, so it is ignored.
pub fn print_json_line(err: &ErrorJson) {
    if let Ok(mut line) = serde_json::to_string(&ErrorLine { error: err }) {
        line.push('\n');
        let _ = crate::output::print(&line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernelyard::{OpKind, ValidationError};
    use kernelyard_suite::Refused;

    #[test]
    fn library_errors_are_classified() {
        let invalid = SelectError::InvalidProblem {
            op: OpKind::Gemm,
            error: ValidationError::Overflow {
                arg: "c",
                what: "bytes".into(),
            },
        };
        assert_eq!(Class::of_select(&invalid), Class::Problem);
        let bench = |e| Class::of_bench(&e);
        assert_eq!(bench(BenchError::Select(invalid)), Class::Problem);
        let refused = Refused::SizeOverflow { what: "x".into() };
        assert_eq!(bench(BenchError::Refused(refused)), Class::Resources);
        assert_eq!(bench(BenchError::Scalars("s".into())), Class::Problem);
        assert_eq!(bench(BenchError::Options("o".into())), Class::Usage);
        assert_eq!(bench(BenchError::Harness("h".into())), Class::Run);
        let panicked = BenchError::Panicked {
            kernel: "k",
            message: "m".into(),
        };
        assert_eq!(bench(panicked), Class::Run);
        assert_eq!(
            runtime(Error::EnvOverride {
                entry: "e".into(),
                why: "w".into()
            })
            .class,
            Class::Pins
        );
    }

    #[test]
    fn classes_have_their_exit_codes_and_names() {
        let all = [
            (Class::Usage, "usage", 2),
            (Class::Problem, "problem", 2),
            (Class::Pins, "pins", 2),
            (Class::Device, "device", 2),
            (Class::Kernel, "kernel", 2),
            (Class::Selection, "selection", 2),
            (Class::Resources, "resources", 2),
            (Class::Runtime, "runtime", 2),
            (Class::Output, "output", 2),
            (Class::Run, "run", 1),
            (Class::Verify, "verify", 1),
        ];
        for (class, name, code) in all {
            assert_eq!(class.exit_code(), code, "{class:?}");
            let v = serde_json::to_value(ErrorJson::new(class, "m".into())).unwrap();
            assert_eq!(
                v,
                serde_json::json!({"class": name, "message": "m", "exit_code": code})
            );
        }
    }
}
