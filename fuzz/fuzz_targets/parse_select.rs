//! `--problem` text -> problem -> selection, as `kernelyard explain` does it.
//!
//! The input is up to four lines: an op name, a `--problem` string, a dtype and a policy (`auto`
//! when absent; `d` deterministic, `b` batch-invariant, `kernel:<name>` or `backend:<name>`).
//! Whatever they hold, parsing and `Problem::from_params` return a typed error or a problem,
//! and selecting that problem on every simulated device (CPU, sm_75, sm_80, sm_90, sm_100,
//! gfx90a) under auto, deterministic, batch-invariant and the input's policy returns a typed
//! error or a plan that `check_plan` accepts. The problem's work, shape and JSON are computed
//! too (`bench` and `--json` print them).

#![no_main]

use kernelyard::{DType, OpKind, Params, Policy, Problem};
use kernelyard_fuzz::{check_plan, devices, policies, selection_runtime};
use libfuzzer_sys::fuzz_target;

fn policy(line: &str) -> Policy {
    let line = line.trim();
    let mut p = if let Some(name) = line.strip_prefix("kernel:") {
        Policy::kernel(name)
    } else if let Some(name) = line.strip_prefix("backend:") {
        Policy::backend(name)
    } else {
        Policy::auto()
    };
    if line.contains('d') && !line.contains(':') {
        p = p.deterministic();
    }
    if line.contains('b') && !line.contains(':') {
        p = p.batch_invariant();
    }
    p
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.splitn(4, '\n');
    let (op, params, dtype) = (
        lines.next().unwrap_or(""),
        lines.next().unwrap_or(""),
        lines.next().unwrap_or(""),
    );
    let extra = policy(lines.next().unwrap_or(""));
    let Ok(op) = op.parse::<OpKind>() else {
        return;
    };
    let dtype = if dtype.trim().is_empty() {
        op.example().dtype
    } else {
        match dtype.trim().parse::<DType>() {
            Ok(d) => d,
            Err(e) => {
                let _ = e.to_string();
                return;
            }
        }
    };
    let params = match Params::parse(op, params) {
        Ok(p) => p,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let problem = match Problem::from_params(op, &params, dtype) {
        Ok(p) => p,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    assert_eq!(problem.op(), op);
    let _ = (problem.work(), problem.shape(), problem.layout());
    let _ = problem.to_string();

    let rt = selection_runtime();
    for caps in devices() {
        for policy in policies().into_iter().chain([extra.clone()]) {
            match rt.select(caps.device, &problem, &policy) {
                Ok(plan) => check_plan(&plan, caps, &problem, &policy),
                Err(e) => {
                    let _ = e.to_string();
                }
            }
        }
    }
});
