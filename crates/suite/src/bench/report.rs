//! What a benchmark reports: the rows, the human table and the JSON lines. The work of a run
//! and the shape of a problem, by the torch peer's conventions, are the operator descriptor's
//! (`Problem::work`, `Problem::shape`, `Problem::layout`).

use std::fmt;

use kernelyard::ops::Work;
use kernelyard::{DType, DeviceId, OpKind, Problem};
use serde::Serialize;

use super::{COPY_RUNS, PEER};

/// One kernel's timing.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BenchRow {
    /// The op.
    pub op: OpKind,
    /// The problem's shape ([`Problem::shape`]).
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
    /// Launches per timed run (the run's time divided by them; 1: one launch a run).
    pub launches: usize,
    /// Warm-up runs.
    pub warmup: usize,
    /// Input sets rotated through.
    pub sets: usize,
    /// The work of one run ([`Problem::work`]).
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
    /// ops), "min_ms", "max_ms", "iters", "launches" (only above 1), "device", "layout" (gemm
    /// only: [`layout`])}`. `ms` has 5 decimals, `tflops` 1, `tbps` and `copy_fraction` 3, as
    /// torch's.
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
                launches: (r.launches > 1).then_some(r.launches),
                device: &self.device_name,
                layout: self.problem.layout(),
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
    #[serde(skip_serializing_if = "Option::is_none")]
    launches: Option<usize>,
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
            self.problem.shape(),
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
                "timing: {} warm-up runs, then {} timed runs{}, rotating {} input set(s) of {}",
                r.warmup,
                r.iters,
                if r.launches > 1 {
                    format!(
                        " of {} back-to-back launches each (time per launch)",
                        r.launches
                    )
                } else {
                    String::new()
                },
                r.sets,
                human_bytes(self.set_bytes)
            )?;
        }
        let compute = matches!(self.problem.work(), Work::Flops(_));
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
        assert_eq!(g.shape(), vec![128, 256, 64]);
        assert_eq!(g.work(), Work::Flops(2.0 * 128.0 * 256.0 * 64.0));
        let a = problem(
            OpKind::Attention,
            "batch=4,seq_q=4096,heads_q=32,heads_kv=8,head_dim=128,causal=1",
            DType::BF16,
        );
        assert_eq!(a.shape(), vec![4, 4096, 32, 8, 128, 1]);
        assert_eq!(
            a.work(),
            Work::Flops(4.0 * 4.0 * 32.0 * 4096.0 * 4096.0 * 128.0 / 2.0)
        );
        let t = problem(
            OpKind::TokenLogprobs,
            "tokens=4096,vocab=151936",
            DType::BF16,
        );
        assert_eq!(t.shape(), vec![4096, 151936]);
        assert_eq!(t.work(), Work::Bytes(4096.0 * 151936.0 * 2.0));
        let r = problem(OpKind::RmsNorm, "rows=16384,hidden=4096", DType::BF16);
        assert_eq!(r.work(), Work::Bytes(2.0 * 16384.0 * 4096.0 * 2.0));
        let rope = problem(OpKind::Rope, "tokens=16,heads=32,head_dim=128", DType::F16);
        assert_eq!(rope.shape(), vec![16, 32, 128]);
        assert_eq!(rope.work(), Work::Bytes(2.0 * 16.0 * 32.0 * 128.0 * 2.0));
        let s = problem(
            OpKind::SelectiveStateUpdate,
            "batch=64,heads=64,head_dim=64,state_dim=128,groups=8",
            DType::BF16,
        );
        assert_eq!(s.shape(), vec![64, 64, 64, 128, 8]);
        assert_eq!(
            s.work(),
            Work::Bytes(2.0 * 64.0 * 64.0 * 64.0 * 128.0 * 2.0)
        );
    }

    #[test]
    fn gemm_rows_name_their_layout() {
        let nt = problem(OpKind::Gemm, "m=1,n=4096,k=4096,trans_b=1", DType::BF16);
        assert_eq!(nt.layout(), Some("nt"));
        assert_eq!(
            nt.shape(),
            vec![1, 4096, 4096],
            "the shape is [m, n, k] in any layout"
        );
        let nn = problem(OpKind::Gemm, "m=8,n=8,k=8", DType::BF16);
        assert_eq!(nn.layout(), Some("nn"));
        let tn = problem(OpKind::Gemm, "m=8,n=8,k=8,trans_a=1", DType::BF16);
        assert_eq!(tn.layout(), Some("tn"));
        let rows = problem(OpKind::Softmax, "rows=2,cols=8", DType::F32);
        assert_eq!(rows.layout(), None);
        assert_eq!(row(report(nt))["layout"], "nt");
        assert!(row(report(rows)).get("layout").is_none());
    }

    /// A report of one row timed at 1 ms on the CPU, with a copy bandwidth of 1 GB/s.
    fn report(problem: Problem) -> BenchReport {
        BenchReport {
            device: DeviceId::CPU,
            device_name: "cpu".into(),
            rows: vec![BenchRow {
                op: problem.op(),
                shape: problem.shape(),
                dtype: problem.dtype(),
                kernel: "k",
                ms: 1.0,
                min_ms: 1.0,
                max_ms: 1.0,
                iters: 1,
                launches: 1,
                warmup: 0,
                sets: 1,
                work: problem.work(),
            }],
            problem,
            copy_bytes_per_s: 1e9,
            copy_bytes: 1,
            set_bytes: 1,
            skipped: Vec::new(),
        }
    }

    /// The JSON row of a one-row report.
    fn row(r: BenchReport) -> serde_json::Value {
        serde_json::from_str(&r.json_lines()[1]).unwrap()
    }

    #[test]
    fn json_rows_keep_their_shape() {
        let r = report(problem(OpKind::RmsNorm, "rows=4,hidden=64", DType::BF16));
        assert_eq!(
            r.json_lines()[1],
            r#"{"peer":"kernelyard","op":"rms_norm","shape":[4,64],"dtype":"bf16","impl":"k","ms":1.0,"tbps":0.0,"copy_fraction":0.001,"min_ms":1.0,"max_ms":1.0,"iters":1,"device":"cpu"}"#
        );
        let g = report(problem(OpKind::Gemm, "m=1000,n=1000,k=500", DType::F32));
        assert_eq!(
            g.json_lines()[1],
            r#"{"peer":"kernelyard","op":"gemm","shape":[1000,1000,500],"dtype":"f32","impl":"k","ms":1.0,"tflops":1.0,"min_ms":1.0,"max_ms":1.0,"iters":1,"device":"cpu","layout":"nn"}"#
        );
        // The work serializes as the suite's own enum did.
        assert_eq!(
            serde_json::to_string(&g.rows[0].work).unwrap(),
            r#"{"flops":1000000000.0}"#
        );
        assert_eq!(
            serde_json::to_string(&r.rows[0].work).unwrap(),
            r#"{"bytes":1024.0}"#
        );
    }

    /// `torch_ops.py`'s `silu_mul` rows are `{"op": "silu_mul", "shape": [t, d], "dtype"}`
    /// with `3*t*d*elem` bytes and no layout; ours must have the same key to be joined.
    #[test]
    fn silu_mul_rows_join_torch_ops() {
        let p = problem(OpKind::SiluMul, "rows=16384,d=14336", DType::BF16);
        assert_eq!(p.shape(), vec![16384, 14336]);
        assert_eq!(p.work(), Work::Bytes(3.0 * 16384.0 * 14336.0 * 2.0));
        let json = row(report(p));
        assert_eq!(json["op"], "silu_mul");
        assert_eq!(json["shape"], serde_json::json!([16384, 14336]));
        assert_eq!(json["dtype"], "bf16");
        assert!(json.get("layout").is_none(), "{json}");
        assert!(
            json["tbps"].is_number() && json.get("tflops").is_none(),
            "{json}"
        );
    }

    #[test]
    fn human_bytes_reads_well() {
        assert_eq!(human_bytes(256 << 20), "256 MiB");
        assert_eq!(human_bytes(1 << 30), "1 GiB");
        assert_eq!(human_bytes(1_245_000_000), "1.16 GiB");
        assert_eq!(human_bytes(100), "100 B");
    }
}
