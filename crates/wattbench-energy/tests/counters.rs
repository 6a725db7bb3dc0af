//! Counter physics end to end: wraps faster than the sampling interval, windows shorter than
//! the counter's update period, and peaks that quantisation must not inflate. Each test
//! reproduces a figure an audit found wrong.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wattbench_energy::counter::CounterSpec;
use wattbench_energy::{
    Accumulator, Domain, DomainMeta, MeterConfig, Meters, ReadContext, Reading, Source,
};

/// Writes `energy_uj` as a counter at `watts` that wraps after `range_uj`, updated every
/// millisecond (as RAPL does), atomically (write + rename), until `stop`; returns how stale
/// the file ever was, s.
///
/// Unlike RAPL's, this counter is updated by a thread: on a busy machine it can be
/// descheduled for many milliseconds, and a reading then lags the wall clock by that much
/// (13 J of a 1000 W counter once failed a test). So every value is written with the time it
/// stands for, and the largest lag between that time and the next update's arrival is
/// returned: a reading of this file is never staler than that, which the tests add to their
/// bounds (about 1 ms on a quiet machine, 1 J at 1000 W; far below a lost wrap).
fn powercap_writer(
    zone: &Path,
    watts: f64,
    range_uj: u64,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<f64> {
    let zone = zone.to_path_buf();
    std::thread::spawn(move || {
        let t0 = Instant::now();
        let tmp = zone.join(".energy_uj.tmp");
        // The time the file's current value stands for.
        let mut shown = t0;
        let mut stalest = 0.0f64;
        while !stop.load(Ordering::SeqCst) {
            let now = Instant::now();
            let uj = (now.duration_since(t0).as_secs_f64() * watts * 1e6) as u64 % (range_uj + 1);
            fs::write(&tmp, format!("{uj}\n")).unwrap();
            fs::rename(&tmp, zone.join("energy_uj")).unwrap();
            stalest = stalest.max(shown.elapsed().as_secs_f64());
            shown = now;
            std::thread::sleep(Duration::from_millis(1));
        }
        stalest
    })
}

/// An 80 J counter at 1000 W wraps every 80 ms: sampled every 100 ms it lost whole wraps
/// (50 J reported for 250 J, ±0.02 J claimed). The meters must sample faster than half the
/// wrap period and get the energy right. Here a 200 J counter at 1000 W (a wrap every 200 ms)
/// asked to be sampled every 500 ms, over a 1 s window: the same physics, with room for a
/// loaded machine's scheduling stalls.
#[test]
fn a_counter_wrapping_faster_than_the_sampling_interval_is_sampled_faster() {
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("intel-rapl:0");
    fs::create_dir_all(&zone).unwrap();
    fs::write(zone.join("name"), "package-0\n").unwrap();
    fs::write(zone.join("energy_uj"), "0\n").unwrap();
    fs::write(zone.join("max_energy_range_uj"), "200000000\n").unwrap();
    // The zone's power limit makes 1000 W its plausible peak (1.5 x 666.7 W).
    fs::write(zone.join("constraint_0_power_limit_uw"), "666666667\n").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = powercap_writer(&zone, 1000.0, 200_000_000, stop.clone());
    let meters = Meters::discover(&MeterConfig {
        powercap_root: Some(dir.path().to_path_buf()),
        nvml: false,
        ..MeterConfig::default()
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert!(
        meters.sampling_interval(Duration::from_millis(500)) <= Duration::from_millis(100),
        "{:?}",
        meters.sampling_interval(Duration::from_millis(500))
    );
    let w = meters.start().unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let d = meters.stop(w);
    stop.store(true, Ordering::SeqCst);
    let stalest = writer.join().unwrap();
    let pkg = d.iter().find(|d| d.name == "cpu-package-0").unwrap();
    let j = pkg.joules.unwrap();
    let truth = 1000.0 * pkg.window_s;
    let unc = pkg.uncertainty_j.unwrap();
    assert!(
        (j - truth).abs() <= 0.1 * truth,
        "{j} J against {truth} J true"
    );
    // Each of the two readings lags the time it was taken by at most the file's staleness.
    let lag_j = 1000.0 * stalest;
    assert!(
        (j - truth).abs() <= unc + 2.0 + lag_j,
        "{j} ± {unc} J against {truth} J true (the fake counter lagged up to {lag_j} J)"
    );
    assert!(pkg.warnings.is_empty(), "{:?}", pkg.warnings);
}

/// A counter that updates every 100 ms, at 333 W.
struct SlowCounter {
    meta: DomainMeta,
    t0: Instant,
}

impl Domain for SlowCounter {
    fn meta(&self) -> &DomainMeta {
        &self.meta
    }
    fn read(&self, _: &ReadContext) -> Result<Reading, String> {
        let updates = (self.t0.elapsed().as_secs_f64() / 0.1).floor() as u64;
        Ok(Reading::Counter {
            raw: updates * 33_300,
            joules_per_unit: 1e-3,
            wrap_at: None,
        })
    }
    fn min_window(&self) -> Duration {
        Duration::from_millis(200)
    }
    fn counter(&self) -> Option<CounterSpec> {
        Some(CounterSpec {
            resolution_j: 1e-3,
            nominal_update: Duration::from_millis(100),
            wraps: false,
            wrap_j: None,
            peak_w: 500.0,
            peak_source: "test".into(),
            relative_accuracy: 0.0,
        })
    }
}

/// A 30 ms window under a counter that updates every 100 ms read either 0 J ± 0 or
/// 33 J ± 1.7 against 10 J true. The interval must contain the truth and the window must be
/// flagged as too short to resolve.
#[test]
fn a_window_shorter_than_the_update_period_is_flagged_and_its_interval_holds_the_truth() {
    let slow: Arc<dyn Domain> = Arc::new(SlowCounter {
        meta: DomainMeta::new("slow", "test", Source::Measured, "device"),
        t0: Instant::now(),
    });
    let meters = Meters::from_domains(vec![slow], &MeterConfig::default());
    meters.probes();
    for _ in 0..5 {
        let w = meters.start().unwrap();
        std::thread::sleep(Duration::from_millis(30));
        let d = &meters.stop(w)[0];
        let (j, unc) = (d.joules.unwrap(), d.uncertainty_j.unwrap());
        let truth = 333.0 * d.window_s;
        assert!(
            (j - truth).abs() <= unc,
            "{j} ± {unc} J against {truth} J true"
        );
        assert!(
            d.warnings
                .iter()
                .any(|w| w.contains("shorter than two updates")),
            "{:?}",
            d.warnings
        );
    }
}

/// A constant 50 W counter (1 mJ resolution, updated every millisecond) sampled every
/// 100 ms over 1.03 s, with a last reading 0.5 ms after the one before: the peak was taken
/// from that short last interval (71 W reported for 50 W).
#[test]
fn a_short_last_interval_does_not_inflate_the_peak() {
    let counter = |t: f64| Reading::Counter {
        raw: ((t * 1000.0).floor() * 50.0) as u64,
        joules_per_unit: 1e-3,
        wrap_at: None,
    };
    // Ten updates of 1 ms: the span Meters gives such a counter.
    let mut acc = Accumulator::with_min_peak_span(0.1);
    let mut times: Vec<f64> = (0..=10).map(|i| 0.0004 + i as f64 * 0.1).collect();
    times.push(1.0304);
    times.push(1.0309);
    for t in times {
        acc.push(t, counter(t));
    }
    let peak = acc.peak_watts().unwrap();
    assert!(
        (peak - 50.0).abs() <= 5.0,
        "peak {peak} W for a constant 50 W"
    );
    let mean = acc.joules().unwrap() / acc.span_s();
    assert!((mean - 50.0).abs() <= 1.0, "{mean}");
}

/// `measure` on a machine with a counter measures its idle power before the command and gives
/// the total net of it (ENERGY.md 12): a package drawing a steady 50 W, busy or not, has a
/// gross figure of 50 W x the command's window and a net one of about 0 J, within the interval
/// the report gives it.
#[test]
fn measure_gives_the_idle_baseline_and_the_net_energy() {
    use std::ffi::OsString;
    use wattbench_energy::carbon::CarbonParams;
    use wattbench_energy::measure::{measure, MeasureOptions};
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("intel-rapl:0");
    fs::create_dir_all(&zone).unwrap();
    fs::write(zone.join("name"), "package-0\n").unwrap();
    fs::write(zone.join("energy_uj"), "0\n").unwrap();
    fs::write(zone.join("max_energy_range_uj"), "262143328850\n").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = powercap_writer(&zone, 50.0, 262_143_328_850, stop.clone());
    let opts = |idle: Option<Duration>| MeasureOptions {
        command: ["sleep", "0.5"].iter().map(OsString::from).collect(),
        meter: MeterConfig {
            powercap_root: Some(dir.path().to_path_buf()),
            sample_interval: Duration::from_millis(50),
            nvml: false,
            ..MeterConfig::default()
        },
        carbon: CarbonParams::resolve(Some("FR"), None, None, None).unwrap(),
        projection: None,
        cgroup: false,
        idle,
    };
    let out = measure(&opts(None)).unwrap();
    let off = measure(&opts(Some(Duration::ZERO))).unwrap();
    stop.store(true, Ordering::SeqCst);
    let stalest = writer.join().unwrap();

    let r = &out.report;
    assert_eq!(r.idle_baseline.len(), 1, "{:?}", r.idle_baseline);
    let idle = &r.idle_baseline[0];
    assert_eq!(idle.name, "cpu-package-0");
    assert!(idle.window_s >= 0.5, "{}", idle.window_s);
    // What the fake counter's lag (see `powercap_writer`) can take from or add to a window.
    let lag_j = 50.0 * stalest;
    let w = idle.avg_watts.unwrap();
    assert!(
        (w - 50.0).abs() < 5.0 + lag_j / idle.window_s,
        "idle power {w} W of a 50 W counter (the fake counter lagged up to {lag_j} J)"
    );
    let gross = r.total.joules.unwrap();
    let net = r.net_joules.unwrap();
    assert!(gross.value > 10.0, "{gross:?}");
    // The command's window, and the idle power scaled to it, each off by up to that lag.
    let slack = lag_j * (1.0 + r.duration_s / idle.window_s);
    assert!(
        net.low - slack <= 0.0 && 0.0 <= net.high + slack && net.high - net.low < gross.value,
        "net {net:?} of gross {gross:?}: a steady load has no energy above idle (the fake \
         counter lagged up to {lag_j} J a window)"
    );
    let lines = r.summary_lines();
    assert!(
        lines.iter().any(
            |l| l.starts_with("net of idle: ") && l.contains("cpu-package-0 4")
                || l.starts_with("net of idle: ") && l.contains("cpu-package-0 5")
        ),
        "{lines:?}"
    );
    // No idle window asked for: no baseline and no net figure, never a 0 J one.
    assert!(off.report.idle_baseline.is_empty());
    assert_eq!(off.report.net_joules, None);
}
