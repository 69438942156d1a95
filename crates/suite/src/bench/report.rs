//! What a benchmark reports: the work of a run and the shape of a problem by the torch peer's
//! conventions, the rows, the human table and the JSON lines.

use std::fmt;

use kernelyard::{DType, DeviceId, OpKind, Problem};
use serde::Serialize;

use super::{COPY_RUNS, PEER};

/// The work one run does, in the unit its op is judged in.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Work {
    /// Floating-point operations (compute-bound ops: gemm, attention); reported as TFLOP/s.
    Flops(f64),
    /// Bytes that must cross device memory (memory-bound ops); reported as TB/s and as a
    /// fraction of the device's copy bandwidth.
    Bytes(f64),
}

/// The work of one run of `p`, by `torch_ops.py`'s conventions (so ratios are like for like):
/// gemm `2*m*n*k` flops per batch entry; attention `4*b*hq*sq*skv*d` flops, halved when
/// causal; rms_norm, softmax and log_softmax `2*rows*cols*elem` bytes (rms_norm with a residual
/// reads and writes two more such tensors: `4*`); token_logprobs `tokens*vocab*elem` (the
/// logits read once); rope `2*tokens*heads*head_dim*elem`; selective_state_update
/// `2*state_numel*state_elem` (the state read and written).
pub fn work(p: &Problem) -> Work {
    let f = |n: usize| n as f64;
    match p {
        Problem::Gemm(q) => Work::Flops(2.0 * f(q.m) * f(q.n) * f(q.k) * f(q.batch)),
        Problem::Attention(q) => {
            let full = 4.0 * f(q.batch) * f(q.heads_q) * f(q.seq_q) * f(q.seq_kv) * f(q.head_dim);
            Work::Flops(if q.causal { full / 2.0 } else { full })
        }
        Problem::RmsNorm(q) => {
            let tensors = if q.residual { 4.0 } else { 2.0 };
            Work::Bytes(tensors * f(q.rows) * f(q.hidden) * f(q.dtype.size()))
        }
        Problem::Softmax(q) | Problem::LogSoftmax(q) => {
            Work::Bytes(2.0 * f(q.rows) * f(q.cols) * f(q.dtype.size()))
        }
        Problem::TokenLogprobs(q) => Work::Bytes(f(q.tokens) * f(q.vocab) * f(q.dtype.size())),
        Problem::Rope(q) => {
            Work::Bytes(2.0 * f(q.tokens) * f(q.heads) * f(q.head_dim) * f(q.dtype.size()))
        }
        Problem::SelectiveStateUpdate(q) => Work::Bytes(
            2.0 * f(q.batch)
                * f(q.heads)
                * f(q.head_dim)
                * f(q.state_dim)
                * f(q.state_dtype.size()),
        ),
    }
}

/// The `"shape"` of `p`'s JSON rows, by `torch_ops.py`'s conventions: gemm `[m, n, k]`
/// (`[m, n, k, batch]` when batched); rms_norm `[rows, hidden]`; softmax and log_softmax
/// `[rows, cols]`; token_logprobs `[tokens, vocab]`; rope `[tokens, heads, head_dim]`;
/// attention `[batch, seq_q, heads_q, heads_kv, head_dim, causal]` (`seq_kv` appended when it
/// differs from `seq_q`); selective_state_update `[batch, heads, head_dim, state_dim, groups]`.
pub fn shape(p: &Problem) -> Vec<usize> {
    match p {
        Problem::Gemm(q) if q.batch > 1 => vec![q.m, q.n, q.k, q.batch],
        Problem::Gemm(q) => vec![q.m, q.n, q.k],
        Problem::RmsNorm(q) => vec![q.rows, q.hidden],
        Problem::Softmax(q) | Problem::LogSoftmax(q) => vec![q.rows, q.cols],
        Problem::TokenLogprobs(q) => vec![q.tokens, q.vocab],
        Problem::Rope(q) => vec![q.tokens, q.heads, q.head_dim],
        Problem::Attention(q) => {
            let mut s = vec![
                q.batch,
                q.seq_q,
                q.heads_q,
                q.heads_kv,
                q.head_dim,
                usize::from(q.causal),
            ];
            if q.seq_kv != q.seq_q {
                s.push(q.seq_kv);
            }
            s
        }
        Problem::SelectiveStateUpdate(q) => {
            vec![q.batch, q.heads, q.head_dim, q.state_dim, q.groups]
        }
    }
}

/// The operand layout of a `gemm` problem, for its JSON rows (`"layout"`): `nn`, `nt`, `tn`
/// or `tt`, the first letter A's and the second B's (`t`: stored transposed, e.g. `nt` is
/// `x @ W^T` with W stored `[n, k]`, a linear layer's forward). `None` for other ops. The
/// [`shape`] is `[m, n, k]` whatever the layout, so the layout tells NN rows (the layout of
/// `torch_ops.py`'s `a @ b`, which prints no layout) from the others.
pub fn layout(p: &Problem) -> Option<&'static str> {
    match p {
        Problem::Gemm(q) => Some(match (q.trans_a, q.trans_b) {
            (false, false) => "nn",
            (false, true) => "nt",
            (true, false) => "tn",
            (true, true) => "tt",
        }),
        _ => None,
    }
}

/// One kernel's timing.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BenchRow {
    /// The op.
    pub op: OpKind,
    /// The problem's [`shape`].
    pub shape: Vec<usize>,
    /// The problem's primary dtype.
    pub dtype: DType,
    /// The kernel timed.
    pub kernel: &'static str,
    /// Median of the timed runs, milliseconds.
    pub ms: f64,
    /// Fastest timed run, milliseconds.
    pub min_ms: f64,
    /// Slowest timed run, milliseconds.
    pub max_ms: f64,
    /// Timed runs.
    pub iters: usize,
    /// Warm-up runs.
    pub warmup: usize,
    /// Input sets rotated through.
    pub sets: usize,
    /// The [`work`] of one run.
    pub work: Work,
}

impl BenchRow {
    /// TFLOP/s at the median, for compute-bound ops.
    pub fn tflops(&self) -> Option<f64> {
        match self.work {
            Work::Flops(flops) => Some(flops / self.ms / 1e9),
            Work::Bytes(_) => None,
        }
    }

    /// TB/s at the median, for memory-bound ops.
    pub fn tbps(&self) -> Option<f64> {
        match self.work {
            Work::Bytes(bytes) => Some(bytes / self.ms / 1e9),
            Work::Flops(_) => None,
        }
    }

    /// [`BenchRow::tbps`] as a fraction of a copy bandwidth in bytes per second.
    pub fn copy_fraction(&self, copy_bytes_per_s: f64) -> Option<f64> {
        self.tbps().map(|tbps| tbps * 1e12 / copy_bytes_per_s)
    }
}

/// A kernel that `--all` did not time because it cannot run the problem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The kernel.
    pub kernel: &'static str,
    /// Every reason it cannot run.
    pub reasons: Vec<String>,
}

/// What [`bench`] measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BenchReport {
    /// The device.
    pub device: DeviceId,
    /// Its name (`NVIDIA H100 80GB HBM3`, the CPU's model name).
    pub device_name: String,
    /// The problem as launched.
    pub problem: Problem,
    /// The measured copy bandwidth, bytes read plus bytes written per second.
    pub copy_bytes_per_s: f64,
    /// Bytes of the copy timed for it.
    pub copy_bytes: usize,
    /// Bytes of one input set (inputs and outputs).
    pub set_bytes: usize,
    /// One row per kernel timed.
    pub rows: Vec<BenchRow>,
    /// Kernels not timed, with their reasons ([`KernelChoice::All`](super::KernelChoice::All) only).
    pub skipped: Vec<Skipped>,
}

/// Rounds to `digits` decimals, as `torch_ops.py`'s `round`.
fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

impl BenchReport {
    /// The copy bandwidth in TB/s.
    pub fn copy_tbps(&self) -> f64 {
        self.copy_bytes_per_s / 1e12
    }

    /// The JSON lines (without newlines), in the shape `torch_ops.py` prints: first
    /// `{"peer": "kernelyard", "version", "device", "copy_tbps"}`, then per row `{"peer",
    /// "op", "shape", "dtype", "impl", "ms", "tflops" | "tbps", "copy_fraction" (memory-bound
    /// ops), "min_ms", "max_ms", "iters", "device", "layout" (gemm only: [`layout`])}`. `ms`
    /// has 5 decimals, `tflops` 1, `tbps` and `copy_fraction` 3, as torch's.
    pub fn json_lines(&self) -> Vec<String> {
        let header = JsonHeader {
            peer: PEER,
            version: env!("CARGO_PKG_VERSION"),
            device: &self.device_name,
            copy_tbps: round(self.copy_tbps(), 3),
        };
        let mut lines = vec![to_line(&header)];
        for r in &self.rows {
            lines.push(to_line(&JsonRow {
                peer: PEER,
                op: r.op,
                shape: &r.shape,
                dtype: r.dtype.name(),
                implementation: r.kernel,
                ms: round(r.ms, 5),
                tflops: r.tflops().map(|t| round(t, 1)),
                tbps: r.tbps().map(|t| round(t, 3)),
                copy_fraction: r.copy_fraction(self.copy_bytes_per_s).map(|c| round(c, 3)),
                min_ms: round(r.min_ms, 5),
                max_ms: round(r.max_ms, 5),
                iters: r.iters,
                device: &self.device_name,
                layout: layout(&self.problem),
            }));
        }
        lines
    }
}

/// The first JSON line (torch's first line has the same keys but `copy_tbps`).
#[derive(Serialize)]
struct JsonHeader<'a> {
    peer: &'static str,
    version: &'static str,
    device: &'a str,
    copy_tbps: f64,
}

/// A JSON row; the fields are in the order torch's rows print theirs, ours after them.
#[derive(Serialize)]
struct JsonRow<'a> {
    peer: &'static str,
    op: OpKind,
    shape: &'a [usize],
    dtype: &'static str,
    #[serde(rename = "impl")]
    implementation: &'static str,
    ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    tflops: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tbps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    copy_fraction: Option<f64>,
    min_ms: f64,
    max_ms: f64,
    iters: usize,
    device: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    layout: Option<&'static str>,
}

/// One line of JSON (serializing these plain structs cannot fail).
fn to_line<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// A rate with `decimals` decimals, or in scientific notation when that would print it as
/// zero (the CPU's TB/s).
fn rate(x: f64, decimals: usize) -> String {
    if x != 0.0 && x.abs() < 10f64.powi(-(decimals as i32)) {
        format!("{x:.2e}")
    } else {
        format!("{x:.decimals$}")
    }
}

/// Bytes in binary units (`256 MiB`, `1.16 GiB`).
pub fn human_bytes(n: usize) -> String {
    let n = n as f64;
    let (v, unit) = if n >= f64::from(1u32 << 30) {
        (n / f64::from(1u32 << 30), "GiB")
    } else if n >= f64::from(1u32 << 20) {
        (n / f64::from(1u32 << 20), "MiB")
    } else if n >= 1024.0 {
        (n / 1024.0, "KiB")
    } else {
        return format!("{n} B");
    };
    if v.fract() == 0.0 {
        format!("{v} {unit}")
    } else {
        format!("{v:.2} {unit}")
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dtype = self.problem.dtype();
        writeln!(
            f,
            "{} {:?} {dtype} on {} ({})",
            self.problem.op(),
            shape(&self.problem),
            self.device,
            self.device_name
        )?;
        writeln!(f, "problem: {}", self.problem)?;
        writeln!(
            f,
            "copy bandwidth: {:.3} TB/s (read + write, {} copied, median of {COPY_RUNS})",
            self.copy_tbps(),
            human_bytes(self.copy_bytes)
        )?;
        if let Some(r) = self.rows.first() {
            writeln!(
                f,
                "timing: {} warm-up runs, then {} timed runs, rotating {} input set(s) of {}",
                r.warmup,
                r.iters,
                r.sets,
                human_bytes(self.set_bytes)
            )?;
        }
        let compute = matches!(work(&self.problem), Work::Flops(_));
        let width = self
            .rows
            .iter()
            .map(|r| r.kernel.len())
            .chain(self.skipped.iter().map(|s| s.kernel.len()))
            .max()
            .unwrap_or(0)
            .max("kernel".len());
        writeln!(f)?;
        if compute {
            writeln!(
                f,
                "{:width$}  {:>10}  {:>10}  {:>10}  {:>9}",
                "kernel", "ms", "min ms", "max ms", "TFLOP/s"
            )?;
        } else {
            writeln!(
                f,
                "{:width$}  {:>10}  {:>10}  {:>10}  {:>7}  {:>6}",
                "kernel", "ms", "min ms", "max ms", "TB/s", "% copy"
            )?;
        }
        for r in &self.rows {
            write!(
                f,
                "{:width$}  {:>10.4}  {:>10.4}  {:>10.4}",
                r.kernel, r.ms, r.min_ms, r.max_ms
            )?;
            match (r.tflops(), r.tbps(), r.copy_fraction(self.copy_bytes_per_s)) {
                (Some(t), _, _) => writeln!(f, "  {:>9}", rate(t, 1))?,
                (_, Some(t), Some(c)) => writeln!(f, "  {:>7}  {:>5.1}%", rate(t, 3), 100.0 * c)?,
                _ => writeln!(f)?,
            }
        }
        for s in &self.skipped {
            writeln!(f, "{:width$}  skipped: {}", s.kernel, s.reasons.join("; "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernelyard::Params;

    fn problem(op: OpKind, params: &str, dtype: DType) -> Problem {
        Problem::from_params(op, &Params::parse(op, params).unwrap(), dtype).unwrap()
    }

    #[test]
    fn work_and_shape_follow_torch_ops() {
        let g = problem(OpKind::Gemm, "m=128,n=256,k=64", DType::BF16);
        assert_eq!(shape(&g), vec![128, 256, 64]);
        assert_eq!(work(&g), Work::Flops(2.0 * 128.0 * 256.0 * 64.0));
        let a = problem(
            OpKind::Attention,
            "batch=4,seq_q=4096,heads_q=32,heads_kv=8,head_dim=128,causal=1",
            DType::BF16,
        );
        assert_eq!(shape(&a), vec![4, 4096, 32, 8, 128, 1]);
        assert_eq!(
            work(&a),
            Work::Flops(4.0 * 4.0 * 32.0 * 4096.0 * 4096.0 * 128.0 / 2.0)
        );
        let t = problem(
            OpKind::TokenLogprobs,
            "tokens=4096,vocab=151936",
            DType::BF16,
        );
        assert_eq!(shape(&t), vec![4096, 151936]);
        assert_eq!(work(&t), Work::Bytes(4096.0 * 151936.0 * 2.0));
        let r = problem(OpKind::RmsNorm, "rows=16384,hidden=4096", DType::BF16);
        assert_eq!(work(&r), Work::Bytes(2.0 * 16384.0 * 4096.0 * 2.0));
        let rope = problem(OpKind::Rope, "tokens=16,heads=32,head_dim=128", DType::F16);
        assert_eq!(shape(&rope), vec![16, 32, 128]);
        assert_eq!(work(&rope), Work::Bytes(2.0 * 16.0 * 32.0 * 128.0 * 2.0));
        let s = problem(
            OpKind::SelectiveStateUpdate,
            "batch=64,heads=64,head_dim=64,state_dim=128,groups=8",
            DType::BF16,
        );
        assert_eq!(shape(&s), vec![64, 64, 64, 128, 8]);
        assert_eq!(
            work(&s),
            Work::Bytes(2.0 * 64.0 * 64.0 * 64.0 * 128.0 * 2.0)
        );
    }

    #[test]
    fn gemm_rows_name_their_layout() {
        let nt = problem(OpKind::Gemm, "m=1,n=4096,k=4096,trans_b=1", DType::BF16);
        assert_eq!(layout(&nt), Some("nt"));
        assert_eq!(
            shape(&nt),
            vec![1, 4096, 4096],
            "the shape is [m, n, k] in any layout"
        );
        let nn = problem(OpKind::Gemm, "m=8,n=8,k=8", DType::BF16);
        assert_eq!(layout(&nn), Some("nn"));
        let tn = problem(OpKind::Gemm, "m=8,n=8,k=8,trans_a=1", DType::BF16);
        assert_eq!(layout(&tn), Some("tn"));
        let rows = problem(OpKind::Softmax, "rows=2,cols=8", DType::F32);
        assert_eq!(layout(&rows), None);
        let report = |problem: Problem| BenchReport {
            device: DeviceId::CPU,
            device_name: "cpu".into(),
            rows: vec![BenchRow {
                op: problem.op(),
                shape: shape(&problem),
                dtype: problem.dtype(),
                kernel: "k",
                ms: 1.0,
                min_ms: 1.0,
                max_ms: 1.0,
                iters: 1,
                warmup: 0,
                sets: 1,
                work: work(&problem),
            }],
            problem,
            copy_bytes_per_s: 1e9,
            copy_bytes: 1,
            set_bytes: 1,
            skipped: Vec::new(),
        };
        let row = |r: BenchReport| -> serde_json::Value {
            serde_json::from_str(&r.json_lines()[1]).unwrap()
        };
        assert_eq!(row(report(nt))["layout"], "nt");
        assert!(row(report(rows)).get("layout").is_none());
    }

    #[test]
    fn human_bytes_reads_well() {
        assert_eq!(human_bytes(256 << 20), "256 MiB");
        assert_eq!(human_bytes(1 << 30), "1 GiB");
        assert_eq!(human_bytes(1_245_000_000), "1.16 GiB");
        assert_eq!(human_bytes(100), "100 B");
    }
}
