//! Parsing `ptxas -v` output into a per-kernel resource table, and `cuobjdump --dump-sass`
//! output into per-kernel instruction counts (used by the kernel check).
use crate::kernels::KernelId;
use std::collections::BTreeSet;

/// Per-kernel resources ptxas reports.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Resources {
    /// Registers per thread.
    pub regs: u32,
    /// Static shared memory bytes.
    pub smem: u32,
    /// Stack frame bytes.
    pub stack: u32,
    /// Spill-store bytes.
    pub spill_st: u32,
    /// Spill-load bytes.
    pub spill_ld: u32,
}

/// Parse `ptxas -v` output into (entry, resources) pairs.
pub fn parse_ptxas(log: &str) -> Vec<(String, Resources)> {
    let num_before = |line: &str, unit: &str| -> u32 {
        line.split(',')
            .find_map(|part| {
                let part = part.trim();
                part.strip_suffix(unit)
                    .and_then(|n| n.split_whitespace().last())
                    .and_then(|n| n.parse().ok())
            })
            .unwrap_or(0)
    };
    let mut out: Vec<(String, Resources)> = Vec::new();
    for line in log.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            let name = rest.split('\'').next().unwrap_or("").to_string();
            out.push((name, Resources::default()));
        } else if let Some((_, r)) = out.last_mut() {
            if line.contains("bytes stack frame") {
                r.stack = num_before(line, "bytes stack frame");
                r.spill_st = num_before(line, "bytes spill stores");
                r.spill_ld = num_before(line, "bytes spill loads");
            } else if line.contains("Used") && line.contains("registers") {
                r.regs = line
                    .split("Used ")
                    .nth(1)
                    .and_then(|s| s.split_whitespace().next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                r.smem = num_before(line, "bytes smem");
            }
        }
    }
    out
}

/// Whether a line of ptxas's output (the standalone tool's, or the driver JIT's log) says the
/// Hopper GEMM's pipeline is broken though it compiled: its wgmma/setmaxnreg notes (C75xx),
/// e.g. C7510 "Potential Performance Loss: wgmma.mma_async instructions are serialized",
/// C7517 "warpgroup.wait is injected", C7508 setmaxnreg ignored. The kernel still runs, at a
/// fraction of its speed.
pub fn pipeline_warning(line: &str) -> bool {
    (line.contains("warning") || line.contains("(C75"))
        && (line.contains("(C75")
            || line.contains("Performance Loss")
            || (line.contains("wgmma") && line.contains("serializ"))
            || line.contains("setmaxnreg"))
}

/// What a JIT log (`ptxas -v` format) says that slows the kernels it compiled: each
/// [`pipeline_warning`] line, and each entry point that spills.
pub fn jit_warnings(log: &str) -> Vec<String> {
    let mut out: Vec<String> = (log.lines())
        .filter(|l| pipeline_warning(l))
        .map(|l| l.trim().to_string())
        .collect();
    for (entry, r) in parse_ptxas(log) {
        if r.spill_st > 0 || r.spill_ld > 0 {
            out.push(format!(
                "{entry}: {} bytes spill stores, {} bytes spill loads",
                r.spill_st, r.spill_ld
            ));
        }
    }
    out
}

/// Every entry point of a compiled file has a row of `ptxas -v` (`rows`) and, when the machine
/// code was dumped (`sass`), a function in it; otherwise which do not. The checks run per row
/// and per function, so a changed output format that parses to nothing would check nothing.
pub fn check_coverage(
    entries: &[String],
    rows: &[(String, Resources)],
    sass: Option<&[(String, Sass)]>,
) -> Result<(), String> {
    let mut why = Vec::new();
    let missing = |names: Vec<&String>| -> Vec<&str> {
        entries
            .iter()
            .filter(|e| !names.contains(e))
            .map(String::as_str)
            .collect()
    };
    let no_row = missing(rows.iter().map(|(n, _)| n).collect());
    if !no_row.is_empty() {
        why.push(format!("no ptxas resource row for {}", no_row.join(", ")));
    }
    if let Some(sass) = sass {
        let no_code = missing(sass.iter().map(|(n, _)| n).collect());
        if !no_code.is_empty() {
            why.push(format!("no machine code for {}", no_code.join(", ")));
        }
    }
    if why.is_empty() {
        Ok(())
    } else {
        Err(why.join("; "))
    }
}

/// What a kernel's machine code holds, from `cuobjdump --dump-sass`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sass {
    /// Warpgroup MMAs (`HGMMA`: what `wgmma.mma_async` becomes).
    pub hgmma: u32,
    /// Warp MMAs (`HMMA`: `mma.sync`).
    pub hmma: u32,
    /// Local-memory accesses (`LDL`, `STL`): spills or arrays indexed at run time.
    pub local: u32,
    /// Operand flags seen on the HGMMAs (`tnspA`, `tnspB`: an MN-major operand).
    pub hgmma_flags: BTreeSet<String>,
    /// Fences of GPU or system scope (`MEMBAR.*.GPU`, `MEMBAR.*.SYS`): each waits for every
    /// outstanding memory operation of the thread, the previous tile's output stores included.
    pub membar_gpu: u32,
}

/// Parse `cuobjdump --dump-sass` output into (kernel, counts) pairs, in order.
pub fn parse_sass(text: &str) -> Vec<(String, Sass)> {
    let mut out: Vec<(String, Sass)> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.split("Function : ").nth(1) {
            out.push((name.trim().to_string(), Sass::default()));
            continue;
        }
        let (Some(code), Some((_, s))) = (line.split("*/").nth(1), out.last_mut()) else {
            continue;
        };
        let mut words = code.split_whitespace();
        let mut op = words.next().unwrap_or("");
        if op.starts_with('@') {
            op = words.next().unwrap_or("");
        }
        match op.split('.').next().unwrap_or("") {
            "HGMMA" => {
                s.hgmma += 1;
                for flag in ["tnspA", "tnspB"] {
                    if code.contains(&format!(".{flag}")) {
                        s.hgmma_flags.insert(flag.to_string());
                    }
                }
            }
            "HMMA" => s.hmma += 1,
            "LDL" | "STL" => s.local += 1,
            "MEMBAR" if code.contains(".GPU") || code.contains(".SYS") => s.membar_gpu += 1,
            _ => {}
        }
    }
    out
}

impl Sass {
    /// The tensor-core instructions, for a table: `HGMMA 12 tnspB`, `HMMA 32`, or `-`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if self.hgmma > 0 {
            parts.push(format!("HGMMA {}", self.hgmma));
            parts.extend(self.hgmma_flags.iter().cloned());
        }
        if self.hmma > 0 {
            parts.push(format!("HMMA {}", self.hmma));
        }
        if parts.is_empty() {
            "-".into()
        } else {
            parts.join(" ")
        }
    }
}

/// GPU-scope fences the Hopper GEMM's machine code may hold: the cluster kernels' two, at the
/// cluster's set-up (barrier initialisation made visible to the peer) and at its exit barrier.
/// A fence in the main loop (what a cluster-scope `.release` on the remote arrival compiled
/// to: two per consumer warp per k-step) stalls every k-step behind the previous tile's
/// output stores.
pub const MAX_WGMMA_GPU_FENCES: u32 = 2;

/// What the machine code of our GEMM kernels must hold: the Hopper GEMM (`gemm_wgmma_*_XY`)
/// warpgroup MMAs only, with the transpose flag on exactly the MN-major operands (A when
/// stored transposed, X = `t`; B when not, Y = `n`), and no more than
/// [`MAX_WGMMA_GPU_FENCES`] GPU-scope fences; the `mma.sync` GEMM (`gemm_tc_*`) warp MMAs. No
/// kernel of either may touch local memory. Other kernels: no requirement.
pub fn check_sass(kernel: &str, s: &Sass) -> Result<(), String> {
    let local = || (s.local > 0).then(|| format!("{} local-memory accesses (LDL/STL)", s.local));
    if kernel.starts_with("gemm_wgmma_") {
        let layout = kernel.rsplit('_').next().unwrap_or("");
        let mut want = BTreeSet::new();
        if layout.starts_with('t') {
            want.insert("tnspA".to_string());
        }
        if layout.ends_with('n') {
            want.insert("tnspB".to_string());
        }
        if s.hgmma == 0 || s.hmma > 0 {
            return Err(format!(
                "{} HGMMA and {} HMMA: the wgmma path was not taken",
                s.hgmma, s.hmma
            ));
        }
        if s.hgmma_flags != want {
            return Err(format!(
                "HGMMA operand flags {:?}, expected {want:?} for layout {layout}",
                s.hgmma_flags
            ));
        }
        if s.membar_gpu > MAX_WGMMA_GPU_FENCES {
            return Err(format!(
                "{} GPU-scope fences (MEMBAR .GPU/.SYS), at most {MAX_WGMMA_GPU_FENCES} \
                 (set-up and exit): one is in the main loop (a remote mbarrier arrival with \
                 .release.cluster?)",
                s.membar_gpu
            ));
        }
    } else if kernel.starts_with("gemm_tc_") && s.hmma == 0 {
        return Err("no HMMA: the tensor cores are not used".into());
    } else if !kernel.starts_with("gemm_tc_") {
        return Ok(());
    }
    local().map_or(Ok(()), Err)
}

/// What ptxas's resources for a kernel must satisfy: the Hopper GEMM's (`gemm_wgmma_*`)
/// registers a thread must give its CTA the pool its warpgroups trade with `setmaxnreg`
/// (otherwise the consumers' `setmaxnreg.inc` waits forever, before any barrier's watchdog).
/// Other kernels: no requirement.
pub fn check_resources(kernel: &str, r: &Resources) -> Result<(), String> {
    if kernel.starts_with("gemm_wgmma_") {
        crate::ops::gemm::register_pool_check(r.regs)
    } else {
        Ok(())
    }
}

/// The cluster shape an entry point declares in the PTX (`.reqnctapercluster X, Y, Z` between
/// its `.entry` line and its body), if any.
pub fn ptx_cluster(ptx: &str, entry: &str) -> Option<[u32; 3]> {
    let start = ptx.find(&format!(".entry {entry}("))?;
    let head = &ptx[start..];
    let head = &head[..head.find('{').unwrap_or(head.len())];
    let dims = head.split(".reqnctapercluster").nth(1)?;
    let v: Vec<u32> = dims
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .take(3)
        .map_while(|t| t.parse().ok())
        .collect();
    <[u32; 3]>::try_from(v).ok()
}

/// The Hopper GEMM's cluster kernels (`gemm_wgmma_c2_*`) must be compiled for clusters of two
/// CTAs (their barriers count both CTAs' consumers; launched without a cluster they would wait
/// for arrivals that never come), and no other kernel for a cluster.
pub fn check_cluster(ptx: &str, entry: &str) -> Result<(), String> {
    let want = KernelId::cluster(entry);
    let got = ptx_cluster(ptx, entry);
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "declares cluster {got:?} in its PTX, expected {want:?}"
        ))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn jit_warnings_name_broken_pipelines_and_spills_only() {
        use super::{jit_warnings, pipeline_warning};
        let clean = "ptxas info    : Compiling entry function 'gemm_wgmma_bf16_nn' for 'sm_90a'\nptxas info    : Function properties for gemm_wgmma_bf16_nn\n    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\nptxas info    : Used 168 registers, used 1 barriers\n";
        assert!(jit_warnings(clean).is_empty());
        assert!(jit_warnings("").is_empty());
        let serialized = "ptxas info    : (C7510) Potential Performance Loss: wgmma.mma_async instructions are serialized due to the presence of Extern calls in the function 'k'.\n";
        let spilled = "ptxas info    : Compiling entry function 'k' for 'sm_90a'\nptxas info    : Function properties for k\n    8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads\n";
        let w = jit_warnings(&format!("{serialized}{spilled}"));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("C7510") && w[0].contains("serialized"),
            "{w:?}"
        );
        assert_eq!(w[1], "k: 4 bytes spill stores, 12 bytes spill loads");
        assert!(pipeline_warning(
            "ptxas warning : setmaxnreg ignored; unable to determine register count at entry"
        ));
        assert!(!pipeline_warning("ptxas warning : some unrelated note"));
    }

    #[test]
    fn cluster_kernels_declare_their_cluster() {
        use super::check_cluster;
        let ptx = ".visible .entry gemm_wgmma_c2_bf16_nn(\n.param .u64 a\n)\n.maxntid 384, 1, 1\n.reqnctapercluster 2, 1, 1\n{\nret;\n}\n.visible .entry gemm_wgmma_bf16_nn(\n.param .u64 a\n)\n.maxntid 384, 1, 1\n{\nret;\n}\n";
        assert_eq!(
            super::ptx_cluster(ptx, "gemm_wgmma_c2_bf16_nn"),
            Some([2, 1, 1])
        );
        assert_eq!(check_cluster(ptx, "gemm_wgmma_c2_bf16_nn"), Ok(()));
        assert_eq!(check_cluster(ptx, "gemm_wgmma_bf16_nn"), Ok(()));
        let plain = ptx.replace(".reqnctapercluster 2, 1, 1\n", "");
        assert!(check_cluster(&plain, "gemm_wgmma_c2_bf16_nn").is_err());
        let wrong = ptx.replace(
            "gemm_wgmma_bf16_nn(\n.param .u64 a\n)\n",
            "gemm_wgmma_bf16_nn(\n.param .u64 a\n)\n.reqnctapercluster 2, 1, 1\n",
        );
        assert!(check_cluster(&wrong, "gemm_wgmma_bf16_nn").is_err());
    }

    #[test]
    fn parses_ptxas_output() {
        let log = "ptxas info    : Compiling entry function 'k1' for 'sm_90'\nptxas info    : Function properties for k1\n    8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads\nptxas info    : Used 128 registers, used 1 barriers, 16896 bytes smem, 400 bytes cmem[0]\nptxas info    : Compiling entry function 'k2' for 'sm_90'\nptxas info    : Used 10 registers, used 0 barriers\n";
        let r = super::parse_ptxas(log);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].0, "k1");
        let x = &r[0].1;
        assert_eq!(
            (x.regs, x.smem, x.stack, x.spill_st, x.spill_ld),
            (128, 16896, 8, 4, 12)
        );
        assert_eq!((r[1].1.regs, r[1].1.smem), (10, 0));
    }

    #[test]
    fn every_entry_point_needs_a_row_and_machine_code() {
        use super::{check_coverage, parse_ptxas, parse_sass};
        let entries = ["k1".to_string(), "k2".to_string()];
        let log = "ptxas info    : Compiling entry function 'k1' for 'sm_90'\nptxas info    : Used 128 registers\nptxas info    : Compiling entry function 'k2' for 'sm_90'\nptxas info    : Used 10 registers\n";
        let rows = parse_ptxas(log);
        let sass = parse_sass("\t\tFunction : k2\n\t\tFunction : k1\n");
        assert_eq!(check_coverage(&entries, &rows, Some(&sass)), Ok(()));
        assert_eq!(check_coverage(&entries, &rows, None), Ok(()));
        // A format that parses to nothing, or a kernel gone from the output.
        let none = check_coverage(&entries, &parse_ptxas(""), None).unwrap_err();
        assert_eq!(none, "no ptxas resource row for k1, k2");
        let k1_only = parse_ptxas(
            log.split("ptxas info    : Compiling entry function 'k2'")
                .next()
                .unwrap(),
        );
        assert_eq!(
            check_coverage(&entries, &k1_only, Some(&sass)),
            Err("no ptxas resource row for k2".into())
        );
        assert_eq!(
            check_coverage(&entries, &rows, Some(&sass[..1])),
            Err("no machine code for k1".into())
        );
        assert_eq!(
            check_coverage(&entries, &rows, Some(&[])),
            Err("no machine code for k1, k2".into())
        );
    }

    #[test]
    fn parses_sass() {
        let sass = "\tcode for sm_90a\n\t\tFunction : k_wg\n        /*0280*/                   MEMBAR.ALL.GPU ;     /* 0x0000000000007992 */\n        /*0290*/  MEMBAR.ALL.CTA ; /* 0x0 */\n        /*0000*/  LDC R1, c[0x0][0x28] ;  /* 0x00000a00ff017b82 */\n        /*0ab0*/                   HGMMA.64x256x16.F32 R24, gdesc[UR16].tnspA, R24 ;                   /* 0x23e00000101879f0 */\n        /*0c50*/      @P0  HGMMA.64x256x16.F32 R24, gdesc[UR16].tnspA.tnspB, R24, gsb0 ; /* 0x0 */\n        /*0c60*/      STL [R1], R2 ; /* 0x0 */\n\t\tFunction : k_tc\n        /*0100*/      HMMA.16816.F32.BF16 R4, R8, R12, R4 ; /* 0x0 */\n";
        let r = super::parse_sass(sass);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].0, "k_wg");
        assert_eq!((r[0].1.hgmma, r[0].1.hmma, r[0].1.local), (2, 0, 1));
        assert_eq!((r[0].1.membar_gpu, r[1].1.membar_gpu), (1, 0));
        assert_eq!(
            r[0].1.hgmma_flags.iter().collect::<Vec<_>>(),
            ["tnspA", "tnspB"]
        );
        assert_eq!((r[1].0.as_str(), r[1].1.hmma, r[1].1.hgmma), ("k_tc", 1, 0));
    }

    /// 168 registers a thread (what ptxas gives a 384-thread kernel) hold the pool: 40 for
    /// the producer's 128 threads and 232 for the consumers' 256; 128 would not.
    #[test]
    fn the_hopper_gemm_needs_the_whole_register_pool() {
        use super::{check_resources, Resources};
        let regs = |regs| Resources {
            regs,
            ..Resources::default()
        };
        assert_eq!(check_resources("gemm_wgmma_bf16_nn", &regs(168)), Ok(()));
        assert_eq!(check_resources("gemm_wgmma_n64_f16_tt", &regs(168)), Ok(()));
        let short = check_resources("gemm_wgmma_bf16_nn", &regs(128)).unwrap_err();
        assert!(short.contains("setmaxnreg"), "{short}");
        assert!(check_resources("gemm_wgmma_n64_bf16_nt", &regs(167)).is_err());
        assert_eq!(check_resources("gemm_tc_bf16_nn", &regs(128)), Ok(()));
    }

    #[test]
    fn our_gemms_machine_code_is_checked_per_layout() {
        use super::{check_sass, Sass};
        let wg = |flags: &[&str]| Sass {
            hgmma: 12,
            hgmma_flags: flags.iter().map(|f| f.to_string()).collect(),
            ..Sass::default()
        };
        assert_eq!(check_sass("gemm_wgmma_bf16_nn", &wg(&["tnspB"])), Ok(()));
        assert_eq!(check_sass("gemm_wgmma_f16_nt", &wg(&[])), Ok(()));
        assert_eq!(
            check_sass("gemm_wgmma_bf16_tn", &wg(&["tnspA", "tnspB"])),
            Ok(())
        );
        assert_eq!(check_sass("gemm_wgmma_f16_tt", &wg(&["tnspA"])), Ok(()));
        assert!(check_sass("gemm_wgmma_f16_tt", &wg(&["tnspB"])).is_err());
        assert!(check_sass("gemm_wgmma_bf16_nn", &Sass::default()).is_err());
        let spilled = Sass {
            local: 4,
            ..wg(&["tnspB"])
        };
        assert!(check_sass("gemm_wgmma_bf16_nn", &spilled).is_err());
        // The cluster kernel's set-up and exit fences pass; six (the former remote
        // arrival's release at cluster scope, in the main loop) do not.
        let fenced = |membar_gpu| Sass {
            membar_gpu,
            ..wg(&["tnspB"])
        };
        assert_eq!(check_sass("gemm_wgmma_c2_bf16_nn", &fenced(2)), Ok(()));
        let loop_fence = check_sass("gemm_wgmma_c2_bf16_nn", &fenced(6)).unwrap_err();
        assert!(loop_fence.contains("main loop"), "{loop_fence}");
        let tc = Sass {
            hmma: 32,
            ..Sass::default()
        };
        assert_eq!(check_sass("gemm_tc_bf16_nn", &tc), Ok(()));
        assert!(check_sass("gemm_tc_bf16_nn", &Sass::default()).is_err());
        assert_eq!(check_sass("conv2d_fwd_f32_bn64", &Sass::default()), Ok(()));
        assert_eq!(wg(&["tnspB"]).summary(), "HGMMA 12 tnspB");
        assert_eq!(tc.summary(), "HMMA 32");
    }
}
