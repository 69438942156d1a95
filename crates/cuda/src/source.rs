//! The kernel sources of `kernels/`, embedded in the binary, and their entry points.
//!
//! Each op file (`crate::ops::<op>`) declares one [`KernelSource`] with every entry point of
//! its `.cu` file written once; launches name entry points from that list, and the test
//! `symbols_exist` (and CI's compile matrix) checks every listed name is in the compiled
//! module for every supported architecture.

use kernelyard_core::{Arch, Kernel, Sm};

/// A kernel source file and the entry points the Rust side uses.
#[derive(Debug)]
pub struct KernelSource {
    /// File name under `kernels/` (`rms_norm.cu`).
    pub file: &'static str,
    /// Its text (embedded with `include_str!`).
    pub code: &'static str,
    /// Every `extern "C" __global__` entry point the Rust side launches.
    pub symbols: &'static [&'static str],
}

/// Shared headers: spliced in place of `#include "<name>"` before compiling, so NVRTC needs no
/// include path and no toolkit headers.
pub const HEADERS: &[(&str, &str)] = &[
    ("common.cuh", include_str!("../../../kernels/common.cuh")),
    ("rows.cuh", include_str!("../../../kernels/rows.cuh")),
    ("mma.cuh", include_str!("../../../kernels/mma.cuh")),
    ("hopper.cuh", include_str!("../../../kernels/hopper.cuh")),
];

/// A kernel source and the registered kernels that launch it (whose arch ranges say which
/// targets it must compile for).
pub struct SourceEntry {
    /// The source.
    pub source: &'static KernelSource,
    /// The kernels built from it.
    pub kernels: &'static [&'static dyn Kernel],
}

/// Every kernel source of the backend, with its kernels.
pub fn all() -> &'static [SourceEntry] {
    crate::ops::SOURCES
}

impl SourceEntry {
    /// Whether any of the source's kernels declares support for `sm` (so the source must
    /// compile for it).
    pub fn targets(&self, sm: Sm) -> bool {
        let arch = Arch::Cuda { sm };
        self.kernels.iter().any(|k| {
            let mut reasons = Vec::new();
            k.meta().arch.check(&arch, &mut reasons);
            reasons.is_empty()
        })
    }
}

impl KernelSource {
    /// The source with the shared headers spliced in.
    pub fn spliced(&self) -> String {
        let mut out = String::with_capacity(self.code.len() + 16 * 1024);
        for line in self.code.lines() {
            let header = line
                .trim()
                .strip_prefix("#include")
                .map(str::trim)
                .and_then(|h| h.strip_prefix('"'))
                .and_then(|h| h.strip_suffix('"'))
                .and_then(|h| HEADERS.iter().find(|(name, _)| *name == h));
            match header {
                Some((name, text)) => {
                    out.push_str(&format!("// ---- begin {name}\n"));
                    out.push_str(text);
                    out.push_str(&format!("\n// ---- end {name}\n"));
                }
                None => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out
    }

    /// Whether `symbol` is one of the listed entry points.
    pub fn lists(&self, symbol: &str) -> bool {
        self.symbols.contains(&symbol)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_spliced() {
        let s = KernelSource {
            file: "t.cu",
            code: "#include \"common.cuh\"\nextern \"C\" __global__ void t() {}\n",
            symbols: &["t"],
        };
        let text = s.spliced();
        assert!(text.contains("ky_warp_sum"));
        assert!(!text.lines().any(|l| l.trim() == "#include \"common.cuh\""));
        assert!(text.ends_with("void t() {}\n"));
    }
}
