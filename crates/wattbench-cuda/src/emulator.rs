//! Our kernels run on the CPU: the plans the `cuda`, `cuda-naive`, `cuda-wgmma` and
//! `cuda-wgmma-c2` backends build, executed step by step by the emulator of `emu/` (a CPU
//! execution model of CUDA, `emu/cuda_cpu.h` and, for the Hopper GEMM, `emu/sm90_cpu.h`, with
//! every file of `kernels/` compiled as it is), and their outputs verified against the f64
//! reference like any case.
//!
//! This is what the crate can check of its kernels without a GPU: the launch shapes and
//! arguments the ops choose, the kernels' indexing, edges, barriers (threads resumed in both
//! orders, in lockstep; and warp by warp, each warp running ahead as far as its barriers allow,
//! with copies landing at issue: see [`Order`]), cp.async and TMA pipelines (copies land as
//! late as PTX allows, and as early), mbarrier protocols (a deadlock is reported with every
//! thread's state), wgmma groups (operands read when their group retires), clusters,
//! alignment and bounds (AddressSanitizer and UBSan).
//! It cannot check the model's reading of PTX (fragment, descriptor and swizzle layouts;
//! mbarrier and TMA semantics), which the kernels share with it: real hardware is still the
//! judge, and the GPU tests run the same plans on a device.
//!
//! The emulator is compiled once per test run with the system C++ compiler (`CXX`, else
//! `c++`: g++ 12 or clang with AddressSanitizer), into the directory of the test binary.
use crate::kernels::KernelId;
use crate::plan::{Arg, Init, PlanBuilder, Ptr, Step};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use wattbench_core::DType;

/// The kernel files the emulator runs: all of them.
pub(crate) const EMULATED: [KernelId; 5] = KernelId::ALL;

/// Thread order within each barrier interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Order {
    /// Lockstep, thread 0 first: every thread runs to its next barrier or collective
    /// instruction, then the collectives run; copies land as late as PTX allows.
    Forward,
    /// Lockstep, the last thread first.
    Reverse,
    /// Warp-serial, warp 0 first: each warp runs as far as it can (to a barrier, an mbarrier
    /// wait or a warpgroup-collective instruction) before the next starts, and copies (cp.async,
    /// TMA) land at issue: a warp running ahead of another, which the lockstep orders never show.
    WarpsForward,
    /// Warp-serial, the last warp first.
    WarpsReverse,
}

impl Order {
    /// The lockstep orders.
    pub(crate) const LOCKSTEP: [Order; 2] = [Order::Forward, Order::Reverse];
    /// The warp-serial orders.
    pub(crate) const WARP_SERIAL: [Order; 2] = [Order::WarpsForward, Order::WarpsReverse];
    /// Every order.
    pub(crate) const ALL: [Order; 4] = [
        Order::Forward,
        Order::Reverse,
        Order::WarpsForward,
        Order::WarpsReverse,
    ];

    /// The emulator's options for this order.
    fn flags(self) -> &'static [&'static str] {
        match self {
            Order::Forward => &[],
            Order::Reverse => &["--reverse"],
            Order::WarpsForward => &["--warp-serial"],
            Order::WarpsReverse => &["--warp-serial", "--reverse"],
        }
    }
}

/// Test-only kernels of `emu/planted.cu`, with planted races: compiled into the emulator, run
/// by its own tests, launched by no plan.
const PLANTED: [&str; 2] = ["wb_test_planted_race", "wb_test_static_smem"];

fn emu_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("emu")
}

fn kernels_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../kernels")
}

/// The compiler flags: sanitizers on, every report fatal (static `__shared__` arrays too,
/// which live in a section of their own: GCC leaves such globals unchecked unless told).
const FLAGS: [&str; 10] = [
    "-std=c++17",
    "-O1",
    "-g",
    "-fsanitize=address,undefined",
    "-fsanitize-sections=wb_static_smem",
    "-fno-sanitize-recover=all",
    "-fno-omit-frame-pointer",
    "-fno-strict-aliasing",
    "-Wall",
    "-Wno-unknown-pragmas",
];

/// `WB_ENTRY(name)` for every entry point of the emulated files (and the planted kernels): the
/// emulator's launch table.
fn entries() -> String {
    EMULATED
        .iter()
        .flat_map(|k| k.entry_points())
        .chain(PLANTED.map(String::from))
        .fold(String::new(), |mut s, e| {
            let _ = writeln!(s, "WB_ENTRY({e})");
            s
        })
}

/// The emulator's executable, built on first use (cached by a hash of its sources, the
/// kernels and the flags); why it could not be built.
fn emulator() -> Result<&'static Path, String> {
    static EXE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    EXE.get_or_init(build)
        .as_ref()
        .map(PathBuf::as_path)
        .map_err(Clone::clone)
}

fn build() -> Result<PathBuf, String> {
    let read = |p: PathBuf| std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()));
    let mut parts = vec![
        read(emu_dir().join("cuda_cpu.h"))?,
        read(emu_dir().join("runner.cpp"))?,
        read(emu_dir().join("sm90_cpu.h"))?,
        read(emu_dir().join("planted.cu"))?,
        read(kernels_dir().join("common.cuh"))?,
        entries().into_bytes(),
        FLAGS.join(" ").into_bytes(),
    ];
    for k in EMULATED {
        parts.push(read(kernels_dir().join(k.file()))?);
    }
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let hash = crate::loader::fnv1a64(&refs);
    let exe_dir = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .parent()
        .map(Path::to_path_buf)
        .ok_or("the test binary has no directory")?;
    let dir = exe_dir.join(format!("wb-emu-{hash:016x}"));
    let exe = dir.join("wb-emu");
    if exe.is_file() {
        return Ok(exe);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::write(dir.join("entries.inc"), entries()).map_err(|e| e.to_string())?;
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let tmp = dir.join(format!("wb-emu.{}.tmp", std::process::id()));
    let out = Command::new(&cxx)
        .args(FLAGS)
        .arg(format!("-I{}", dir.display()))
        .arg(format!("-I{}", emu_dir().display()))
        .arg(format!("-I{}", kernels_dir().display()))
        .arg(emu_dir().join("runner.cpp"))
        .arg("-o")
        .arg(&tmp)
        .output()
        .map_err(|e| {
            format!("cannot run the C++ compiler `{cxx}` ({e}): the kernel emulator needs one with AddressSanitizer (Debian: g++)")
        })?;
    if !out.status.success() {
        return Err(format!(
            "building the kernel emulator with `{cxx}` failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // A warning in our kernels or the model is a finding too.
    let warnings = String::from_utf8_lossy(&out.stderr);
    if warnings.contains("warning") {
        return Err(format!(
            "the kernel emulator builds with warnings:\n{warnings}"
        ));
    }
    std::fs::rename(&tmp, &exe).map_err(|e| e.to_string())?;
    Ok(exe)
}

fn elem_bytes(d: DType) -> usize {
    match d {
        DType::F32 => 4,
        _ => 2,
    }
}

/// The plan file and the buffers' initial bytes.
fn serialize(b: &PlanBuilder) -> Result<(String, Vec<u8>), String> {
    let mut plan = String::new();
    let mut data = Vec::new();
    for spec in b.bufs() {
        let _ = writeln!(plan, "buf {} {}", elem_bytes(spec.dtype), spec.len);
        let values: Vec<f32> = match spec.init {
            Init::Upload(d) => d.to_vec(),
            Init::Poison => vec![f32::NAN; spec.len],
            Init::Zero => vec![0.0; spec.len],
        };
        match spec.dtype {
            DType::F32 => data.extend(values.iter().flat_map(|v| v.to_le_bytes())),
            d => data.extend(
                crate::device::to_bits(&values, d)
                    .iter()
                    .flat_map(|v| v.to_le_bytes()),
            ),
        }
    }
    let ptr = |p: Ptr| match p {
        Ptr::To(v) => format!("{}:{}", v.buf().index(), v.start()),
        Ptr::Null => "null".into(),
    };
    for st in b.steps() {
        match st {
            Step::Launch(l, args) => {
                let (g, k) = (l.grid, l.block);
                let cluster = match KernelId::cluster(&l.entry) {
                    None => 1,
                    Some([x, 1, 1]) => x,
                    Some(c) => {
                        return Err(format!(
                            "{}: cluster {c:?} (only along x is modelled)",
                            l.entry
                        ))
                    }
                };
                let _ = writeln!(
                    plan,
                    "launch {} {} {} {} {} {} {} {cluster} {} {}",
                    l.entry,
                    g.0,
                    g.1,
                    g.2,
                    k.0,
                    k.1,
                    k.2,
                    l.smem,
                    args.len()
                );
                for a in args {
                    let line = match *a {
                        Arg::Ptr(p) => format!("ptr {}", ptr(p)),
                        Arg::Int(n) => format!("int {n}"),
                        Arg::F32(f) => format!("f32 {:08x}", f.to_bits()),
                        Arg::RnnBwd(s) => format!(
                            "rnnbwd {} {} {} {} {} {} {}",
                            ptr(s.hs),
                            ptr(s.save),
                            ptr(s.cprev),
                            s.cprev_pitch,
                            ptr(s.dxp),
                            ptr(s.drec),
                            ptr(s.carry)
                        ),
                        Arg::TensorMap(m) => format!(
                            "tmap {} {} {} {} {} {}",
                            ptr(Ptr::To(m.view)),
                            m.rows,
                            m.cols,
                            m.ld,
                            m.box_dims[0],
                            m.box_dims[1]
                        ),
                    };
                    let _ = writeln!(plan, "arg {line}");
                }
            }
            Step::Copy { dst, src } => {
                let _ = writeln!(
                    plan,
                    "copy {} {} {} {} {}",
                    dst.buf().index(),
                    dst.start(),
                    src.buf().index(),
                    src.start(),
                    src.len()
                );
            }
            Step::Zero(v) => {
                let _ = writeln!(plan, "zero {} {} {}", v.buf().index(), v.start(), v.len());
            }
        }
    }
    Ok((plan, data))
}

/// Runs the plan of `b` once on the emulator, resuming threads in `order`: its outputs as
/// f32, or the emulator's report (a kernel fault names the kernel, block and thread).
pub(crate) fn run(b: &PlanBuilder, order: Order) -> Result<Vec<Vec<f32>>, String> {
    let (plan, data) = serialize(b)?;
    let bytes = run_text(&plan, &data, order)?;
    // Each buffer's final contents, as f32.
    let mut at = 0;
    let mut bufs = Vec::new();
    for spec in b.bufs() {
        let n = spec.len * elem_bytes(spec.dtype);
        let raw = bytes
            .get(at..at + n)
            .ok_or("the emulator wrote fewer bytes than the plan's buffers")?;
        at += n;
        let vals: Vec<f32> = match spec.dtype {
            DType::F32 => raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            d => raw
                .chunks_exact(2)
                .map(|c| crate::device::from_bits(u16::from_le_bytes([c[0], c[1]]), d))
                .collect(),
        };
        bufs.push(vals);
    }
    Ok(b.outputs()
        .iter()
        .map(|v| bufs[v.buf().index()][v.range()].to_vec())
        .collect())
}

/// Runs a plan's text on the emulator with the buffers' initial bytes `data`: every buffer's
/// final bytes, or the emulator's report.
fn run_text(plan: &str, data: &[u8], order: Order) -> Result<Vec<u8>, String> {
    let exe = emulator()?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (p, i, o) = (
        dir.path().join("plan.txt"),
        dir.path().join("in.bin"),
        dir.path().join("out.bin"),
    );
    std::fs::write(&p, plan).map_err(|e| e.to_string())?;
    std::fs::write(&i, data).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(exe);
    cmd.args(order.flags());
    // Leaks of the emulator process itself say nothing about the kernels.
    let out = cmd
        .args([&p, &i, &o])
        .env("ASAN_OPTIONS", "detect_leaks=0:exitcode=3")
        .env("UBSAN_OPTIONS", "exitcode=3:print_stacktrace=1")
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        // AddressSanitizer's notice that it supports swapcontext partly (true, and said once
        // per process) and its shadow-memory dump are left out of the report.
        let text = String::from_utf8_lossy(&out.stderr);
        let mut report: Vec<&str> = Vec::new();
        let mut shadow = false;
        for l in text.lines() {
            shadow |= l.starts_with("Shadow bytes around");
            if l.starts_with("(in kernel") || !(shadow || l.contains("makecontext/swapcontext")) {
                report.push(l);
            }
        }
        return Err(format!(
            "the emulator stopped ({}): {}",
            out.status,
            report.join("\n").trim()
        ));
    }
    std::fs::read(&o).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{self, Kernels};
    use std::collections::BTreeSet;
    use wattbench_core::harness::{CaseInputs, HarnessConfig};
    use wattbench_core::tensor::HostTensor;
    use wattbench_core::workload::{Cell, ConvParams, GemmParams, RnnParams};
    use wattbench_core::{reference, testing, Case, Mode, Op, Params};

    /// The generic check's shapes of `op`, plus shapes that reach what they do not: the
    /// 128-wide conv tile (K > 64), a second column of conv tiles, vector loads and stores (dimensions multiples of 8 in
    /// every GEMM layout), several batch tiles of the RNN kernels (B > 32) and many k-tiles.
    fn shapes(op: Op) -> Vec<Params> {
        let extra: Vec<Params> = match op {
            Op::Gemm => [(false, false), (false, true), (true, false), (true, true)]
                .into_iter()
                .map(|(ta, tb)| Params::Gemm(GemmParams::new(136, 72, 200).transposed(ta, tb)))
                .collect(),
            Op::Conv2d => vec![
                Params::Conv2d(ConvParams::new(2, 3, 9, 11, 70, 3, 3).padded(1, 1)),
                Params::Conv2d(ConvParams::new(2, 8, 8, 8, 16, 3, 3).padded(1, 1)),
                // Two column tiles in every conv kernel (K = 200 filters forward and for the
                // filter gradient, C = 70 channels for the data gradient), strided.
                Params::Conv2d(
                    ConvParams::new(1, 70, 6, 5, 200, 3, 3)
                        .padded(1, 1)
                        .strided(2, 2),
                ),
            ],
            Op::Rnn => [Cell::Vanilla, Cell::Lstm, Cell::Gru]
                .map(|c| Params::Rnn(RnnParams::new(c, 40, 33, 2)))
                .to_vec(),
        };
        testing::shapes(op).into_iter().chain(extra).collect()
    }

    /// (mode, dtype, kernels) of every plan the emulator runs for `op`.
    fn configs(op: Op) -> Vec<(Mode, DType, Kernels)> {
        let mut v = vec![
            (Mode::Infer, DType::F32, Kernels::Best),
            (Mode::Train, DType::F32, Kernels::Best),
        ];
        if op == Op::Gemm {
            v.extend([
                (Mode::Infer, DType::Bf16, Kernels::Best),
                (Mode::Infer, DType::F16, Kernels::Best),
                (Mode::Infer, DType::F32, Kernels::Naive),
            ]);
        }
        v
    }

    /// What the runs of one test found: every plan run in each of its orders and verified.
    struct Tally {
        /// The orders each plan runs in.
        orders: &'static [Order],
        runs: usize,
        failures: Vec<String>,
        /// Entry points launched.
        launched: BTreeSet<String>,
        /// The kernels of each plan (`PlanBuilder::kernels`).
        plans: BTreeSet<String>,
    }

    impl Tally {
        fn new(orders: &'static [Order]) -> Self {
            Tally {
                orders,
                runs: 0,
                failures: Vec::new(),
                launched: BTreeSet::new(),
                plans: BTreeSet::new(),
            }
        }

        /// Runs the plan `b` of `inp`'s case in each of the tally's orders; each output must pass the
        /// harness's verification. `what` names the run in failures.
        fn check(&mut self, inp: &CaseInputs, b: &PlanBuilder, what: &str) {
            for st in b.steps() {
                if let Step::Launch(l, _) = st {
                    self.launched.insert(l.entry.clone());
                }
            }
            self.plans.insert(b.kernels());
            for &order in self.orders {
                self.runs += 1;
                let what = format!("{what} ({order:?}; {})", b.kernels());
                match run(b, order) {
                    Ok(outs) => {
                        let v = inp.verify(&outs, None);
                        if !v.passed {
                            self.failures.push(format!(
                                "{what}: relative L2 error {:.3e}, max error {:.3e} over tolerance {:.1e}",
                                v.rel_l2_error,
                                v.rel_max_error.unwrap_or(f64::NAN),
                                v.tolerance
                            ));
                        }
                    }
                    Err(e) => self.failures.push(format!("{what}: {e}")),
                }
            }
        }

        /// [`Tally::check`] of the plan of `case` for `kernels` on a GPU of `sms`
        /// multiprocessors, on the harness's seeded inputs.
        fn case(&mut self, case: Case, kernels: Kernels, sms: u32, what: &str) {
            let inp = CaseInputs::new(case.clone(), &HarnessConfig::default());
            let b = ops::build(&case, kernels, sms, inp.tensors())
                .unwrap_or_else(|e| panic!("{case}: {e}"));
            self.check(&inp, &b, what);
        }

        /// Fails the test with every failure, if any.
        fn assert_passed(&self) {
            assert!(
                self.failures.is_empty(),
                "{} of {} emulated runs failed:\n{}",
                self.failures.len(),
                self.runs,
                self.failures.join("\n")
            );
        }
    }

    /// Every plan of the `cuda` and `cuda-naive` backends for these shapes, run on the
    /// emulator in every order (lockstep and warp-serial, each forward and reverse), passes the harness's verification against the f64
    /// reference; and together they launch every main kernel of the emulated files.
    #[test]
    fn our_kernels_match_the_reference_on_the_cpu_emulator() {
        let mut t = Tally::new(&Order::ALL);
        for op in Op::ALL {
            for params in shapes(op) {
                for (mode, dtype, kernels) in configs(op) {
                    let case = Case {
                        params,
                        mode,
                        dtype,
                        tag: None,
                    };
                    let what = format!("{case} ({kernels:?})");
                    t.case(case, kernels, 132, &what);
                }
            }
        }
        t.assert_passed();
        for k in EMULATED.into_iter().filter(|&k| k != KernelId::GemmSm90) {
            for e in k.entry_points() {
                if KernelId::is_main(&e)
                    || e.starts_with("gemm_naive")
                    || e.starts_with("rnn_bwd_last")
                {
                    assert!(t.launched.contains(&e), "{e} is never run on the emulator");
                }
            }
        }
    }

    /// The Hopper GEMM's plans (`cuda-wgmma`, `cuda-wgmma-c2`) in bf16 and f16 on the generic
    /// check's GEMM shapes and on shapes of several tiles (both tile widths, split K on either,
    /// clusters with an odd number of tile rows), for 132 SMs and for 3 (so that persistent
    /// CTAs walk several units and the ring wraps across them), in both thread orders: every
    /// run passes the harness's verification, and every entry point of gemm_sm90.cu runs.
    #[test]
    fn the_hopper_gemm_matches_the_reference_on_the_cpu_emulator() {
        let layouts = [(false, false), (false, true), (true, false), (true, true)];
        let extra = layouts.into_iter().flat_map(|(ta, tb)| {
            [
                GemmParams::new(136, 72, 200).transposed(ta, tb),
                GemmParams::new(300, 520, 70).transposed(ta, tb),
                // 256-wide tiles, few of them, a long K: split into k-ranges.
                GemmParams::new(40, 300, 1100).transposed(ta, tb),
            ]
            .map(Params::Gemm)
        });
        let mut t = Tally::new(&Order::LOCKSTEP);
        for params in testing::shapes(Op::Gemm).into_iter().chain(extra) {
            for kernels in [Kernels::Wgmma, Kernels::WgmmaCluster] {
                for dtype in [DType::Bf16, DType::F16] {
                    for sms in [132, 3] {
                        let case = Case {
                            params,
                            mode: Mode::Infer,
                            dtype,
                            tag: None,
                        };
                        let what = format!("{case} ({kernels:?}, {sms} SMs)");
                        t.case(case, kernels, sms, &what);
                    }
                }
            }
        }
        t.assert_passed();
        for e in KernelId::GemmSm90.entry_points() {
            assert!(t.launched.contains(&e), "{e} is never run on the emulator");
        }
        for (width, pattern) in [
            ("wide", "gemm_wgmma_bf16_"),
            ("narrow", "gemm_wgmma_n64_bf16_"),
        ] {
            assert!(
                t.plans
                    .iter()
                    .any(|k| k.contains(pattern) && k.contains("gemm_splitk_reduce")),
                "no {width} tile runs split K on the emulator"
            );
        }
    }

    /// `dh0` (which no backend output carries): its derivative along a random direction of
    /// h0 matches central differences of the f64 reference, for every cell.
    #[test]
    fn rnn_dh0_matches_finite_differences_on_the_cpu_emulator() {
        for cell in [Cell::Vanilla, Cell::Lstm, Cell::Gru] {
            let r = RnnParams::new(cell, 19, 5, 3);
            let case = Case {
                params: Params::Rnn(r),
                mode: Mode::Train,
                dtype: DType::F32,
                tag: None,
            };
            let inputs = wattbench_core::tensor::generate_case_inputs(&case, 7);
            let dirs = wattbench_core::tensor::generate_case_inputs(&case, 8);
            let n_in = inputs.len() - 1;
            let dhs = &inputs[n_in].data;
            let loss = |eps: f64| -> f64 {
                let mut v: Vec<Vec<f64>> = inputs[..n_in].iter().map(HostTensor::to_f64).collect();
                for (x, &d) in v[3].iter_mut().zip(&dirs[3].data) {
                    *x += eps * d as f64;
                }
                let hs = reference::rnn(&r, reference::RnnInputs::of(cell, &v));
                hs.iter().zip(dhs).map(|(h, &d)| h * d as f64).sum()
            };
            let eps = 1e-4;
            let fd = (loss(eps) - loss(-eps)) / (2.0 * eps);
            let mut b = PlanBuilder::new();
            let ins = b.upload_all(&inputs, DType::F32);
            let gr = ops::rnn::training(&mut b, &r, &ins, true).unwrap();
            b.output(gr.dh0.expect("dh0 asked for")).unwrap();
            for order in Order::ALL {
                let out = run(&b, order).unwrap_or_else(|e| panic!("{cell:?}: {e}"));
                let an: f64 = out[0]
                    .iter()
                    .zip(&dirs[3].data)
                    .map(|(&g, &d)| g as f64 * d as f64)
                    .sum();
                assert!(
                    (an - fd).abs() <= 1e-3 * fd.abs().max(1.0),
                    "{cell:?} ({order:?}): dh0 along a direction {an}, finite differences {fd}"
                );
            }
        }
    }

    /// The Hopper GEMM in the warp-serial orders (each warp runs as far as its barriers and
    /// mbarriers allow before the next starts, TMA loads landing at issue), on a subset of the
    /// shapes above for time: both plans and dtypes, both tile widths, split K, clusters with
    /// an odd number of tile rows, persistent CTAs (for 3 SMs) that wrap the ring.
    #[test]
    fn the_hopper_gemm_matches_the_reference_with_warps_running_ahead() {
        let mut t = Tally::new(&Order::WARP_SERIAL);
        for (params, kernels, dtype, sms) in [
            (
                GemmParams::new(136, 72, 200),
                Kernels::Wgmma,
                DType::Bf16,
                3,
            ),
            (
                GemmParams::new(300, 520, 70).transposed(true, true),
                Kernels::WgmmaCluster,
                DType::F16,
                3,
            ),
            (
                GemmParams::new(40, 300, 1100).transposed(false, true),
                Kernels::Wgmma,
                DType::F16,
                132,
            ),
            (
                GemmParams::new(257, 260, 24).transposed(true, false),
                Kernels::WgmmaCluster,
                DType::Bf16,
                3,
            ),
        ] {
            let case = Case {
                params: Params::Gemm(params),
                mode: Mode::Infer,
                dtype,
                tag: None,
            };
            let what = format!("{case} ({kernels:?}, {sms} SMs)");
            t.case(case, kernels, sms, &what);
        }
        t.assert_passed();
        for (what, patterns) in [
            ("wide", &["gemm_wgmma_bf16_", "gemm_wgmma_f16_"][..]),
            ("narrow", &["gemm_wgmma_n64_"]),
            ("cluster", &["gemm_wgmma_c2_"]),
            ("split-K", &["gemm_splitk_reduce"]),
        ] {
            assert!(
                t.plans
                    .iter()
                    .any(|k| patterns.iter().any(|p| k.contains(p))),
                "no {what} Hopper GEMM runs warp-serial: {:?}",
                t.plans
            );
        }
    }

    /// The planted races of `emu/planted.cu` (a cp.async into a stage the other warp may still
    /// read; a write into slots the other warp may not have read yet, with only a shuffle in
    /// between) go unseen in the lockstep orders and corrupt the output in both warp-serial
    /// orders, while the kernel without them passes in every order: so warp-serial mode can
    /// fail, and the lockstep orders alone would not catch these hazards.
    #[test]
    fn warp_serial_orders_catch_races_the_lockstep_orders_miss() {
        const TILES: usize = 4;
        let input: Vec<f32> = (0..256 * TILES).map(|i| i as f32).collect();
        let other = |t: usize| (t + 32) % 64;
        let mut expected: Vec<f32> = (0..64 * TILES)
            .map(|o| {
                let (i, t) = (o / 64, o % 64);
                let c = &input[256 * i + 4 * other(t)..][..4];
                c[0] + c[1] + c[2] + c[3]
            })
            .collect();
        expected.extend((0..64).map(|t| input[other(t)] + input[other(t ^ 1)]));
        let run_variant = |variant: u32, order: Order| -> Result<Option<String>, String> {
            let out_len = expected.len();
            let plan = format!(
                "buf 4 {}\nbuf 4 {out_len}\nlaunch wb_test_planted_race 1 1 1 64 1 1 1 2048 4\n\
                 arg ptr 0:0\narg ptr 1:0\narg int {TILES}\narg int {variant}\n",
                input.len()
            );
            let mut data: Vec<u8> = input.iter().flat_map(|v| v.to_le_bytes()).collect();
            data.extend((0..out_len).flat_map(|_| f32::NAN.to_le_bytes()));
            let bytes = run_text(&plan, &data, order)?;
            let out = bytes[4 * input.len()..]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
            Ok(out
                .zip(&expected)
                .enumerate()
                .find_map(|(i, (o, &e))| (o != e).then(|| format!("out[{i}] = {o}, expected {e}"))))
        };
        let all = [Order::LOCKSTEP, Order::WARP_SERIAL].concat();
        for order in all {
            let r = run_variant(0, order);
            assert_eq!(r, Ok(None), "the unplanted kernel ({order:?})");
        }
        for variant in [1, 2] {
            for order in Order::LOCKSTEP {
                let r = run_variant(variant, order);
                assert_eq!(r, Ok(None), "race {variant} in lockstep ({order:?})");
            }
            for order in Order::WARP_SERIAL {
                let r = run_variant(variant, order).unwrap();
                assert!(r.is_some(), "race {variant} unseen warp-serial ({order:?})");
                eprintln!("race {variant} warp-serial ({order:?}): {}", r.unwrap());
            }
        }
    }

    /// Static `__shared__` arrays start every block as NaN, as dynamic shared memory does: a
    /// kernel that reads its tile before writing it gives NaN in every block (with the arrays
    /// as plain statics, the first block read zeros and the next the previous block's tile,
    /// and a wrong result could pass); the same kernel writing first gives the right sums. An
    /// access past the end of a static tile is a fault, not a quiet read of the next array.
    #[test]
    fn static_shared_memory_starts_every_block_as_nan_and_is_bounds_checked() {
        const BLOCKS: usize = 3;
        let run = |variant: u32| -> Result<Vec<f32>, String> {
            let plan = format!(
                "buf 4 {n}\nlaunch wb_test_static_smem {BLOCKS} 1 1 32 1 1 1 0 2\n\
                 arg ptr 0:0\narg int {variant}\n",
                n = 32 * BLOCKS
            );
            let data: Vec<u8> = (0..32 * BLOCKS)
                .flat_map(|_| f32::NAN.to_le_bytes())
                .collect();
            let bytes = run_text(&plan, &data, Order::Forward)?;
            Ok(bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        };
        let good = run(0).unwrap();
        for (i, v) in good.iter().enumerate() {
            let (b, t) = (i / 32, i % 32);
            assert_eq!(*v, (b * 100 + (t + 1) % 32) as f32, "out[{i}]");
        }
        let early = run(1).unwrap();
        assert!(early.iter().all(|v| v.is_nan()), "{early:?}");
        let past = run(2).unwrap_err();
        assert!(past.contains("AddressSanitizer"), "{past}");
    }
}
