//! The kernel sources, embedded in the binary, and their entry points: the shared sources and
//! headers of this crate's `kernels/` folder (`crates/kernels/kernels/`), and a backend's own
//! sources in its crate's `kernels/` folder (`crates/cuda/kernels/`).
//!
//! Each source is one [`KernelSource`] static with every entry point of its `.cu` file written
//! once: in this crate's op modules for the sources both GPU backends compile, in a backend's
//! op file for its own. Launches name entry points from that list, and each backend checks (a
//! GPU test that loads every module, and CI's compile matrix) that every listed name is in the
//! compiled module for every architecture the source's kernels support
//! ([`SourceEntry::targets`]). Both compilers (NVRTC, hipRTC) get the text of
//! [`KernelSource::spliced`]: the shared [`HEADERS`] pasted in place of their `#include`
//! lines, so neither needs an include path or toolkit headers.

use kernelyard_core::{Arch, Kernel};

/// A kernel source file and the entry points the Rust side uses.
#[derive(Debug)]
pub struct KernelSource {
    /// File name under the `kernels/` folder of the crate that embeds it (`rms_norm.cu`:
    /// `crates/kernels/kernels/rms_norm.cu`; `attention.cu`: `crates/cuda/kernels/attention.cu`),
    /// or `<stem>.<part>.cu` for one module of a file compiled in parts
    /// (`gemm_bi_sm90.bf16_nn.cu`: `crates/cuda/kernels/gemm_bi_sm90.cu` after a `#define`
    /// that selects its entry points). It names the module in the caches and in errors, so
    /// it is unique among a backend's sources.
    pub file: &'static str,
    /// Its text (embedded with `include_str!`).
    pub code: &'static str,
    /// Every `extern "C" __global__` entry point the Rust side launches.
    pub symbols: &'static [&'static str],
}

/// Shared headers: spliced in place of `#include "<name>"` before compiling, so the runtime
/// compilers need no include path and no toolkit headers.
pub const HEADERS: &[(&str, &str)] = &[
    ("port.cuh", include_str!("../kernels/port.cuh")),
    ("common.cuh", include_str!("../kernels/common.cuh")),
    ("rows.cuh", include_str!("../kernels/rows.cuh")),
    ("mma.cuh", include_str!("../kernels/mma.cuh")),
    ("hopper.cuh", include_str!("../kernels/hopper.cuh")),
];

/// A kernel source and the registered kernels that launch it (whose arch ranges say which
/// targets it must compile for).
pub struct SourceEntry {
    /// The source.
    pub source: &'static KernelSource,
    /// The kernels built from it.
    pub kernels: &'static [&'static dyn Kernel],
}

impl SourceEntry {
    /// Whether any of the source's kernels declares support for `arch` (so the source must
    /// compile for it).
    pub fn targets(&self, arch: &Arch) -> bool {
        self.kernels.iter().any(|k| {
            let mut reasons = Vec::new();
            k.meta().arch.check(arch, &mut reasons);
            reasons.is_empty()
        })
    }
}

impl KernelSource {
    /// The source with the shared headers spliced in, each between `// ---- begin <name>` and
    /// `// ---- end <name>` lines.
    ///
    /// A header's own `#include "<header>"` lines are spliced the same way, and a header
    /// already spliced into this source is not spliced again (what `#pragma once` means to a
    /// compiler with an include path). An `#include` of a name not in [`HEADERS`] is left as
    /// it is.
    pub fn spliced(&self) -> String {
        self.spliced_with(HEADERS)
    }

    /// [`spliced`](Self::spliced) with `headers` in place of [`HEADERS`]: the tests' CPU
    /// emulator (`crates/kernels/tests/emu/`) passes [`HEADERS`] with its own `port.cuh`.
    pub fn spliced_with(&self, headers: &[(&'static str, &'static str)]) -> String {
        let mut out = String::with_capacity(self.code.len() + 16 * 1024);
        let mut seen = Vec::new();
        splice(self.code, headers, &mut out, &mut seen);
        out
    }

    /// Whether `symbol` is one of the listed entry points.
    pub fn lists(&self, symbol: &str) -> bool {
        self.symbols.contains(&symbol)
    }
}

/// The decimal number after the first line of `code` that starts with `line` (e.g.
/// `b"#define ATTN_D256 "`), or `None` when no line starts with it or the rest of that line is
/// not a decimal number alone. A `const fn`, so a launch can read a build-time choice of its
/// kernel's text when the crate is compiled, and kernel and launch cannot disagree.
pub const fn define_value(code: &str, line: &[u8]) -> Option<usize> {
    let b = code.as_bytes();
    let mut i = 0;
    while i + line.len() <= b.len() {
        let at_line_start = i == 0 || b[i - 1] == b'\n';
        let mut k = 0;
        while k < line.len() && b[i + k] == line[k] {
            k += 1;
        }
        if at_line_start && k == line.len() {
            let mut j = i + k;
            let mut v: usize = 0;
            while j < b.len() && b[j].is_ascii_digit() {
                v = match v.checked_mul(10) {
                    Some(x) => match x.checked_add((b[j] - b'0') as usize) {
                        Some(y) => y,
                        None => return None,
                    },
                    None => return None,
                };
                j += 1;
            }
            if j == i + k || (j < b.len() && b[j] != b'\n') {
                return None;
            }
            return Some(v);
        }
        i += 1;
    }
    None
}

/// Appends `code` to `out` line by line (each line ending in `\n`), replacing the `#include`
/// of one of `headers` with that header's spliced text, or with nothing when `seen` already
/// holds it.
fn splice(
    code: &str,
    headers: &[(&'static str, &'static str)],
    out: &mut String,
    seen: &mut Vec<&'static str>,
) {
    for line in code.lines() {
        match included(line).and_then(|name| headers.iter().find(|(n, _)| *n == name)) {
            Some((name, _)) if seen.contains(name) => {}
            Some(&(name, text)) => {
                seen.push(name);
                out.push_str(&format!("// ---- begin {name}\n"));
                splice(text, headers, out, seen);
                out.push_str(&format!("\n// ---- end {name}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
}

/// The name `line` includes with `#include "<name>"`, if it is such a line.
fn included(line: &str) -> Option<&str> {
    line.trim()
        .strip_prefix("#include")
        .map(str::trim)
        .and_then(|h| h.strip_prefix('"'))
        .and_then(|h| h.strip_suffix('"'))
}

#[cfg(test)]
mod tests {

    #[test]
    fn define_value_reads_the_first_matching_line() {
        let code = "// x\n#define A 12\n#define AB 3\n#define A 99\n#define C 4x\n#define D\n";
        assert_eq!(define_value(code, b"#define A "), Some(12));
        assert_eq!(define_value(code, b"#define AB "), Some(3));
        assert_eq!(define_value(code, b"#define C "), None);
        assert_eq!(define_value(code, b"#define D "), None);
        assert_eq!(define_value(code, b"#define E "), None);
        assert_eq!(define_value("  #define A 1\n", b"#define A "), None);
        assert_eq!(define_value("#define A 7", b"#define A "), Some(7));
        assert_eq!(
            define_value("#define A 99999999999999999999999", b"#define A "),
            None
        );
    }

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
        assert!(text.starts_with("// ---- begin common.cuh\n"));
        assert!(text.ends_with("void t() {}\n"));
        assert!(s.lists("t") && !s.lists("u"));
    }

    #[test]
    fn includes_in_headers_are_spliced_recursively_and_once() {
        // `outer.h` includes `inner.h`; the source includes `inner.h` again after `outer.h`,
        // and `outer.h` a second time.
        const TABLE: &[(&str, &str)] = &[
            ("inner.h", "int inner;\n"),
            ("outer.h", "#include \"inner.h\"\nint outer;\n"),
        ];
        let code = "#include \"outer.h\"\n#include \"inner.h\"\n#include \"outer.h\"\n\
                    #include \"other.h\"\nint main;\n";
        let mut out = String::new();
        let mut seen = Vec::new();
        splice(code, TABLE, &mut out, &mut seen);
        let want = "// ---- begin outer.h\n\
                    // ---- begin inner.h\n\
                    int inner;\n\
                    \n// ---- end inner.h\n\
                    int outer;\n\
                    \n// ---- end outer.h\n\
                    #include \"other.h\"\n\
                    int main;\n";
        assert_eq!(out, want);
        assert_eq!(seen, ["outer.h", "inner.h"]);
    }

    #[test]
    fn a_header_can_be_replaced() {
        let s = KernelSource {
            file: "t.cu",
            code: "#include \"common.cuh\"\nextern \"C\" __global__ void t() {}\n",
            symbols: &["t"],
        };
        let headers: Vec<_> = HEADERS
            .iter()
            .map(|&(n, t)| (n, if n == "port.cuh" { "int port;\n" } else { t }))
            .collect();
        let text = s.spliced_with(&headers);
        assert!(text.contains("// ---- begin port.cuh\nint port;\n\n// ---- end port.cuh\n"));
        assert!(!text.contains("#define KY_LANES") && text.contains("ky_warp_sum"));
        assert_eq!(s.spliced_with(HEADERS), s.spliced());
    }

    #[test]
    fn no_known_include_is_left_and_no_header_is_spliced_twice() {
        let s = KernelSource {
            file: "t.cu",
            code: "#include \"common.cuh\"\n#include \"rows.cuh\"\n#include \"common.cuh\"\n\
                   extern \"C\" __global__ void t() {}\n",
            symbols: &["t"],
        };
        let text = s.spliced();
        for (name, _) in HEADERS {
            let include = format!("#include \"{name}\"");
            assert!(!text.lines().any(|l| l.trim() == include), "{name}");
            let begin = format!("// ---- begin {name}\n");
            assert!(text.matches(&begin).count() <= 1, "{name}");
        }
        let at = |name: &str| text.find(&format!("// ---- begin {name}\n"));
        assert!(at("common.cuh").is_some() && at("common.cuh") < at("rows.cuh"));
    }
}
