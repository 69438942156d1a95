//! The HIP runtime and hiprtc, opened at run time.
//!
//! Linking libamdhip64 would make every program built with the `hip` feature fail to start on
//! a machine without ROCm, before any probe could say why. So the libraries are opened with
//! `dlopen` on first use, and a missing library or symbol is a [`LoadError`] the probe turns
//! into a typed reason. hip-sys supplies the types: the device-properties layout, the handle
//! types and the error codes (compared as integers: a code this build does not know must not
//! become an invalid Rust enum).
//!
//! - **Runtime**: `libamdhip64.so` (ROCm 5, 6 and 7 sonames are tried; `KERNELYARD_HIP_LIB`
//!   names another file, which is how tests simulate a machine without ROCm).
//! - **hiprtc**: in ROCm 5.x its functions live in libamdhip64; from ROCm 6 in `libhiprtc.so`.
//!   The separate library is tried first, then libamdhip64's own symbols.
//! - **Device properties** come from `hipGetDeviceProperties`, which keeps the ROCm 5 layout
//!   (`hipDeviceProp_tR0000`, hip-sys's `hipDeviceProp_t`) in ROCm 6, where new code is
//!   compiled against `hipGetDevicePropertiesR0600` instead. The struct is read into a buffer
//!   with slack after it, so a runtime that writes a longer struct cannot overrun it.

use std::ffi::{c_char, c_int, c_uint, c_void};
use std::sync::OnceLock;

use hip_sys::hiprt::hipStream_t;
use hip_sys::hiprt::{hipDeviceProp_t, hipError_t, hipEvent_t, hipFunction_t, hipModule_t};
use libloading::Library;

/// A raw HIP status code (`hipSuccess` is 0).
pub type HipStatus = c_int;
/// A raw hiprtc status code (`HIPRTC_SUCCESS` is 0).
pub type RtcStatus = c_int;
/// A hiprtc program handle.
pub type RtcProgram = *mut c_void;

/// `hipSuccess`.
pub const SUCCESS: HipStatus = hipError_t::hipSuccess as HipStatus;
/// `hipErrorNoDevice`: the runtime loaded but found no GPU.
pub const ERROR_NO_DEVICE: HipStatus = hipError_t::hipErrorNoDevice as HipStatus;
/// `hipErrorInsufficientDriver`: the kernel driver (amdgpu/KFD) is missing or too old.
pub const ERROR_INSUFFICIENT_DRIVER: HipStatus =
    hipError_t::hipErrorInsufficientDriver as HipStatus;
/// `hipMemcpyHostToDevice`.
pub const MEMCPY_HTOD: c_int = 1;
/// `hipMemcpyDeviceToHost`.
pub const MEMCPY_DTOH: c_int = 2;
/// `hipMemcpyDeviceToDevice`.
pub const MEMCPY_DTOD: c_int = 3;
/// `hipStreamNonBlocking`.
pub const STREAM_NON_BLOCKING: c_uint = 1;

/// Runtime library names, newest first (`KERNELYARD_HIP_LIB` overrides them).
pub const RUNTIME_LIBS: &[&str] = &[
    "libamdhip64.so",
    "libamdhip64.so.7",
    "libamdhip64.so.6",
    "libamdhip64.so.5",
];
/// hiprtc library names of ROCm 6 and newer (ROCm 5 has hiprtc inside libamdhip64).
pub const RTC_LIBS: &[&str] = &["libhiprtc.so", "libhiprtc.so.7", "libhiprtc.so.6"];

/// Why a library or one of its functions could not be opened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// None of the names could be opened.
    #[error("{what} not found (tried {tried}): {last}")]
    Library {
        /// What was looked for (`the HIP runtime`).
        what: &'static str,
        /// The names tried, comma-separated.
        tried: String,
        /// The loader's message for the last one.
        last: String,
    },
    /// The library lacks a function this backend calls.
    #[error("{lib} has no `{symbol}` ({why})")]
    Symbol {
        /// The library.
        lib: String,
        /// The function.
        symbol: &'static str,
        /// The loader's message.
        why: String,
    },
}

fn open(what: &'static str, names: &[&str]) -> Result<(Library, String), LoadError> {
    let mut last = String::new();
    for name in names {
        // SAFETY: opening a ROCm library runs its initialisers, which are ROCm's own and have
        // no preconditions on the caller.
        match unsafe { Library::new(*name) } {
            Ok(lib) => return Ok((lib, (*name).to_owned())),
            Err(e) => last = e.to_string(),
        }
    }
    Err(LoadError::Library {
        what,
        tried: names.join(", "),
        last,
    })
}

/// Looks up `symbol` in `lib` as a function pointer of type `F`.
///
/// # Safety
/// `F` must be the `extern "C"` function type the library defines for `symbol`.
unsafe fn sym<F: Copy>(lib: &Library, name: &str, symbol: &'static str) -> Result<F, LoadError> {
    // SAFETY: the caller's contract: `F` is the symbol's type.
    unsafe { lib.get::<F>(symbol) }
        .map(|s| *s)
        .map_err(|e| LoadError::Symbol {
            lib: name.to_owned(),
            symbol,
            why: e.to_string(),
        })
}

macro_rules! api {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $f:ident: fn($($arg:ty),*) -> $ret:ty;)* }) => {
        $(#[$doc])*
        #[allow(non_snake_case)]
        pub struct $name {
            /// The library's file name, as opened.
            pub lib_name: String,
            $($(#[$fdoc])* pub $f: unsafe extern "C" fn($($arg),*) -> $ret,)*
        }

        impl $name {
            /// Resolves every function of the table from `lib`.
            #[allow(non_snake_case)]
            fn resolve(lib: &Library, lib_name: &str) -> Result<Self, LoadError> {
                Ok($name {
                    lib_name: lib_name.to_owned(),
                    // SAFETY: each type is the function's C signature in ROCm's headers
                    // (hip_runtime_api.h, hiprtc.h), with enums as `c_int`.
                    $($f: unsafe { sym(lib, lib_name, stringify!($f))? },)*
                })
            }
        }
    };
}

api! {
    /// The HIP runtime functions this backend calls.
    Runtime {
        /// `hipInit(flags)`.
        hipInit: fn(c_uint) -> HipStatus;
        /// `hipGetDeviceCount(&count)`.
        hipGetDeviceCount: fn(*mut c_int) -> HipStatus;
        /// `hipGetDeviceProperties(&props, device)` (ROCm 5 layout).
        hipGetDeviceProperties: fn(*mut hipDeviceProp_t, c_int) -> HipStatus;
        /// `hipRuntimeGetVersion(&version)`.
        hipRuntimeGetVersion: fn(*mut c_int) -> HipStatus;
        /// `hipGetErrorName(status)`.
        hipGetErrorName: fn(HipStatus) -> *const c_char;
        /// `hipSetDevice(device)`.
        hipSetDevice: fn(c_int) -> HipStatus;
        /// `hipMalloc(&ptr, bytes)`.
        hipMalloc: fn(*mut *mut c_void, usize) -> HipStatus;
        /// `hipFree(ptr)`.
        hipFree: fn(*mut c_void) -> HipStatus;
        /// `hipMemcpy(dst, src, bytes, kind)` (synchronous).
        hipMemcpy: fn(*mut c_void, *const c_void, usize, c_int) -> HipStatus;
        /// `hipMemcpyAsync(dst, src, bytes, kind, stream)`.
        hipMemcpyAsync: fn(*mut c_void, *const c_void, usize, c_int, hipStream_t) -> HipStatus;
        /// `hipMemsetAsync(dst, value, bytes, stream)`.
        hipMemsetAsync: fn(*mut c_void, c_int, usize, hipStream_t) -> HipStatus;
        /// `hipStreamCreateWithFlags(&stream, flags)`.
        hipStreamCreateWithFlags: fn(*mut hipStream_t, c_uint) -> HipStatus;
        /// `hipStreamDestroy(stream)`.
        hipStreamDestroy: fn(hipStream_t) -> HipStatus;
        /// `hipStreamSynchronize(stream)`.
        hipStreamSynchronize: fn(hipStream_t) -> HipStatus;
        /// `hipEventCreate(&event)`.
        hipEventCreate: fn(*mut hipEvent_t) -> HipStatus;
        /// `hipEventRecord(event, stream)`.
        hipEventRecord: fn(hipEvent_t, hipStream_t) -> HipStatus;
        /// `hipEventSynchronize(event)`.
        hipEventSynchronize: fn(hipEvent_t) -> HipStatus;
        /// `hipEventElapsedTime(&ms, start, end)`.
        hipEventElapsedTime: fn(*mut f32, hipEvent_t, hipEvent_t) -> HipStatus;
        /// `hipEventDestroy(event)`.
        hipEventDestroy: fn(hipEvent_t) -> HipStatus;
        /// `hipModuleLoadData(&module, image)`.
        hipModuleLoadData: fn(*mut hipModule_t, *const c_void) -> HipStatus;
        /// `hipModuleUnload(module)`.
        hipModuleUnload: fn(hipModule_t) -> HipStatus;
        /// `hipModuleGetFunction(&function, module, name)`.
        hipModuleGetFunction: fn(*mut hipFunction_t, hipModule_t, *const c_char) -> HipStatus;
        /// `hipModuleLaunchKernel(f, grid xyz, block xyz, shared bytes, stream, params, extra)`.
        hipModuleLaunchKernel: fn(
            hipFunction_t, c_uint, c_uint, c_uint, c_uint, c_uint, c_uint, c_uint, hipStream_t,
            *mut *mut c_void, *mut *mut c_void
        ) -> HipStatus;
    }
}

api! {
    /// The hiprtc functions this backend calls.
    Rtc {
        /// `hiprtcVersion(&major, &minor)`.
        hiprtcVersion: fn(*mut c_int, *mut c_int) -> RtcStatus;
        /// `hiprtcGetErrorString(status)`.
        hiprtcGetErrorString: fn(RtcStatus) -> *const c_char;
        /// `hiprtcCreateProgram(&prog, source, name, 0 headers, null, null)`.
        hiprtcCreateProgram: fn(
            *mut RtcProgram, *const c_char, *const c_char, c_int, *const *const c_char,
            *const *const c_char
        ) -> RtcStatus;
        /// `hiprtcCompileProgram(prog, option count, options)`.
        hiprtcCompileProgram: fn(RtcProgram, c_int, *const *const c_char) -> RtcStatus;
        /// `hiprtcGetProgramLogSize(prog, &size)`.
        hiprtcGetProgramLogSize: fn(RtcProgram, *mut usize) -> RtcStatus;
        /// `hiprtcGetProgramLog(prog, log)`.
        hiprtcGetProgramLog: fn(RtcProgram, *mut c_char) -> RtcStatus;
        /// `hiprtcGetCodeSize(prog, &size)`.
        hiprtcGetCodeSize: fn(RtcProgram, *mut usize) -> RtcStatus;
        /// `hiprtcGetCode(prog, code)`.
        hiprtcGetCode: fn(RtcProgram, *mut c_char) -> RtcStatus;
        /// `hiprtcDestroyProgram(&prog)`.
        hiprtcDestroyProgram: fn(*mut RtcProgram) -> RtcStatus;
    }
}

/// The opened runtime: its function table, kept with the library that holds the code.
pub struct Hip {
    /// The functions.
    pub api: Runtime,
    _lib: Library,
}

/// The opened hiprtc.
pub struct Hiprtc {
    /// The functions.
    pub api: Rtc,
    _lib: Library,
}

/// Opens the runtime once per process (`KERNELYARD_HIP_LIB` names the file to open instead).
pub fn runtime() -> Result<&'static Hip, LoadError> {
    static HIP: OnceLock<Result<Hip, LoadError>> = OnceLock::new();
    HIP.get_or_init(|| {
        let custom = std::env::var("KERNELYARD_HIP_LIB")
            .ok()
            .filter(|v| !v.is_empty());
        let names: Vec<&str> = match &custom {
            Some(v) => vec![v.as_str()],
            None => RUNTIME_LIBS.to_vec(),
        };
        let (lib, name) = open("the HIP runtime (libamdhip64)", &names)?;
        let api = Runtime::resolve(&lib, &name)?;
        Ok(Hip { api, _lib: lib })
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Opens hiprtc once per process: `libhiprtc.so` (ROCm 6+), else the runtime's own hiprtc
/// functions (ROCm 5). Needs no GPU.
pub fn hiprtc() -> Result<&'static Hiprtc, LoadError> {
    static RTC: OnceLock<Result<Hiprtc, LoadError>> = OnceLock::new();
    RTC.get_or_init(|| {
        if std::env::var("KERNELYARD_HIP_LIB").map_or(true, |v| v.is_empty()) {
            if let Ok((lib, name)) = open("hiprtc", RTC_LIBS) {
                if let Ok(api) = Rtc::resolve(&lib, &name) {
                    return Ok(Hiprtc { api, _lib: lib });
                }
            }
        }
        // ROCm 5: hiprtc is part of the runtime library (a second handle to the same file).
        let rt = runtime()?;
        let (lib, name) = open("hiprtc", &[rt.api.lib_name.as_str()])?;
        let api = Rtc::resolve(&lib, &name)?;
        Ok(Hiprtc { api, _lib: lib })
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// The name of a HIP status (`hipErrorNoDevice`), or its number when the runtime has none.
pub fn status_name(hip: &Hip, status: HipStatus) -> String {
    // SAFETY: hipGetErrorName accepts any value and returns a static string (or null).
    let p = unsafe { (hip.api.hipGetErrorName)(status) };
    c_string(p).unwrap_or_else(|| format!("HIP error {status}"))
}

/// The message of a hiprtc status.
pub fn rtc_status_name(rtc: &Hiprtc, status: RtcStatus) -> String {
    // SAFETY: hiprtcGetErrorString accepts any value and returns a static string (or null).
    let p = unsafe { (rtc.api.hiprtcGetErrorString)(status) };
    c_string(p).unwrap_or_else(|| format!("hiprtc error {status}"))
}

/// Copies a NUL-terminated C string the runtime owns.
fn c_string(p: *const c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: non-null pointers from the runtime point at NUL-terminated static strings.
    Some(
        unsafe { std::ffi::CStr::from_ptr(p) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// Reads a fixed-size C char array (a device-properties field) up to its NUL.
pub fn c_chars(chars: &[c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .map(|&c| c as u8)
        .take_while(|&b| b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).trim().to_owned()
}

/// Device properties with slack after the struct (see the module docs).
#[repr(C)]
pub struct PropsBuffer {
    /// The properties, in the ROCm 5 layout.
    pub props: hipDeviceProp_t,
    _slack: [u8; 4096],
}

impl PropsBuffer {
    /// A zeroed buffer.
    pub fn zeroed() -> Box<Self> {
        // SAFETY: every field is a plain integer, float or char array, for which all-zero bits
        // are a valid value.
        Box::new(unsafe { std::mem::zeroed() })
    }
}
