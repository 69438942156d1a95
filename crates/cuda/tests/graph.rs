//! CUDA graphs and stream identity on a real device.
//!
//! - A chain rms_norm -> gemm -> softmax -> token_logprobs, prepared with `Plan::prepare`, is
//!   captured on a borrowed stream and replayed 100 times: every output is bitwise equal to the
//!   eager launches' (the outputs are poisoned with NaN before the replays, so an element a
//!   replay does not write shows). Prints the launch overhead, eager versus graph.
//! - A launch that would allocate (an unprepared cuBLASLt workspace) or synchronise (checked
//!   `token_logprobs`) on a capturing stream is refused with `CaptureForbidden`, and the stream
//!   captures fine afterwards.
//! - Eight threads launching cuBLASLt on the per-thread default stream (the handle candle's
//!   default device uses on every thread) get distinct stream ids, hence distinct workspaces,
//!   and the single-thread result bit for bit.
//!
//! Captures use the global mode, which forbids unsafe calls in every thread while one captures,
//! so the tests of this file take one lock.

use std::sync::Mutex;
use std::time::Instant;

use kernelyard_core::half::bf16;
use kernelyard_core::ops::gemm::GemmArgs;
use kernelyard_core::ops::rms_norm::RmsNormArgs;
use kernelyard_core::ops::softmax::SoftmaxArgs;
use kernelyard_core::ops::token_logprobs::TokenLogprobsArgs;
use kernelyard_core::{Args, DType, DeviceBuffer, DeviceId, Error, Plan, Policy, Runtime, Stream};
use kernelyard_cuda::capture::{is_capturing, stream_id, CapturedGraph};

static SERIAL: Mutex<()> = Mutex::new(());

const DEV: DeviceId = DeviceId::cuda(0);
const T: usize = 64;
const H: usize = 1024;
/// Longer than token_logprobs' 16384-element bf16 split and softmax's register path: the chain
/// captures the split rows (two splits, each row's last CTA merging; their scratch and arrival
/// counters made by `prepare`, the counters left at zero by every replay) and softmax's
/// shared-memory path.
const V: usize = 20480;

fn runtime() -> Runtime {
    kernelyard_cuda::link();
    Runtime::new().expect("runtime")
}

fn random(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32 * scale
        })
        .collect()
}

fn bf16s(v: &[f32]) -> Vec<bf16> {
    v.iter().map(|&x| bf16::from_f32(x)).collect()
}

fn upload_bf16(rt: &Runtime, v: &[f32]) -> DeviceBuffer {
    let mut b = rt.alloc(DEV, v.len() * 2).expect("alloc");
    b.upload(&bf16s(v)).expect("upload");
    b
}

/// A stream kernelyard does not own, as a framework would lend it.
struct Borrowed(cudarc::driver::sys::CUstream);

impl Borrowed {
    fn new(rt: &Runtime) -> (Borrowed, Stream) {
        // Binds the device's primary context (the one cudarc retains too).
        let _ = rt.default_stream(DEV).expect("default stream");
        let ctx = cudarc::driver::CudaContext::new(0).expect("context");
        ctx.bind_to_thread().expect("bind");
        let s = cudarc::driver::result::stream::create(
            cudarc::driver::result::stream::StreamKind::NonBlocking,
        )
        .expect("cuStreamCreate");
        // SAFETY: `s` is a live stream of cuda:0's primary context until `Borrowed` drops,
        // after every use of the `Stream` in the test.
        let stream = unsafe { Stream::from_raw(DEV, s.cast()) };
        (Borrowed(s), stream)
    }
}

impl Drop for Borrowed {
    fn drop(&mut self) {
        // SAFETY: the stream was created in `new` and every launch on it has been waited for.
        unsafe {
            let _ = kernelyard_cuda::release_stream(&Stream::from_raw(DEV, self.0.cast()));
            let _ = cudarc::driver::result::stream::destroy(self.0);
        }
    }
}

struct Chain {
    x: DeviceBuffer,
    w_norm: DeviceBuffer,
    w_out: DeviceBuffer,
    targets: DeviceBuffer,
    normed: DeviceBuffer,
    logits: DeviceBuffer,
    probs: DeviceBuffer,
    logprobs: DeviceBuffer,
}

impl Chain {
    fn new(rt: &Runtime, seed: u64) -> Chain {
        let mut targets = rt.alloc(DEV, T * 8).expect("alloc");
        let t: Vec<i64> = random(T, seed + 3, 1.0)
            .iter()
            .map(|&r| ((r.abs() * V as f32) as i64).min(V as i64 - 1))
            .collect();
        targets.upload(&t).expect("upload");
        Chain {
            x: upload_bf16(rt, &random(T * H, seed, 2.0)),
            w_norm: upload_bf16(rt, &random(H, seed + 1, 1.0)),
            w_out: upload_bf16(rt, &random(H * V, seed + 2, 0.05)),
            targets,
            normed: rt.alloc(DEV, T * H * 2).expect("alloc"),
            logits: rt.alloc(DEV, T * V * 2).expect("alloc"),
            probs: rt.alloc(DEV, T * V * 2).expect("alloc"),
            logprobs: rt.alloc(DEV, T * 4).expect("alloc"),
        }
    }

    fn poison(&mut self) {
        let nan = bf16::NAN;
        self.normed.upload(&vec![nan; T * H]).expect("poison");
        self.logits.upload(&vec![nan; T * V]).expect("poison");
        self.probs.upload(&vec![nan; T * V]).expect("poison");
        self.logprobs.upload(&vec![f32::NAN; T]).expect("poison");
    }

    /// NaN elements in each output (none once every element is written).
    fn nans(&self) -> [usize; 4] {
        let bf = |b: &DeviceBuffer, n: usize| {
            let v = b.download::<bf16>(n).expect("download");
            v.iter().filter(|x| x.is_nan()).count()
        };
        let lp = self.logprobs.download::<f32>(T).expect("download");
        [
            bf(&self.normed, T * H),
            bf(&self.logits, T * V),
            bf(&self.probs, T * V),
            lp.iter().filter(|x| x.is_nan()).count(),
        ]
    }

    fn outputs(&self) -> Vec<Vec<u16>> {
        let bits = |b: &DeviceBuffer, n: usize| -> Vec<u16> {
            b.download::<bf16>(n)
                .expect("download")
                .iter()
                .map(|x| x.to_bits())
                .collect()
        };
        let lp: Vec<u16> = self
            .logprobs
            .download::<f32>(T)
            .expect("download")
            .iter()
            .flat_map(|x| {
                let b = x.to_bits();
                [(b >> 16) as u16, b as u16]
            })
            .collect();
        vec![
            bits(&self.normed, T * H),
            bits(&self.logits, T * V),
            bits(&self.probs, T * V),
            lp,
        ]
    }

    /// The four ops' arguments, each launched with its plan.
    fn launch(&mut self, plans: &[std::sync::Arc<Plan>; 4], stream: &Stream) -> Result<(), Error> {
        let mut a = Args::RmsNorm(RmsNormArgs::new(
            self.x.view(DType::BF16, &[T, H])?,
            self.w_norm.view(DType::BF16, &[H])?,
            self.normed.view_mut(DType::BF16, &[T, H])?,
            1e-6,
        ));
        plans[0].launch(stream, &mut a)?;
        let mut a = Args::Gemm(GemmArgs::new(
            self.normed.view(DType::BF16, &[T, H])?,
            self.w_out.view(DType::BF16, &[H, V])?,
            self.logits.view_mut(DType::BF16, &[T, V])?,
        ));
        plans[1].launch(stream, &mut a)?;
        let mut a = Args::Softmax(SoftmaxArgs {
            x: self.logits.view(DType::BF16, &[T, V])?,
            out: self.probs.view_mut(DType::BF16, &[T, V])?,
        });
        plans[2].launch(stream, &mut a)?;
        let mut a = Args::TokenLogprobs(TokenLogprobsArgs::new(
            self.logits.view(DType::BF16, &[T, V])?,
            self.targets.view(DType::I64, &[T])?,
            self.logprobs.view_mut(DType::F32, &[T])?,
        ));
        plans[3].launch(stream, &mut a)
    }

    /// Selects and prepares a plan for each op on `stream` (the problems come from the
    /// arguments, validated as a launch would).
    fn prepare(
        &mut self,
        rt: &Runtime,
        policy: &Policy,
        stream: &Stream,
    ) -> [std::sync::Arc<Plan>; 4] {
        let problems = {
            let v = |a: Args<'_>| a.validate().expect("valid").0;
            [
                v(Args::RmsNorm(RmsNormArgs::new(
                    self.x.view(DType::BF16, &[T, H]).unwrap(),
                    self.w_norm.view(DType::BF16, &[H]).unwrap(),
                    self.normed.view_mut(DType::BF16, &[T, H]).unwrap(),
                    1e-6,
                ))),
                v(Args::Gemm(GemmArgs::new(
                    self.normed.view(DType::BF16, &[T, H]).unwrap(),
                    self.w_out.view(DType::BF16, &[H, V]).unwrap(),
                    self.logits.view_mut(DType::BF16, &[T, V]).unwrap(),
                ))),
                v(Args::Softmax(SoftmaxArgs {
                    x: self.logits.view(DType::BF16, &[T, V]).unwrap(),
                    out: self.probs.view_mut(DType::BF16, &[T, V]).unwrap(),
                })),
                v(Args::TokenLogprobs(TokenLogprobsArgs::new(
                    self.logits.view(DType::BF16, &[T, V]).unwrap(),
                    self.targets.view(DType::I64, &[T]).unwrap(),
                    self.logprobs.view_mut(DType::F32, &[T]).unwrap(),
                ))),
            ]
        };
        problems.map(|p| {
            let plan = rt.prepare(policy, stream, &p).expect("prepare");
            println!("prepared {}", plan.kernel_name());
            plan
        })
    }
}

#[test]
#[ignore = "requires a CUDA device"]
fn a_prepared_chain_captured_on_a_borrowed_stream_replays_bitwise_like_eager_launches() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = runtime();
    let (_owner, stream) = Borrowed::new(&rt);
    for (name, policy) in [
        ("deterministic", Policy::auto().deterministic()),
        ("auto (cuBLASLt)", Policy::auto()),
    ] {
        let mut chain = Chain::new(&rt, 11);
        let plans = chain.prepare(&rt, &policy, &stream);
        chain.poison();
        chain.launch(&plans, &stream).expect("eager launch");
        rt.synchronize(&stream).expect("sync");
        let eager = chain.outputs();
        assert_eq!(chain.nans(), [0, 0, 0, 0], "{name}: eager outputs have NaN");

        let graph = CapturedGraph::capture(&stream, || chain.launch(&plans, &stream))
            .unwrap_or_else(|e| panic!("{name}: capture: {e}"));
        assert!(!is_capturing(&stream).expect("status"));
        chain.poison();
        for _ in 0..100 {
            graph.replay().expect("replay");
        }
        rt.synchronize(&stream).expect("sync");
        assert_eq!(
            chain.outputs(),
            eager,
            "{name}: 100 graph replays differ from the eager launches"
        );

        // Launch overhead: 100 eager chains (4 launches each) against 100 replays, host wall
        // time from the first launch to the end of the work.
        let time = |f: &mut dyn FnMut()| {
            rt.synchronize(&stream).expect("sync");
            let start = Instant::now();
            f();
            rt.synchronize(&stream).expect("sync");
            start.elapsed().as_secs_f64() * 1e6 / 100.0
        };
        let eager_us = time(&mut || {
            for _ in 0..100 {
                chain.launch(&plans, &stream).expect("eager");
            }
        });
        let graph_us = time(&mut || {
            for _ in 0..100 {
                graph.replay().expect("replay");
            }
        });
        let kernels: Vec<&str> = plans.iter().map(|p| p.kernel_name()).collect();
        println!(
            "{name}: chain {kernels:?} (T={T}, H={H}, V={V}, bf16): eager {eager_us:.1} us per \
             chain, graph {graph_us:.1} us per replay ({:.2}x)",
            eager_us / graph_us
        );
    }
}

#[test]
#[ignore = "requires a CUDA device"]
fn work_a_capture_forbids_is_refused_with_a_typed_error_and_the_capture_survives() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = runtime();
    // A fresh stream has no cuBLASLt workspace yet.
    let (_owner, stream) = Borrowed::new(&rt);
    let mut chain = Chain::new(&rt, 5);
    let gemm = {
        let args = Args::Gemm(GemmArgs::new(
            chain.normed.view(DType::BF16, &[T, H]).unwrap(),
            chain.w_out.view(DType::BF16, &[H, V]).unwrap(),
            chain.logits.view_mut(DType::BF16, &[T, V]).unwrap(),
        ));
        let p = args.validate().expect("valid").0;
        rt.select(DEV, &p, &Policy::kernel("cuda.gemm.cublaslt"))
            .expect("cublaslt")
    };
    let launch_gemm = |chain: &mut Chain| -> Result<(), Error> {
        let mut a = Args::Gemm(GemmArgs::new(
            chain.normed.view(DType::BF16, &[T, H])?,
            chain.w_out.view(DType::BF16, &[H, V])?,
            chain.logits.view_mut(DType::BF16, &[T, V])?,
        ));
        gemm.launch(&stream, &mut a)
    };
    // The device's cuBLASLt handle and this problem's algorithm exist (prepared for another
    // stream), so what the fresh stream lacks is its own state.
    let (_other_owner, other) = Borrowed::new(&rt);
    gemm.prepare(&other).expect("prepare another stream");
    let refused = CapturedGraph::capture(&stream, || launch_gemm(&mut chain));
    match refused {
        Err(Error::CaptureForbidden { what, fix, .. }) => {
            // A stream first seen in a capture has no known id (the driver gives none then).
            assert!(what.contains("first launch on this stream"), "{what}");
            assert!(fix.contains("Plan::prepare"), "{fix}");
        }
        other => panic!("expected CaptureForbidden, got {other:?}"),
    }
    assert!(!is_capturing(&stream).expect("status"));

    // Seen outside a capture (releasing registers its id), the stream still has no workspace
    // (cuBLASLt's): allocating one is refused.
    // SAFETY: the stream is live and nothing else launches on it.
    unsafe { kernelyard_cuda::release_stream(&stream) }.expect("release");
    match CapturedGraph::capture(&stream, || launch_gemm(&mut chain)) {
        Err(Error::CaptureForbidden { what, fix, .. }) => {
            assert!(what.contains("stream workspace (cuBLASLt"), "{what}");
            assert!(fix.contains("Plan::prepare"), "{fix}");
        }
        other => panic!("expected CaptureForbidden, got {other:?}"),
    }
    assert!(!is_capturing(&stream).expect("status"));

    // Checked token_logprobs synchronises: refused in a capture whatever was prepared.
    let checked = CapturedGraph::capture(&stream, || {
        let mut a = TokenLogprobsArgs::new(
            chain.logits.view(DType::BF16, &[T, V])?,
            chain.targets.view(DType::I64, &[T])?,
            chain.logprobs.view_mut(DType::F32, &[T])?,
        );
        a.checked = true;
        let mut args = Args::TokenLogprobs(a);
        let p = args.validate()?.0;
        let plan = rt.select(DEV, &p, &Policy::auto())?;
        plan.launch(&stream, &mut args)
    });
    match checked {
        Err(Error::CaptureForbidden { what, fix, .. }) => {
            assert!(what.contains("checked"), "{what}");
            assert!(fix.contains("unchecked"), "{fix}");
        }
        other => panic!("expected CaptureForbidden, got {other:?}"),
    }

    // Prepared, the same launch captures and replays.
    gemm.prepare(&stream).expect("prepare");
    let graph = CapturedGraph::capture(&stream, || launch_gemm(&mut chain)).expect("capture");
    graph.replay().expect("replay");
    rt.synchronize(&stream).expect("sync");
}

#[test]
#[ignore = "requires a CUDA device"]
fn threads_on_the_per_thread_default_stream_get_their_own_workspace_and_the_same_bits() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = runtime();
    // CU_STREAM_PER_THREAD: the same handle on every thread (candle's default device).
    // SAFETY: the per-thread default stream exists for every thread of the primary context.
    let per_thread = unsafe { Stream::from_raw(DEV, 0x2 as *mut std::ffi::c_void) };
    let chain = Chain::new(&rt, 21);
    let policy = Policy::kernel("cuda.gemm.cublaslt");
    let run = |rounds: usize| -> (u64, Vec<u16>) {
        let mut out = rt.alloc(DEV, T * V * 2).expect("alloc");
        for _ in 0..rounds {
            let mut a = Args::Gemm(GemmArgs::new(
                chain.x.view(DType::BF16, &[T, H]).unwrap(),
                chain.w_out.view(DType::BF16, &[H, V]).unwrap(),
                out.view_mut(DType::BF16, &[T, V]).unwrap(),
            ));
            rt.run(&policy, &per_thread, &mut a).expect("gemm");
        }
        rt.synchronize(&per_thread).expect("sync");
        let bits = out
            .download::<bf16>(T * V)
            .expect("download")
            .iter()
            .map(|x| x.to_bits())
            .collect();
        (stream_id(&per_thread).expect("id"), bits)
    };
    let (main_id, want) = run(1);
    let got: Vec<(u64, Vec<u16>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8).map(|_| s.spawn(|| run(20))).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let mut ids: Vec<u64> = got.iter().map(|(id, _)| *id).collect();
    ids.push(main_id);
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        9,
        "the per-thread default stream must have a distinct id on each thread"
    );
    for (i, (_, bits)) in got.iter().enumerate() {
        assert!(
            bits == &want,
            "thread {i}: the product differs from the single-thread one"
        );
    }
}
