//! A CPU emulator for the shared GPU kernel sources (`crates/kernels/kernels/*.cu`), for tests:
//! it compiles a source's exact text with the host C++ compiler and runs its entry points
//! through [`Launch`], so the real launch sequences (`silu_mul::launch(&emulator, ...)`) run the
//! real kernel code on host memory. See `crates/kernels/kernels/README.md`, "Running the
//! kernels on the CPU", for what it emulates and what it does not.
//!
//! How: [`Emulator::build`] writes `prelude.hpp` (the CUDA dialect: qualifiers, `threadIdx` &
//! co., intrinsics, shuffles, atomics), then the source spliced as NVRTC gets it but with
//! `port_emu.hpp` in place of `port.cuh` (and `mma_emu.hpp` of `mma.cuh`) and every `extern
//! __shared__` array turned into a pointer to the block's dynamic shared memory, then
//! `runtime.hpp` (the scheduler that runs every GPU thread of a block as a fiber) and one
//! exported trampoline per listed entry point;
//! compiles it with `g++ -std=c++20 -O2 -shared -fPIC -ffp-contract=off` and opens it. A launch
//! calls the trampoline with the grid, the block, the dynamic shared memory and the parameter
//! pointers; it returns when every block has run (the stream is ignored).
//!
//! Use from another crate's tests (integration tests cannot share modules across crates):
//! `#[path = "../../kernels/tests/emu/mod.rs"] mod emu;` with `kernelyard-kernels`,
//! `kernelyard-core`, `libloading` and `tempfile` as dev-dependencies (this module uses
//! nothing else).
//!
//! Environment: `KERNELYARD_EMU_CXX` (the compiler, default `g++`), `KERNELYARD_EMU_WORKERS`
//! (OS threads that run blocks, default the CPU count up to 8), `KERNELYARD_EMU_NO_CACHE`
//! (set: always compile; otherwise builds are kept under the test target's temporary directory,
//! named by a hash of the compiler, its version, the flags and the text).
#![allow(dead_code)] // each test binary uses part of it

use std::collections::HashMap;
use std::ffi::{c_char, c_void};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use kernelyard_core::{Error, Stream};
use kernelyard_kernels::launch::{Dims, Launch};
use kernelyard_kernels::source::{KernelSource, HEADERS};

/// The CUDA dialect for the host compiler, pasted first.
pub const PRELUDE: &str = include_str!("prelude.hpp");
/// `port.cuh` for the host compiler, spliced in its place.
pub const PORT_EMU: &str = include_str!("port_emu.hpp");
/// `mma.cuh` (cp.async, ldmatrix, mma.sync) for the host compiler, spliced in its place.
pub const MMA_EMU: &str = include_str!("mma_emu.hpp");
/// The block scheduler and launch loop, pasted after the source.
pub const RUNTIME: &str = include_str!("runtime.hpp");

/// Flags every build gets (before the caller's extra flags).
pub const CXXFLAGS: &[&str] = &[
    "-std=c++20",
    "-O2",
    "-shared",
    "-fPIC",
    "-pthread",
    // Every f32 operation rounded on its own, as `__fadd_rn` & co. and `ky_fadd_rn` promise.
    "-ffp-contract=off",
    "-fno-math-errno",
    // The kernels cast `void*` to the dtype's storage type and vectors to words, as GPU code
    // does.
    "-fno-strict-aliasing",
    "-fvisibility=hidden",
];

/// `ky_emu_entry_<symbol>(grid, block, shared_bytes, params, nparams, workers, err, errlen)`.
type Entry = unsafe extern "C" fn(
    *const u32,
    *const u32,
    u32,
    *const *mut c_void,
    usize,
    u32,
    *mut c_char,
    usize,
) -> i32;

/// What went wrong in an emulated launch (the source of [`Error::Device`]).
#[derive(Debug)]
pub struct EmuError(pub String);

impl fmt::Display for EmuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EmuError {}

fn emu_error(msg: String) -> Error {
    Error::Device {
        backend: "emulator",
        source: Box::new(EmuError(msg)),
    }
}

/// A kernel source compiled for the CPU; [`Launch`] runs its listed entry points.
pub struct Emulator {
    source: &'static KernelSource,
    entries: HashMap<&'static str, Entry>,
    workers: u32,
    library: PathBuf,
    // The entries point into it.
    _lib: libloading::Library,
}

impl fmt::Debug for Emulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emulator")
            .field("source", &self.source.file)
            .field("library", &self.library)
            .field("workers", &self.workers)
            .finish()
    }
}

impl Emulator {
    /// Compiles `source` for the CPU (see the module docs) and loads it. Fails, saying why,
    /// when the compiler is missing or rejects the text (whose path the message gives).
    pub fn build(source: &'static KernelSource) -> Result<Emulator, String> {
        let cxx = std::env::var("KERNELYARD_EMU_CXX").unwrap_or_else(|_| "g++".to_string());
        Self::build_with(source, &cxx, &[])
    }

    /// [`build`](Self::build) with the compiler `cxx` and more flags after [`CXXFLAGS`] (`-O0
    /// -g` to debug, `-DKY_EMU_UCONTEXT` for the portable context switch,
    /// `-DKY_EMU_STACK_BYTES=...`).
    pub fn build_with(
        source: &'static KernelSource,
        cxx: &str,
        extra: &[&str],
    ) -> Result<Emulator, String> {
        let text = emulation_source(source)?;
        let flags: Vec<&str> = CXXFLAGS.iter().chain(extra).copied().collect();
        let stem = source.file.trim_end_matches(".cu");
        // The library, and the temporary directory it is in when not cached.
        let (library, _tmp): (PathBuf, Option<tempfile::TempDir>) = match cache_dir() {
            Some(dir) => {
                let version = compiler_version(cxx)?;
                let key = fnv1a(&[cxx, &version, &flags.join(" "), &text]);
                let path = dir.join(format!("{stem}-{key:016x}.so"));
                if !path.exists() {
                    std::fs::create_dir_all(&dir)
                        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                    let tmp = tempfile::Builder::new()
                        .prefix("build-")
                        .tempdir_in(&dir)
                        .map_err(|e| {
                            format!("cannot create a directory in {}: {e}", dir.display())
                        })?;
                    let (tmp, so) = compile(cxx, &flags, &text, stem, tmp)?;
                    // Atomic: a concurrent build of the same text writes the same bytes.
                    std::fs::rename(&so, &path)
                        .map_err(|e| format!("cannot move {} into the cache: {e}", so.display()))?;
                    drop(tmp);
                }
                (path, None)
            }
            None => {
                let tmp = tempfile::Builder::new()
                    .prefix("kernelyard-emu-")
                    .tempdir()
                    .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
                let (tmp, so) = compile(cxx, &flags, &text, stem, tmp)?;
                (so, Some(tmp))
            }
        };
        // The temporary directory goes once the library is open (it stays mapped).
        Self::open(source, &library)
    }

    /// The emulator of `source` shared by every test of this process, built on first use.
    pub fn shared(source: &'static KernelSource) -> Result<&'static Emulator, String> {
        type Slot = Arc<OnceLock<Result<&'static Emulator, String>>>;
        static BUILT: Mutex<Vec<(usize, Slot)>> = Mutex::new(Vec::new());
        let key = source as *const KernelSource as usize;
        let slot = {
            let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
            match built.iter().find(|(k, _)| *k == key) {
                Some((_, s)) => s.clone(),
                None => {
                    let s = Slot::default();
                    built.push((key, s.clone()));
                    s
                }
            }
        };
        slot.get_or_init(|| Emulator::build(source).map(|e| &*Box::leak(Box::new(e))))
            .clone()
    }

    fn open(source: &'static KernelSource, library: &Path) -> Result<Emulator, String> {
        // SAFETY: the library is the one compiled from the emulation source: its initialisers
        // (thread_local and static variables of trivial types, libstdc++) have no preconditions.
        let lib = unsafe { libloading::Library::new(library) }
            .map_err(|e| format!("cannot load {}: {e}", library.display()))?;
        let mut entries = HashMap::new();
        for &symbol in source.symbols {
            let name = format!("ky_emu_entry_{symbol}");
            // SAFETY: `KY_EMU_ENTRY` (runtime.hpp) defines every `ky_emu_entry_*` with the
            // signature of `Entry`.
            let f: Entry = unsafe { lib.get::<Entry>(name.as_bytes()) }
                .map(|s| *s)
                .map_err(|e| format!("{}: no {name}: {e}", library.display()))?;
            entries.insert(symbol, f);
        }
        let workers = std::env::var("KERNELYARD_EMU_WORKERS")
            .ok()
            .and_then(|w| w.parse::<u32>().ok())
            .filter(|&w| w > 0)
            .unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, |n| n.get().min(8) as u32)
            });
        Ok(Emulator {
            source,
            entries,
            workers,
            library: library.to_path_buf(),
            _lib: lib,
        })
    }

    /// The source it runs.
    pub fn source(&self) -> &'static KernelSource {
        self.source
    }

    /// The OS threads that run a launch's blocks.
    pub fn workers(&self) -> u32 {
        self.workers
    }

    /// The same library, run by `workers` OS threads (1: blocks in order, one at a time).
    pub fn with_workers(mut self, workers: u32) -> Emulator {
        self.workers = workers.max(1);
        self
    }
}

impl Launch for Emulator {
    unsafe fn launch(
        &self,
        _stream: &Stream,
        source: &'static KernelSource,
        symbol: &'static str,
        dims: Dims,
        params: &mut [*mut c_void],
    ) -> Result<(), Error> {
        if !std::ptr::eq(source, self.source) {
            return Err(emu_error(format!(
                "this emulator runs kernels/{}, not kernels/{} (build one per source)",
                self.source.file, source.file
            )));
        }
        let entry = self.entries.get(symbol).ok_or_else(|| {
            emu_error(format!(
                "{symbol} is not listed in kernels/{}'s symbols",
                source.file
            ))
        })?;
        check_dims(&dims).map_err(|e| emu_error(format!("{symbol}: {e}")))?;
        let grid = [dims.grid.0, dims.grid.1, dims.grid.2];
        let block = [dims.block.0, dims.block.1, dims.block.2];
        let mut err = vec![0u8; 2048];
        // SAFETY: `entry` has the signature of `Entry`; grid and block hold 3 values each, the
        // parameter array `params.len()` pointers (the trampoline checks the count against the
        // entry point's), and `err` `err.len()` bytes. The caller's contract (`Launch::launch`)
        // makes the parameters match the entry point's types and every pointer among them
        // valid host memory for what the kernel reads and writes.
        let rc = unsafe {
            entry(
                grid.as_ptr(),
                block.as_ptr(),
                dims.shared_bytes,
                params.as_ptr(),
                params.len(),
                self.workers,
                err.as_mut_ptr().cast(),
                err.len(),
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let end = err.iter().position(|&b| b == 0).unwrap_or(err.len());
        Err(emu_error(format!(
            "{symbol} (grid {:?}, block {:?}, {} bytes of dynamic shared memory): {}",
            dims.grid,
            dims.block,
            dims.shared_bytes,
            String::from_utf8_lossy(&err[..end])
        )))
    }
}

/// The limits a CUDA launch has on every device.
fn check_dims(d: &Dims) -> Result<(), String> {
    let (bx, by, bz) = d.block;
    let threads = u64::from(bx) * u64::from(by) * u64::from(bz);
    let (gx, gy, gz) = d.grid;
    if threads == 0 || threads > 1024 || bx > 1024 || by > 1024 || bz > 64 {
        return Err(format!(
            "invalid block {:?} (at most 1024 threads, z at most 64)",
            d.block
        ));
    }
    if gx == 0 || gy == 0 || gz == 0 || gx > i32::MAX as u32 || gy > 65535 || gz > 65535 {
        return Err(format!(
            "invalid grid {:?} (x in 1 ..= 2^31 - 1, y and z in 1 ..= 65535)",
            d.grid
        ));
    }
    Ok(())
}

/// The translation unit the host compiler gets for `source` (see the module docs).
pub fn emulation_source(source: &KernelSource) -> Result<String, String> {
    if !HEADERS.iter().any(|(n, _)| *n == "port.cuh") {
        return Err("kernelyard_kernels::source::HEADERS has no port.cuh to replace".into());
    }
    let headers: Vec<(&'static str, &'static str)> = HEADERS
        .iter()
        .map(|&(n, t)| match n {
            "port.cuh" => (n, PORT_EMU),
            "mma.cuh" => (n, MMA_EMU),
            _ => (n, t),
        })
        .collect();
    let kernel = rewrite_extern_shared(&source.spliced_with(&headers))
        .map_err(|e| format!("kernels/{}: {e}", source.file))?;
    let mut out = String::with_capacity(PRELUDE.len() + kernel.len() + RUNTIME.len() + 4096);
    out.push_str(&format!(
        "// kernels/{} for the CPU emulator (crates/kernels/tests/emu/mod.rs).\n",
        source.file
    ));
    out.push_str("// ---- begin prelude.hpp\n");
    out.push_str(PRELUDE);
    out.push_str("// ---- end prelude.hpp\n");
    out.push_str(&kernel);
    out.push_str("// ---- begin runtime.hpp\n");
    out.push_str(RUNTIME);
    out.push_str("// ---- end runtime.hpp\n");
    for symbol in source.symbols {
        if symbol.is_empty()
            || !symbol
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(format!("`{symbol}` is not a C identifier"));
        }
        out.push_str(&format!("KY_EMU_ENTRY({symbol})\n"));
    }
    Ok(out)
}

/// Replaces each `extern __shared__ T name[];` (inside a function: the dynamic shared memory of
/// the launch) by `T* const name = ...;`, a pointer to the block's buffer. Comments and string
/// literals are skipped; a declaration at file scope is refused (the emulator has none).
pub fn rewrite_extern_shared(text: &str) -> Result<String, String> {
    const KEY: &str = "extern __shared__";
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut i, mut last, mut depth) = (0usize, 0usize, 0i64);
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                i = text[i..].find('\n').map_or(b.len(), |n| i + n);
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = text[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2);
                continue;
            }
            q @ (b'"' | b'\'') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' => depth += 1,
            b'}' => depth -= 1,
            b'e' if text[i..].starts_with(KEY)
                && (i == 0 || !ident(b[i - 1]))
                && !b.get(i + KEY.len()).is_some_and(|&c| ident(c)) =>
            {
                let line = text[..i].matches('\n').count() + 1;
                let end = text[i..]
                    .find(';')
                    .ok_or_else(|| format!("line {line}: `extern __shared__` without `;`"))?;
                let decl = &text[i + KEY.len()..i + end];
                if depth == 0 {
                    return Err(format!(
                        "line {line}: `extern __shared__{decl};` at file scope: the emulator \
                         supports dynamic shared memory declared inside a function"
                    ));
                }
                let (ty, name) = split_array_decl(decl)
                    .ok_or_else(|| format!("line {line}: cannot parse `extern __shared__{decl};` (expected `T name[]`)"))?;
                out.push_str(&text[last..i]);
                out.push_str(&format!(
                    "{ty}* const {name} = reinterpret_cast<{ty}*>(::ky_emu::dyn_shared());"
                ));
                i += end + 1;
                last = i;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(&text[last..]);
    Ok(out)
}

/// `(T, name)` of ` T name[]` (alignment specifiers dropped from T: the buffer is 128-byte
/// aligned).
fn split_array_decl(decl: &str) -> Option<(String, String)> {
    let d = decl
        .trim()
        .strip_suffix(']')?
        .trim_end()
        .strip_suffix('[')?
        .trim_end();
    let start = d
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(0, |p| p + 1);
    let (ty, name) = (&d[..start], &d[start..]);
    let mut ty = ty.to_string();
    for spec in ["__align__", "alignas"] {
        while let Some(p) = ty.find(spec) {
            let close = ty[p..].find(')')?;
            ty.replace_range(p..p + close + 1, "");
        }
    }
    let ty = ty.split_whitespace().collect::<Vec<_>>().join(" ");
    (!ty.is_empty() && !name.is_empty() && !name.starts_with(|c: char| c.is_ascii_digit()))
        .then(|| (ty, name.to_string()))
}

/// Writes `text` into `dir` and compiles it into `<dir>/<stem>.so`, returned with `dir`. On
/// failure the directory is kept and the message names it.
fn compile(
    cxx: &str,
    flags: &[&str],
    text: &str,
    stem: &str,
    dir: tempfile::TempDir,
) -> Result<(tempfile::TempDir, PathBuf), String> {
    let cpp = dir.path().join(format!("{stem}.cpp"));
    let so = dir.path().join(format!("{stem}.so"));
    std::fs::write(&cpp, text).map_err(|e| format!("cannot write {}: {e}", cpp.display()))?;
    let output = Command::new(cxx)
        .args(flags)
        .arg("-o")
        .arg(&so)
        .arg(&cpp)
        .output()
        .map_err(|e| {
            format!(
                "cannot run the C++ compiler `{cxx}` ({e}): the kernel emulator needs g++ \
                 (Debian: apt-get install g++) or a compiler named by KERNELYARD_EMU_CXX"
            )
        })?;
    if !output.status.success() {
        let kept = dir.keep();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let head: Vec<&str> = stderr.lines().take(60).collect();
        return Err(format!(
            "`{cxx} {} -o {} {}` failed ({}); the source is kept in {}:\n{}",
            flags.join(" "),
            so.display(),
            cpp.display(),
            output.status,
            kept.display(),
            head.join("\n")
        ));
    }
    Ok((dir, so))
}

/// `<compiler> --version`'s first line.
fn compiler_version(cxx: &str) -> Result<String, String> {
    let out = Command::new(cxx).arg("--version").output().map_err(|e| {
        format!(
            "cannot run the C++ compiler `{cxx}` ({e}): the kernel emulator needs g++ \
             (Debian: apt-get install g++) or a compiler named by KERNELYARD_EMU_CXX"
        )
    })?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_string())
}

/// The build cache: `kernelyard-emu/` under the test target's temporary directory (integration
/// tests only), unless `KERNELYARD_EMU_NO_CACHE` is set.
fn cache_dir() -> Option<PathBuf> {
    if std::env::var_os("KERNELYARD_EMU_NO_CACHE").is_some() {
        return None;
    }
    option_env!("CARGO_TARGET_TMPDIR").map(|d| Path::new(d).join("kernelyard-emu"))
}

/// 64-bit FNV-1a over the parts, each followed by a zero byte.
fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &c in p.as_bytes().iter().chain(&[0u8]) {
            h = (h ^ u64::from(c)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}
