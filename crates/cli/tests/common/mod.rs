//! Helpers shared by the CLI's integration tests (`cli.rs`, `errors.rs`): running the binary and
//! reading what it printed.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::process::{Command, Output};

use serde_json::Value;

/// Runs the binary with `args`, `env` set, and `KERNELYARD_KERNELS`/`KERNELYARD_SEED` removed
/// unless `env` sets them.
pub fn run_env(env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kernelyard"));
    cmd.args(args)
        .env_remove("KERNELYARD_KERNELS")
        .env_remove("KERNELYARD_SEED");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the kernelyard binary runs")
}

/// Runs the binary with `args` and a clean environment (see [`run_env`]).
pub fn run(args: &[&str]) -> Output {
    run_env(&[], args)
}

/// What the binary printed on stdout.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What the binary printed on stderr.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Both streams, labelled, for assertion messages.
pub fn all(o: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", stdout(o), stderr(o))
}

/// The exit code.
pub fn code(o: &Output) -> i32 {
    o.status.code().expect("the process exited normally")
}

/// stdout as one JSON value (pretty or on one line).
pub fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON value ({e}):\n{}", all(o)))
}
