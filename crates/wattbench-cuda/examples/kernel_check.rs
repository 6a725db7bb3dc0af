//! Compile every kernel with NVRTC through the backends' own loader for sm_80, sm_89 and
//! sm_90 (the Hopper GEMM for sm_90a only), assemble the PTX with ptxas -v, print registers /
//! shared memory / spills per kernel, and fail on a compile error, a missing entry point, a
//! spill in a main kernel, a ptxas note (C75xx) that it serialized wgmma instructions,
//! injected a warpgroup wait, or ignored `setmaxnreg`, or a Hopper GEMM compiled with fewer
//! registers a thread than its `setmaxnreg` trade needs; and on an entry point that it could
//! not check: one without a row in ptxas's output, or (with cuobjdump) without machine code.
//!
//! Needs no GPU: libnvrtc on LD_LIBRARY_PATH and ptxas (WATTBENCH_PTXAS or PATH), and for the
//! machine code cuobjdump (WATTBENCH_CUOBJDUMP; when set it must name a file);
//! scripts/kernel-check.sh sets them up. Usage: kernel_check [--arch 80,89,90]
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use wattbench_cuda::ptxas::{check_coverage, check_resources, check_sass, parse_ptxas, parse_sass};
use wattbench_cuda::{KernelId, Loader};

fn ptxas() -> PathBuf {
    std::env::var_os("WATTBENCH_PTXAS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("ptxas"))
}

/// `WATTBENCH_CUOBJDUMP` (scripts/kernel-check.sh sets it), when set; an error when it names
/// no file, so that a tool bundle without cuobjdump fails the check instead of skipping the
/// machine code.
fn cuobjdump() -> Result<Option<PathBuf>> {
    let Some(path) = std::env::var_os("WATTBENCH_CUOBJDUMP").map(PathBuf::from) else {
        return Ok(None);
    };
    anyhow::ensure!(
        path.is_file(),
        "WATTBENCH_CUOBJDUMP={} is not a file (scripts/fetch-cuda-tools.sh fetches cuobjdump)",
        path.display()
    );
    Ok(Some(path))
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
    let cuobjdump = cuobjdump()?;
    match &cuobjdump {
        Some(c) => println!("machine code: {} --dump-sass", c.display()),
        None => println!(
            "machine code NOT CHECKED: WATTBENCH_CUOBJDUMP is unset (scripts/kernel-check.sh sets it)"
        ),
    }

    let dir = std::env::temp_dir().join(format!("wattbench-kernel-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let loader = Loader::new(None); // the backends' loader, with the disk cache off
    let mut ok = true;
    println!(
        "{:<6} {:<15} {:<24} {:>5} {:>8} {:>6} {:>9} {:>9}  main  tensor ops",
        "arch", "file", "kernel", "regs", "smem B", "stack", "spill st", "spill ld"
    );
    for &arch in &archs {
        for id in KernelId::ALL {
            let Some(target) = id.target(arch) else {
                println!(
                    "sm_{arch:<3} {:<15} (not built for sm_{arch}: sm_90a only)",
                    id.file()
                );
                continue;
            };
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
                if let Err(why) = wattbench_cuda::ptxas::check_cluster(&ptx, &e) {
                    println!("sm_{arch} {}: {e}: {why}  <-- FAILS THE CHECK", id.file());
                    ok = false;
                }
            }
            let path = dir.join(format!("{}.sm_{target}.ptx", id.file()));
            std::fs::write(&path, &ptx)?;
            let cubin = dir.join(format!("{}.sm_{target}.cubin", id.file()));
            let out = Command::new(&ptxas)
                .args([
                    format!("-arch=sm_{target}"),
                    "-v".into(),
                    path.display().to_string(),
                    "-o".into(),
                    cubin.display().to_string(),
                ])
                .output()?;
            let log = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if !out.status.success() {
                println!("sm_{target} {}: PTXAS ERROR\n{log}", id.file());
                ok = false;
                continue;
            }
            for w in log
                .lines()
                .filter(|l| l.contains("warning") || l.contains("(C75"))
            {
                // A note that the Hopper GEMM's pipeline is broken (it would still run, at a
                // fraction of its speed) fails the check.
                let fatal = wattbench_cuda::ptxas::pipeline_warning(w);
                ok &= !fatal;
                println!(
                    "sm_{target} {}: {w}{}",
                    id.file(),
                    if fatal { "  <-- FAILS THE CHECK" } else { "" }
                );
            }
            let sass = match &cuobjdump {
                Some(c) => {
                    let d = Command::new(c).arg("--dump-sass").arg(&cubin).output()?;
                    if !d.status.success() {
                        println!(
                            "sm_{target} {}: CUOBJDUMP ERROR\n{}",
                            id.file(),
                            String::from_utf8_lossy(&d.stderr)
                        );
                        ok = false;
                    }
                    Some(parse_sass(&String::from_utf8_lossy(&d.stdout)))
                }
                None => None,
            };
            let mut rows = parse_ptxas(&log);
            if let Err(why) = check_coverage(&id.entry_points(), &rows, sass.as_deref()) {
                println!("sm_{target} {}: {why}  <-- FAILS THE CHECK", id.file());
                ok = false;
            }
            let sass: HashMap<String, _> = sass.into_iter().flatten().collect();
            rows.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, r) in rows {
                let main = KernelId::is_main(&name);
                let spill = r.spill_st > 0 || r.spill_ld > 0;
                let code = sass.get(&name);
                let bad_code = match code {
                    Some(s) => check_sass(&name, s).err(),
                    None if cuobjdump.is_some() => Some("not in the machine code".into()),
                    None => None,
                }
                .or_else(|| check_resources(&name, &r).err());
                if (spill && main) || bad_code.is_some() {
                    ok = false;
                }
                println!(
                    "sm_{target:<3} {:<15} {:<24} {:>5} {:>8} {:>6} {:>9} {:>9}  {:<4}  {}{}{}",
                    id.file(),
                    name,
                    r.regs,
                    r.smem,
                    r.stack,
                    r.spill_st,
                    r.spill_ld,
                    if main { "yes" } else { "no" },
                    code.map_or("?".into(), |s| s.summary()),
                    if spill && main { "  <-- SPILL" } else { "" },
                    bad_code.map_or(String::new(), |e| format!("  <-- {e}"))
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "(dynamic shared memory, not shown by ptxas: gemm_tc_* {} B, gemm_wgmma_* {} B, \
         gemm_wgmma_n64_* {} B)",
        wattbench_cuda::TC_SMEM_BYTES,
        wattbench_cuda::WGMMA_SMEM_BYTES,
        wattbench_cuda::WGMMA_N64_SMEM_BYTES
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
