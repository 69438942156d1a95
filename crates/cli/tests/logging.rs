//! The CLI's logging: `RUST_LOG` turns on the libraries' `tracing` events (probe, selection) on
//! stderr; without it the libraries print nothing (warnings only, and there are none here).

mod common;

use std::process::Command;

use common::{all, code, stderr, stdout};

const EXPLAIN: &[&str] = &[
    "explain",
    "softmax",
    "--device",
    "cpu",
    "--problem",
    "rows=4,cols=64",
    "--dtype",
    "f32",
];

fn explain(rust_log: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kernelyard"));
    cmd.args(EXPLAIN)
        .env_remove("RUST_LOG")
        .env_remove("KERNELYARD_KERNELS")
        .env("KERNELYARD_CACHE_DIR", "off");
    if let Some(filter) = rust_log {
        cmd.env("RUST_LOG", filter);
    }
    cmd.output().expect("the kernelyard binary runs")
}

#[test]
fn without_rust_log_nothing_is_logged() {
    let o = explain(None);
    assert_eq!(code(&o), 0, "{}", all(&o));
    assert!(
        stdout(&o).contains("selected reference.softmax"),
        "{}",
        all(&o)
    );
    assert_eq!(stderr(&o), "", "the libraries printed something");
}

#[test]
fn rust_log_shows_the_probe_and_the_selection() {
    let o = explain(Some("kernelyard=debug"));
    assert_eq!(code(&o), 0, "{}", all(&o));
    let err = stderr(&o);
    assert!(err.contains("kernelyard.probe"), "{err}");
    assert!(err.contains("backend=\"reference\""), "{err}");
    assert!(
        err.contains("kernelyard: selected") && err.contains("kernel=\"reference.softmax\""),
        "{err}"
    );
    assert!(err.contains("rejected=0"), "{err}");
    // stdout is unchanged by logging.
    assert_eq!(stdout(&o), stdout(&explain(None)));
}

#[test]
fn a_filter_for_other_targets_shows_nothing_of_ours() {
    let o = explain(Some("some_other_crate=trace"));
    assert_eq!(code(&o), 0, "{}", all(&o));
    assert_eq!(stderr(&o), "");
}
