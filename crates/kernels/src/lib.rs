//! kernelyard-kernels: the GPU kernel sources both GPU backends compile (this crate's
//! `kernels/` folder, `crates/kernels/kernels/`: the `.cu` sources and the shared `.cuh`
//! headers), embedded, and the host-side plans, checks and launch sequences that both GPU
//! backends (`kernelyard-cuda`, `kernelyard-rocm`) share.
//!
//! # Who is responsible for what
//! - **This crate** holds what a backend's kernels need that does not depend on the vendor: the
//!   sources and their entry-point lists ([`source`]), the splicing of the shared headers, the
//!   disk cache (names, the trusted directory, verified entries, atomic writes: [`cache`]), the
//!   launch shape, the parameter list and the launcher a backend provides ([`launch`],
//!   [`params!`](crate::params), [`Launch`](launch::Launch)), the pure plans that choose an
//!   entry point and a launch shape from a problem ([`rows`]), and per kernel source
//!   ([`rms_norm`], [`softmax`], [`log_softmax`], [`token_logprobs`], [`attention_decode`], [`rope`], [`silu_mul`],
//!   [`selective_state_update`], [`gemm_bi_simt`], [`gemm_bi_mfma`]) its plan, the problem
//!   checks (`check` or `check_shape`: the reasons a kernel cannot run a problem) and the launch
//!   sequence (`launch`: entry points, shapes and parameters, in order). A plan or check reads
//!   only the problem and, where its docs say so, a device property of the backend's
//!   [`Capabilities`](kernelyard_core::Capabilities) (the SM count, the opt-in shared memory
//!   per block), so both backends run the same entry points with the same launch shapes and
//!   parameters for a problem.
//! - **The backends** own their kernel statics (`KernelMeta`, the `Kernel` impls that call
//!   `check` and `launch` here), compile the sources (NVRTC, hipRTC), load modules, implement
//!   [`Launch`](launch::Launch), allocate (the checked mode's slot of `token_logprobs`), and turn
//!   what goes wrong on the device into their own errors. Core validated the arguments into the
//!   problem before either sees a launch; the kernels assume valid inputs.
//!
//! This crate has no GPU runtime and no vendor FFI: it links no vendor library and builds and
//! tests anywhere (its only foreign call is `geteuid`, for the disk cache's owner check). Its
//! `unsafe` is that call, the launch sequences calling
//! [`Launch::launch`](launch::Launch::launch) with parameter lists that match the entry points'
//! signatures (each block says why), and [`token_logprobs::launch`], unsafe because the slot it
//! is given must be valid device memory.

#![deny(missing_docs)]

pub mod attention_decode;
pub mod cache;
pub mod gemm_bi_mfma;
pub mod gemm_bi_simt;
pub mod launch;
pub mod log_softmax;
pub mod rms_norm;
pub mod rope;
pub mod rows;
pub mod selective_state_update;
pub mod silu_mul;
pub mod softmax;
pub mod source;
pub mod token_logprobs;
