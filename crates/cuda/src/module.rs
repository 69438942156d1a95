//! The kernel pipeline: NVRTC compiles a kernel source (`crates/kernels/kernels/` or
//! `crates/cuda/kernels/`) for a device's exact architecture; the cubin is cached on disk and
//! the loaded module in memory.
//!
//! - **Target.** `sm_XY` for the device's compute capability, with the arch-specific suffix
//!   (`sm_90a`, `sm_100a`) on the families that have one, so Hopper code may use wgmma and TMA.
//!   The cubin runs only on that capability, which is the device it was compiled for.
//! - **Options.** [`OPTIONS`]: C++17 and line info (for compute-sanitizer reports); no
//!   fast-math flag, so results do not depend on a global switch.
//! - **Disk cache.** [`kernelyard_kernels::cache`] (shared with the ROCm backend) names,
//!   stores and verifies the cubins. Keyed by the spliced source, the target, the options, the
//!   NVRTC version and a format version; the file name also carries the source name and the
//!   target (`rms_norm-sm_90a-<hash>.cubin`). The directory is `KERNELYARD_CACHE_DIR`, else
//!   `$XDG_CACHE_HOME/kernelyard`, else `~/.cache/kernelyard`, only ever an absolute path;
//!   `KERNELYARD_CACHE_DIR=off` (any case) disables it. The directory is created 0700 and not
//!   used when it or an entry is another user's or writable by others; every entry carries its
//!   key's and its payload's SHA-256, checked before the bytes reach the driver; a corrupt or
//!   foreign entry is deleted and recompiled, a good entry the driver fails to load (out of
//!   memory, say) is kept and the cubin compiled afresh. Why the cache was not used is logged
//!   once per process (`kernelyard_kernels::cache::notes`); it costs a compile, never a
//!   failure. Threat model: `docs/CACHE_SECURITY.md`.
//! - **Memory cache.** Per device, one loaded module per source and one function handle per
//!   entry point (`kernelyard_kernels::cache::ModuleMap`): each source has a lock of its own,
//!   so a source compiles once and a first compile never stalls launches of other sources.
//!   The device's cache is made by the probe with what loading needs (the device's compute
//!   capability, the driver and NVRTC versions); its callers (`device`, `launch`) make the
//!   device's context current first. This module knows nothing of the probe.

use std::collections::HashMap;
use std::ffi::{c_int, c_void, CString};
use std::sync::Mutex;
use std::time::Instant;

use cudarc::driver::{result, sys};
use cudarc::nvrtc::sys as nvrtc;
use kernelyard_core::{Error, Sm, Stream, Version};
use kernelyard_kernels::cache::{self, load_or_compile, CacheKey, DiskEntry, ModuleMap};

use crate::error::{driver_code, CudaError};
use crate::source::KernelSource;

/// The NVRTC library the backend loads: [`crate::libs::NVRTC_LIB`], for the major version of
/// cudarc's bindings (`libnvrtc.so.13`: the CUDA 13 toolkit's, or PyPI's `nvidia-cuda-nvrtc`).
pub const NVRTC_LIB: &str = crate::libs::NVRTC_LIB;

/// NVRTC options besides the target.
pub const OPTIONS: &[&str] = &["-std=c++17", "-lineinfo"];

/// Bump when the cache's file format or key changes. (2: entries carry a verified header;
/// files of format 1, bare cubins, are never read.)
const CACHE_FORMAT: &str = "kernelyard-cubin-2";

/// The NVRTC target for a compute capability: `sm_90a` / `sm_100a` on the families with
/// arch-specific instructions, `sm_XY` otherwise.
pub fn target_for(sm: Sm) -> String {
    let suffix = if sm.major == 9 || sm.major == 10 {
        "a"
    } else {
        ""
    };
    format!("sm_{}{}{suffix}", sm.major, sm.minor)
}

/// What NVRTC produced for one source and target.
#[derive(Debug)]
pub struct Compiled {
    /// The cubin (what the driver loads).
    pub cubin: Vec<u8>,
    /// The PTX (for inspection: entry points, vector widths).
    pub ptx: String,
    /// The compiler log (warnings), usually empty.
    pub log: String,
}

impl Compiled {
    /// The `.entry` names in the PTX.
    pub fn entries(&self) -> Vec<&str> {
        self.ptx
            .lines()
            .filter_map(|l| {
                let l = l.trim_start();
                let rest = l
                    .strip_prefix(".visible .entry ")
                    .or_else(|| l.strip_prefix(".entry "))?;
                Some(rest.split(['(', ' ']).next().unwrap_or(rest))
            })
            .collect()
    }
}

fn nvrtc_present() -> Result<(), CudaError> {
    if crate::libs::CudaLib::Nvrtc.is_present() {
        Ok(())
    } else {
        Err(CudaError::LibraryMissing {
            lib: NVRTC_LIB,
            hint: crate::libs::NVRTC_HINT,
        })
    }
}

fn nvrtc_call(call: &'static str, r: nvrtc::nvrtcResult) -> Result<(), CudaError> {
    r.result().map_err(|e| CudaError::Nvrtc {
        call,
        code: format!("{:?}", e.0),
    })
}

/// NVRTC's version.
pub fn nvrtc_version() -> Result<Version, CudaError> {
    nvrtc_present()?;
    let (mut major, mut minor): (c_int, c_int) = (0, 0);
    // SAFETY: the library is present; both are valid out-pointers.
    nvrtc_call("nvrtcVersion", unsafe {
        nvrtc::nvrtcVersion(&mut major, &mut minor)
    })?;
    Ok(Version::new(major as u32, minor as u32, 0))
}

/// Compiles `source` for `target` (`sm_90a`) with [`OPTIONS`]. Needs libnvrtc, not a GPU.
pub fn compile(source: &KernelSource, target: &str) -> Result<Compiled, CudaError> {
    let version = nvrtc_version()?;
    let text = CString::new(source.spliced()).map_err(|_| CudaError::Misuse {
        what: format!("kernels/{} contains a NUL byte", source.file),
    })?;
    let name = CString::new(source.file).unwrap_or_default();
    let prog = cudarc::nvrtc::result::create_program(&text, Some(&name)).map_err(|e| {
        CudaError::Nvrtc {
            call: "nvrtcCreateProgram",
            code: format!("{:?}", e.0),
        }
    })?;
    let out = compile_program(prog, source.file, target, version);
    // SAFETY: `prog` came from `create_program` and is destroyed once.
    let _ = unsafe { cudarc::nvrtc::result::destroy_program(prog) };
    out
}

fn compile_program(
    prog: nvrtc::nvrtcProgram,
    file: &'static str,
    target: &str,
    nvrtc_version: Version,
) -> Result<Compiled, CudaError> {
    let mut options = vec![format!("--gpu-architecture={target}")];
    options.extend(OPTIONS.iter().map(|s| s.to_string()));
    // SAFETY: `prog` is a live program from `create_program`.
    let compiled = unsafe { cudarc::nvrtc::result::compile_program(prog, &options) };
    // SAFETY: as above.
    let log = unsafe { cudarc::nvrtc::result::get_program_log(prog) }
        .map(|chars| c_chars_to_string(&chars))
        .unwrap_or_default();
    if compiled.is_err() {
        return Err(CudaError::Compile {
            file,
            arch: target.to_owned(),
            nvrtc: nvrtc_version,
            log,
        });
    }
    // SAFETY: as above; the program compiled.
    let ptx = unsafe { cudarc::nvrtc::result::get_ptx(prog) }
        .map(|chars| c_chars_to_string(&chars))
        .map_err(|e| CudaError::Nvrtc {
            call: "nvrtcGetPTX",
            code: format!("{:?}", e.0),
        })?;
    let mut size = 0usize;
    // SAFETY: as above; `size` is a valid out-pointer.
    nvrtc_call("nvrtcGetCUBINSize", unsafe {
        nvrtc::nvrtcGetCUBINSize(prog, &mut size)
    })?;
    let mut cubin = vec![0u8; size];
    // SAFETY: `cubin` has the size NVRTC reported.
    nvrtc_call("nvrtcGetCUBIN", unsafe {
        nvrtc::nvrtcGetCUBIN(prog, cubin.as_mut_ptr().cast())
    })?;
    Ok(Compiled { cubin, ptx, log })
}

fn c_chars_to_string(chars: &[std::ffi::c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .map(|&c| c as u8)
        .take_while(|&b| b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).trim_end().to_owned()
}

/// The disk cache's file name for a source compiled for `target` by NVRTC `nvrtc`
/// ([`kernelyard_kernels::cache::cache_file_name`] with this backend's format, [`OPTIONS`] and
/// the `cubin` extension).
pub fn cache_file_name(source: &KernelSource, target: &str, nvrtc: Version) -> String {
    let compiler = nvrtc.to_string();
    cache::cache_file_name(source, &cache_key(target, &compiler))
}

/// The disk cache's key for a cubin of `target` compiled by NVRTC `compiler`.
fn cache_key<'a>(target: &'a str, compiler: &'a str) -> CacheKey<'a> {
    CacheKey {
        format: CACHE_FORMAT,
        target,
        options: OPTIONS,
        compiler,
        ext: "cubin",
    }
}

/// Where a module came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Already loaded in this process.
    Memory,
    /// Read from the disk cache.
    Disk,
    /// Compiled by NVRTC (and written to the disk cache).
    Compiled,
}

/// How a module was obtained, and how long it took.
#[derive(Clone, Copy, Debug)]
pub struct LoadReport {
    /// Where it came from.
    pub origin: Origin,
    /// Milliseconds to get it loaded.
    pub ms: f64,
}

/// A module loaded in one device's context.
pub(crate) struct Loaded {
    module: sys::CUmodule,
    file: &'static str,
    target: String,
    /// Entry point -> (function, dynamic shared memory limit set so far).
    functions: Mutex<HashMap<&'static str, (usize, u32)>>,
}

// SAFETY: module and function handles may be used from any thread while their context is
// current; the function map is behind a mutex.
unsafe impl Send for Loaded {}
// SAFETY: as above.
unsafe impl Sync for Loaded {}

/// One device's loaded modules, by source file, with what loading one needs.
pub(crate) struct ModuleCache {
    /// The device's compute capability (the target is [`target_for`] it).
    sm: Sm,
    /// The driver's CUDA version (for the error when it cannot load NVRTC's output).
    driver: Version,
    /// NVRTC's version (part of the disk cache's key).
    nvrtc: Version,
    loaded: ModuleMap<Loaded>,
}

impl ModuleCache {
    /// An empty cache for a device of compute capability `sm`, with the probed driver and
    /// NVRTC versions.
    pub(crate) fn new(sm: Sm, driver: Version, nvrtc: Version) -> Self {
        ModuleCache {
            sm,
            driver,
            nvrtc,
            loaded: ModuleMap::default(),
        }
    }

    /// Loads `source` bypassing the memory cache (disk cache, else NVRTC), and unloads it
    /// again: how long a first launch in a fresh process waits for this source. The caller
    /// made the device's context current.
    pub(crate) fn load_report(&self, source: &'static KernelSource) -> Result<LoadReport, Error> {
        let start = Instant::now();
        let (loaded, origin) = self.load(source)?;
        let ms = start.elapsed().as_secs_f64() * 1e3;
        // SAFETY: the module was just loaded in the current context and nothing else uses it.
        unsafe { result::module::unload(loaded.module) }.map_err(|e| CudaError::Driver {
            call: "cuModuleUnload",
            code: driver_code(e),
        })?;
        Ok(LoadReport { origin, ms })
    }

    /// Loads `source` (through the caches, as a launch would) and looks up every entry point
    /// it lists: an error names the first one missing. The caller made the device's context
    /// current.
    pub(crate) fn load_symbols(&self, source: &'static KernelSource) -> Result<(), Error> {
        for &symbol in source.symbols {
            self.function(source, symbol, 0, None)?;
        }
        Ok(())
    }

    fn load(&self, source: &'static KernelSource) -> Result<(Loaded, Origin), Error> {
        let start = Instant::now();
        let got = self.load_untraced(source);
        let ms = start.elapsed().as_secs_f64() * 1e3;
        match &got {
            Ok((_, origin)) => tracing::info!(
                file = source.file,
                target = %target_for(self.sm),
                origin = ?origin,
                ms,
                "kernelyard: module loaded"
            ),
            Err(e) => tracing::warn!(
                file = source.file,
                target = %target_for(self.sm),
                error = %e,
                ms,
                "kernelyard: module failed to load"
            ),
        }
        got
    }

    fn load_untraced(&self, source: &'static KernelSource) -> Result<(Loaded, Origin), Error> {
        let target = target_for(self.sm);
        let compiler = self.nvrtc.to_string();
        let mut entry = DiskEntry::open(source, &cache_key(&target, &compiler));
        let got = load_or_compile(
            &mut entry,
            load_image,
            || compile(source, &target).map(|c| c.cubin),
            |code| CudaError::ModuleLoad {
                file: source.file,
                arch: target.clone(),
                driver: self.driver,
                nvrtc: self.nvrtc,
                code,
            },
        )?;
        let origin = if got.from_disk {
            Origin::Disk
        } else {
            Origin::Compiled
        };
        Ok((loaded(got.module, source, &target), origin))
    }
}

fn loaded(module: sys::CUmodule, source: &'static KernelSource, target: &str) -> Loaded {
    Loaded {
        module,
        file: source.file,
        target: target.to_owned(),
        functions: Mutex::new(HashMap::new()),
    }
}

fn load_image(bytes: &[u8]) -> Result<sys::CUmodule, String> {
    // The driver reads the image as an ELF whose sections must be aligned: copy it into
    // 8-byte aligned storage.
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    // SAFETY: `words` has at least `bytes.len()` bytes; the two do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), words.as_mut_ptr().cast(), bytes.len())
    };
    // SAFETY: a context is current (the caller bound the device) and the image is a complete
    // cubin buffer that outlives the call (the driver copies it).
    unsafe { result::module::load_data(words.as_ptr().cast::<c_void>()) }.map_err(driver_code)
}

impl ModuleCache {
    /// The function `symbol` of `source` on this cache's device (whose context the caller made
    /// current), with its dynamic shared memory limit raised to at least `shared_bytes`.
    ///
    /// With `launching_on`, a module not loaded yet is compiled and loaded only if that stream
    /// is not capturing a graph ([`crate::capture`]'s guard); else the call fails with
    /// `CaptureForbidden` and loads nothing.
    pub(crate) fn function(
        &self,
        source: &'static KernelSource,
        symbol: &'static str,
        shared_bytes: u32,
        launching_on: Option<&Stream>,
    ) -> Result<sys::CUfunction, Error> {
        if !source.lists(symbol) {
            return Err(CudaError::UnlistedSymbol {
                file: source.file,
                symbol,
            }
            .into());
        }
        let module = self.loaded.get_or_load(source.file, || {
            if let Some(stream) = launching_on {
                crate::capture::guard(stream, || {
                    format!("compiling and loading kernels/{}", source.file)
                })?;
            }
            self.load(source).map(|(m, _)| m)
        })?;
        module.function(symbol, shared_bytes)
    }
}

impl Loaded {
    fn function(&self, symbol: &'static str, shared_bytes: u32) -> Result<sys::CUfunction, Error> {
        let mut fns = self.functions.lock().unwrap_or_else(|e| e.into_inner());
        let entry = match fns.get(symbol) {
            Some(&e) => e,
            None => {
                let name = CString::new(symbol).unwrap_or_default();
                // SAFETY: the module is loaded in the current context.
                let f =
                    unsafe { result::module::get_function(self.module, name) }.map_err(|_| {
                        CudaError::MissingSymbol {
                            file: self.file,
                            arch: self.target.clone(),
                            symbol,
                        }
                    })?;
                fns.insert(symbol, (f as usize, 48 * 1024));
                (f as usize, 48 * 1024)
            }
        };
        let f = entry.0 as sys::CUfunction;
        if shared_bytes > entry.1 {
            // SAFETY: `f` is a live function of a loaded module; the value is a byte count the
            // caller checked against the device's opt-in limit.
            unsafe {
                result::function::set_function_attribute(
                    f,
                    sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    shared_bytes as c_int,
                )
            }
            .map_err(|e| CudaError::Driver {
                call: "cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)",
                code: driver_code(e),
            })?;
            fns.insert(symbol, (entry.0, shared_bytes));
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_use_the_arch_specific_suffix_on_hopper_and_blackwell() {
        assert_eq!(target_for(Sm::new(7, 5)), "sm_75");
        assert_eq!(target_for(Sm::new(8, 9)), "sm_89");
        assert_eq!(target_for(Sm::new(9, 0)), "sm_90a");
        assert_eq!(target_for(Sm::new(10, 0)), "sm_100a");
        assert_eq!(target_for(Sm::new(12, 0)), "sm_120");
    }

    #[test]
    fn cache_names_change_with_every_part_of_the_key() {
        static A: KernelSource = KernelSource {
            file: "a.cu",
            code: "extern \"C\" __global__ void a() {}",
            symbols: &["a"],
        };
        static B: KernelSource = KernelSource {
            file: "a.cu",
            code: "extern \"C\" __global__ void a() { }",
            symbols: &["a"],
        };
        let v13 = Version::new(13, 0, 0);
        let base = cache_file_name(&A, "sm_90a", v13);
        assert!(base.starts_with("a-sm_90a-") && base.ends_with(".cubin"));
        assert_eq!(base, cache_file_name(&A, "sm_90a", v13));
        assert_ne!(base, cache_file_name(&B, "sm_90a", v13));
        assert_ne!(base, cache_file_name(&A, "sm_89", v13));
        assert_ne!(base, cache_file_name(&A, "sm_90a", Version::new(13, 1, 0)));
    }

    #[test]
    fn ptx_entries_are_parsed() {
        let c = Compiled {
            cubin: vec![],
            ptx: ".visible .entry rms_norm_f32(\n.param .u64 x\n)\n.entry other (\n".into(),
            log: String::new(),
        };
        assert_eq!(c.entries(), vec!["rms_norm_f32", "other"]);
    }
}
