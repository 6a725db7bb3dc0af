//! `wattbench ceilings`: the machine's limits, measured once and stored with its hardware
//! fingerprint, for the roofline of `wattbench report --format html`.
//!
//! - Memory bandwidth by a large copy, counting the bytes read and the bytes written (as
//!   STREAM's Copy does): host memory on the CPU (one `memcpy` per thread over two buffers,
//!   every page touched before timing), device to device on each GPU (CUDA events). The best
//!   repetition is the ceiling, as STREAM reports it; the median is kept beside it.
//! - Peak matrix throughput per dtype: a large square GEMM on every backend that runs on the
//!   device (the f64 reference excluded: it is the oracle, not a contender), each verified
//!   and timed by the harness exactly as `run` does; the best verified one is the ceiling.
//!
//! The file is `results/ceilings/HARDWARE-SLUG.json` by default: one per machine kind,
//! replaced by the next measurement; `report` finds it by the fingerprint inside. A `--quick`
//! measurement (a lower bound) never replaces a full one without `--force`, and where several
//! files measure one machine, a full measurement is preferred over a quick one, then the
//! newest ([`choose`]).
use crate::options::{choices, usage};
use crate::signals::Stop;
use crate::{backends, inventory, output};
use anyhow::Result;
use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use wattbench_core::harness::{skipped, CaseInputs, Harness, HarnessConfig};
use wattbench_core::result::{CaseResult, Environment, GpuState, Status};
use wattbench_core::stats::quantile_sorted;
use wattbench_core::workload::GemmParams;
use wattbench_core::{Case, DType, Mode, Params};

/// Version of the ceilings file; bump on incompatible changes.
pub const CEILINGS_SCHEMA_VERSION: u32 = 1;

/// Where ceilings files go by default, and where `report` looks for them.
pub const DEFAULT_DIR: &str = "results/ceilings";

/// The measured limits of one machine: the document `wattbench ceilings` writes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ceilings {
    /// [`CEILINGS_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// RFC 3339 start time.
    pub created_at: String,
    /// Wall time of the measurement, s.
    pub duration_s: f64,
    /// [`Environment::hardware_fingerprint`] of the machine: what result files are matched
    /// on.
    pub hardware_fingerprint: String,
    /// The command line.
    pub argv: Vec<String>,
    /// Machine and software, as in result files.
    pub environment: Environment,
    /// One entry per device measured.
    pub devices: Vec<DeviceCeilings>,
    /// Devices (or kinds of device) not measured, and why.
    pub not_measured: Vec<NotMeasured>,
    /// Measured with `--quick` (small sizes): a lower bound of the ceilings, not the
    /// ceilings. Absent in files written before it existed (then `argv` says).
    #[serde(default)]
    pub quick: bool,
}

/// The limits of one device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceCeilings {
    /// Device name as in case ids: `cpu`, `cuda:0`.
    pub device: String,
    /// CPU model or GPU name.
    pub name: String,
    /// Memory bandwidth ceiling, GB/s (10⁹ bytes; read + written); null when not measured.
    pub memory_gbytes_per_s: Option<f64>,
    /// How the bandwidth was measured, with every repetition; null when not measured.
    pub memory: Option<MemoryCeiling>,
    /// Why the bandwidth was not measured; null when it was.
    pub memory_reason: Option<String>,
    /// Peak GEMM throughput per dtype (`f32`, `f16`, `bf16`): the best verified backend.
    /// A dtype no backend ran is absent (see `gemm` for why).
    pub peak_gflops: BTreeMap<String, PeakGemm>,
    /// Every GEMM tried, as `run` records cases (skipped and failed ones with the reason).
    pub gemm: Vec<CaseResult>,
}

/// A memory bandwidth measurement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemoryCeiling {
    /// What was copied, where and how, in words.
    pub method: String,
    /// Bytes of one copy (the size of each buffer).
    pub bytes_per_copy: u64,
    /// Bytes counted per copy: read + written, 2 × `bytes_per_copy`.
    pub bytes_counted: u64,
    /// Threads copying at once (host); null on a GPU.
    pub threads: Option<usize>,
    /// Timed repetitions (after one untimed copy).
    pub repetitions: usize,
    /// GB/s of each repetition, in order.
    pub samples_gbytes_per_s: Vec<f64>,
    /// The best repetition, GB/s: the ceiling.
    pub best_gbytes_per_s: f64,
    /// The median repetition, GB/s.
    pub median_gbytes_per_s: f64,
}

/// The best verified GEMM of one dtype.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeakGemm {
    /// GFLOP/s at the median time.
    pub gflops_per_s: f64,
    /// The backend that reached it.
    pub backend: String,
    /// The case id of that GEMM (shape included).
    pub case_id: String,
    /// On a GPU: its clocks, temperature, power and throttle reasons (NVML) right after that
    /// GEMM's timing, so that a peak taken while throttled says so; null on the CPU, without
    /// NVML, and in older files.
    #[serde(default)]
    pub gpu_state: Option<GpuState>,
}

/// A device that was not measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NotMeasured {
    /// `gpu`, or the device name.
    pub device: String,
    /// Why.
    pub reason: String,
}

/// A ceilings file that could not be read.
#[derive(Debug)]
pub struct ReadError(pub String);

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Ceilings {
    /// Parse a ceilings file, refusing other schema versions and other documents.
    pub fn from_json(text: &str) -> Result<Ceilings, ReadError> {
        #[derive(Deserialize)]
        struct Head {
            schema_version: Option<u32>,
            hardware_fingerprint: Option<String>,
        }
        let head: Head = serde_json::from_str(text)
            .map_err(|e| ReadError(format!("not a ceilings file: {e}")))?;
        match (head.schema_version, head.hardware_fingerprint) {
            (Some(CEILINGS_SCHEMA_VERSION), Some(_)) => serde_json::from_str(text)
                .map(Ceilings::without_probe_peaks)
                .map_err(|e| ReadError(format!("not a ceilings file: {e}"))),
            (Some(v), Some(_)) => Err(ReadError(format!(
                "ceilings schema version {v}, but this wattbench reads version \
                 {CEILINGS_SCHEMA_VERSION}: measure again with `wattbench ceilings`"
            ))),
            _ => Err(ReadError(
                "not a ceilings file (no `hardware_fingerprint`)".into(),
            )),
        }
    }

    /// Files written before probes were kept out of the peaks could hold a small probe's
    /// figure as a dtype's peak (tch f16 at 256³ on a CPU: 2.7 GFLOP/s): such a device's
    /// peaks are chosen again from its full-size GEMMs, as [`peaks`] chooses them now (a
    /// dtype with none has no peak).
    fn without_probe_peaks(mut self) -> Ceilings {
        for d in &mut self.devices {
            let probes: Vec<&str> = (d.gemm.iter())
                .filter(|r| r.tag.as_deref() == Some(PROBE_TAG))
                .map(|r| r.id.as_str())
                .collect();
            if d.peak_gflops
                .values()
                .any(|p| probes.contains(&p.case_id.as_str()))
            {
                let states = (d.peak_gflops.values())
                    .filter_map(|p| Some((p.case_id.clone(), p.gpu_state.clone()?)))
                    .collect();
                d.peak_gflops = peaks(&d.gemm, &states);
            }
        }
        self
    }

    /// The limits of `device` (`cpu`, `cuda:0`), if measured.
    pub fn device(&self, device: &str) -> Option<&DeviceCeilings> {
        self.devices.iter().find(|d| d.device == device)
    }

    /// Whether this is a `--quick` measurement (a lower bound), by its `quick` key or, in
    /// older files, its command line.
    pub fn is_quick(&self) -> bool {
        self.quick || self.argv.iter().any(|a| a == "--quick")
    }

    /// `full` or `quick`, and when it was measured, for messages.
    pub fn describe(&self) -> String {
        format!(
            "{}, measured {}",
            if self.is_quick() {
                "quick: a lower bound"
            } else {
                "full"
            },
            self.created_at
        )
    }
}

/// Of several ceilings files of one machine, the one to use: one measured on a host the runs
/// come from (`hosts`: their host names; another machine of the same kind has other
/// ceilings), then a full measurement before a quick one (a lower bound), then the newest.
/// Its index in `files`, and, when there was a choice, why, in words naming the files passed
/// over.
pub fn choose(files: &[&(PathBuf, Ceilings)], hosts: &[&str]) -> Option<(usize, Option<String>)> {
    let own = |c: &Ceilings| {
        c.environment
            .host
            .hostname
            .as_deref()
            .is_some_and(|h| hosts.contains(&h))
    };
    let best = (0..files.len()).max_by(|&a, &b| {
        let key = |i: usize| {
            let c = &files[i].1;
            (own(c), !c.is_quick(), c.created_at.as_str())
        };
        key(a).cmp(&key(b))
    })?;
    if files.len() < 2 {
        return Some((best, None));
    }
    let others: Vec<String> = (0..files.len())
        .filter(|&i| i != best)
        .map(|i| format!("{} ({})", files[i].0.display(), files[i].1.describe()))
        .collect();
    let mixed_hosts = files.iter().any(|f| own(&f.1)) && !files.iter().all(|f| own(&f.1));
    let why = format!(
        "{} ceilings files measure this kind of machine: using {} ({}), not {}: {}a full \
         measurement is preferred over a quick one, then the newest",
        files.len(),
        files[best].0.display(),
        files[best].1.describe(),
        others.join(", "),
        if mixed_hosts {
            "one measured on the runs' own host is preferred, then "
        } else {
            ""
        }
    );
    Some((best, Some(why)))
}

/// A file-name slug of a hardware fingerprint: lowercase letters, digits and dashes, cut to
/// 80 characters, then a hash of the whole fingerprint so that two fingerprints never share a
/// file.
pub fn slug(fingerprint: &str) -> String {
    let mut s = String::new();
    for c in fingerprint.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if !s.ends_with('-') && !s.is_empty() {
            s.push('-');
        }
    }
    let s: String = s.trim_end_matches('-').chars().take(80).collect();
    // FNV-1a: stable across builds and platforms (std's hasher is not).
    let h = fingerprint.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    format!("{}-{:08x}", s.trim_end_matches('-'), h as u32)
}

/// The default file of the machine with `fingerprint`.
pub fn default_path(fingerprint: &str) -> PathBuf {
    Path::new(DEFAULT_DIR).join(format!("{}.json", slug(fingerprint)))
}

/// Every ceilings file of the machine with `fingerprint` among the `*.json` of `dirs`
/// (missing folders and unreadable files are passed over), in name order.
pub fn find_all(fingerprint: &str, dirs: &[PathBuf]) -> Vec<(PathBuf, Ceilings)> {
    let mut found: Vec<(PathBuf, Ceilings)> = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            if p.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let Some(c) = std::fs::read_to_string(&p)
                .ok()
                .and_then(|t| Ceilings::from_json(&t).ok())
            else {
                continue;
            };
            if c.hardware_fingerprint == fingerprint {
                found.push((p, c));
            }
        }
    }
    found
}

/// The ceilings measured on the machine with `fingerprint`, looked for in every `*.json` of
/// `dirs` ([`find_all`]); of several, the one [`choose`] picks for runs on `hosts`.
pub fn find(fingerprint: &str, hosts: &[&str], dirs: &[PathBuf]) -> Option<(PathBuf, Ceilings)> {
    let mut found = find_all(fingerprint, dirs);
    let refs: Vec<&(PathBuf, Ceilings)> = found.iter().collect();
    let (best, _) = choose(&refs, hosts)?;
    Some(found.swap_remove(best))
}

/// Options of `wattbench ceilings`.
#[derive(Args, Debug)]
pub struct CeilingsArgs {
    /// Ceilings file (default: results/ceilings/HARDWARE-SLUG.json, replacing the previous
    /// full measurement of this kind of machine; a quick one only with --force).
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    /// Print the document as JSON on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Size of each copy buffer, MiB, host and device [default: 1024; 64 with --quick; at
    /// least 4 times the last-level cache (host) or L2 (GPU) unless given].
    #[arg(long, value_name = "MIB")]
    copy_mib: Option<usize>,
    /// Timed copies per device, after one untimed copy; the best is the ceiling [default: 10;
    /// 3 with --quick].
    #[arg(long, value_name = "N")]
    copies: Option<usize>,
    /// M = N = K of the CPU's GEMM [default: 2048; 256 with --quick].
    #[arg(long, value_name = "N")]
    gemm_size: Option<usize>,
    /// M = N = K of each GPU's GEMM [default: 8192; 2048 with --quick]. (GPU ceilings were
    /// measured on one H200 only.)
    #[arg(long, value_name = "N")]
    gpu_gemm_size: Option<usize>,
    /// Only these backends (comma-separated; the f64 reference is never a contender).
    #[arg(long, value_delimiter = ',')]
    backend: Vec<String>,
    /// Only these dtypes (comma-separated: f32, f16, bf16).
    #[arg(long, value_delimiter = ',')]
    dtype: Vec<String>,
    /// Small sizes for a first look and for tests (the defaults in brackets above; sizes
    /// given explicitly still win): a lower bound of the ceilings, not the ceilings.
    #[arg(long)]
    quick: bool,
    /// Measure only when the file does not exist yet, or (without --quick) holds only a quick
    /// measurement (a file that is not a ceilings file of this machine is an error, not
    /// replaced).
    #[arg(long)]
    if_missing: bool,
    /// With --quick: replace a full measurement at the output path (refused without it: a
    /// quick measurement is a lower bound, and every later report's roofs would drop).
    #[arg(long, requires = "quick")]
    force: bool,
}

/// The sizes a measurement uses.
struct Sizes {
    copy_mib: usize,
    /// `--copy-mib` was given: kept even where it is below the cache rule ([`copy_bytes`]).
    copy_explicit: bool,
    copies: usize,
    gemm: usize,
    gpu_gemm: usize,
}

impl CeilingsArgs {
    fn sizes(&self) -> Result<Sizes> {
        let pick = |v: Option<usize>, full: usize, quick: usize| {
            v.unwrap_or(if self.quick { quick } else { full })
        };
        let s = Sizes {
            copy_mib: pick(self.copy_mib, 1024, 64),
            copy_explicit: self.copy_mib.is_some(),
            copies: pick(self.copies, 10, 3),
            gemm: pick(self.gemm_size, 2048, 256),
            gpu_gemm: pick(self.gpu_gemm_size, 8192, 2048),
        };
        if s.copy_mib == 0 || s.copies == 0 || s.gemm == 0 || s.gpu_gemm == 0 {
            return Err(usage(
                "--copy-mib, --copies, --gemm-size and --gpu-gemm-size must be at least 1",
            ));
        }
        Ok(s)
    }
}

/// Buffers of a bandwidth copy are at least this many times the cache they could sit in
/// (STREAM's rule: each array at least four times the caches), so that the copy measures the
/// memory, not the cache.
const CACHE_MULTIPLE: u64 = 4;

/// The bytes of each copy buffer: `mib` MiB, raised to [`CACHE_MULTIPLE`] × `cache` (the
/// cache in front of the memory, bytes) unless the size was given (`explicit`); and, when the
/// buffers are smaller than that, a warning in words.
fn copy_bytes(mib: usize, explicit: bool, cache: Option<u64>) -> (usize, Option<String>) {
    let bytes = mib << 20;
    let Some(cache) = cache.filter(|&c| c > 0) else {
        return (bytes, None);
    };
    let need = usize::try_from((CACHE_MULTIPLE * cache).div_ceil(1 << 20) << 20).unwrap_or(bytes);
    if bytes >= need {
        (bytes, None)
    } else if !explicit {
        (need, None)
    } else {
        (
            bytes,
            Some(format!(
                "the {} buffers are less than {CACHE_MULTIPLE} times the {} cache: the copy may \
                 run in the cache, and its figure be the cache's bandwidth, above the memory's",
                wattbench_core::units::mib(bytes as u64),
                wattbench_core::units::mib(cache)
            )),
        )
    }
}

/// The host's last-level cache, bytes, all instances summed (one per socket or core complex):
/// the highest level of data or unified cache in sysfs; `None` where sysfs does not say.
fn last_level_cache_bytes() -> Option<u64> {
    let mut caches: BTreeMap<(u32, String), u64> = BTreeMap::new();
    for cpu in std::fs::read_dir("/sys/devices/system/cpu").ok()?.flatten() {
        let name = cpu.file_name().to_string_lossy().into_owned();
        if !name
            .strip_prefix("cpu")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        let Ok(indices) = std::fs::read_dir(cpu.path().join("cache")) else {
            continue;
        };
        for index in indices.flatten() {
            let read = |f: &str| std::fs::read_to_string(index.path().join(f)).ok();
            let (Some(level), Some(kind), Some(size), Some(shared)) = (
                read("level").and_then(|l| l.trim().parse::<u32>().ok()),
                read("type"),
                read("size").and_then(|s| cache_size(&s)),
                read("shared_cpu_list"),
            ) else {
                continue;
            };
            if kind.trim() == "Instruction" {
                continue;
            }
            // One entry per cache: the CPUs sharing it name it.
            caches.insert((level, shared.trim().to_string()), size);
        }
    }
    let top = caches.keys().map(|(l, _)| *l).max()?;
    Some(
        caches
            .iter()
            .filter(|((l, _), _)| *l == top)
            .map(|(_, s)| s)
            .sum(),
    )
}

/// A sysfs cache size (`32768K`, `1M`, `512`), bytes.
fn cache_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (n, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    let n: u64 = n.parse().ok()?;
    let unit = match unit {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return None,
    };
    Some(n * unit)
}

/// Wait, spinning (then yielding: never for long on a machine with a thread per core), until
/// `ready`.
fn wait_until(ready: impl Fn() -> bool) {
    let mut spins = 0u32;
    while !ready() {
        if spins < 1 << 14 {
            spins += 1;
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// Host memory bandwidth: `threads` threads each copy their share of a `bytes` buffer into
/// another, `reps` times after one untimed copy; every page of both buffers is written before
/// timing (each share by the thread that copies it: first-touch places it on that thread's
/// memory node), and the copy is compared with its source at the end. The threads are
/// started once, before any copy, and each copy is timed from the moment all of them are
/// running and waiting for it: its time is the copy, not the starting (tens of µs a thread,
/// milliseconds on a large server: as long as a copy there) or waking of threads.
fn host_copy(bytes: usize, reps: usize, cache: Option<u64>) -> Result<MemoryCeiling> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if let Some(avail) = wattbench_core::memory::available_bytes() {
        if (bytes as u64).saturating_mul(2) > avail {
            anyhow::bail!(
                "two buffers of {} do not fit in the {} of memory available",
                wattbench_core::units::mib(bytes as u64),
                wattbench_core::units::mib(avail)
            );
        }
    }
    let times = timed_copies(bytes, reps, threads)?;
    let share = if threads > 1 {
        format!("{threads} threads (started once, before the first copy) each copy their share")
    } else {
        "one thread copies".to_string()
    };
    Ok(memory_ceiling(
        format!(
            "host memory: {share} of a {} buffer into a second one (memcpy), {reps} times \
             after one untimed copy, every page touched before; {}; bytes read + bytes \
             written per copy; the best copy is the ceiling",
            wattbench_core::units::mib(bytes as u64),
            cache_words(bytes, cache, "last-level cache (all instances)")
        ),
        bytes,
        Some(threads),
        &times,
    ))
}

/// The seconds of each of `reps` timed copies of [`host_copy`] by `threads` threads.
fn timed_copies(bytes: usize, reps: usize, threads: usize) -> Result<Vec<f64>> {
    let threads = threads.max(1);
    // Page-aligned shares, so that no two threads write the same page.
    let chunk = bytes.div_ceil(threads).div_ceil(4096) * 4096;
    let mut src = vec![0u8; bytes];
    let mut dst = vec![0u8; bytes];
    // Round 1 fills the buffers, round 2 is the untimed copy, the rest are timed.
    let rounds = reps + 2;
    let work = |round: usize, i: usize, a: &mut [u8], b: &mut [u8]| {
        if round == 1 {
            for (j, x) in a.iter_mut().enumerate() {
                *x = (j % 251) as u8 ^ i as u8;
            }
            b.fill(0xff);
        } else {
            b.copy_from_slice(a);
        }
    };
    // Each round: the threads meet at a barrier (untimed), say they are ready and spin until
    // this thread starts the clock and lets them go; the copy's time runs from then until
    // the last share is done.
    let ready = std::sync::atomic::AtomicUsize::new(0);
    let go = std::sync::atomic::AtomicUsize::new(0);
    let done = std::sync::atomic::AtomicUsize::new(0);
    // This thread copies the first share itself: as many copying threads as cores.
    let helpers = bytes.div_ceil(chunk) - 1;
    let meet = std::sync::Barrier::new(helpers + 1);
    let mut times = Vec::with_capacity(reps);
    std::thread::scope(|s| {
        use std::sync::atomic::Ordering::{AcqRel, Acquire, Release};
        let mut shares = src.chunks_mut(chunk).zip(dst.chunks_mut(chunk));
        let (a0, b0) = shares.next().expect("a buffer of at least one byte");
        let (ready, go, done, meet) = (&ready, &go, &done, &meet);
        for (i, (a, b)) in shares.enumerate() {
            s.spawn(move || {
                for round in 1..=rounds {
                    meet.wait();
                    ready.fetch_add(1, AcqRel);
                    wait_until(|| go.load(Acquire) >= round);
                    work(round, i + 1, a, b);
                    done.fetch_add(1, AcqRel);
                }
            });
        }
        for round in 1..=rounds {
            meet.wait();
            wait_until(|| ready.load(Acquire) >= round * helpers);
            let t0 = Instant::now();
            go.store(round, Release);
            work(round, 0, a0, b0);
            wait_until(|| done.load(Acquire) >= round * helpers);
            if round > 2 {
                times.push(t0.elapsed().as_secs_f64());
            }
        }
    });
    if src != dst {
        anyhow::bail!("internal error: the host copy did not reproduce its source");
    }
    Ok(times)
}

/// The buffers against the cache, in words.
fn cache_words(bytes: usize, cache: Option<u64>, what: &str) -> String {
    match cache.filter(|&c| c > 0) {
        Some(c) => format!(
            "the {what} is {}, each buffer {:.1} times it",
            wattbench_core::units::mib(c),
            bytes as f64 / c as f64
        ),
        None => format!("the {what} size is unknown"),
    }
}

fn memory_ceiling(
    method: String,
    bytes: usize,
    threads: Option<usize>,
    times: &[f64],
) -> MemoryCeiling {
    let counted = 2 * bytes as u64;
    let samples: Vec<f64> = times
        .iter()
        .map(|t| counted as f64 / t.max(1e-12) / 1e9)
        .collect();
    let mut sorted = samples.clone();
    sorted.sort_by(f64::total_cmp);
    MemoryCeiling {
        method,
        bytes_per_copy: bytes as u64,
        bytes_counted: counted,
        threads,
        repetitions: times.len(),
        best_gbytes_per_s: sorted.last().copied().unwrap_or(f64::NAN),
        median_gbytes_per_s: if sorted.is_empty() {
            f64::NAN
        } else {
            quantile_sorted(&sorted, 0.5)
        },
        samples_gbytes_per_s: samples,
    }
}

/// `m` with the warning of [`copy_bytes`], if any, at the end of its method.
fn with_warning(mut m: MemoryCeiling, warning: Option<String>) -> MemoryCeiling {
    if let Some(w) = warning {
        m.method = format!("{}; WARNING: {w}", m.method);
    }
    m
}

/// What a copy is about to do, on stderr, with the warning of [`copy_bytes`].
fn copy_message(device: &str, bytes: usize, copies: usize, warning: Option<&str>) {
    eprintln!(
        "{device}: copying {}, {copies} times",
        wattbench_core::units::mib(bytes as u64)
    );
    if let Some(w) = warning {
        eprintln!("warning: {device}: {w}");
    }
}

/// Device-to-device bandwidth of a GPU, or why not; the buffers at least
/// [`CACHE_MULTIPLE`] times its L2 cache unless `--copy-mib` was given.
#[cfg(feature = "cuda")]
fn gpu_copy(device: &str, sizes: &Sizes) -> Result<MemoryCeiling, String> {
    let l2 = wattbench_cuda::host::l2_cache_bytes(device).ok();
    let (bytes, warning) = copy_bytes(sizes.copy_mib, sizes.copy_explicit, l2);
    copy_message(device, bytes, sizes.copies, warning.as_deref());
    let reps = sizes.copies;
    let times = wattbench_cuda::host::copy_times(device, bytes, reps).map_err(|e| e.to_string())?;
    let m = memory_ceiling(
        format!(
            "device memory: cuMemcpyDtoD of a {} buffer into a second one on {device}, {reps} \
             times after one untimed copy, each timed with CUDA events; {}; bytes read + bytes \
             written per copy; the best copy is the ceiling",
            wattbench_core::units::mib(bytes as u64),
            cache_words(bytes, l2, "L2 cache")
        ),
        bytes,
        None,
        &times,
    );
    Ok(with_warning(m, warning))
}

#[cfg(not(feature = "cuda"))]
fn gpu_copy(_: &str, _: &Sizes) -> Result<MemoryCeiling, String> {
    Err("built without the `cuda` feature, which measures device copies".into())
}

/// Why there are no GPUs here, when there are none.
fn no_gpu_reason() -> Option<String> {
    #[cfg(feature = "cuda")]
    {
        match wattbench_cuda::gpus() {
            Ok(g) if !g.is_empty() => None,
            Ok(_) => Some("no GPU: the NVIDIA driver reports no CUDA device".into()),
            Err(e) => Some(format!("no GPU: {e}")),
        }
    }
    #[cfg(not(feature = "cuda"))]
    {
        Some("GPUs not looked for: built without the `cuda` feature".into())
    }
}

/// Run the command; returns the exit code.
pub fn run(args: CeilingsArgs) -> Result<u8> {
    let sizes = args.sizes()?;
    let dtypes = choices("dtype", &args.dtype, &DType::ALL, DType::as_str)?;
    let dtypes = if dtypes.is_empty() {
        DType::ALL.to_vec()
    } else {
        dtypes
    };
    let all = backends::all();
    let names: Vec<&str> = all.iter().map(|b| b.name()).collect();
    for b in &args.backend {
        if !names.contains(&b.trim()) || b.trim() == "reference" {
            return Err(usage(format!(
                "`{b}` is not a contender; valid: {}",
                names
                    .iter()
                    .filter(|n| **n != "reference")
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let contenders: Vec<_> = all
        .iter()
        .filter(|b| b.name() != "reference")
        .filter(|b| args.backend.is_empty() || args.backend.iter().any(|n| n.trim() == b.name()))
        .cloned()
        .collect();
    let meters = wattbench_energy::Meters::discover(&wattbench_energy::MeterConfig::default())
        .map_err(|e| usage(e.to_string()))?;
    let mut environment = inventory::environment(&all, &meters);
    let fingerprint = environment.hardware_fingerprint();
    let path = args
        .output
        .clone()
        .unwrap_or_else(|| default_path(&fingerprint));
    if args.if_missing && path.exists() {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
        let doc =
            Ceilings::from_json(&text).map_err(|e| usage(format!("{}: {e}", path.display())))?;
        if doc.hardware_fingerprint != fingerprint {
            return Err(usage(format!(
                "{} holds the ceilings of another machine ({}); give another --output or \
                 delete it",
                path.display(),
                doc.hardware_fingerprint
            )));
        }
        if doc.is_quick() && !args.quick {
            // A lower bound is not the machine's ceilings: `make run` would keep it for ever.
            eprintln!(
                "{} holds a quick measurement of this machine ({}): measuring the full \
                 ceilings to replace it",
                path.display(),
                doc.describe()
            );
        } else {
            eprintln!(
                "ceilings of this machine ({}): {} (run without --if-missing to measure again)",
                doc.describe(),
                path.display()
            );
            return Ok(0);
        }
    }
    if args.quick && !args.force {
        // A full measurement is not replaced by a lower bound without a word.
        let full = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| Ceilings::from_json(&t).ok())
            .filter(|c| !c.is_quick());
        if let Some(c) = full {
            return Err(usage(format!(
                "{} holds a full measurement ({}, {}); --quick would replace it with a lower \
                 bound, and every later report's roofs would drop: give --output FILE to \
                 write the quick one elsewhere, or --force to replace it",
                path.display(),
                c.created_at,
                c.hardware_fingerprint
            )));
        }
    }
    let file = output::prepare_beside_stdout(&path, "its table", "write the ceilings to a path")?;
    let stop = Stop::install()?;
    let created_at = chrono::Utc::now().to_rfc3339();
    let started = Instant::now();

    // Devices: the CPU, then every device some contender can use.
    let mut devices: Vec<String> = vec!["cpu".into()];
    for b in &contenders {
        for d in b.devices().into_iter().filter(|d| d.available) {
            if !devices.contains(&d.name) {
                devices.push(d.name);
            }
        }
    }
    let mut not_measured = Vec::new();
    if !devices.iter().any(|d| d.starts_with("cuda")) {
        if let Some(why) = no_gpu_reason() {
            not_measured.push(NotMeasured {
                device: "gpu".into(),
                reason: why,
            });
        }
    }
    let cfg = HarnessConfig {
        warmup_s: 0.05,
        min_time_s: 0.5,
        min_samples: 3,
        max_time_s: 3.0,
        ..HarnessConfig::default()
    };
    // A quick look at each contender on a small GEMM first: one far from the peak (tch's f16
    // on a CPU without f16 arithmetic runs at 0.3 GFLOP/s: a minute per 2048³ call) is not
    // run at full size, and the file says why.
    let probe = Harness::new(
        HarnessConfig {
            warmup_s: 0.0,
            min_time_s: 0.05,
            min_samples: 3,
            max_time_s: 1.0,
            ..cfg.clone()
        },
        stop.flag(),
    );
    let harness = Harness::new(cfg, stop.flag());
    let mut out = Vec::new();
    for device in &devices {
        let cpu = device == "cpu";
        let memory = if cpu {
            let cache = last_level_cache_bytes();
            let (bytes, warning) = copy_bytes(sizes.copy_mib, sizes.copy_explicit, cache);
            copy_message(device, bytes, sizes.copies, warning.as_deref());
            host_copy(bytes, sizes.copies, cache)
                .map(|m| with_warning(m, warning))
                .map_err(|e| e.to_string())
        } else {
            gpu_copy(device, &sizes)
        };
        let n = if cpu { sizes.gemm } else { sizes.gpu_gemm };
        let mut gemm = Vec::new();
        // The GPU's state after each GEMM, by case id.
        let mut states: BTreeMap<String, GpuState> = BTreeMap::new();
        for &dtype in &dtypes {
            let case = Case {
                params: Params::Gemm(GemmParams::new(n, n, n)),
                mode: Mode::Infer,
                dtype,
                tag: Some("ceiling".into()),
            };
            let inputs = CaseInputs::new(case, &harness.cfg);
            for b in &contenders {
                if !b.devices().iter().any(|d| d.available && d.name == *device) {
                    continue;
                }
                let probed = match too_slow(&probe, n, dtype, b.as_ref(), device) {
                    Ok(p) => p,
                    Err(_) => {
                        eprintln!("{}: stopped; nothing written", stop.signal_name());
                        return Ok(stop.exit_code());
                    }
                };
                if let Some((why, small)) = probed {
                    eprintln!(
                        "{device}: GEMM {n}³ {} on {}: {why}",
                        dtype.as_str(),
                        b.name()
                    );
                    gemm.push(small);
                    gemm.push(skipped(&inputs, b.name(), device, why));
                    continue;
                }
                eprintln!("{device}: GEMM {n}³ {} on {}", dtype.as_str(), b.name());
                match harness.run_case(&inputs, b.as_ref(), device, None) {
                    Ok(r) => {
                        if let Some(st) = gpu_index(device)
                            .and_then(|i| meters.gpu_states().into_iter().find(|st| st.index == i))
                        {
                            states.insert(r.id.clone(), st);
                        }
                        gemm.push(r)
                    }
                    Err(_) => {
                        eprintln!("{}: stopped; nothing written", stop.signal_name());
                        return Ok(stop.exit_code());
                    }
                }
            }
        }
        let peak = peaks(&gemm, &states);
        let name = if cpu {
            Some(environment.host.cpu_name())
        } else {
            device_gpu_name(&environment, device)
        };
        out.push(DeviceCeilings {
            device: device.clone(),
            name: name.unwrap_or_else(|| "unknown".into()),
            memory_gbytes_per_s: memory.as_ref().ok().map(|m| m.best_gbytes_per_s),
            memory_reason: memory.as_ref().err().cloned(),
            memory: memory.ok(),
            peak_gflops: peak,
            gemm,
        });
    }
    inventory::finish(&mut environment, &all);
    let doc = Ceilings {
        schema_version: CEILINGS_SCHEMA_VERSION,
        created_at,
        duration_s: started.elapsed().as_secs_f64(),
        hardware_fingerprint: fingerprint,
        argv: crate::argv(),
        environment,
        devices: out,
        not_measured,
        quick: args.quick,
    };
    // A failure to write where asked keeps the measurement in a fallback file (exit 4).
    let written = output::write_after_work(file, serde_json::to_string_pretty(&doc)?)?;
    let text = &written.text;
    crate::signals::quiet_broken_pipe();
    if args.json || written.unsaved() {
        println!("{text}");
    }
    if !args.json {
        println!("{}", table(&doc));
        for n in &doc.not_measured {
            println!("{}: not measured: {}", n.device, n.reason);
        }
        println!("{} in {:.1} s", doc.hardware_fingerprint, doc.duration_s);
    }
    eprintln!("{}", written.location());
    if let Some(failure) = &written.failure {
        eprintln!("error: {failure}");
        return Ok(output::EXIT_NOT_WRITTEN);
    }
    Ok(0)
}

/// Size of the probe GEMM.
const PROBE_N: usize = 256;
/// A contender whose probe says one full-size call would take longer than this is not run at
/// full size.
const MAX_CALL_S: f64 = 2.0;
/// On a GPU, a probe call shorter than this is mostly launch and framework overhead (a few to
/// tens of µs a call), which the cube of the size does not scale: it predicts nothing, and the
/// contender runs at full size.
const GPU_PROBE_MIN_CALL_S: f64 = 1e-4;

/// The predicted time of one `n`³ call from the probe's throughput, when it is long enough
/// to skip the full size: `None` when the contender should run. `probe_call_s` is the probe's
/// median call on `device`.
fn predicted_too_long(n: usize, probe_gflops: f64, probe_call_s: f64, device: &str) -> Option<f64> {
    let call_s = 2.0 * (n as f64).powi(3) / (probe_gflops * 1e9);
    let overhead_bound = device != "cpu" && probe_call_s < GPU_PROBE_MIN_CALL_S;
    (call_s > MAX_CALL_S && !overhead_bound).then_some(call_s)
}

/// The tag of the small probe GEMMs (see [`too_slow`]): recorded, never a peak.
const PROBE_TAG: &str = "ceiling-probe";

/// The best verified full-size GEMM per dtype, with the GPU's state after it (`states`, by
/// case id). A probe is no candidate: a dtype whose only contender was too slow has no peak,
/// not the probe's small-size figure as one.
fn peaks(gemm: &[CaseResult], states: &BTreeMap<String, GpuState>) -> BTreeMap<String, PeakGemm> {
    let mut peak: BTreeMap<String, PeakGemm> = BTreeMap::new();
    let candidates =
        (gemm.iter()).filter(|r| r.status == Status::Ok && r.tag.as_deref() != Some(PROBE_TAG));
    for r in candidates {
        let Some(t) = &r.throughput else { continue };
        let better = peak
            .get(r.dtype.as_str())
            .is_none_or(|p| t.gflops_per_s > p.gflops_per_s);
        if better {
            peak.insert(
                r.dtype.as_str().into(),
                PeakGemm {
                    gflops_per_s: t.gflops_per_s,
                    backend: r.backend.clone(),
                    case_id: r.id.clone(),
                    gpu_state: states.get(&r.id).cloned(),
                },
            );
        }
    }
    peak
}

/// Whether `b` is too slow on `dtype` to be worth an `n`³ GEMM: `Some((why, probe result))`
/// when a verified `PROBE_N`³ GEMM predicts a call longer than [`MAX_CALL_S`].
fn too_slow(
    probe: &Harness,
    n: usize,
    dtype: DType,
    b: &dyn wattbench_core::Backend,
    device: &str,
) -> Result<Option<(String, CaseResult)>, wattbench_core::harness::Interrupted> {
    if n <= PROBE_N {
        return Ok(None);
    }
    let case = Case {
        params: Params::Gemm(GemmParams::new(PROBE_N, PROBE_N, PROBE_N)),
        mode: Mode::Infer,
        dtype,
        tag: Some(PROBE_TAG.into()),
    };
    let r = probe.run_case(&CaseInputs::new(case, &probe.cfg), b, device, None)?;
    let (Some(gflops), Some(time)) = (r.throughput.as_ref().map(|t| t.gflops_per_s), &r.time)
    else {
        // The probe did not run (skipped, failed): the full size will say why itself.
        return Ok(None);
    };
    let predicted = predicted_too_long(n, gflops, time.median_s, device);
    Ok(predicted.map(|call_s| {
        (
            format!(
                "not run at {n}³: {} GFLOP/s on the verified {PROBE_N}³ probe predicts {:.0} s \
                 a call (more than {MAX_CALL_S} s), far from any ceiling; the probe is recorded",
                wattbench_core::units::sig(gflops),
                call_s
            ),
            r,
        )
    }))
}

/// The NVML index of `cuda:N`: N (CUDA and NVML both order by PCI bus when
/// `CUDA_DEVICE_ORDER=PCI_BUS_ID`, which `ceilings` sets; with `CUDA_VISIBLE_DEVICES` this is
/// the best guess, as for [`device_gpu_name`]).
fn gpu_index(device: &str) -> Option<u32> {
    device.strip_prefix("cuda:")?.parse().ok()
}

/// The NVML name of the GPU behind `cuda:N` (CUDA and NVML both order by PCI bus when
/// `CUDA_DEVICE_ORDER=PCI_BUS_ID`; otherwise this is the best guess).
fn device_gpu_name(env: &Environment, device: &str) -> Option<String> {
    let n = gpu_index(device)?;
    env.gpus.iter().find(|g| g.index == n)?.name.clone()
}

/// The terminal table: one row per device.
fn table(doc: &Ceilings) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    let dtypes: Vec<&str> = DType::ALL.iter().map(|d| d.as_str()).collect();
    let mut header = vec!["device".to_string(), "memory GB/s (best, median)".into()];
    header.extend(dtypes.iter().map(|d| format!("{d} GFLOP/s (backend)")));
    t.set_header(header);
    for d in &doc.devices {
        let mut row = vec![
            format!("{} ({})", d.device, d.name),
            match (&d.memory, &d.memory_reason) {
                (Some(m), _) => format!("{:.1}, {:.1}", m.best_gbytes_per_s, m.median_gbytes_per_s),
                (None, Some(r)) => format!("not measured: {r}"),
                (None, None) => "not measured".into(),
            },
        ];
        for dt in &dtypes {
            row.push(match d.peak_gflops.get(*dt) {
                Some(p) => format!("{:.1} ({})", p.gflops_per_s, p.backend),
                None => {
                    let why: Vec<String> = d
                        .gemm
                        .iter()
                        .filter(|r| r.dtype.as_str() == *dt)
                        .map(|r| {
                            format!(
                                "{}: {}",
                                r.backend,
                                r.reason.as_deref().unwrap_or("no figure")
                            )
                        })
                        .collect();
                    if why.is_empty() {
                        "not run".into()
                    } else {
                        why.join("; ")
                    }
                }
            });
        }
        t.add_row(row);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slow probe skips the full size on a CPU and on a GPU alike, but a GPU probe whose
    /// calls last a few µs (launch overhead, not arithmetic) does not: at 256³, 40 µs a call
    /// reads as 839 GFLOP/s, which would predict 1.3 s at 8192³ (run) and 2.6 s when 80 µs
    /// (skipped before; a fast library must not lose its ceiling to its launch cost).
    #[test]
    fn a_gpu_probe_of_launch_overhead_does_not_skip_the_full_size() {
        let flop = 2.0 * (PROBE_N as f64).powi(3);
        let at = |call_s: f64, device: &str| {
            predicted_too_long(8192, flop / call_s / 1e9, call_s, device)
        };
        assert_eq!(at(40e-6, "cuda:0"), None);
        assert_eq!(at(80e-6, "cuda:0"), None);
        assert!(at(80e-6, "cpu").unwrap() > MAX_CALL_S);
        // Arithmetic-bound and slow: skipped on either.
        assert!(at(5e-3, "cuda:0").unwrap() > 100.0);
        assert!(at(5e-3, "cpu").unwrap() > 100.0);
        assert_eq!(at(1e-5, "cpu"), None);
    }

    /// A probe that ran (tch f16 on a CPU: 2.7 GFLOP/s at 256³, too slow for 2048³) is no
    /// peak: the dtype has none; full-size GEMMs give the best of them.
    #[test]
    fn a_probe_is_never_a_peak() {
        let gemm = |tag: &str, backend: &str, dtype: DType, gflops: f64| {
            let mut r = wattbench_core::testing::timed_case(
                &format!("gemm/{tag}/{backend}/{}", dtype.as_str()),
                vec![1.0],
            );
            r.tag = Some(tag.into());
            r.backend = backend.into();
            r.dtype = dtype;
            r.throughput = Some(wattbench_core::result::Throughput {
                flops: 1,
                gflops_per_s: gflops,
                bytes: 1,
                gbytes_per_s: 1.0,
                intensity: 1.0,
            });
            r
        };
        let runs = [
            gemm(PROBE_TAG, "tch", DType::F16, 2.7),
            gemm("ceiling", "candle", DType::F32, 200.0),
            gemm("ceiling", "tch", DType::F32, 190.0),
            gemm(PROBE_TAG, "tch", DType::F32, 250.0),
        ];
        let p = peaks(&runs, &BTreeMap::new());
        assert!(!p.contains_key("f16"), "{p:?}");
        let f32 = &p["f32"];
        assert_eq!((f32.gflops_per_s, f32.backend.as_str()), (200.0, "candle"));
        // An older file that took the probes as peaks: read with them left out.
        let as_peak = |r: &CaseResult| PeakGemm {
            gflops_per_s: r.throughput.as_ref().unwrap().gflops_per_s,
            backend: r.backend.clone(),
            case_id: r.id.clone(),
            gpu_state: None,
        };
        let old = Ceilings {
            schema_version: CEILINGS_SCHEMA_VERSION,
            created_at: "2026-01-01T00:00:00+00:00".into(),
            duration_s: 1.0,
            hardware_fingerprint: "cpu=x".into(),
            argv: vec![],
            environment: wattbench_core::testing::run_file("x", vec![]).environment,
            devices: vec![DeviceCeilings {
                device: "cpu".into(),
                name: "x".into(),
                memory_gbytes_per_s: None,
                memory: None,
                memory_reason: Some("not measured".into()),
                peak_gflops: BTreeMap::from([
                    ("f16".into(), as_peak(&runs[0])),
                    ("f32".into(), as_peak(&runs[3])),
                ]),
                gemm: runs.to_vec(),
            }],
            not_measured: vec![],
            quick: false,
        };
        let read = Ceilings::from_json(&serde_json::to_string(&old).unwrap()).unwrap();
        assert_eq!(read.devices[0].peak_gflops, p);
    }

    #[test]
    fn slugs_are_file_names_and_keep_fingerprints_apart() {
        let a = slug("cpu=AMD EPYC 7B13 x2; gpu0=NVIDIA H200");
        assert!(
            a.starts_with("cpu-amd-epyc-7b13-x2-gpu0-nvidia-h200-"),
            "{a}"
        );
        assert!(a
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        assert_ne!(a, slug("cpu=AMD EPYC 7B13 x2; gpu0=NVIDIA H200 "));
        assert_eq!(a, slug("cpu=AMD EPYC 7B13 x2; gpu0=NVIDIA H200"));
    }

    #[test]
    fn host_copy_counts_read_and_written_bytes() {
        let m = host_copy(1 << 20, 3, Some(1 << 18)).unwrap();
        assert_eq!((m.bytes_per_copy, m.bytes_counted), (1 << 20, 2 << 20));
        assert_eq!(m.samples_gbytes_per_s.len(), 3);
        assert!(m.best_gbytes_per_s >= m.median_gbytes_per_s && m.median_gbytes_per_s > 0.0);
        assert!(
            m.method.contains("each buffer 4.0 times it"),
            "{}",
            m.method
        );
    }

    /// The copy threads' rounds reproduce the source, in one thread and in several with
    /// shares of uneven length, and give one time per timed copy. (That the threads start
    /// before the clock does is read in the code, not timed here: a wall-clock comparison
    /// would be a flaky test on a shared machine.)
    #[test]
    fn host_copies_reproduce_their_source_in_every_share() {
        assert_eq!(timed_copies(64 << 10, 5, 1).unwrap().len(), 5);
        assert_eq!(timed_copies((1 << 20) + 5, 3, 3).unwrap().len(), 3);
        assert_eq!(timed_copies(3, 2, 8).unwrap().len(), 2);
    }

    #[test]
    fn copy_buffers_are_sized_against_the_cache() {
        let mib = 1 << 20;
        // The default is raised to four times the cache; a size given is kept, with a warning.
        assert_eq!(
            copy_bytes(64, false, Some(32 * mib)),
            (128 * mib as usize, None)
        );
        assert_eq!(copy_bytes(1024, false, Some(32 * mib)), (1024 << 20, None));
        let (b, w) = copy_bytes(16, true, Some(32 * mib));
        assert_eq!(b, 16 << 20);
        assert!(w.unwrap().contains("cache's bandwidth"));
        assert_eq!(copy_bytes(16, true, Some(4 * mib)), (16 << 20, None));
        // A cache of unknown size changes nothing.
        assert_eq!(copy_bytes(64, false, None), (64 << 20, None));
        assert_eq!(cache_size("32768K\n"), Some(32 * mib));
        assert_eq!(cache_size("1M"), Some(mib));
        assert_eq!(cache_size("512"), Some(512));
        assert_eq!(cache_size("big"), None);
        // Where sysfs says, a last-level cache is found (any machine has one).
        if Path::new("/sys/devices/system/cpu/cpu0/cache/index0/size").exists() {
            assert!(last_level_cache_bytes().is_some_and(|c| c > 0));
        }
    }

    #[test]
    fn other_documents_are_refused_with_what_to_do() {
        let e = Ceilings::from_json(r#"{"schema_version": 2, "cases": []}"#).unwrap_err();
        assert!(e.0.contains("not a ceilings file"), "{e}");
        let e = Ceilings::from_json(r#"{"schema_version": 9, "hardware_fingerprint": "x"}"#)
            .unwrap_err();
        assert!(e.0.contains("wattbench ceilings"), "{e}");
    }
}
