//! `kernelyard tune` on the CPU, and what `explain --tuned` and `doctor` say about the cache.

mod common;

use common::{all, code, run_env, stdout};

/// A fresh directory under the system's temporary directory, removed on drop.
struct Dir(std::path::PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let p =
            std::env::temp_dir().join(format!("kernelyard-cli-tune-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const PROBLEM: &[&str] = &[
    "--device",
    "cpu",
    "--problem",
    "rows=12,cols=300",
    "--dtype",
    "f32",
];

#[test]
fn tune_records_the_verified_fastest_and_explain_and_doctor_read_it() {
    let dir = Dir::new("record");
    let file = dir.0.join("tuning.json");
    let f = file.to_str().unwrap();
    let env = [("KERNELYARD_TUNING_CACHE", f)];
    let mut args = vec!["tune", "softmax"];
    args.extend_from_slice(PROBLEM);
    args.extend_from_slice(&["--iters", "3", "--warmup", "1", "--all-buckets"]);
    let o = run_env(&env, &args);
    assert_eq!(code(&o), 0, "{}", all(&o));
    let out = stdout(&o);
    // Rows 1, 2, 4, 8 and 12: five buckets, each a table of the reference kernel in its
    // default configuration and its one tactic, both verified, one chosen.
    assert_eq!(out.matches("  candidate ").count(), 5, "{out}");
    // (Table rows only: each table's last line names the untuned and tuned choices.)
    assert_eq!(
        out.matches("\n  reference.softmax@serial ").count(),
        5,
        "{out}"
    );
    assert_eq!(
        out.matches("  untuned reference.softmax (").count(),
        5,
        "{out}"
    );
    assert_eq!(out.matches("  yes       *").count(), 5, "{out}");
    assert!(out.contains("(5 entries)"), "{out}");
    assert!(common::stderr(&o).contains("verifying against the reference"));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("\"format\": 1"), "{text}");

    let mut explain = vec!["explain", "softmax", "--tuned"];
    explain.extend_from_slice(PROBLEM);
    let o = run_env(&env, &explain);
    assert_eq!(code(&o), 0, "{}", all(&o));
    let out = stdout(&o);
    assert!(out.contains("chosen by: tuning"), "{out}");
    assert!(out.contains("(verified)"), "{out}");

    let o = run_env(&env, &["doctor"]);
    assert!(stdout(&o).contains("5 entries, 5 usable"), "{}", all(&o));

    // An entry measured with another driver: explain and doctor say why, and it is not applied.
    let stale = text.replace("\"driver\": null", "\"driver\": \"99.0.0\"");
    assert_ne!(stale, text);
    std::fs::write(&file, stale).unwrap();
    let o = run_env(&env, &explain);
    let out = stdout(&o);
    assert!(out.contains("not applied, measured elsewhere"), "{out}");
    assert!(
        out.contains("driver: measured with 99.0.0, now unknown"),
        "{out}"
    );
    assert!(!out.contains("chosen by: tuning"), "{out}");
    let o = run_env(&env, &["doctor"]);
    let out = stdout(&o);
    assert!(out.contains("0 usable on a present device, 5 not"), "{out}");
    assert!(out.contains("not applied: softmax"), "{out}");
}

#[test]
fn a_torn_cache_is_an_error_and_is_left_alone() {
    let dir = Dir::new("torn");
    let file = dir.0.join("tuning.json");
    std::fs::write(&file, "{\"format\": 1, \"ent").unwrap();
    let mut args = vec!["tune", "softmax", "--out", file.to_str().unwrap()];
    args.extend_from_slice(PROBLEM);
    let o = run_env(&[], &args);
    assert_eq!(code(&o), 2, "{}", all(&o));
    assert!(common::stderr(&o).contains("does not parse"), "{}", all(&o));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "{\"format\": 1, \"ent"
    );
}
