//! CI's hiprtc compile matrix: every ROCm kernel source compiles for every architecture of
//! ROCm 5.2's range (gfx908, gfx90a, gfx1030) its kernels declare, and every entry point the
//! Rust side names is a kernel of the code object.
//!
//! Needs hiprtc, not a GPU: `.ci/run` installs Debian's `libamdhip64-dev` (ROCm 5.2, hiprtc
//! inside libamdhip64) and runs it with `--include-ignored`.
#![cfg(feature = "hip")]

use kernelyard_core::{Arch, Gfx};
use kernelyard_rocm::module::{self, target_for};
use kernelyard_rocm::ops;

/// ROCm 5.2's officially supported range, as the issue names it: CDNA1, CDNA2, RDNA2.
const MATRIX: &[(Gfx, u32)] = &[
    (Gfx::new(9, 0, 8), 64),
    (Gfx::new(9, 0, 0xa), 64),
    (Gfx::new(10, 3, 0), 32),
];

#[test]
#[ignore = "requires hiprtc (CI installs Debian's libamdhip64-dev; see .ci/run)"]
fn every_source_compiles_for_every_arch_in_its_range() {
    let mut failures = Vec::new();
    let mut compiled = 0;
    for entry in ops::sources() {
        for &(gfx, wavefront) in MATRIX {
            if !entry.targets(&Arch::Rocm { gfx, wavefront }) {
                println!(
                    "skip kernels/{} {gfx}: outside its kernels' range",
                    entry.source.file
                );
                continue;
            }
            let target = target_for(gfx);
            match module::compile(entry.source, &target) {
                Ok(c) => {
                    compiled += 1;
                    let kernels = c.kernels();
                    for sym in entry.source.symbols {
                        if !kernels.iter().any(|k| k == sym) {
                            failures.push(format!(
                                "kernels/{} for {target}: no kernel `{sym}` (found {kernels:?})",
                                entry.source.file
                            ));
                        }
                    }
                    println!(
                        "ok   kernels/{} {target}: {} kernels, code object {} bytes",
                        entry.source.file,
                        kernels.len(),
                        c.code.len()
                    );
                }
                Err(e) => failures.push(e.to_string()),
            }
        }
    }
    println!(
        "{compiled} (source, arch) compiles, {} failures",
        failures.len()
    );
    // Eight sources for every architecture (the five row ops, silu_mul, selective_state_update,
    // the portable GEMM) and the MFMA GEMM for gfx908 and gfx90a.
    assert!(compiled >= 3 * 8 + 2, "too few compiles: {compiled}");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
#[ignore = "requires hiprtc (CI installs Debian's libamdhip64-dev; see .ci/run)"]
fn a_source_that_does_not_compile_reports_the_log() {
    static BAD: kernelyard_kernels::source::KernelSource =
        kernelyard_kernels::source::KernelSource {
            file: "bad.cu",
            code: "extern \"C\" __global__ void bad() { undeclared_thing(); }\n",
            symbols: &["bad"],
        };
    let e = module::compile(&BAD, "gfx90a").unwrap_err().to_string();
    assert!(e.contains("kernels/bad.cu") && e.contains("gfx90a"), "{e}");
    assert!(e.contains("undeclared_thing"), "{e}");
}
