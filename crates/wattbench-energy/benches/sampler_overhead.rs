//! CPU cost of the background sampler at the default interval (target: < 1 % of one core).
//!
//! Samples a child process tree (`sleep`) with the CPU estimate and a fake RAPL tree of four
//! zones (same file reads as sysfs), while the main thread sleeps; the process's CPU time over
//! the period is then the sampler's cost. Run: `cargo bench -p wattbench-energy --bench
//! sampler_overhead` (optional argument: seconds, default 20).

use std::fs;
use std::time::{Duration, Instant};

use wattbench_energy::procfs::self_snapshot;
use wattbench_energy::sampler::Sampler;
use wattbench_energy::{CpuScope, MeterConfig, Meters, ProcessTree};

fn main() -> anyhow::Result<()> {
    let secs: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20.0);
    let dir = tempfile::tempdir()?;
    for (z, name) in [
        ("intel-rapl:0", "package-0"),
        ("intel-rapl:0:0", "core"),
        ("intel-rapl:0:1", "dram"),
        ("intel-rapl:1", "package-1"),
    ] {
        let p = dir.path().join(z);
        fs::create_dir_all(&p)?;
        fs::write(p.join("name"), name)?;
        fs::write(p.join("energy_uj"), "123456789")?;
        fs::write(p.join("max_energy_range_uj"), "262143328850")?;
    }
    let mut child = std::process::Command::new("sleep")
        .arg(format!("{}", secs + 5.0))
        .spawn()?;
    let tree = ProcessTree::new();
    tree.set_root(child.id() as i32);
    let interval = MeterConfig::default().sample_interval;
    let mut report = Vec::new();
    for (label, root) in [
        ("estimate only (this machine)", dir.path().join("none")),
        ("4 RAPL zones + tree memory", dir.path().to_path_buf()),
    ] {
        let cfg = MeterConfig {
            powercap_root: Some(root),
            nvml: false,
            cpu_scope: CpuScope::Tree(tree.clone()),
            ..MeterConfig::default()
        };
        let meters = Meters::discover(&cfg).expect("meters");
        // The meters' one-time probe of how often each counter updates (at their first use),
        // outside the sampler's cost: it polls until each counter has changed twice, and the
        // fake counters here never change, so it runs to its limit (real RAPL updates about
        // every millisecond, and the probe ends within a few).
        let cpu0 = self_snapshot().map_err(anyhow::Error::msg)?.cpu_seconds;
        let p0 = Instant::now();
        let _ = meters.probes();
        let probe = (
            p0.elapsed().as_secs_f64(),
            self_snapshot().map_err(anyhow::Error::msg)?.cpu_seconds - cpu0,
        );
        let before = self_snapshot().map_err(anyhow::Error::msg)?.cpu_seconds;
        let t0 = Instant::now();
        let s = Sampler::start(&meters, interval, true)?;
        std::thread::sleep(Duration::from_secs_f64(secs / 2.0));
        let out = s.finish()?;
        let wall = t0.elapsed().as_secs_f64();
        let cpu = self_snapshot().map_err(anyhow::Error::msg)?.cpu_seconds - before;
        report.push(format!(
            "{label}: interval {} ms, {} ticks in {wall:.1} s, sampler CPU {cpu:.4} s = {:.3} % \
             of one core ({:.0} µs per tick); before it, once, the counters' update probe: \
             {:.2} s, CPU {:.4} s",
            interval.as_millis(),
            out.ticks,
            100.0 * cpu / wall,
            1e6 * cpu / out.ticks.max(1) as f64,
            probe.0,
            probe.1
        ));
    }
    let _ = child.kill();
    let _ = child.wait();
    for l in report {
        println!("{l}");
    }
    Ok(())
}
