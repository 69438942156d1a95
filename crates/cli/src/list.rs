//! `kernelyard list`: the registered kernels and their metadata, read without running
//! anything (no device is probed).

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::Args;
use kernelyard::{KernelMeta, OpKind, Registry};
use serde::Serialize;

use crate::error::{self, Class, CliError};

/// Arguments of `kernelyard list`.
#[derive(Args)]
pub struct ListArgs {
    // Only kernels of this operator; the help lists the catalog's.
    #[arg(long, value_name = "OP",
          help = format!("Only kernels of this operator ({})", crate::op_names()))]
    op: Option<OpKind>,
    /// Print one JSON object `{"kernels": [...]}` instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct ListJson<'a> {
    op: Option<OpKind>,
    kernels: Vec<&'a KernelMeta>,
}

/// Runs `kernelyard list`.
pub fn run(args: &ListArgs) -> error::Result<ExitCode> {
    let registry = Registry::global().map_err(|e| CliError::new(Class::Runtime, e))?;
    let kernels: Vec<&KernelMeta> = registry
        .all()
        .iter()
        .map(|k| k.meta())
        .filter(|m| args.op.is_none_or(|op| m.op == op))
        .collect();
    if args.json {
        crate::output::print_json(&ListJson {
            op: args.op,
            kernels,
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    let text = text(args.op, &kernels).map_err(anyhow::Error::from)?;
    crate::output::print(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// The text listing of `kernels` (those of `op`, if given).
fn text(op: Option<OpKind>, kernels: &[&KernelMeta]) -> Result<String, std::fmt::Error> {
    let mut text = String::new();
    if kernels.is_empty() {
        match op {
            Some(op) => writeln!(
                text,
                "no kernel is registered for {op} in this build (see `kernelyard doctor`)"
            )?,
            None => writeln!(
                text,
                "no kernel is registered in this build (see `kernelyard doctor`)"
            )?,
        }
    }
    for (i, m) in kernels.iter().enumerate() {
        if i > 0 {
            text.push('\n');
        }
        describe(&mut text, m)?;
    }
    Ok(text)
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        return "none".into();
    }
    items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe(text: &mut String, m: &KernelMeta) -> std::fmt::Result {
    writeln!(text, "{}  ({})", m.name, m.summary)?;
    writeln!(
        text,
        "  op {}, backend {}, device {}, version {}, priority {}",
        m.op, m.backend, m.device, m.version, m.priority
    )?;
    writeln!(
        text,
        "  deterministic {}, batch-invariant {}",
        yes_no(m.deterministic),
        yes_no(m.batch_invariant)
    )?;
    let features: Vec<String> = m.features.iter().map(|f| f.to_string()).collect();
    writeln!(
        text,
        "  dtypes {}; arch {}; features {}; alignment {} B",
        join(m.dtypes),
        m.arch,
        join(&features),
        m.align
    )?;
    if !m.tactics.is_empty() {
        let t: Vec<String> = m
            .tactics
            .iter()
            .map(|t| format!("{}@{t}", m.name))
            .collect();
        writeln!(text, "  tactics {}", t.join(", "))?;
    }
    Ok(())
}
