//! Compile every kernel with NVRTC through the backends' own loader for sm_80, sm_89 and
//! sm_90, assemble the PTX with ptxas -v, print registers / shared memory / spills per kernel,
//! and fail on a compile error, a missing entry point or a spill in a main kernel.
//!
//! Needs no GPU: libnvrtc on LD_LIBRARY_PATH and ptxas (WATTBENCH_PTXAS or PATH);
//! scripts/kernel-check.sh sets both up. Usage: kernel_check [--arch 80,89,90]
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use wattbench_cuda::ptxas::parse_ptxas;
use wattbench_cuda::{KernelId, Loader};

fn ptxas() -> PathBuf {
    std::env::var_os("WATTBENCH_PTXAS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("ptxas"))
}

fn run() -> Result<bool> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let archs: Vec<u32> = match args.iter().position(|a| a == "--arch") {
        Some(i) => args
            .get(i + 1)
            .context("--arch needs a list, e.g. 80,89,90")?
            .split(',')
            .map(|s| {
                s.trim()
                    .trim_start_matches("sm_")
                    .parse()
                    .context("bad --arch entry")
            })
            .collect::<Result<_>>()?,
        None => vec![80, 89, 90],
    };
    wattbench_cuda::nvrtc_probe().context("run scripts/kernel-check.sh, which fetches NVRTC")?;
    let (maj, min) = wattbench_cuda::nvrtc_version()?;
    let ptxas = ptxas();
    let ver = Command::new(&ptxas).arg("--version").output().with_context(|| {
        format!("cannot run ptxas at {} (set WATTBENCH_PTXAS; scripts/fetch-cuda-tools.sh fetches it)", ptxas.display())
    })?;
    let ptxas_ver = String::from_utf8_lossy(&ver.stdout)
        .lines()
        .last()
        .unwrap_or("")
        .to_string();
    println!("NVRTC {maj}.{min}; ptxas: {ptxas_ver}");

    let dir = std::env::temp_dir().join(format!("wattbench-kernel-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let loader = Loader::new(None); // the backends' loader, with the disk cache off
    let mut ok = true;
    println!(
        "{:<6} {:<15} {:<24} {:>5} {:>8} {:>6} {:>9} {:>9}  main",
        "arch", "file", "kernel", "regs", "smem B", "stack", "spill st", "spill ld"
    );
    for &arch in &archs {
        for id in KernelId::ALL {
            let ptx = match loader.ptx(id, arch) {
                Ok(p) => p,
                Err(e) => {
                    println!("sm_{arch} {}: COMPILE ERROR\n{e}", id.file());
                    ok = false;
                    continue;
                }
            };
            for e in id.entry_points() {
                if !ptx.contains(&format!(".entry {e}(")) {
                    println!(
                        "sm_{arch} {}: entry point {e} missing from the PTX",
                        id.file()
                    );
                    ok = false;
                }
            }
            let path = dir.join(format!("{}.sm_{arch}.ptx", id.file()));
            std::fs::write(&path, &ptx)?;
            let out = Command::new(&ptxas)
                .args([
                    format!("-arch=sm_{arch}"),
                    "-v".into(),
                    path.display().to_string(),
                    "-o".into(),
                    "/dev/null".into(),
                ])
                .output()?;
            let log = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if !out.status.success() {
                println!("sm_{arch} {}: PTXAS ERROR\n{log}", id.file());
                ok = false;
                continue;
            }
            let mut rows = parse_ptxas(&log);
            rows.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, r) in rows {
                let main = KernelId::is_main(&name);
                let spill = r.spill_st > 0 || r.spill_ld > 0;
                if spill && main {
                    ok = false;
                }
                println!(
                    "sm_{arch:<3} {:<15} {:<24} {:>5} {:>8} {:>6} {:>9} {:>9}  {}{}",
                    id.file(),
                    name,
                    r.regs,
                    r.smem,
                    r.stack,
                    r.spill_st,
                    r.spill_ld,
                    if main { "yes" } else { "no" },
                    if spill && main { "  <-- SPILL" } else { "" }
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "(gemm_tc_* also use {} B of dynamic shared memory, not shown by ptxas)",
        wattbench_cuda::TC_SMEM_BYTES
    );
    Ok(ok)
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => {
            println!("kernel check: OK");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("kernel check: FAILED");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("kernel check: {e:#}");
            ExitCode::from(2)
        }
    }
}
