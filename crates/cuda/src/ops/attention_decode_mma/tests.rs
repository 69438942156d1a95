//! Unit tests of `cuda.attention.decode.mma`'s plan, checks and launch sequence (no GPU: a
//! recording launcher and simulated devices).

use std::cell::RefCell;

use kernelyard_core::{Kernel, Problem, Sm, TensorView, TensorViewMut};

use super::*;

fn problem(
    batch: usize,
    seq_q: usize,
    seq_kv: usize,
    heads_q: usize,
    heads_kv: usize,
    head_dim: usize,
) -> AttentionProblem {
    AttentionProblem {
        batch,
        seq_q,
        seq_kv,
        heads_q,
        heads_kv,
        head_dim,
        dtype: DType::BF16,
        causal: false,
        lse: true,
        align: 16,
    }
}

fn caps(sm: Sm, optin: u64) -> Capabilities {
    crate::device::simulated_caps(sm, optin)
}

fn reasons(caps: &Capabilities, p: AttentionProblem) -> Vec<Reason> {
    let mut r = Vec::new();
    ATTENTION_DECODE_MMA.check_problem(caps, &Problem::Attention(p), &mut r);
    r
}

/// The kernel source with every run of whitespace made one space (its lines are wrapped).
fn code_words() -> String {
    SOURCE.code.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn the_split_count_depends_on_the_key_length_alone() {
    assert_eq!((chunk(1), splits(1)), (512, 1));
    assert_eq!(splits(512), 1);
    assert_eq!(splits(513), 2);
    // torch_ops.py's decode shapes.
    assert_eq!(splits(4096), 8);
    assert_eq!(splits(32_768), 64);
    assert_eq!(splits(131_072), 256);
    // Past 512 Ki keys the chunks grow (multiples of 128) and the count stays within 1024.
    assert_eq!((chunk(512 << 10), splits(512 << 10)), (512, 1024));
    assert_eq!(chunk((512 << 10) + 1), 640);
    assert_eq!(chunk(1 << 20), 1024);
    for skv in [
        1,
        7,
        511,
        4095,
        99_999,
        524_289,
        1 << 24,
        (1 << 40) - 3,
        1 << 40,
    ] {
        let (c, s) = (chunk(skv), splits(skv));
        assert!(c >= CHUNK && c.is_multiple_of(CHUNK_STEP), "{skv}");
        assert!((1..=MAX_SPLITS).contains(&s), "{skv}: {s}");
        assert!(s * c >= skv && (s - 1) * c < skv, "{skv}");
        assert!(c < i32::MAX as usize, "{skv}");
    }
}

#[test]
fn the_tilings_are_the_kernels() {
    let code = code_words();
    for d in HEAD_DIMS {
        let t = tiling(d).unwrap();
        let line = format!(
            "static_assert(Shape<{d}>::THREADS == {} && Shape<{d}>::BN == {} && \
             Shape<{d}>::STAGES == {} && Shape<{d}>::BYTES == {},",
            t.threads,
            t.block_n,
            t.stages,
            t.shared_bytes(d)
        );
        assert!(code.contains(&line), "`{line}` not in {}", SOURCE.file);
        // 32 KiB stages, 96 KiB in all: within the 99 KiB of sm_86 / sm_89 / sm_120.
        assert_eq!(t.shared_bytes(d), 96 << 10, "d{d}");
        // Whole k16 steps per warp.
        let warps = t.threads as usize / 32;
        assert!((t.block_n / warps).is_multiple_of(16), "d{d}");
        assert!(CHUNK.is_multiple_of(t.block_n) && CHUNK_STEP.is_multiple_of(t.block_n));
    }
    for d in [0, 1, 32, 80, 96, 192, 512] {
        assert_eq!(tiling(d), None, "{d}");
    }
    for (name, value) in [
        ("ADM_MAX_ROWS", MAX_ROWS),
        ("ADM_COMBINE_THREADS", COMBINE_THREADS as usize),
    ] {
        assert!(
            SOURCE.code.contains(&format!("#define {name} {value}\n")),
            "{name}"
        );
    }
}

#[test]
fn every_listed_entry_point_is_in_the_source() {
    for dtype in [DType::F16, DType::BF16] {
        let t = if dtype == DType::BF16 {
            "ky_bf16"
        } else {
            "ky_f16"
        };
        for d in HEAD_DIMS {
            let (split, combine) = symbols(dtype, d).unwrap();
            assert_eq!(split, format!("attention_decode_mma_{}_d{d}", dtype.name()));
            assert_eq!(
                combine,
                format!("attention_decode_mma_{}_combine", dtype.name())
            );
            let line = format!("ADM_SPLIT({split}, {t}, {d})");
            assert_eq!(SOURCE.code.matches(&line).count(), 1, "{line}");
            let line = format!("ADM_COMBINE({combine}, {t})");
            assert_eq!(SOURCE.code.matches(&line).count(), 1, "{line}");
        }
        assert_eq!(symbols(dtype, 96), None);
    }
    assert_eq!(symbols(DType::F32, 128), None);
    // Every listed symbol is one of those.
    for s in SOURCE.symbols {
        let n = ["ADM_SPLIT", "ADM_COMBINE"]
            .iter()
            .map(|m| SOURCE.code.matches(&format!("{m}({s},")).count())
            .sum::<usize>();
        assert_eq!(n, 1, "{s}");
    }
}

#[test]
fn checks_name_each_limit_and_none_depends_on_the_batch() {
    let h100 = caps(Sm::new(9, 0), 227 << 10);
    // Llama-3 decode (G = 4, one query) at every head dim, any batch; G = 8 with two queries
    // (16 rows).
    for b in [1, 7, 4096] {
        for d in HEAD_DIMS {
            assert_eq!(reasons(&h100, problem(b, 1, 131_072, 32, 8, d)), vec![]);
        }
        assert_eq!(reasons(&h100, problem(b, 2, 1000, 64, 8, 128)), vec![]);
    }
    // 17 rows.
    let r = reasons(&h100, problem(1, 17, 100, 8, 8, 128));
    assert!(
        matches!(&r[..], [Reason::ShapeUnsupported { what }] if what.contains("17 query rows")),
        "{r:?}"
    );
    for d in [16, 32, 80, 96, 192, 512] {
        let r = reasons(&h100, problem(1, 1, 100, 4, 4, d));
        assert!(
            matches!(&r[..], [Reason::ShapeUnsupported { what }] if what.contains("head_dim")),
            "{d}: {r:?}"
        );
    }
    // 96 KiB of shared memory: every sm_80+ device has it (A100 163 KiB, sm_86 / sm_89 /
    // sm_120 99 KiB); one with 64 KiB per block does not.
    for (sm, optin) in [
        (Sm::new(8, 0), 163 << 10),
        (Sm::new(8, 6), 99 << 10),
        (Sm::new(8, 9), 99 << 10),
        (Sm::new(12, 0), 99 << 10),
    ] {
        assert_eq!(
            reasons(&caps(sm, optin), problem(3, 1, 5000, 8, 2, 256)),
            vec![]
        );
    }
    assert_eq!(
        reasons(
            &caps(Sm::new(8, 0), 64 << 10),
            problem(3, 1, 5000, 8, 2, 128)
        ),
        vec![Reason::SharedMemory {
            need: 96 << 10,
            have: 64 << 10
        }]
    );
    // Sizes past the kernel's indices.
    let r = reasons(&h100, problem(1, 1, (1 << 40) + 1, 1, 1, 64));
    assert!(matches!(&r[..], [Reason::ShapeUnsupported { .. }]), "{r:?}");
}

#[test]
fn dtypes_and_archs_without_an_entry_point_are_static_reasons() {
    let h100 = caps(Sm::new(9, 0), 227 << 10);
    let mut p = problem(1, 1, 100, 8, 2, 128);
    p.dtype = DType::F32;
    let all = Kernel::check(&ATTENTION_DECODE_MMA, &h100, &Problem::Attention(p)).unwrap_err();
    assert!(
        matches!(&all[..], [Reason::DtypeUnsupported { .. }]),
        "{all:?}"
    );
    let p = problem(1, 1, 100, 8, 2, 128);
    let all = Kernel::check(
        &ATTENTION_DECODE_MMA,
        &caps(Sm::new(7, 5), 64 << 10),
        &Problem::Attention(p.clone()),
    )
    .unwrap_err();
    assert!(
        all.iter().any(|r| matches!(r, Reason::ArchTooOld { .. })),
        "{all:?}"
    );
    let mut q = p.clone();
    q.align = 8;
    let all = Kernel::check(&ATTENTION_DECODE_MMA, &h100, &Problem::Attention(q)).unwrap_err();
    assert!(
        matches!(
            &all[..],
            [Reason::Alignment {
                need: 16,
                have: 8,
                ..
            }]
        ),
        "{all:?}"
    );
    assert_eq!(
        Kernel::check(&ATTENTION_DECODE_MMA, &h100, &Problem::Attention(p)),
        Ok(())
    );
}

/// One launch a [`Recorder`] saw.
#[derive(Debug)]
struct Call {
    symbol: &'static str,
    dims: Dims,
    params: usize,
    /// The first parameter (a pointer in both entry points).
    first: *const c_void,
}

/// A [`Launch`] that runs nothing and records each launch.
#[derive(Default)]
struct Recorder(RefCell<Vec<Call>>);

impl Launch for Recorder {
    unsafe fn launch(
        &self,
        _stream: &Stream,
        source: &'static KernelSource,
        symbol: &'static str,
        dims: Dims,
        params: &mut [*mut c_void],
    ) -> Result<(), Error> {
        assert!(source.lists(symbol), "{symbol} is not listed");
        // SAFETY: the caller's contract: the parameters match the entry point's, whose first
        // is a pointer.
        let first = unsafe { *(params[0] as *const *const c_void) };
        self.0.borrow_mut().push(Call {
            symbol,
            dims,
            params: params.len(),
            first,
        });
        Ok(())
    }
}

#[test]
fn the_batch_runs_in_passes_the_scratch_holds() {
    let (b, sq, skv, hq, hkv, d) = (5, 1, 1100, 8, 2, 64);
    let q = vec![kernelyard_core::half::bf16::ZERO; b * sq * hq * d];
    let kv = vec![kernelyard_core::half::bf16::ZERO; b * skv * hkv * d];
    let mut out = vec![kernelyard_core::half::bf16::ZERO; b * sq * hq * d];
    let mut a = AttentionArgs::new(
        TensorView::from_slice(&q, &[b, sq, hq, d]).unwrap(),
        TensorView::from_slice(&kv, &[b, skv, hkv, d]).unwrap(),
        TensorView::from_slice(&kv, &[b, skv, hkv, d]).unwrap(),
        TensorViewMut::from_slice(&mut out, &[b, sq, hq, d]).unwrap(),
    );
    let (p, _) = a.validate().unwrap();
    // 1100 keys: 3 splits of 512.
    let per_entry = hq * sq * 3 * (d + SLOT_EXTRA) * 4;
    assert_eq!(scratch_bytes(&p), b * per_entry);
    let mut part = vec![0u8; 2 * per_entry + 3];
    let scratch = Scratch {
        ptr: part.as_mut_ptr().cast(),
        bytes: part.len(),
    };
    let gpu = Recorder::default();
    // SAFETY: the recorder launches nothing.
    unsafe { launch_with(&gpu, &Stream::host(), &mut a, &p, scratch) }.unwrap();
    let calls = gpu.0.take();
    let (split, combine) = symbols(DType::BF16, d).unwrap();
    // Passes of 2, 2 and 1 entries: the split kernel over (entries, Hkv, 3 splits), then the
    // combine over entries * Hq * Sq rows x D / 32 column slices.
    assert_eq!(calls.len(), 6);
    for (i, (pass, entries)) in calls.chunks(2).zip([2, 2, 1]).enumerate() {
        assert_eq!(pass[0].symbol, split);
        assert_eq!(pass[0].dims.grid, ((entries * hkv * 3) as u32, 1, 1));
        assert_eq!(pass[0].dims.block, (128, 1, 1));
        assert_eq!(pass[0].dims.shared_bytes, 96 << 10);
        assert_eq!(pass[0].params, 12);
        assert_eq!(pass[0].first, q[i * 2 * sq * hq * d..].as_ptr().cast());
        assert_eq!(pass[1].symbol, combine);
        assert_eq!(pass[1].dims.grid, ((entries * hq * sq * 2) as u32, 1, 1));
        assert_eq!(pass[1].dims.block, (COMBINE_THREADS, 1, 1));
        assert_eq!(pass[1].dims.shared_bytes, 3 * 4);
        assert_eq!(pass[1].params, 7);
    }
    // No room for one entry: an error, nothing launched.
    let small = Scratch {
        ptr: part.as_mut_ptr().cast(),
        bytes: per_entry - 1,
    };
    // SAFETY: the recorder launches nothing.
    let err = unsafe { launch_with(&gpu, &Stream::host(), &mut a, &p, small) }.unwrap_err();
    assert!(matches!(err, Error::NoEntryPoint { .. }), "{err}");
    assert!(gpu.0.take().is_empty());
}

#[test]
fn torch_ops_decode_shapes_fit_the_stream_workspace_in_one_pass() {
    // [b, skv, hq, hkv, d] of torch_ops.py --op attention_decode: 8.5 MB, 8.5 MB, 4.3 MB of
    // scratch against 32 MiB (1.6 % of the K and V bytes each).
    for (b, skv, want) in [
        (64, 4096, 8_519_680),
        (8, 32_768, 8_519_680),
        (1, 131_072, 4_259_840),
    ] {
        let p = problem(b, 1, skv, 32, 8, 128);
        assert_eq!(scratch_bytes(&p), want, "{b} {skv}");
        assert!(want <= crate::ops::gemm::WORKSPACE_BYTES);
        let kv_bytes = 2 * b * skv * 8 * 128 * 2;
        assert!(want * 2 * 1000 < kv_bytes * 17, "{b} {skv}");
    }
}
