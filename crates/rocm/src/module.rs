//! The kernel pipeline: hiprtc compiles a source of `crates/kernels/kernels/` for a device's
//! gfx architecture; the code object is cached on disk and the loaded module in memory. The
//! design is the CUDA backend's (`kernelyard_cuda::module`), with the shared parts in
//! `kernelyard_kernels`.
//!
//! - **Target.** `--offload-arch=<gfx>` with the bare architecture name (`gfx90a`, no
//!   `:sramecc+:xnack-` features): such a code object runs with either setting of those
//!   features. The wavefront size is the architecture's default (64 on gfx9, 32 on gfx10+);
//!   the kernels do not depend on it (see `crates/kernels/kernels/port.cuh`).
//! - **Options.** [`OPTIONS`]: C++17 and `-O3`; no fast-math flag.
//! - **hiprtc.** ROCm 5.x has it inside libamdhip64, ROCm 6+ in libhiprtc.so; both are found
//!   (`hip::hiprtc`). Compiles are serialised by a process-wide lock: ROCm 5.2's
//!   hiprtc crashed when two threads compiled at once (seen in this crate's compile-matrix
//!   test). Compiling needs no GPU, which is how CI compiles every source for
//!   gfx908, gfx90a and gfx1030 (`tests/compile_matrix.rs`).
//! - **Disk cache.** [`kernelyard_kernels::cache`], as in the CUDA backend: keyed by the spliced
//!   source, the target, the options, the hiprtc version and a format version
//!   (`rms_norm-gfx90a-<hash>.hsaco`), in the CUDA backend's directory (`KERNELYARD_CACHE_DIR`,
//!   else `$XDG_CACHE_HOME/kernelyard`, else `~/.cache/kernelyard`, only ever absolute; `off`
//!   in any case disables it). The directory is created 0700 and not used when it or an entry
//!   is another user's or writable by others; entries carry their key's and payload's SHA-256,
//!   checked before the bytes reach the runtime; a corrupt or foreign entry is deleted and
//!   recompiled, a good one the runtime fails to load is kept. A cache that cannot be used or
//!   written costs a recompile, never a failure. Threat model: `docs/CACHE_SECURITY.md`.
//! - **Memory cache.** Per device, one loaded module per source and one function handle per
//!   entry point (`kernelyard_kernels::cache::ModuleMap`): each source has a lock of its own,
//!   so a source compiles once and a first compile never stalls launches of other sources.

use kernelyard_core::{Gfx, Version};
use kernelyard_kernels::cache::{cache_file_name, CacheKey};
use kernelyard_kernels::source::KernelSource;

/// hiprtc options besides the target.
pub const OPTIONS: &[&str] = &["-std=c++17", "-O3"];

/// Bump when the cache's file format or key changes. (2: entries carry a verified header;
/// files of format 1, bare code objects, are never read.)
const CACHE_FORMAT: &str = "kernelyard-hsaco-2";

/// The hiprtc target for an architecture: its bare name (`gfx90a`).
pub fn target_for(gfx: Gfx) -> String {
    gfx.to_string()
}

/// What hiprtc produced for one source and target.
#[derive(Debug)]
pub struct Compiled {
    /// The code object (an AMDGPU ELF the runtime loads).
    pub code: Vec<u8>,
    /// The compiler log (warnings), usually empty.
    pub log: String,
}

impl Compiled {
    /// The kernels in the code object: the names of its `<name>.kd` kernel-descriptor symbols.
    pub fn kernels(&self) -> Vec<String> {
        kernel_names(&self.code)
    }
}

/// The names of the `<name>.kd` kernel descriptors in an AMDGPU code object's string table.
pub fn kernel_names(code: &[u8]) -> Vec<String> {
    let mut names: Vec<String> = code
        .split(|&b| b == 0)
        .filter_map(|s| s.strip_suffix(b".kd"))
        .filter(|s| {
            !s.is_empty()
                && s.iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
        })
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The disk cache's file name for a source compiled for `target` by hiprtc `hiprtc`.
pub fn cache_name(source: &KernelSource, target: &str, hiprtc: Version) -> String {
    let compiler = compiler_name(hiprtc);
    cache_file_name(source, &cache_key(target, &compiler))
}

/// The compiler part of the disk cache's key.
fn compiler_name(hiprtc: Version) -> String {
    format!("hiprtc {hiprtc}")
}

/// The disk cache's key for a code object of `target` compiled by `compiler`
/// ([`compiler_name`]).
fn cache_key<'a>(target: &'a str, compiler: &'a str) -> CacheKey<'a> {
    CacheKey {
        format: CACHE_FORMAT,
        target,
        options: OPTIONS,
        compiler,
        ext: "hsaco",
    }
}

#[cfg(feature = "hip")]
pub use compiling::*;

#[cfg(feature = "hip")]
mod compiling {
    use super::*;

    use std::collections::HashMap;
    use std::ffi::{c_char, c_int, CString};
    use std::sync::Mutex;

    use hip_sys::hiprt::{hipFunction_t, hipModule_t};
    use kernelyard_core::{Capabilities, DeviceId, Error};
    use kernelyard_kernels::cache::{load_or_compile, DiskEntry, ModuleMap};

    use crate::device::{bind, hiprtc_version, platform};
    use crate::error::{check, RocmError};
    use crate::hip::{self, Hiprtc, RtcProgram};

    fn rtc() -> Result<&'static Hiprtc, RocmError> {
        hip::hiprtc().map_err(|e| {
            RocmError::Unavailable(crate::device::Unavailable::NoCompiler { why: e.to_string() })
        })
    }

    fn rtc_check(rtc: &Hiprtc, call: &'static str, s: c_int) -> Result<(), RocmError> {
        if s == 0 {
            Ok(())
        } else {
            Err(RocmError::Hiprtc {
                call,
                status: hip::rtc_status_name(rtc, s),
            })
        }
    }

    /// Serialises hiprtc: ROCm 5.2's crashed (SIGSEGV) when two threads compiled at once.
    static HIPRTC: Mutex<()> = Mutex::new(());

    /// Compiles `source` for `target` (`gfx90a`) with [`OPTIONS`]. Needs hiprtc, not a GPU.
    /// One compile runs at a time in the process (see [`module`](crate::module)).
    pub fn compile(source: &KernelSource, target: &str) -> Result<Compiled, RocmError> {
        let _one_at_a_time = HIPRTC.lock().unwrap_or_else(|e| e.into_inner());
        let rtc = rtc()?;
        let version = hiprtc_version()?;
        let text = CString::new(source.spliced()).map_err(|_| RocmError::Misuse {
            what: format!("kernels/{} contains a NUL byte", source.file),
        })?;
        let name = CString::new(source.file).unwrap_or_default();
        let mut prog: RtcProgram = std::ptr::null_mut();
        // SAFETY: valid NUL-terminated strings; no headers (the sources are spliced).
        rtc_check(rtc, "hiprtcCreateProgram", unsafe {
            (rtc.api.hiprtcCreateProgram)(
                &mut prog,
                text.as_ptr(),
                name.as_ptr(),
                0,
                std::ptr::null(),
                std::ptr::null(),
            )
        })?;
        let out = compile_program(rtc, prog, source.file, target, version);
        // SAFETY: `prog` came from hiprtcCreateProgram and is destroyed once.
        let _ = unsafe { (rtc.api.hiprtcDestroyProgram)(&mut prog) };
        out
    }

    fn compile_program(
        rtc: &Hiprtc,
        prog: RtcProgram,
        file: &'static str,
        target: &str,
        version: Version,
    ) -> Result<Compiled, RocmError> {
        let mut options = vec![format!("--offload-arch={target}")];
        options.extend(OPTIONS.iter().map(|s| s.to_string()));
        let options: Vec<CString> = options
            .into_iter()
            .map(|o| CString::new(o).unwrap_or_default())
            .collect();
        let ptrs: Vec<*const c_char> = options.iter().map(|o| o.as_ptr()).collect();
        // SAFETY: `prog` is live; `ptrs` holds `ptrs.len()` valid strings that outlive the call.
        let compiled =
            unsafe { (rtc.api.hiprtcCompileProgram)(prog, ptrs.len() as c_int, ptrs.as_ptr()) };
        let log = program_log(rtc, prog);
        if compiled != 0 {
            return Err(RocmError::Compile {
                file,
                arch: target.to_owned(),
                hiprtc: version,
                log: if log.is_empty() {
                    hip::rtc_status_name(rtc, compiled)
                } else {
                    log
                },
            });
        }
        let mut size = 0usize;
        // SAFETY: `prog` compiled; `size` is a valid out-pointer.
        rtc_check(rtc, "hiprtcGetCodeSize", unsafe {
            (rtc.api.hiprtcGetCodeSize)(prog, &mut size)
        })?;
        let mut code = vec![0u8; size];
        // SAFETY: `code` has the size hiprtc reported.
        rtc_check(rtc, "hiprtcGetCode", unsafe {
            (rtc.api.hiprtcGetCode)(prog, code.as_mut_ptr().cast())
        })?;
        Ok(Compiled { code, log })
    }

    fn program_log(rtc: &Hiprtc, prog: RtcProgram) -> String {
        let mut size = 0usize;
        // SAFETY: `prog` is live; `size` is a valid out-pointer.
        if unsafe { (rtc.api.hiprtcGetProgramLogSize)(prog, &mut size) } != 0 || size <= 1 {
            return String::new();
        }
        // One spare zero byte: hiprtc 5.2 may write the log without its terminator.
        let mut log = vec![0 as c_char; size + 1];
        // SAFETY: `log` holds more than the `size` bytes hiprtc reported.
        if unsafe { (rtc.api.hiprtcGetProgramLog)(prog, log.as_mut_ptr()) } != 0 {
            return String::new();
        }
        hip::c_chars(&log)
    }

    /// A module loaded on one device.
    pub(crate) struct Loaded {
        module: hipModule_t,
        file: &'static str,
        target: String,
        /// The code object, kept for the module's life.
        _image: Vec<u8>,
        /// Entry point -> function handle.
        functions: Mutex<HashMap<&'static str, usize>>,
    }

    // SAFETY: module and function handles may be used from any thread once their device is
    // current; the function map is behind a mutex.
    unsafe impl Send for Loaded {}
    // SAFETY: as above.
    unsafe impl Sync for Loaded {}

    /// One device's loaded modules, by source file.
    #[derive(Default)]
    pub(crate) struct ModuleCache {
        loaded: ModuleMap<Loaded>,
    }

    /// Loads `source` on `device` (through the caches, as a launch would) and looks up every
    /// entry point it lists: an error names the first one missing.
    pub fn load_symbols(device: DeviceId, source: &'static KernelSource) -> Result<(), Error> {
        let d = bind(device)?;
        for &symbol in source.symbols {
            d.modules.function(&d.caps, source, symbol)?;
        }
        Ok(())
    }

    fn load(caps: &Capabilities, source: &'static KernelSource) -> Result<Loaded, Error> {
        let kernelyard_core::Arch::Rocm { gfx, .. } = caps.arch else {
            return Err(RocmError::Misuse {
                what: format!("{} is not a ROCm device", caps.device),
            }
            .into());
        };
        let p = platform().map_err(RocmError::from)?;
        let target = target_for(gfx);
        let compiler = compiler_name(p.hiprtc);
        let mut entry = DiskEntry::open(source, &cache_key(&target, &compiler));
        let got = load_or_compile(
            &mut entry,
            load_image,
            || compile(source, &target).map(|c| c.code),
            |status| RocmError::ModuleLoad {
                file: source.file,
                arch: target.clone(),
                runtime: p.runtime,
                hiprtc: p.hiprtc,
                status,
            },
        )?;
        Ok(loaded(got.module, source, &target, got.image))
    }

    fn loaded(
        module: hipModule_t,
        source: &'static KernelSource,
        target: &str,
        image: Vec<u8>,
    ) -> Loaded {
        Loaded {
            module,
            file: source.file,
            target: target.to_owned(),
            _image: image,
            functions: Mutex::new(HashMap::new()),
        }
    }

    fn load_image(bytes: &[u8]) -> Result<hipModule_t, String> {
        let hip = crate::device::hip_api().map_err(|e| e.to_string())?;
        // The loader reads the image as an ELF whose sections must be aligned: copy it into
        // 8-byte aligned storage.
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        // SAFETY: `words` has at least `bytes.len()` bytes; the two do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), words.as_mut_ptr().cast(), bytes.len())
        };
        let mut module: hipModule_t = std::ptr::null_mut();
        // SAFETY: the caller bound the device; the image is a complete code object that
        // outlives the call.
        let s = unsafe { (hip.api.hipModuleLoadData)(&mut module, words.as_ptr().cast()) };
        if s == hip::SUCCESS {
            Ok(module)
        } else {
            Err(hip::status_name(hip, s))
        }
    }

    impl Drop for Loaded {
        fn drop(&mut self) {
            if let Ok(hip) = crate::device::hip_api() {
                // SAFETY: the module was loaded once and nothing uses it after the drop (its
                // functions are only reachable through `self`).
                let _ = unsafe { (hip.api.hipModuleUnload)(self.module) };
            }
        }
    }

    impl ModuleCache {
        /// The function `symbol` of `source` on the device whose capabilities are `caps` (which
        /// the caller made current).
        pub(crate) fn function(
            &self,
            caps: &Capabilities,
            source: &'static KernelSource,
            symbol: &'static str,
        ) -> Result<hipFunction_t, Error> {
            if !source.lists(symbol) {
                return Err(RocmError::UnlistedSymbol {
                    file: source.file,
                    symbol,
                }
                .into());
            }
            let module = self
                .loaded
                .get_or_load(source.file, || load(caps, source))?;
            module.function(symbol)
        }
    }

    impl Loaded {
        fn function(&self, symbol: &'static str) -> Result<hipFunction_t, Error> {
            let mut fns = self.functions.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(&f) = fns.get(symbol) {
                return Ok(f as hipFunction_t);
            }
            let hip = crate::device::hip_api()?;
            let name = CString::new(symbol).unwrap_or_default();
            let mut f: hipFunction_t = std::ptr::null_mut();
            // SAFETY: the module is loaded; `name` is a valid string.
            let s = unsafe { (hip.api.hipModuleGetFunction)(&mut f, self.module, name.as_ptr()) };
            check(hip, "hipModuleGetFunction", s).map_err(|_| RocmError::MissingSymbol {
                file: self.file,
                arch: self.target.clone(),
                symbol,
            })?;
            fns.insert(symbol, f as usize);
            Ok(f)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_descriptors_name_the_kernels() {
        let elf = b"\0junk\0rms_norm_f32_v1.kd\0rms_norm_f32_v1\0softmax_bf16_s.kd\0.kd\0a b.kd\0";
        assert_eq!(
            kernel_names(elf),
            vec!["rms_norm_f32_v1".to_owned(), "softmax_bf16_s".to_owned()]
        );
    }

    #[test]
    fn targets_are_bare_architecture_names() {
        assert_eq!(target_for(Gfx::new(9, 0, 0xa)), "gfx90a");
        assert_eq!(target_for(Gfx::new(10, 3, 0)), "gfx1030");
    }

    #[test]
    fn cache_names_carry_source_target_and_compiler() {
        static A: KernelSource = KernelSource {
            file: "a.cu",
            code: "extern \"C\" __global__ void a() {}",
            symbols: &["a"],
        };
        let v = Version::new(5, 2, 0);
        let n = cache_name(&A, "gfx90a", v);
        assert!(n.starts_with("a-gfx90a-") && n.ends_with(".hsaco"), "{n}");
        assert_ne!(n, cache_name(&A, "gfx908", v));
        assert_ne!(n, cache_name(&A, "gfx90a", Version::new(6, 0, 0)));
    }
}
