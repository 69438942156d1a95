//! The shared kernels run on the CPU emulator (`tests/emu/`): each test builds a source's exact
//! text, launches it through the real launch sequence (`<op>::launch(&emulator, ...)` through
//! `&dyn Launch`), and checks the output against plain Rust in f64 on random inputs, for f32,
//! bf16 and f16, on the 16-byte (`_v`) and the element (`_s`) paths. Those paths promise the
//! same bits, and a row's bits must not depend on the batch it rides in: both are checked
//! bitwise. This proves the emulator on known-good kernels before it is trusted with new ones.
//! token_logprobs' split rows (one launch per pass, the row's last CTA merging) run on arrival
//! counters kept across launches, as a CUDA stream's: they must be zero after every launch.
//!
//! Needs g++ (the emulator fails, saying so, without it). Build once per source and process
//! (`Emulator::shared`), cached on disk between runs (see `emu/mod.rs`).

mod emu;

use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::time::{Duration, Instant};

use half::{bf16, f16};
use kernelyard_core::ops::rms_norm::RmsNormArgs;
use kernelyard_core::ops::silu_mul::{SiluMulArgs, SiluMulInput};
use kernelyard_core::ops::softmax::SoftmaxArgs;
use kernelyard_core::ops::token_logprobs::TokenLogprobsArgs;
use kernelyard_core::{Capabilities, Element, Error, Stream, TensorView, TensorViewMut};
use kernelyard_kernels::launch::{Dims, Launch};
use kernelyard_kernels::source::KernelSource;
use kernelyard_kernels::{rms_norm, silu_mul, softmax, token_logprobs};

use emu::Emulator;

// ---- helpers --------------------------------------------------------------------------------

/// A float dtype as the tests see it.
trait Float: Element + Default + std::fmt::Debug {
    /// Largest relative error of one rounding to nearest into this type (normal range).
    const EPS: f64;
    /// Largest absolute error of one rounding into this type's subnormal range.
    const TINY: f64;
    /// The bit pattern, for bitwise comparisons.
    fn bits(self) -> u32;
}

impl Float for f32 {
    const EPS: f64 = 1.0 / (1u64 << 24) as f64;
    const TINY: f64 = 1e-45;
    fn bits(self) -> u32 {
        self.to_bits()
    }
}

impl Float for bf16 {
    const EPS: f64 = 1.0 / 256.0;
    const TINY: f64 = 1e-40;
    fn bits(self) -> u32 {
        u32::from(self.to_bits())
    }
}

impl Float for f16 {
    const EPS: f64 = 1.0 / 2048.0;
    // Half of 2^-24, the subnormal spacing.
    const TINY: f64 = 1.0 / (1u64 << 25) as f64;
    fn bits(self) -> u32 {
        u32::from(self.to_bits())
    }
}

/// xorshift64*: reproducible inputs without a dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let u = (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo) * u
    }

    /// `n` values uniform in `[lo, hi)`, rounded to `T`.
    fn values<T: Float>(&mut self, n: usize, lo: f64, hi: f64) -> Vec<T> {
        (0..n).map(|_| T::from_f64(self.uniform(lo, hi))).collect()
    }
}

/// `n` elements whose first one sits `skew` elements past a 16-byte boundary (skew 0: the
/// 16-byte path is possible; 1: only the element path).
struct Buf<T> {
    v: Vec<T>,
    start: usize,
    n: usize,
}

impl<T: Float> Buf<T> {
    fn new(values: &[T], skew: usize) -> Buf<T> {
        let size = std::mem::size_of::<T>();
        let mut v = vec![T::default(); values.len() + 16 + skew];
        let start = (16 - v.as_ptr() as usize % 16) % 16 / size + skew;
        v[start..start + values.len()].copy_from_slice(values);
        Buf {
            v,
            start,
            n: values.len(),
        }
    }

    fn zeros(n: usize, skew: usize) -> Buf<T> {
        Buf::new(&vec![T::default(); n], skew)
    }

    fn get(&self) -> &[T] {
        &self.v[self.start..self.start + self.n]
    }

    fn get_mut(&mut self) -> &mut [T] {
        &mut self.v[self.start..self.start + self.n]
    }

    fn view(&self, shape: &[usize]) -> TensorView<'_> {
        TensorView::from_slice(self.get(), shape).unwrap()
    }

    fn view_mut(&mut self, shape: &[usize]) -> TensorViewMut<'_> {
        TensorViewMut::from_slice(self.get_mut(), shape).unwrap()
    }
}

/// The emulator of `source`, records the entry points it is asked to launch.
struct Spy {
    emu: &'static Emulator,
    seen: RefCell<Vec<&'static str>>,
    /// Time spent in emulated launches.
    busy: Cell<Duration>,
}

impl Spy {
    fn new(source: &'static KernelSource) -> Spy {
        let emu = Emulator::shared(source).unwrap_or_else(|e| panic!("emulator: {e}"));
        Spy {
            emu,
            seen: RefCell::new(Vec::new()),
            busy: Cell::new(Duration::ZERO),
        }
    }

    /// The one entry point launched since the last call.
    fn took(&self) -> &'static str {
        let seen = self.seen.take();
        assert_eq!(seen.len(), 1, "{seen:?}");
        seen[0]
    }
}

impl Launch for Spy {
    unsafe fn launch(
        &self,
        stream: &Stream,
        source: &'static KernelSource,
        symbol: &'static str,
        dims: Dims,
        params: &mut [*mut c_void],
    ) -> Result<(), Error> {
        self.seen.borrow_mut().push(symbol);
        let t = Instant::now();
        // SAFETY: forwarded under the caller's contract.
        let r = unsafe { self.emu.launch(stream, source, symbol, dims, params) };
        self.busy.set(self.busy.get() + t.elapsed());
        r
    }
}

/// Asserts `|got - want| <= rel |want| + abs` element by element, naming the worst one.
fn assert_close<T: Float>(what: &str, got: &[T], want: &[f64], rel: f64, abs: f64) {
    assert_eq!(got.len(), want.len(), "{what}");
    let mut worst: Option<(usize, f64)> = None;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let g = g.to_f64();
        let excess = (g - w).abs() - (rel * w.abs() + abs);
        if (excess > 0.0 || excess.is_nan())
            && worst.is_none_or(|(_, e)| excess > e || excess.is_nan())
        {
            worst = Some((i, excess));
        }
    }
    if let Some((i, _)) = worst {
        panic!(
            "{what}: element {i} is {:?} ({}), want {} (rel {rel:e}, abs {abs:e})",
            got[i],
            got[i].to_f64(),
            want[i]
        );
    }
}

fn assert_same_bits<T: Float>(what: &str, a: &[T], b: &[T]) {
    assert_eq!(a.len(), b.len(), "{what}");
    if let Some(i) = (0..a.len()).find(|&i| a[i].bits() != b[i].bits()) {
        panic!("{what}: element {i}: {:?} vs {:?}", a[i], b[i]);
    }
}

fn f64s<T: Float>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.to_f64()).collect()
}

/// `(variant, output)` of one emulated launch: the entry point's suffix and the bits.
type Run<T> = (&'static str, Vec<T>);

fn variant(symbol: &str) -> &'static str {
    if symbol.contains("_v") {
        "v"
    } else {
        assert!(symbol.contains("_s"), "{symbol}");
        "s"
    }
}

// ---- silu_mul -------------------------------------------------------------------------------

/// `silu(gate) * up` on random inputs, fused or split, `skew` elements off alignment; checked
/// against f64 (one rounding to the dtype, plus the f32 math's few ulp).
fn silu_mul_case<T: Float>(spy: &Spy, rows: usize, d: usize, split: bool, skew: usize) -> Run<T> {
    let (gate, up): (Vec<T>, Vec<T>) = (
        Rng::new(d as u64).values(rows * d, -10.0, 10.0),
        Rng::new(!(d as u64)).values(rows * d, -4.0, 4.0),
    );
    let fused: Vec<T> = (0..rows)
        .flat_map(|r| {
            gate[r * d..(r + 1) * d]
                .iter()
                .chain(&up[r * d..(r + 1) * d])
        })
        .copied()
        .collect();
    let (x, g, u) = (
        Buf::new(&fused, skew),
        Buf::new(&gate, skew),
        Buf::new(&up, skew),
    );
    let mut out = Buf::<T>::zeros(rows * d, skew);
    let input = if split {
        SiluMulInput::Split {
            gate: g.view(&[rows, d]),
            up: u.view(&[rows, d]),
        }
    } else {
        SiluMulInput::Fused(x.view(&[rows, 2 * d]))
    };
    let mut a = SiluMulArgs {
        input,
        out: out.view_mut(&[rows, d]),
    };
    let (p, _) = a.validate().unwrap();
    silu_mul::launch(spy, &Stream::host(), &Capabilities::host(), &mut a, &p).unwrap();
    let symbol = spy.took();
    let want: Vec<f64> = gate
        .iter()
        .zip(&up)
        .map(|(g, u)| {
            let (g, u) = (g.to_f64(), u.to_f64());
            g / (1.0 + (-g).exp()) * u
        })
        .collect();
    let what = format!("{symbol} {rows} x {d} split={split} skew={skew}");
    // f32: about 1.2 |g| ulp at most (the kernel's docs); then one rounding to T.
    assert_close(&what, out.get(), &want, T::EPS + 2e-6, T::TINY);
    (variant(symbol), out.get().to_vec())
}

fn silu_mul_dtype<T: Float>() {
    let spy = Spy::new(&silu_mul::SOURCE);
    let per_vector = 16 / T::DTYPE.size();
    for (rows, d) in [(1, 8), (3, 64), (5, 3000), (7, 14336), (2, 13), (300, 40)] {
        for split in [false, true] {
            let (v, aligned) = silu_mul_case::<T>(&spy, rows, d, split, 0);
            let (s, skewed) = silu_mul_case::<T>(&spy, rows, d, split, 1);
            assert_eq!(s, "s", "{rows} x {d}");
            assert_eq!(v == "v", d % per_vector == 0, "{rows} x {d}");
            let what = format!("silu_mul {:?} {rows} x {d}: {v} vs {s}", T::DTYPE);
            assert_same_bits(&what, &aligned, &skewed);
        }
    }
}

#[test]
fn silu_mul_f32_matches_rust_on_both_paths() {
    silu_mul_dtype::<f32>();
}

#[test]
fn silu_mul_bf16_matches_rust_on_both_paths() {
    silu_mul_dtype::<bf16>();
}

#[test]
fn silu_mul_f16_matches_rust_on_both_paths() {
    silu_mul_dtype::<f16>();
}

// ---- rms_norm -------------------------------------------------------------------------------

/// RMSNorm of random rows (with the fused residual add when `residual`), `skew` elements off
/// alignment. y is checked against f64 on the stored x' (the f32 math's error, then one
/// rounding); residual_out bitwise against round(x + r) in f32. Returns y (then residual_out).
fn rms_norm_case<T: Float>(
    spy: &Spy,
    rows: usize,
    cols: usize,
    residual: bool,
    skew: usize,
) -> Run<T> {
    // Seeded by cols alone: a row's values do not depend on how many rows there are.
    let x: Vec<T> = Rng::new(cols as u64).values(rows * cols, -2.0, 2.0);
    let r: Vec<T> = Rng::new(!(cols as u64)).values(rows * cols, -2.0, 2.0);
    let w: Vec<T> = Rng::new(cols as u64 + 1).values(cols, 0.5, 1.5);
    let eps = 1e-6f32;
    let (xb, rb, wb) = (Buf::new(&x, skew), Buf::new(&r, skew), Buf::new(&w, skew));
    let mut y = Buf::<T>::zeros(rows * cols, skew);
    let mut ro = Buf::<T>::zeros(rows * cols, skew);
    let mut a = RmsNormArgs::new(
        xb.view(&[rows, cols]),
        wb.view(&[cols]),
        y.view_mut(&[rows, cols]),
        eps,
    );
    if residual {
        a.residual = Some(rb.view(&[rows, cols]));
        a.residual_out = Some(ro.view_mut(&[rows, cols]));
    }
    let (p, _) = a.validate().unwrap();
    rms_norm::launch(spy, &Stream::host(), &Capabilities::host(), &mut a, &p).unwrap();
    let symbol = spy.took();
    assert_eq!(symbol.ends_with("_res"), residual, "{symbol}");
    let what = format!("{symbol} {rows} x {cols} skew={skew}");
    // x' = round(x + r) in f32, as stored in residual_out.
    let xs: Vec<T> = if residual {
        x.iter()
            .zip(&r)
            .map(|(a, b)| T::from_f64(f64::from(a.to_f64() as f32 + b.to_f64() as f32)))
            .collect()
    } else {
        x.clone()
    };
    if residual {
        assert_same_bits(&format!("{what} residual_out"), ro.get(), &xs);
    }
    let mut want = vec![0.0; rows * cols];
    for row in 0..rows {
        let xr = &xs[row * cols..(row + 1) * cols];
        let ss: f64 = xr.iter().map(|v| v.to_f64() * v.to_f64()).sum();
        let inv = 1.0 / (ss / cols as f64 + f64::from(eps)).sqrt();
        for (j, v) in xr.iter().enumerate() {
            want[row * cols + j] = v.to_f64() * inv * w[j].to_f64();
        }
    }
    assert_close(&format!("{what} y"), y.get(), &want, T::EPS + 4e-6, 1e-6);
    let mut out = y.get().to_vec();
    if residual {
        out.extend_from_slice(ro.get());
    }
    (variant(symbol), out)
}

fn rms_norm_dtype<T: Float>() {
    let spy = Spy::new(&rms_norm::SOURCE);
    let per_vector = 16 / T::DTYPE.size();
    let mut variants = Vec::new();
    // Register path with several rows per block (tpr <= 32), one row per block (block
    // reductions through shared memory), the two-pass long path; odd lengths.
    for (rows, cols) in [
        (1, 8),
        (5, 64),
        (33, 1000),
        (3, 1003),
        (4, 4096),
        (2, 20000),
    ] {
        for residual in [false, true] {
            let (v, aligned) = rms_norm_case::<T>(&spy, rows, cols, residual, 0);
            let (s, skewed) = rms_norm_case::<T>(&spy, rows, cols, residual, 1);
            assert_eq!(s, "s");
            assert_eq!(v == "v", cols % per_vector == 0, "{rows} x {cols}");
            let what = format!("rms_norm {:?} {rows} x {cols}: {v} vs {s}", T::DTYPE);
            assert_same_bits(&what, &aligned, &skewed);
            // Batch invariance: the first row alone gives the same bits.
            let (_, alone) = rms_norm_case::<T>(&spy, 1, cols, residual, 0);
            let first: Vec<T> = aligned[..cols].to_vec();
            assert_same_bits(&format!("{what}, row 0 alone"), &alone[..cols], &first);
            variants.push(v);
        }
    }
    assert!(variants.contains(&"v") && variants.contains(&"s"));
}

#[test]
fn rms_norm_f32_matches_rust_on_both_paths() {
    rms_norm_dtype::<f32>();
}

#[test]
fn rms_norm_bf16_matches_rust_on_both_paths() {
    rms_norm_dtype::<bf16>();
}

// ---- softmax --------------------------------------------------------------------------------

/// Softmax of random rows, `skew` elements off alignment, with `caps` (whose opt-in shared
/// memory decides between the two-pass paths); checked against f64.
fn softmax_case<T: Float>(
    spy: &Spy,
    caps: &Capabilities,
    rows: usize,
    cols: usize,
    skew: usize,
) -> (&'static str, Vec<T>) {
    let x: Vec<T> = Rng::new(cols as u64).values(rows * cols, -8.0, 8.0);
    let xb = Buf::new(&x, skew);
    let mut y = Buf::<T>::zeros(rows * cols, skew);
    let mut a = SoftmaxArgs {
        x: xb.view(&[rows, cols]),
        out: y.view_mut(&[rows, cols]),
    };
    let (p, _) = a.validate().unwrap();
    softmax::launch(spy, &Stream::host(), caps, &mut a, &p).unwrap();
    let symbol = spy.took();
    let mut want = vec![0.0; rows * cols];
    for row in 0..rows {
        let xr = f64s(&x[row * cols..(row + 1) * cols]);
        let m = xr.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = xr.iter().map(|v| (v - m).exp()).sum();
        for (j, v) in xr.iter().enumerate() {
            want[row * cols + j] = (v - m).exp() / s;
        }
    }
    let what = format!("{symbol} {rows} x {cols} skew={skew}");
    assert_close(&what, y.get(), &want, T::EPS + 1e-5, T::TINY);
    (symbol, y.get().to_vec())
}

fn softmax_dtype<T: Float>() {
    let spy = Spy::new(&softmax::SOURCE);
    let host = Capabilities::host();
    let h100 = Capabilities {
        shared_mem_per_block_optin: 227 * 1024,
        ..Capabilities::host()
    };
    let per_vector = 16 / T::DTYPE.size();
    let mut paths = Vec::new();
    for (caps, rows, cols) in [
        (&host, 1, 4),
        (&host, 7, 100),
        (&host, 9, 1024),
        (&host, 3, 1501),
        (&host, 3, 8192),
        (&host, 2, 20000),
        (&h100, 2, 20000),
        (&h100, 2, 20003),
    ] {
        let (v, aligned) = softmax_case::<T>(&spy, caps, rows, cols, 0);
        let (s, skewed) = softmax_case::<T>(&spy, caps, rows, cols, 1);
        assert_eq!(variant(s), "s", "{s}");
        assert_eq!(variant(v) == "v", cols % per_vector == 0, "{v}");
        assert_same_bits(&format!("{v} vs {s}, {rows} x {cols}"), &aligned, &skewed);
        let (_, alone) = softmax_case::<T>(&spy, caps, 1, cols, 0);
        assert_same_bits(&format!("{v}: row 0 alone"), &alone, &aligned[..cols]);
        paths.extend([v, s]);
    }
    // Every family ran: the register path (`_v<C>`, `_s<C>`) and both two-pass paths.
    let register = |p: &str, v: &str| {
        p.rsplit_once('_')
            .is_some_and(|(_, t)| t.starts_with(v) && t[1..].parse::<u32>().is_ok())
    };
    assert!(paths.iter().any(|p| register(p, "v")), "{paths:?}");
    assert!(paths.iter().any(|p| register(p, "s")), "{paths:?}");
    for family in ["_smem_v", "_smem_s", "_long_v", "_long_s"] {
        assert!(
            paths.iter().any(|p| p.ends_with(family)),
            "{family}: {paths:?}"
        );
    }
}

#[test]
fn softmax_f32_matches_rust_on_every_path() {
    softmax_dtype::<f32>();
}

#[test]
fn softmax_bf16_matches_rust_on_every_path() {
    softmax_dtype::<bf16>();
}

// ---- token_logprobs: split rows ------------------------------------------------------------

/// The poison the outputs hold before a launch (a NaN no kernel writes).
const POISON: u32 = 0x7fc0_dead;

/// One token_logprobs launch of `rows` x `vocab` logits (`skew` elements off alignment) on the
/// split path, with scratch for `scratch_rows` rows and the caller's `counters` (kept across
/// launches, as a stream's), outputs poisoned first. Returns the log-probabilities, the
/// entropies, the checked mode's slot (`u64::MAX`: no bad row) and the entry points launched.
#[allow(clippy::too_many_arguments)]
fn tl_launch<T: Float>(
    spy: &Spy,
    x: &[T],
    targets: &[i64],
    vocab: usize,
    skew: usize,
    scratch_rows: usize,
    counters: &mut [u32],
    checked: bool,
) -> (Vec<f32>, Vec<f32>, u64, Vec<&'static str>) {
    let rows = targets.len();
    let xb = Buf::new(x, skew);
    let mut out = vec![f32::from_bits(POISON); rows];
    let mut ent = vec![f32::from_bits(POISON); rows];
    let mut slot = [u64::MAX];
    let mut a = TokenLogprobsArgs::new(
        xb.view(&[rows, vocab]),
        TensorView::from_slice(targets, &[rows]).unwrap(),
        TensorViewMut::from_slice(&mut out, &[rows]).unwrap(),
    );
    a.entropy = Some(TensorViewMut::from_slice(&mut ent, &[rows]).unwrap());
    a.temperature = 0.8;
    a.checked = checked;
    let (p, _) = a.validate().unwrap();
    let splits = token_logprobs::splits(vocab, T::DTYPE);
    assert!(splits > 1, "{vocab} {}: not split", T::DTYPE);
    let mut part = vec![0u8; scratch_rows * splits * token_logprobs::PART_BYTES];
    let mem = token_logprobs::SplitMem {
        scratch: token_logprobs::Scratch {
            ptr: part.as_mut_ptr().cast(),
            bytes: part.len(),
        },
        counters: token_logprobs::Counters {
            ptr: counters.as_mut_ptr().cast(),
            len: counters.len(),
        },
    };
    let bad = if checked {
        slot.as_mut_ptr().cast()
    } else {
        std::ptr::null_mut()
    };
    // SAFETY: host memory the emulator's kernels may use, alive until the launch returns (the
    // emulator runs a launch to completion); the counters are the caller's, zero on entry.
    unsafe {
        token_logprobs::launch(
            spy,
            &Stream::host(),
            &Capabilities::host(),
            &mut a,
            &p,
            bad,
            mem,
        )
    }
    .unwrap();
    (out, ent, slot[0], spy.seen.take())
}

/// log_softmax(x / temp)[target] and the entropy of softmax(x / temp), in f64.
fn tl_oracle(x: &[f64], target: i64, temp: f64) -> (f64, f64) {
    let y: Vec<f64> = x.iter().map(|v| v / temp).collect();
    let m = y.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let s: f64 = y.iter().map(|v| (v - m).exp()).sum();
    let lse = m + s.ln();
    let h = -y.iter().map(|v| (v - lse).exp() * (v - lse)).sum::<f64>();
    let lp = if target == -100 {
        0.0
    } else {
        y[target as usize] - lse
    };
    (lp, h)
}

/// Split rows (3 splits) in passes of 2 rows, twice on the same counters with new logits and
/// targets the second time: both launches match f64, one launch per pass of the split kernel
/// (no combine), the counters are zero after each, and the bits do not depend on the pass size
/// or on the load path (16-byte or element).
fn tl_split_dtype<T: Float>(vocab: usize) {
    let spy = Spy::new(&token_logprobs::SOURCE);
    let rows = 5;
    let mut counters = [0u32; 2];
    for seed in [1u64, 2] {
        let x: Vec<T> = Rng::new(seed).values(rows * vocab, -12.0, 12.0);
        let targets: Vec<i64> = (0..rows as u64)
            .map(|r| match r {
                1 => -100,
                _ => ((r + 1) * 7919 * seed % vocab as u64) as i64,
            })
            .collect();
        let (lp, h, _, launched) = tl_launch(&spy, &x, &targets, vocab, 0, 2, &mut counters, false);
        assert_eq!(counters, [0, 0], "seed {seed}: the counters are reset");
        assert_eq!(launched.len(), 3, "{launched:?}");
        let split = token_logprobs::split_symbol(T::DTYPE, true).unwrap();
        assert!(launched.iter().all(|&s| s == split), "{launched:?}");
        let (mut want_lp, mut want_h) = (Vec::new(), Vec::new());
        for r in 0..rows {
            let (l, e) = tl_oracle(&f64s(&x[r * vocab..(r + 1) * vocab]), targets[r], 0.8);
            want_lp.push(l);
            want_h.push(e);
        }
        let what = format!("{split} seed {seed}");
        assert_close(&format!("{what} logprobs"), &lp, &want_lp, 1e-5, 1e-4);
        assert_close(&format!("{what} entropy"), &h, &want_h, 1e-5, 1e-4);
        // All rows in one pass, and the element path: the same bits.
        let mut more = [0u32; 8];
        let (lp1, h1, _, one) = tl_launch(&spy, &x, &targets, vocab, 0, 8, &mut more, false);
        assert_eq!(one.len(), 1, "{one:?}");
        let (lps, hs, _, scalar) = tl_launch(&spy, &x, &targets, vocab, 1, 2, &mut counters, false);
        assert_eq!(
            scalar[0],
            token_logprobs::split_symbol(T::DTYPE, false).unwrap()
        );
        assert_eq!((more, counters), ([0; 8], [0; 2]));
        for (w, o) in [("one pass", (&lp1, &h1)), ("element path", (&lps, &hs))] {
            assert_same_bits(&format!("{what} {w} logprobs"), o.0, &lp);
            assert_same_bits(&format!("{what} {w} entropy"), o.1, &h);
        }
    }
}

#[test]
fn token_logprobs_split_rows_f32_run_twice_on_the_same_counters() {
    tl_split_dtype::<f32>(20_000);
}

#[test]
fn token_logprobs_split_rows_bf16_run_twice_on_the_same_counters() {
    tl_split_dtype::<bf16>(40_000);
}

/// Checked mode on split rows: a bad row means no output is written (the poison stays), the
/// slot names the first bad row, and the counters are reset all the same, so the next launch
/// on them is right.
#[test]
fn token_logprobs_checked_split_rows_write_nothing_and_reset_the_counters() {
    let spy = Spy::new(&token_logprobs::SOURCE);
    let (rows, vocab) = (5, 20_000);
    let x: Vec<f32> = Rng::new(3).values(rows * vocab, -12.0, 12.0);
    let mut counters = [0u32; 2];
    let bad = [3, 5, 20_000, 7, -2];
    let (lp, h, slot, _) = tl_launch(&spy, &x, &bad, vocab, 0, 2, &mut counters, true);
    assert_eq!(slot, 2);
    assert!(
        lp.iter().chain(&h).all(|v| v.to_bits() == POISON),
        "{lp:?} {h:?}"
    );
    assert_eq!(counters, [0, 0]);
    let good = [3, 5, 19_999, 7, 0];
    let (lp, _, slot, _) = tl_launch(&spy, &x, &good, vocab, 0, 2, &mut counters, true);
    assert_eq!((slot, counters), (u64::MAX, [0, 0]));
    let want: Vec<f64> = (0..rows)
        .map(|r| tl_oracle(&f64s(&x[r * vocab..(r + 1) * vocab]), good[r], 0.8).0)
        .collect();
    assert_close("checked, good targets", &lp, &want, 1e-5, 1e-4);
}

// ---- speed ----------------------------------------------------------------------------------

/// About a million elements per launch: each emulated launch takes a fraction of a second
/// (printed with `--nocapture`: the launch alone, then with inputs and the f64 check). The
/// bound only catches a pathological scheduler.
#[test]
fn a_million_elements_run_in_well_under_a_few_seconds() {
    let limit = Duration::from_secs(20);
    let mut report = Vec::new();
    let mut time = |what: &str, spy: &Spy, f: &mut dyn FnMut(&Spy)| {
        let t = Instant::now();
        spy.busy.set(Duration::ZERO);
        f(spy);
        let (launch, all) = (spy.busy.get(), t.elapsed());
        report.push(format!("{what}: launch {launch:.2?} (test {all:.2?})"));
        assert!(launch < limit, "{what} took {launch:?}");
    };
    let silu = Spy::new(&silu_mul::SOURCE);
    let rms = Spy::new(&rms_norm::SOURCE);
    let soft = Spy::new(&softmax::SOURCE);
    let host = Capabilities::host();
    time("silu_mul bf16 1024 x 1024, _v", &silu, &mut |s| {
        silu_mul_case::<bf16>(s, 1024, 1024, false, 0);
    });
    time("silu_mul f32 1024 x 1024, _s", &silu, &mut |s| {
        silu_mul_case::<f32>(s, 1024, 1024, true, 1);
    });
    time("rms_norm bf16 256 x 4096 with residual", &rms, &mut |s| {
        rms_norm_case::<bf16>(s, 256, 4096, true, 0);
    });
    time("rms_norm f32 16384 x 64", &rms, &mut |s| {
        rms_norm_case::<f32>(s, 16384, 64, false, 0);
    });
    time("softmax f32 4096 x 256", &soft, &mut |s| {
        softmax_case::<f32>(s, &host, 4096, 256, 0);
    });
    time("softmax bf16 16 x 65536, two passes", &soft, &mut |s| {
        softmax_case::<bf16>(s, &host, 16, 65536, 0);
    });
    eprintln!("{}", report.join("\n"));
}
