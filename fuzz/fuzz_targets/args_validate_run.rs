//! Structured arguments -> `Args::validate` -> a run on the reference backend.
//!
//! The input (derived with `arbitrary`) picks an operator call and small sizes, builds that
//! call's valid tensors, then applies mutations: a dimension or the whole shape (up to rank 9,
//! sizes up to `usize::MAX`), strides (negative, zero, extreme), dtype, device, a misaligning
//! byte offset, placing one tensor inside another's memory, dropping or adding an optional
//! tensor, and the scalars. Every tensor whose addressed span fits in 256 KiB gets memory of
//! its own (or the memory it was placed in); larger ones get a far-away address that nothing
//! reads.
//!
//! What must hold:
//! - making views, validating and selecting return a value or a typed error, never a panic;
//! - arguments that validate have no writable tensor overlapping another tensor in memory (an
//!   in-place form is one writable view: `RopeArgs::in_place`, the SSU state, gemm's C);
//! - arguments that validate to the CPU, all backed by memory, run on the reference backend
//!   (`Runtime::run`, `Policy::backend("reference")`) to `Ok` or a typed error, and the plan
//!   that ran is a reference kernel for the validated problem;
//! - every validated problem selects on every simulated device (CPU, sm_75 ... sm_100,
//!   gfx90a) to a plan `check_plan` accepts or a typed error.

#![no_main]

use std::ffi::c_void;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use kernelyard::ops::attention::AttentionArgs;
use kernelyard::ops::gemm::GemmArgs;
use kernelyard::ops::log_softmax::LogSoftmaxArgs;
use kernelyard::ops::rms_norm::RmsNormArgs;
use kernelyard::ops::rope::{RopeArgs, RopeStyle};
use kernelyard::ops::scaled_gemm::{bias_dtypes, ScaleMode, ScaledGemmArgs};
use kernelyard::ops::selective_state_update::SelectiveStateUpdateArgs;
use kernelyard::ops::silu_mul::{SiluMulArgs, SiluMulInput};
use kernelyard::ops::softmax::SoftmaxArgs;
use kernelyard::ops::token_logprobs::TokenLogprobsArgs;
use kernelyard::{
    Args, DType, DeviceId, Error, Policy, Runtime, Stream, TensorView, TensorViewMut,
    ValidationError,
};
use kernelyard_fuzz::{check_plan, devices, policies, selection_runtime};
use libfuzzer_sys::fuzz_target;

/// The most bytes one buffer may take; a tensor addressing more is left without memory.
const MAX_BUFFER: usize = 256 << 10;

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq)]
enum Call {
    Gemm,
    GemmBatched,
    RmsNorm,
    RmsNormResidual,
    Softmax,
    LogSoftmax,
    TokenLogprobs,
    Rope,
    RopeInPlace,
    Attention,
    Ssu,
    SiluMul,
    SiluMulSplit,
    ScaledGemm,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Dt {
    F32,
    F16,
    BF16,
    I32,
    I64,
    F8E4M3,
    F8E5M2,
}

impl Dt {
    fn get(self) -> DType {
        match self {
            Dt::F32 => DType::F32,
            Dt::F16 => DType::F16,
            Dt::BF16 => DType::BF16,
            Dt::I32 => DType::I32,
            Dt::I64 => DType::I64,
            Dt::F8E4M3 => DType::F8E4M3,
            Dt::F8E5M2 => DType::F8E5M2,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Dev {
    Cpu,
    Cuda0,
    Cuda1,
    Rocm0,
}

impl Dev {
    fn get(self) -> DeviceId {
        match self {
            Dev::Cpu => DeviceId::CPU,
            Dev::Cuda0 => DeviceId::cuda(0),
            Dev::Cuda1 => DeviceId::cuda(1),
            Dev::Rocm0 => DeviceId::rocm(0),
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Size {
    Small(u8),
    Huge(u8),
}

const HUGE: [usize; 9] = [
    65_536,
    1 << 20,
    1 << 31,
    1 << 32,
    1 << 40,
    isize::MAX as usize / 2 + 1,
    isize::MAX as usize,
    isize::MAX as usize + 1,
    usize::MAX,
];

impl Size {
    fn get(self) -> usize {
        match self {
            Size::Small(n) => usize::from(n % 33),
            Size::Huge(i) => HUGE[usize::from(i) % HUGE.len()],
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Stride {
    Small(i8),
    Huge(u8),
}

const HUGE_STRIDES: [isize; 8] = [
    1 << 20,
    -(1 << 20),
    1 << 40,
    -(1 << 40),
    isize::MAX / 4,
    isize::MAX,
    isize::MIN + 1,
    isize::MIN,
];

impl Stride {
    fn get(self) -> isize {
        match self {
            Stride::Small(n) => isize::from(n),
            Stride::Huge(i) => HUGE_STRIDES[usize::from(i) % HUGE_STRIDES.len()],
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Mutation {
    Dim {
        tensor: u8,
        index: u8,
        size: Size,
    },
    Shape {
        tensor: u8,
        dims: Vec<Size>,
    },
    Strides {
        tensor: u8,
        strides: Vec<Stride>,
    },
    Stride {
        tensor: u8,
        index: u8,
        stride: Stride,
    },
    Dtype {
        tensor: u8,
        dtype: Dt,
    },
    Device {
        tensor: u8,
        device: Dev,
    },
    Misalign {
        tensor: u8,
        bytes: u8,
    },
    PlaceIn {
        tensor: u8,
        onto: u8,
        bytes: i16,
    },
    Toggle {
        slot: u8,
    },
}

/// A scalar: its valid default, or any `f32`.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Scalar {
    Default,
    Value(f32),
}

impl Scalar {
    fn or(self, default: f32) -> f32 {
        match self {
            Scalar::Default => default,
            Scalar::Value(v) => v,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Fill {
    /// Small values (floats in [-2, 2], indices in [0, 8)).
    Tame,
    /// Any bit patterns (NaN, infinities, huge or negative indices).
    Raw,
}

#[derive(Arbitrary, Debug)]
struct Input {
    call: Call,
    dims: [u8; 5],
    dtype: Dt,
    second: Dt,
    flags: u8,
    scalars: [Scalar; 2],
    ignore_index: i64,
    mutations: Vec<Mutation>,
    fill: Fill,
    seed: u64,
}

/// One tensor of a call: its metadata and where its element 0 lives.
#[derive(Clone, Debug)]
struct T {
    dtype: DType,
    shape: Vec<usize>,
    strides: Option<Vec<isize>>,
    device: DeviceId,
    misalign: usize,
    /// Placed inside this other tensor's memory, this many bytes from its element 0.
    place_in: Option<(usize, isize)>,
}

fn t(dtype: DType, shape: &[usize]) -> T {
    T {
        dtype,
        shape: shape.to_vec(),
        strides: None,
        device: DeviceId::CPU,
        misalign: 0,
        place_in: None,
    }
}

/// An argument slot of a call: a tensor, or an absent optional one.
struct Slot {
    writable: bool,
    optional: bool,
    tensor: Option<T>,
    /// What an absent optional tensor becomes when toggled on.
    template: T,
}

fn req(writable: bool, t: T) -> Slot {
    Slot {
        writable,
        optional: false,
        tensor: Some(t.clone()),
        template: t,
    }
}

fn opt(writable: bool, present: bool, t: T) -> Slot {
    Slot {
        writable,
        optional: true,
        tensor: present.then(|| t.clone()),
        template: t,
    }
}

/// The valid baseline of `call` (before mutations).
fn baseline(input: &Input) -> Vec<Slot> {
    let d = |i: usize| usize::from(input.dims[i] % 9);
    // The float dtype of every op but scaled_gemm (FP8 is scaled_gemm's alone).
    let f = match input.dtype.get() {
        DType::I32 | DType::I64 | DType::F8E4M3 | DType::F8E5M2 => DType::F32,
        x => x,
    };
    let idx = match input.second.get() {
        DType::I64 => DType::I64,
        _ => DType::I32,
    };
    let flag = |bit: u8| input.flags & (1 << bit) != 0;
    match input.call {
        Call::Gemm | Call::GemmBatched => {
            let (m, n, k) = (d(0), d(1), d(2));
            let a = if flag(0) { [k, m] } else { [m, k] };
            let b = if flag(1) { [n, k] } else { [k, n] };
            let c_dtype = if flag(2) { DType::F32 } else { f };
            if input.call == Call::GemmBatched {
                let batch = d(3);
                let bb: Vec<usize> = if flag(3) {
                    b.to_vec()
                } else {
                    vec![batch, b[0], b[1]]
                };
                vec![
                    req(false, t(f, &[batch, a[0], a[1]])),
                    req(false, t(f, &bb)),
                    req(true, t(c_dtype, &[batch, m, n])),
                ]
            } else {
                vec![
                    req(false, t(f, &a)),
                    req(false, t(f, &b)),
                    req(true, t(c_dtype, &[m, n])),
                ]
            }
        }
        Call::RmsNorm | Call::RmsNormResidual => {
            let (rows, hidden) = (d(0), d(1));
            let res = input.call == Call::RmsNormResidual;
            vec![
                req(false, t(f, &[rows, hidden])),
                req(false, t(f, &[hidden])),
                opt(false, res, t(f, &[rows, hidden])),
                req(true, t(f, &[rows, hidden])),
                opt(true, res, t(f, &[rows, hidden])),
            ]
        }
        Call::Softmax | Call::LogSoftmax => {
            let (rows, cols) = (d(0), d(1));
            vec![
                req(false, t(f, &[rows, cols])),
                req(true, t(f, &[rows, cols])),
            ]
        }
        Call::TokenLogprobs => {
            let (tokens, vocab) = (d(0), d(1));
            vec![
                req(false, t(f, &[tokens, vocab])),
                req(false, t(idx, &[tokens])),
                req(true, t(DType::F32, &[tokens])),
                opt(true, flag(0), t(DType::F32, &[tokens])),
            ]
        }
        Call::Rope | Call::RopeInPlace => {
            let (tokens, heads, head_dim) = (d(0), d(1), 2 * d(2));
            let x = t(f, &[tokens, heads, head_dim]);
            let mut slots = vec![req(false, x.clone()), req(false, t(idx, &[tokens]))];
            if input.call == Call::Rope {
                slots.push(req(true, x));
            }
            slots
        }
        Call::Attention => {
            let (batch, seq_q, seq_kv, heads_kv, head_dim) = (d(0), d(1), d(2), d(3), d(4));
            let heads_q = heads_kv * (1 + usize::from(input.flags >> 4) % 3);
            vec![
                req(false, t(f, &[batch, seq_q, heads_q, head_dim])),
                req(false, t(f, &[batch, seq_kv, heads_kv, head_dim])),
                req(false, t(f, &[batch, seq_kv, heads_kv, head_dim])),
                req(true, t(f, &[batch, seq_q, heads_q, head_dim])),
                opt(true, flag(0), t(DType::F32, &[batch, heads_q, seq_q])),
            ]
        }
        Call::Ssu => {
            let (batch, heads, head_dim, state_dim) = (d(0), d(1), d(2), d(3));
            let groups = 1 + usize::from(input.dims[4] % 2);
            let heads = heads * groups;
            let state_dtype = if flag(3) { f } else { DType::F32 };
            // With state_indices (flag 5), the state is a cache of batch + dims[4] % 4 rows.
            let rows = if flag(5) {
                batch + usize::from(input.dims[4] % 4)
            } else {
                batch
            };
            vec![
                req(true, t(state_dtype, &[rows, heads, head_dim, state_dim])),
                req(false, t(f, &[batch, heads, head_dim])),
                req(false, t(f, &[batch, heads, head_dim])),
                opt(false, flag(0), t(DType::F32, &[heads, head_dim])),
                req(false, t(DType::F32, &[heads, head_dim, state_dim])),
                req(false, t(f, &[batch, groups, state_dim])),
                req(false, t(f, &[batch, groups, state_dim])),
                opt(false, flag(1), t(DType::F32, &[heads, head_dim])),
                opt(false, flag(2), t(f, &[batch, heads, head_dim])),
                req(true, t(f, &[batch, heads, head_dim])),
                opt(false, flag(5), t(idx, &[batch])),
            ]
        }
        Call::SiluMul => {
            let (rows, dd) = (d(0), d(1));
            vec![
                req(false, t(f, &[rows, 2 * dd])),
                req(true, t(f, &[rows, dd])),
            ]
        }
        Call::SiluMulSplit => {
            let (rows, dd) = (d(0), d(1));
            vec![
                req(false, t(f, &[rows, dd])),
                req(false, t(f, &[rows, dd])),
                req(true, t(f, &[rows, dd])),
            ]
        }
        Call::ScaledGemm => {
            // k up to 8 * 32 + 8: block scales with one to three k-blocks. An operand whose
            // scale mode is an FP4 one is FP4 pairs, `[rows, k/2]` bytes (k rounded down to
            // even); the others FP8.
            let (m, n, k) = (d(0), d(1), 32 * d(2) + d(3));
            let fp8 = |x: DType| if x.is_fp8() { x } else { DType::F8E4M3 };
            let out = [DType::BF16, DType::F16, DType::F32][usize::from(input.dims[4] % 3)];
            let (ma, mb) = scale_modes(input);
            let operand = |mode: ScaleMode, dtype: DType, rows: usize| {
                if mode.is_fp4() {
                    t(DType::F4E2M1X2, &[rows, k / 2])
                } else {
                    t(fp8(dtype), &[rows, k])
                }
            };
            let ka = if ma.is_fp4() { k / 2 * 2 } else { k };
            let kb = if mb.is_fp4() { k / 2 * 2 } else { k };
            vec![
                req(false, operand(ma, input.dtype.get(), m)),
                req(false, operand(mb, input.second.get(), n)),
                req(false, t(ma.scale_dtypes()[0], &ma.a_shape(m, ka))),
                req(false, t(mb.scale_dtypes()[0], &mb.b_shape(n, kb))),
                req(true, t(out, &[m, n])),
                opt(false, flag(0), t(bias_dtypes(out)[0], &[n])),
            ]
        }
    }
}

/// scaled_gemm's scale modes: A's from flags bits 4-5 (3: an FP4 mode, NVFP4 or MXFP4 by
/// dims[4]'s low bit), B's the same unless bit 7 is set (then from dims[4], often an
/// unsupported pair).
fn scale_modes(input: &Input) -> (ScaleMode, ScaleMode) {
    let a = match usize::from(input.flags >> 4 & 3) {
        3 if input.dims[4] & 1 == 0 => ScaleMode::Nvfp4,
        3 => ScaleMode::Mxfp4,
        i => ScaleMode::ALL[i],
    };
    let b = if input.flags & 0x80 != 0 {
        ScaleMode::ALL[usize::from(input.dims[4] / 3) % ScaleMode::ALL.len()]
    } else {
        a
    };
    (a, b)
}

/// Row-major strides of `t`, or its own.
fn strides_of(t: &T) -> Vec<isize> {
    t.strides.clone().unwrap_or_else(|| {
        let mut acc: isize = 1;
        let mut s = vec![0; t.shape.len()];
        for i in (0..t.shape.len()).rev() {
            s[i] = acc;
            acc = acc.saturating_mul(t.shape[i].max(1).min(isize::MAX as usize) as isize);
        }
        s
    })
}

fn mutate(slots: &mut [Slot], m: &Mutation) {
    let n = slots.len();
    let slot = |i: u8| usize::from(i) % n;
    if let Mutation::Toggle { slot: i } = m {
        let optional: Vec<usize> = (0..n).filter(|&j| slots[j].optional).collect();
        if let Some(&j) = optional.get(usize::from(*i) % optional.len().max(1)) {
            let s = &mut slots[j];
            s.tensor = match s.tensor.take() {
                Some(_) => None,
                None => Some(s.template.clone()),
            };
        }
        return;
    }
    let (i, onto) = match m {
        Mutation::PlaceIn { tensor, onto, .. } => (slot(*tensor), slot(*onto)),
        Mutation::Dim { tensor, .. }
        | Mutation::Shape { tensor, .. }
        | Mutation::Strides { tensor, .. }
        | Mutation::Stride { tensor, .. }
        | Mutation::Dtype { tensor, .. }
        | Mutation::Device { tensor, .. }
        | Mutation::Misalign { tensor, .. } => (slot(*tensor), 0),
        Mutation::Toggle { .. } => return,
    };
    let Some(t) = slots[i].tensor.as_mut() else {
        return;
    };
    match m {
        Mutation::Dim { index, size, .. } if !t.shape.is_empty() => {
            let j = usize::from(*index) % t.shape.len();
            t.shape[j] = size.get();
        }
        Mutation::Shape { dims, .. } => {
            t.shape = dims.iter().take(9).map(|s| s.get()).collect();
        }
        Mutation::Strides { strides, .. } => {
            t.strides = Some(strides.iter().take(10).map(|s| s.get()).collect());
        }
        Mutation::Stride { index, stride, .. } => {
            let mut s = strides_of(t);
            if !s.is_empty() {
                let j = usize::from(*index) % s.len();
                s[j] = stride.get();
                t.strides = Some(s);
            }
        }
        Mutation::Dtype { dtype, .. } => t.dtype = dtype.get(),
        Mutation::Device { device, .. } => t.device = device.get(),
        Mutation::Misalign { bytes, .. } => t.misalign = usize::from(*bytes % 16),
        // Only onto an earlier tensor, so placements form no cycle.
        Mutation::PlaceIn { bytes, .. } if onto < i => {
            t.place_in = Some((onto, isize::from(*bytes)));
        }
        _ => {}
    }
}

/// The byte extent `[lo, hi)` a tensor addresses relative to its element 0 (`(0, 0)` for a
/// zero dimension), or `None` if its strides do not match its rank or the extent overflows an
/// `i128`.
fn extent(t: &T) -> Option<(i128, i128)> {
    let strides = strides_of(t);
    if t.shape.contains(&0) {
        return Some((0, 0));
    }
    if strides.len() != t.shape.len() {
        return None;
    }
    let (mut lo, mut hi) = (0i128, 0i128);
    for (&d, &s) in t.shape.iter().zip(&strides) {
        let reach = (d as i128 - 1).checked_mul(s as i128)?;
        if reach < 0 {
            lo = lo.checked_add(reach)?;
        } else {
            hi = hi.checked_add(reach)?;
        }
    }
    let size = t.dtype.size() as i128;
    Some((lo.checked_mul(size)?, hi.checked_add(1)?.checked_mul(size)?))
}

/// Where each tensor lives: `Some((buffer, byte offset of element 0))` if it has real memory.
struct Memory {
    buffers: Vec<Vec<u128>>,
    place: Vec<Option<(usize, usize)>>,
}

fn lay_out(slots: &[Slot]) -> Memory {
    let n = slots.len();
    let mut place: Vec<Option<(usize, usize)>> = vec![None; n];
    let mut sizes: Vec<usize> = Vec::new();
    let cap = MAX_BUFFER as i128;
    // Own memory first, in order; a placed tensor refers to an earlier one.
    for (i, s) in slots.iter().enumerate() {
        let Some(t) = &s.tensor else { continue };
        let Some((lo, hi)) = extent(t) else { continue };
        match t.place_in {
            None => {
                let origin = 0i128.saturating_sub(lo).saturating_add(t.misalign as i128);
                let need = origin.saturating_add(hi);
                if need <= cap {
                    place[i] = Some((sizes.len(), origin as usize));
                    sizes.push((need as usize).max(1));
                }
            }
            Some((onto, bytes)) => {
                let Some((buf, base)) = place[onto] else {
                    continue;
                };
                let origin = base as i128 + bytes as i128 + t.misalign as i128;
                let need = origin.saturating_add(hi);
                if origin.saturating_add(lo) >= 0 && need <= cap {
                    place[i] = Some((buf, origin as usize));
                    sizes[buf] = sizes[buf].max(need as usize);
                }
            }
        }
    }
    let buffers = sizes
        .iter()
        .map(|&b| vec![0u128; b.div_ceil(16) + 1])
        .collect();
    Memory { buffers, place }
}

/// A small xorshift generator for the data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn fill(mem: &mut Memory, slots: &[Slot], how: Fill, seed: u64) {
    let mut rng = Rng(seed | 1);
    for (b, buf) in mem.buffers.iter_mut().enumerate() {
        // Tame data follows the dtype of the buffer's first tensor.
        let dtype = slots
            .iter()
            .zip(&mem.place)
            .find(|(_, p)| matches!(p, Some((pb, _)) if *pb == b))
            .and_then(|(s, _)| s.tensor.as_ref().map(|t| t.dtype))
            .unwrap_or(DType::F32);
        let bytes: &mut [u8] = bytemuck_bytes(buf);
        match how {
            Fill::Raw => {
                for chunk in bytes.chunks_mut(8) {
                    let v = rng.next().to_le_bytes();
                    chunk.copy_from_slice(&v[..chunk.len()]);
                }
            }
            Fill::Tame => {
                let size = dtype.size();
                for chunk in bytes.chunks_exact_mut(size) {
                    let r = rng.next();
                    let x = ((r >> 11) as f64 / (1u64 << 53) as f64) * 4.0 - 2.0;
                    match dtype {
                        DType::F32 => chunk.copy_from_slice(&(x as f32).to_le_bytes()),
                        DType::F16 => {
                            chunk.copy_from_slice(&kernelyard::half::f16::from_f64(x).to_le_bytes())
                        }
                        DType::BF16 => chunk
                            .copy_from_slice(&kernelyard::half::bf16::from_f64(x).to_le_bytes()),
                        DType::I32 => chunk.copy_from_slice(&((r % 8) as i32).to_le_bytes()),
                        DType::I64 => chunk.copy_from_slice(&((r % 8) as i64).to_le_bytes()),
                        DType::F8E4M3 => {
                            chunk[0] = kernelyard::float8::F8E4M3::from_f64(x).to_bits();
                        }
                        DType::F8E5M2 => {
                            chunk[0] = kernelyard::float8::F8E5M2::from_f64(x).to_bits();
                        }
                        DType::F8E8M0 => {
                            chunk[0] = kernelyard::F8E8M0::from_f64(x.abs()).to_bits();
                        }
                        DType::F4E2M1X2 => {
                            chunk[0] = kernelyard::F4E2M1x2::pack(x, -x).to_bits();
                        }
                    }
                }
            }
        }
    }
}

/// The bytes of a `u128` buffer.
fn bytemuck_bytes(buf: &mut [u128]) -> &mut [u8] {
    let len = std::mem::size_of_val(buf);
    // SAFETY: `u8` has no alignment or validity requirement; the slice covers exactly `buf`'s
    // bytes and borrows it mutably for the returned lifetime.
    unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u8>(), len) }
}

/// The address of each present tensor: inside its buffer, or far away (never read) when it has
/// no memory. Far addresses are 2^40 apart and keep the misalignment.
fn addresses(slots: &[Slot], mem: &mut Memory) -> Vec<usize> {
    let bases: Vec<usize> = mem
        .buffers
        .iter_mut()
        .map(|b| b.as_mut_ptr() as usize)
        .collect();
    slots
        .iter()
        .enumerate()
        .map(|(i, s)| match (mem.place[i], &s.tensor) {
            (Some((buf, off)), _) => bases[buf] + off,
            (None, Some(t)) => ((i + 1) << 40) + t.misalign,
            (None, None) => 0,
        })
        .collect()
}

enum View<'a> {
    R(TensorView<'a>),
    W(TensorViewMut<'a>),
}

fn view<'a>(t: &T, addr: usize, writable: bool) -> Result<View<'a>, ValidationError> {
    // SAFETY: a backed tensor's elements all lie in its buffer (`lay_out` sized it from the
    // same shape and strides), which outlives the views; nothing else touches the buffers while
    // a kernel runs. An unbacked tensor's address is never read: `run` launches only when
    // every tensor is backed. A writable tensor overlapping another reaches a kernel only if
    // validation accepted it, and `check_no_overlap` panics before that.
    unsafe {
        if writable {
            TensorViewMut::from_raw_parts(
                addr as *mut c_void,
                t.dtype,
                &t.shape,
                t.strides.as_deref(),
                t.device,
            )
            .map(View::W)
        } else {
            TensorView::from_raw_parts(
                addr as *const c_void,
                t.dtype,
                &t.shape,
                t.strides.as_deref(),
                t.device,
            )
            .map(View::R)
        }
    }
}

fn r<'a>(v: Option<View<'a>>) -> TensorView<'a> {
    match v {
        Some(View::R(v)) => v,
        _ => unreachable!("a read-only slot holds a TensorView"),
    }
}

fn w<'a>(v: Option<View<'a>>) -> TensorViewMut<'a> {
    match v {
        Some(View::W(v)) => v,
        _ => unreachable!("a writable slot holds a TensorViewMut"),
    }
}

fn opt_r<'a>(v: Option<View<'a>>) -> Option<TensorView<'a>> {
    v.map(|v| r(Some(v)))
}

fn opt_w<'a>(v: Option<View<'a>>) -> Option<TensorViewMut<'a>> {
    v.map(|v| w(Some(v)))
}

fn build<'a>(input: &Input, views: Vec<Option<View<'a>>>) -> Args<'a> {
    let mut v = views.into_iter();
    let mut next = move || v.next().expect("one view per slot");
    let flag = |bit: u8| input.flags & (1 << bit) != 0;
    let [s0, s1] = input.scalars;
    match input.call {
        Call::Gemm | Call::GemmBatched => Args::Gemm(GemmArgs {
            a: r(next()),
            b: r(next()),
            c: w(next()),
            trans_a: flag(0),
            trans_b: flag(1),
            alpha: s0.or(1.0),
            beta: s1.or(if flag(5) { 0.5 } else { 0.0 }),
        }),
        Call::RmsNorm | Call::RmsNormResidual => Args::RmsNorm(RmsNormArgs {
            x: r(next()),
            weight: r(next()),
            residual: opt_r(next()),
            out: w(next()),
            residual_out: opt_w(next()),
            eps: s0.or(1e-6),
        }),
        Call::Softmax => Args::Softmax(SoftmaxArgs {
            x: r(next()),
            out: w(next()),
        }),
        Call::LogSoftmax => Args::LogSoftmax(LogSoftmaxArgs {
            x: r(next()),
            out: w(next()),
        }),
        Call::TokenLogprobs => Args::TokenLogprobs(TokenLogprobsArgs {
            logits: r(next()),
            targets: r(next()),
            out: w(next()),
            entropy: opt_w(next()),
            temperature: s0.or(1.0),
            ignore_index: if flag(1) { input.ignore_index } else { -100 },
            checked: flag(2),
        }),
        Call::Rope | Call::RopeInPlace => {
            let x = next();
            let positions = r(next());
            let mut a = match x {
                Some(View::W(x)) => RopeArgs::in_place(x, positions),
                x => RopeArgs::new(r(x), positions, w(next())),
            };
            let head_dim = a.input.x().shape().last().copied().unwrap_or(0);
            a.rotary_dim = if flag(0) {
                head_dim / 2 / 2 * 2
            } else {
                head_dim
            };
            if flag(6) {
                a.rotary_dim = usize::from(input.dims[3]);
            }
            a.style = if flag(1) {
                RopeStyle::Gptj
            } else {
                RopeStyle::Neox
            };
            a.theta = s0.or(10_000.0);
            Args::Rope(a)
        }
        Call::Attention => Args::Attention(AttentionArgs {
            q: r(next()),
            k: r(next()),
            v: r(next()),
            out: w(next()),
            lse: opt_w(next()),
            causal: flag(1),
            scale: match s0 {
                Scalar::Default => None,
                Scalar::Value(s) => Some(s),
            },
        }),
        Call::Ssu => Args::SelectiveStateUpdate(SelectiveStateUpdateArgs {
            state: w(next()),
            x: r(next()),
            dt: r(next()),
            dt_bias: opt_r(next()),
            a: r(next()),
            bm: r(next()),
            cm: r(next()),
            d: opt_r(next()),
            z: opt_r(next()),
            out: w(next()),
            dt_softplus: flag(4),
            state_indices: opt_r(next()),
        }),
        Call::SiluMul => Args::SiluMul(SiluMulArgs {
            input: SiluMulInput::Fused(r(next())),
            out: w(next()),
        }),
        Call::SiluMulSplit => Args::SiluMul(SiluMulArgs {
            input: SiluMulInput::Split {
                gate: r(next()),
                up: r(next()),
            },
            out: w(next()),
        }),
        Call::ScaledGemm => {
            let (scale_a_mode, scale_b_mode) = scale_modes(input);
            Args::ScaledGemm(ScaledGemmArgs {
                a: r(next()),
                b: r(next()),
                scale_a: r(next()),
                scale_b: r(next()),
                scale_a_mode,
                scale_b_mode,
                out: w(next()),
                bias: opt_r(next()),
            })
        }
    }
}

/// Panics if validated arguments have a writable tensor sharing a byte with another tensor
/// (in-place forms have one writable view, never two views of one tensor).
fn check_no_overlap(input: &Input, slots: &[Slot], mem: &Memory, addrs: &[usize]) {
    let span = |i: usize| -> Option<(usize, i128, i128)> {
        let t = slots[i].tensor.as_ref()?;
        let (buf, _) = mem.place[i]?;
        let (lo, hi) = extent(t)?;
        if lo == hi {
            return None;
        }
        let a = addrs[i] as i128;
        Some((buf, a + lo, a + hi))
    };
    for i in (0..slots.len()).filter(|&i| slots[i].writable) {
        for j in (0..slots.len()).filter(|&j| j != i) {
            let (Some((bi, i0, i1)), Some((bj, j0, j1))) = (span(i), span(j)) else {
                continue;
            };
            if bi != bj || !(i0 < j1 && j0 < i1) {
                continue;
            }
            let (a, b) = (
                slots[i].tensor.as_ref().expect("present"),
                slots[j].tensor.as_ref().expect("present"),
            );
            panic!(
                "validation accepted {:?} with slot {i} (writable) overlapping slot {j}: {a:?} / {b:?}",
                input.call
            );
        }
    }
}

/// A runtime that probed the real backends (the reference backend's CPU; no GPU here, and a
/// GPU device is never launched on: only CPU arguments run).
fn run_runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        kernelyard::link_backends();
        Runtime::builder().pins("").build().expect("runtime")
    })
}

fuzz_target!(|input: Input| {
    let mut slots = baseline(&input);
    for m in input.mutations.iter().take(8) {
        mutate(&mut slots, m);
    }
    // `rope` in place has one tensor for x and out: the slot stays writable.
    if input.call == Call::RopeInPlace {
        slots[0].writable = true;
    }
    let mut mem = lay_out(&slots);
    fill(&mut mem, &slots, input.fill, input.seed);
    let addrs = addresses(&slots, &mut mem);
    let mut views = Vec::new();
    for (i, s) in slots.iter().enumerate() {
        match &s.tensor {
            None => views.push(None),
            Some(t) => match view(t, addrs[i], s.writable) {
                Ok(v) => views.push(Some(v)),
                Err(e) => {
                    let _ = e.to_string();
                    return;
                }
            },
        }
    }
    let mut args = build(&input, views);
    let _ = format!("{args:?}");
    let (problem, device) = match args.validate() {
        Ok(ok) => ok,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    check_no_overlap(&input, &slots, &mem, &addrs);
    let _ = (problem.work(), problem.shape(), problem.to_string());

    let sel = selection_runtime();
    for caps in devices() {
        for policy in policies() {
            match sel.select(caps.device, &problem, &policy) {
                Ok(plan) => check_plan(&plan, caps, &problem, &policy),
                Err(e) => {
                    let _ = e.to_string();
                }
            }
        }
    }

    let backed = slots
        .iter()
        .zip(&mem.place)
        .all(|(s, p)| s.tensor.is_none() || p.is_some());
    if device != DeviceId::CPU || !backed {
        return;
    }
    let mut policy = Policy::backend("reference");
    if input.flags & 0x80 != 0 {
        policy = policy.deterministic().batch_invariant();
    }
    match run_runtime().run(&policy, &Stream::host(), &mut args) {
        Ok(plan) => {
            assert_eq!(plan.problem(), &problem);
            assert_eq!(plan.kernel().meta().backend, "reference");
        }
        Err(Error::Validation(e)) => panic!("validated arguments failed validation in run: {e}"),
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
