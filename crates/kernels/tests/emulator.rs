//! The CPU emulator itself (`tests/emu/`), on small kernels written for it: indices and grid-
//! stride loops, barriers and block reductions, every warp operation, shared and dynamic shared
//! memory, atomics, parameter passing, the f16 conversions against the `half` crate, and the
//! faults it reports (deadlock, a shuffle with an exited lane, a misaligned 16-byte access,
//! `__trap`, a wrong parameter count or launch shape). Also: `port_emu.hpp` defines every
//! helper of `port.cuh`, so a helper added there fails here until the emulator has it.

mod emu;

use std::ffi::c_void;

use half::{bf16, f16};
use kernelyard_core::{Error, Stream};
use kernelyard_kernels::launch::{Dims, Launch};
use kernelyard_kernels::params;
use kernelyard_kernels::source::{KernelSource, HEADERS};

use emu::{rewrite_extern_shared, Emulator, PORT_EMU};

static SELF_TEST: KernelSource = KernelSource {
    file: "emu_self_test.cu",
    code: r#"
#include "common.cuh"

// Each thread: its block's and its own linear index and the launch shape; counts[g] += 1.
extern "C" __global__ void t_index(unsigned* out, unsigned* counts) {
    const unsigned b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    const unsigned nt = blockDim.x * blockDim.y * blockDim.z;
    const unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    const unsigned g = b * nt + t;
    out[4 * g + 0] = b;
    out[4 * g + 1] = t;
    out[4 * g + 2] = blockDim.x * 10000 + blockDim.y * 100 + blockDim.z;
    out[4 * g + 3] = gridDim.x * 10000 + gridDim.y * 100 + gridDim.z;
    atomicAdd(&counts[g], 1u);
}

// Grid-stride loop: y = 2 x + 1.
extern "C" __global__ void t_stride(const float* x, float* y, long long n) {
    const long long step = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
        y[i] = 2.0f * x[i] + 1.0f;
    }
}

// common.cuh's block sum and max (barriers, shuffles, shared scratch reused).
extern "C" __global__ void t_block_reduce(const float* x, float* out) {
    __shared__ float scratch[32];
    const float v = x[blockIdx.x * blockDim.x + threadIdx.x];
    const float s = ky_block_sum(v, scratch);
    const float m = ky_block_max(v, scratch);
    if (threadIdx.x == 0) {
        out[2 * blockIdx.x] = s;
        out[2 * blockIdx.x + 1] = m;
    }
}

// Every warp operation, on the thread index.
extern "C" __global__ void t_warp(unsigned* out) {
    const unsigned t = threadIdx.x;
    unsigned* o = out + 7 * t;
    o[0] = __shfl_sync(0xffffffffu, t, 3);
    o[1] = __shfl_up_sync(0xffffffffu, t, 1, 8);
    o[2] = __shfl_down_sync(0xffffffffu, t, 2, 8);
    o[3] = (unsigned)ky_shfl_xor((float)t, 5);
    o[4] = __ballot_sync(0xffffffffu, t % 3 == 0);
    o[5] = __all_sync(0xffffffffu, t < 1000) + 2 * __any_sync(0xffffffffu, t == 5);
    __syncwarp();
    o[6] = __shfl_xor_sync(0xffffffffu, t, 16, 32);
}

// Dynamic and static shared memory: y = x reversed within the block + 2 x shifted by one.
extern "C" __global__ void t_shared(const float* x, float* y) {
    extern __shared__ __align__(16) float buf[];
    __shared__ __align__(16) float twice[1024];
    const int n = blockDim.x, t = threadIdx.x;
    const long long o = (long long)blockIdx.x * n;
    buf[t] = x[o + t];
    twice[t] = 2.0f * x[o + t];
    __syncthreads();
    y[o + t] = buf[n - 1 - t] + twice[(t + 1) % n];
}

// Dynamic shared memory before anything writes it.
extern "C" __global__ void t_poison(unsigned* out) {
    extern __shared__ unsigned raw[];
    out[threadIdx.x] = raw[threadIdx.x];
}

extern "C" __global__ void t_atomics(unsigned long long* least, float* sum, unsigned* count) {
    const unsigned long long g = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    atomicMin(least, 1000000ull - g);
    atomicAdd(sum, 1.0f);
    atomicAdd(count, 1u);
}

// Parameters of every kind arrive intact.
extern "C" __global__ void t_params(unsigned char* out, float f, double d, int i, long long l,
                                    unsigned u, const void* p) {
    if (threadIdx.x != 0 || blockIdx.x != 0) return;
    memcpy(out + 0, &f, 4);
    memcpy(out + 8, &d, 8);
    memcpy(out + 16, &i, 4);
    memcpy(out + 24, &l, 8);
    memcpy(out + 32, &u, 4);
    memcpy(out + 40, &p, 8);
}

// Conversions: f16 bits -> f32, f32 -> f16 bits, f32 -> bf16 bits (common.cuh).
extern "C" __global__ void t_convert(const unsigned short* h, float* hf, const float* f,
                                     unsigned short* fh, unsigned short* fb, long long nh,
                                     long long nf) {
    const long long step = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < nh; i += step) {
        hf[i] = ky_f16_to_f32(h[i]);
    }
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < nf; i += step) {
        fh[i] = ky_f32_to_f16(f[i]);
        fb[i] = ky_f32_to_bf16(f[i]);
    }
}

// ---- faults ----
extern "C" __global__ void t_deadlock(float* out) {
    float v = 1.0f;
    if ((threadIdx.x & 31) < 16) {
        v = ky_shfl_xor(v, 1);
    } else {
        __syncthreads();
    }
    out[threadIdx.x] = v;
}

extern "C" __global__ void t_exit_then_shuffle(float* out) {
    if (threadIdx.x == 7) return;
    out[threadIdx.x] = ky_shfl_xor(1.0f, 1);
}

extern "C" __global__ void t_missing_lane(float* out) {
    out[threadIdx.x] = ky_shfl_xor(1.0f, 16);
}

extern "C" __global__ void t_misaligned(float* out) {
    ky_vec16 v = {{0u, 0u, 0u, 0u}};
    ky_store16(out + 1, v);
}

extern "C" __global__ void t_trap(float* out) {
    if (blockIdx.x == 1 && threadIdx.x == 3) __trap();
    out[threadIdx.x] = 1.0f;
}
"#,
    symbols: &[
        "t_index",
        "t_stride",
        "t_block_reduce",
        "t_warp",
        "t_shared",
        "t_poison",
        "t_atomics",
        "t_params",
        "t_convert",
        "t_deadlock",
        "t_exit_then_shuffle",
        "t_missing_lane",
        "t_misaligned",
        "t_trap",
    ],
};

fn emulator() -> &'static Emulator {
    Emulator::shared(&SELF_TEST).unwrap_or_else(|e| panic!("emulator: {e}"))
}

fn dims(grid: (u32, u32, u32), block: (u32, u32, u32), shared_bytes: u32) -> Dims {
    Dims {
        grid,
        block,
        shared_bytes,
    }
}

/// Launches `symbol` of the self-test source on `gpu`.
///
/// # Safety
/// As [`Launch::launch`].
unsafe fn run(
    gpu: &dyn Launch,
    symbol: &'static str,
    d: Dims,
    params: &mut [*mut c_void],
) -> Result<(), Error> {
    // SAFETY: the caller's contract.
    unsafe { gpu.launch(&Stream::host(), &SELF_TEST, symbol, d, params) }
}

/// The launch's failure message (it must fail).
fn failure(r: Result<(), Error>) -> String {
    match r {
        Err(Error::Device { backend, source }) => {
            assert_eq!(backend, "emulator");
            source.to_string()
        }
        other => panic!("expected an emulator failure, got {other:?}"),
    }
}

#[test]
fn every_thread_of_a_3d_grid_runs_once_with_its_indices() {
    let (grid, block) = ((3u32, 2u32, 2u32), (8u32, 4u32, 2u32));
    let (nb, nt) = (3 * 2 * 2, 8 * 4 * 2);
    let mut out = vec![0u32; 4 * nb * nt];
    let mut counts = vec![0u32; nb * nt];
    let (o, c) = (out.as_mut_ptr(), counts.as_mut_ptr());
    // SAFETY: t_index(unsigned*, unsigned*) writes 4 and 1 values per thread of the grid.
    unsafe {
        run(
            emulator(),
            "t_index",
            dims(grid, block, 0),
            &mut params![o, c],
        )
    }
    .unwrap();
    assert!(counts.iter().all(|&n| n == 1), "{counts:?}");
    for g in 0..nb * nt {
        let want = [(g / nt) as u32, (g % nt) as u32, 80402, 30202];
        assert_eq!(out[4 * g..4 * g + 4], want, "thread {g}");
    }
}

#[test]
fn grid_stride_loops_cover_the_data() {
    let n = 100_003usize;
    let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let mut y = vec![0.0f32; n];
    let (xp, yp, nn) = (x.as_ptr(), y.as_mut_ptr(), n as i64);
    // SAFETY: t_stride(const float*, float*, long long n) over n elements.
    unsafe {
        run(
            emulator(),
            "t_stride",
            dims((7, 1, 1), (96, 1, 1), 0),
            &mut params![xp, yp, nn],
        )
    }
    .unwrap();
    assert!((0..n).all(|i| y[i] == 2.0 * i as f32 + 1.0));
}

#[test]
fn block_reductions_see_every_warp() {
    for threads in [32u32, 96, 1024] {
        let blocks = 5usize;
        let x: Vec<f32> = (0..blocks * threads as usize)
            .map(|i| ((i * 37) % 101) as f32)
            .collect();
        let mut out = vec![0.0f32; 2 * blocks];
        let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
        // SAFETY: t_block_reduce(const float*, float*): one row of blockDim.x per block.
        unsafe {
            run(
                emulator(),
                "t_block_reduce",
                dims((blocks as u32, 1, 1), (threads, 1, 1), 0),
                &mut params![xp, op],
            )
        }
        .unwrap();
        for b in 0..blocks {
            let row = &x[b * threads as usize..(b + 1) * threads as usize];
            let sum: f32 = row.iter().sum(); // integers: exact in any order
            let max = row.iter().copied().fold(f32::MIN, f32::max);
            assert_eq!(
                (out[2 * b], out[2 * b + 1]),
                (sum, max),
                "{threads} threads"
            );
        }
    }
}

#[test]
fn warp_operations_follow_cuda() {
    let n = 64usize;
    let mut out = vec![0u32; 7 * n];
    let o = out.as_mut_ptr();
    // SAFETY: t_warp(unsigned*) writes 7 values per thread.
    unsafe {
        run(
            emulator(),
            "t_warp",
            dims((1, 1, 1), (64, 1, 1), 0),
            &mut params![o],
        )
    }
    .unwrap();
    for t in 0..n as u32 {
        let (warp, lane) = (t / 32 * 32, t % 32);
        let seg = lane / 8 * 8;
        let up = if lane > seg { t - 1 } else { t };
        let down = if lane + 2 < seg + 8 { t + 2 } else { t };
        let ballot = (0..32u32)
            .filter(|l| (warp + l) % 3 == 0)
            .fold(0u32, |b, l| b | 1 << l);
        let all_any = 1 + 2 * u32::from(warp == 0);
        let want = [warp + 3, up, down, t ^ 5, ballot, all_any, t ^ 16];
        assert_eq!(out[7 * t as usize..7 * t as usize + 7], want, "thread {t}");
    }
}

#[test]
fn shared_memory_is_per_block_on_every_worker() {
    let (blocks, threads) = (40usize, 128usize);
    let x: Vec<f32> = (0..blocks * threads).map(|i| i as f32).collect();
    let mut y = vec![0.0f32; blocks * threads];
    let (xp, yp) = (x.as_ptr(), y.as_mut_ptr());
    let bytes = (threads * 4) as u32;
    // SAFETY: t_shared(const float*, float*): blockDim.x floats per block, as much dynamic
    // shared memory.
    unsafe {
        run(
            emulator(),
            "t_shared",
            dims((blocks as u32, 1, 1), (threads as u32, 1, 1), bytes),
            &mut params![xp, yp],
        )
    }
    .unwrap();
    for b in 0..blocks {
        for t in 0..threads {
            let o = b * threads;
            let want = x[o + threads - 1 - t] + 2.0 * x[o + (t + 1) % threads];
            assert_eq!(y[o + t], want, "block {b} thread {t}");
        }
    }
}

#[test]
fn dynamic_shared_memory_starts_as_nan() {
    let mut out = vec![0u32; 32];
    let o = out.as_mut_ptr();
    // SAFETY: t_poison(unsigned*): 32 threads, 128 bytes of dynamic shared memory.
    unsafe {
        run(
            emulator(),
            "t_poison",
            dims((1, 1, 1), (32, 1, 1), 128),
            &mut params![o],
        )
    }
    .unwrap();
    assert!(out.iter().all(|&w| w == u32::MAX), "{out:?}");
}

#[test]
fn atomics_are_atomic_across_workers() {
    let (blocks, threads) = (64u32, 128u32);
    let (mut least, mut sum, mut count) = (u64::MAX, 0.0f32, 0u32);
    let (l, s, c) = (
        &mut least as *mut u64,
        &mut sum as *mut f32,
        &mut count as *mut u32,
    );
    // SAFETY: t_atomics(unsigned long long*, float*, unsigned*): one value each.
    unsafe {
        run(
            emulator(),
            "t_atomics",
            dims((blocks, 1, 1), (threads, 1, 1), 0),
            &mut params![l, s, c],
        )
    }
    .unwrap();
    let n = blocks * threads;
    assert_eq!(
        (least, sum, count),
        (1_000_000 - u64::from(n - 1), n as f32, n)
    );
}

#[test]
fn parameters_of_every_type_arrive_intact() {
    let mut out = [0u8; 48];
    let o = out.as_mut_ptr();
    let (f, d, i, l, u) = (1.5f32, -2.25e300f64, -7i32, -(1i64 << 40), 0xdead_beefu32);
    let p: *const c_void = &out as *const _ as *const c_void;
    // SAFETY: t_params(unsigned char*, float, double, int, long long, unsigned, const void*)
    // writes 48 bytes.
    unsafe {
        run(
            emulator(),
            "t_params",
            dims((2, 1, 1), (32, 1, 1), 0),
            &mut params![o, f, d, i, l, u, p],
        )
    }
    .unwrap();
    let at = |k: usize, n: usize| out[k..k + n].to_vec();
    assert_eq!(at(0, 4), f.to_ne_bytes());
    assert_eq!(at(8, 8), d.to_ne_bytes());
    assert_eq!(at(16, 4), i.to_ne_bytes());
    assert_eq!(at(24, 8), l.to_ne_bytes());
    assert_eq!(at(32, 4), u.to_ne_bytes());
    assert_eq!(at(40, 8), (p as usize as u64).to_ne_bytes());
}

/// Every f16 pattern widened, and f32 values at and next to every rounding boundary of f16's
/// normal range and of bf16 (every value of the 19 high bits, with the 13 low bits 0, 1,
/// 0xfff, 0x1000, 0x1001, 0x1fff and one scrambled value) narrowed, against the `half` crate;
/// NaN only as NaN.
#[test]
fn conversions_round_like_the_half_crate() {
    let h: Vec<u16> = (0..=u16::MAX).collect();
    let mut f = Vec::new();
    for high in 0..(1u32 << 19) {
        let scrambled = high.wrapping_mul(0x9e37_79b9) >> 19;
        for low in [0u32, 1, 0xfff, 0x1000, 0x1001, 0x1fff, scrambled] {
            f.push(f32::from_bits(high << 13 | low));
        }
    }
    let mut hf = vec![0.0f32; h.len()];
    let (mut fh, mut fb) = (vec![0u16; f.len()], vec![0u16; f.len()]);
    let (hp, hfp, fp, fhp, fbp) = (
        h.as_ptr(),
        hf.as_mut_ptr(),
        f.as_ptr(),
        fh.as_mut_ptr(),
        fb.as_mut_ptr(),
    );
    let (nh, nf) = (h.len() as i64, f.len() as i64);
    // SAFETY: t_convert(h, hf, f, fh, fb, nh, nf) reads and writes nh and nf elements.
    unsafe {
        run(
            emulator(),
            "t_convert",
            dims((64, 1, 1), (256, 1, 1), 0),
            &mut params![hp, hfp, fp, fhp, fbp, nh, nf],
        )
    }
    .unwrap();
    for (i, &bits) in h.iter().enumerate() {
        let want = f16::from_bits(bits).to_f32();
        let ok = if want.is_nan() {
            hf[i].is_nan()
        } else {
            hf[i].to_bits() == want.to_bits()
        };
        assert!(ok, "f16 {bits:#06x}: {} vs {want}", hf[i]);
    }
    for (i, &x) in f.iter().enumerate() {
        let (wh, wb) = (f16::from_f32(x), bf16::from_f32(x));
        let (gh, gb) = (f16::from_bits(fh[i]), bf16::from_bits(fb[i]));
        if x.is_nan() {
            assert!(gh.is_nan() && gb.is_nan(), "{:#010x}", x.to_bits());
        } else {
            assert_eq!(fh[i], wh.to_bits(), "f16 of {x:e} ({:#010x})", x.to_bits());
            assert_eq!(fb[i], wb.to_bits(), "bf16 of {x:e} ({:#010x})", x.to_bits());
        }
    }
}

#[test]
fn one_worker_and_many_give_the_same_bits() {
    let one = Emulator::build(&SELF_TEST).unwrap().with_workers(1);
    let many = Emulator::build(&SELF_TEST).unwrap().with_workers(4);
    let x: Vec<f32> = (0..64 * 256).map(|i| (i % 977) as f32 * 0.37).collect();
    let mut outs = Vec::new();
    for gpu in [&one, &many] {
        let mut out = vec![0.0f32; 2 * 64];
        let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
        // SAFETY: t_block_reduce(const float*, float*): 64 rows of 256.
        unsafe {
            run(
                gpu,
                "t_block_reduce",
                dims((64, 1, 1), (256, 1, 1), 0),
                &mut params![xp, op],
            )
        }
        .unwrap();
        outs.push(out);
    }
    assert_eq!(outs[0], outs[1]);
}

#[test]
fn the_portable_context_switch_runs_the_same_kernels() {
    let gpu = Emulator::build_with(&SELF_TEST, "g++", &["-DKY_EMU_UCONTEXT"])
        .unwrap_or_else(|e| panic!("{e}"));
    let mut out = vec![0u32; 7 * 64];
    let o = out.as_mut_ptr();
    // SAFETY: t_warp(unsigned*) writes 7 values per thread.
    unsafe {
        run(
            &gpu,
            "t_warp",
            dims((1, 1, 1), (64, 1, 1), 0),
            &mut params![o],
        )
    }
    .unwrap();
    let mut fast = vec![0u32; 7 * 64];
    let o = fast.as_mut_ptr();
    // SAFETY: as above.
    unsafe {
        run(
            emulator(),
            "t_warp",
            dims((1, 1, 1), (64, 1, 1), 0),
            &mut params![o],
        )
    }
    .unwrap();
    assert_eq!(out, fast);
}

// ---- faults ---------------------------------------------------------------------------------

#[test]
fn faults_fail_the_launch_and_say_where() {
    let gpu = emulator();
    let mut out = vec![0.0f32; 1024];
    let o = out.as_mut_ptr();
    let one_block = |threads| dims((1, 1, 1), (threads, 1, 1), 0);
    let cases: [(&'static str, Dims, &str); 5] = [
        ("t_deadlock", one_block(64), "deadlock"),
        ("t_exit_then_shuffle", one_block(32), "exits while 7 lanes"),
        (
            "t_missing_lane",
            one_block(48),
            "which its warp of 16 lanes does not have",
        ),
        ("t_misaligned", one_block(32), "not 16-byte aligned"),
        (
            "t_trap",
            dims((3, 1, 1), (32, 1, 1), 0),
            "block (1, 0, 0) thread (3, 0, 0): __trap()",
        ),
    ];
    for (symbol, d, want) in cases {
        // SAFETY: each takes (float*) and writes at most blockDim.x + 3 floats.
        let msg = failure(unsafe { run(gpu, symbol, d, &mut params![o]) });
        assert!(msg.contains(want), "{symbol}: {msg}");
        assert!(msg.starts_with(symbol), "{msg}");
    }
    // The emulator is still usable.
    let x = [1.0f32; 10];
    let (xp, n) = (x.as_ptr(), 10i64);
    // SAFETY: t_stride over 10 elements of x and out.
    unsafe { run(gpu, "t_stride", one_block(32), &mut params![xp, o, n]) }.unwrap();
    assert_eq!(out[..10], [3.0; 10]);
}

#[test]
fn bad_launches_are_refused() {
    let gpu = emulator();
    let mut out = vec![0.0f32; 64];
    let o = out.as_mut_ptr();
    let ok = dims((1, 1, 1), (32, 1, 1), 0);
    // SAFETY: refused before anything runs (t_stride takes 3 parameters).
    let msg = failure(unsafe { run(gpu, "t_stride", ok, &mut params![o]) });
    assert!(
        msg.contains("takes 3 parameters but the launch passes 1"),
        "{msg}"
    );
    for (d, want) in [
        (dims((1, 1, 1), (2048, 1, 1), 0), "invalid block"),
        (dims((1, 1, 1), (1, 1, 128), 0), "invalid block"),
        (dims((0, 1, 1), (32, 1, 1), 0), "invalid grid"),
        (dims((1, 65536, 1), (32, 1, 1), 0), "invalid grid"),
    ] {
        // SAFETY: refused before anything runs.
        let msg = failure(unsafe { run(gpu, "t_trap", d, &mut params![o]) });
        assert!(msg.contains(want), "{msg}");
    }
    // SAFETY: refused: another source.
    let msg = failure(unsafe {
        gpu.launch(
            &Stream::host(),
            &kernelyard_kernels::silu_mul::SOURCE,
            "silu_mul_f32_v",
            ok,
            &mut params![o],
        )
    });
    assert!(msg.contains("not kernels/silu_mul.cu"), "{msg}");
    // SAFETY: refused: not a listed entry point.
    let msg = failure(unsafe { run(gpu, "t_unlisted", ok, &mut params![o]) });
    assert!(msg.contains("not listed"), "{msg}");
}

#[test]
fn a_missing_compiler_or_a_compile_error_is_a_failure() {
    let e = Emulator::build_with(&SELF_TEST, "kernelyard-no-such-compiler", &[]).unwrap_err();
    assert!(e.contains("cannot run the C++ compiler"), "{e}");
    static BROKEN: KernelSource = KernelSource {
        file: "emu_broken.cu",
        code: "#include \"common.cuh\"\nextern \"C\" __global__ void t(float* o) { o[0] = }\n",
        symbols: &["t"],
    };
    let e = Emulator::build(&BROKEN).unwrap_err();
    assert!(
        e.contains("failed") && e.contains("the source is kept in"),
        "{e}"
    );
    // Remove the kept directory.
    let kept = e
        .split("the source is kept in ")
        .nth(1)
        .and_then(|r| r.split(":\n").next());
    if let Some(dir) = kept {
        let _ = std::fs::remove_dir_all(dir);
    }
}

// ---- the emulation source -------------------------------------------------------------------

#[test]
fn every_port_helper_is_emulated() {
    let port = HEADERS
        .iter()
        .find(|(n, _)| *n == "port.cuh")
        .map(|(_, t)| *t)
        .expect("port.cuh in HEADERS");
    let mut helpers = Vec::new();
    for line in port.lines() {
        if let Some(rest) = line.strip_prefix("__device__") {
            let name = rest
                .split('(')
                .next()
                .and_then(|s| s.split_whitespace().last());
            helpers.push(name.expect("a function").to_string());
        }
        if let Some(rest) = line.strip_prefix("#define ") {
            helpers.push(rest.split_whitespace().next().unwrap().to_string());
        }
    }
    assert!(helpers.len() >= 10, "{helpers:?}");
    for h in &helpers {
        let defined = PORT_EMU.lines().any(|l| {
            (l.starts_with("inline ") && l.contains(&format!(" {h}(")))
                || l.starts_with(&format!("#define {h} "))
        });
        assert!(
            defined,
            "port.cuh defines `{h}`, which tests/emu/port_emu.hpp does not: add it there, with \
             the GPU's rounding"
        );
    }
}

#[test]
fn dynamic_shared_arrays_become_pointers() {
    let text = "// extern __shared__ float no[];\n/* extern __shared__ int no2[]; */\n\
                void k() { extern __shared__ __align__(16) unsigned char smem[]; \
                const char* s = \"extern __shared__ x[];\"; }\n";
    let out = rewrite_extern_shared(text).unwrap();
    assert!(out.contains(
        "unsigned char* const smem = reinterpret_cast<unsigned char*>(::ky_emu::dyn_shared());"
    ));
    assert!(out.contains("// extern __shared__ float no[];"));
    assert!(out.contains("/* extern __shared__ int no2[]; */"));
    assert!(out.contains("\"extern __shared__ x[];\""));
    let e = rewrite_extern_shared("extern __shared__ float g[];\n").unwrap_err();
    assert!(e.contains("file scope"), "{e}");
}

/// Every source both GPU backends compile builds for the emulator too (AMD-only
/// `gemm_bi_mfma.cu` aside), so any of them can be run by a test.
#[test]
fn every_shared_source_compiles_for_the_cpu() {
    use kernelyard_kernels::{
        gemm_bi_simt, log_softmax, rms_norm, rope, silu_mul, softmax, token_logprobs,
    };
    for source in [
        &gemm_bi_simt::SOURCE,
        &log_softmax::SOURCE,
        &rms_norm::SOURCE,
        &rope::SOURCE,
        &silu_mul::SOURCE,
        &softmax::SOURCE,
        &token_logprobs::SOURCE,
    ] {
        let t = std::time::Instant::now();
        let e = Emulator::shared(source).unwrap_or_else(|e| panic!("{}: {e}", source.file));
        eprintln!("{}: {:.2?}", e.source().file, t.elapsed());
    }
}
