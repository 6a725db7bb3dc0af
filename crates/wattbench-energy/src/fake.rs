//! Domains with known readings, for tests of everything that meters (here, in the training
//! driver, in the CLI): a counter that gains a fixed amount per reading, a constant power
//! sensor, a counter with a power reading beside it, and a domain that cannot be read (or
//! can no longer be).
//! Deterministic on any machine.
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::counter::WindowFacts;
use crate::meters::{Domain, DomainMeta, ReadContext, Reading};
use crate::nvml::PowerReading;
use crate::Source;

/// A `measured` counter that gains `step_mj` millijoules at every reading, with a fixed
/// uncertainty; optionally slow to read and wrapping like RAPL's.
pub struct StepCounter {
    meta: DomainMeta,
    raw: AtomicU64,
    step_mj: u64,
    uncertainty_j: f64,
    read_delay: Duration,
    wrap_at: Option<u64>,
    lost_after: Option<u64>,
    reads: AtomicU64,
}

impl StepCounter {
    /// A package-scope counter named `name`.
    pub fn new(name: &str, step_mj: u64, uncertainty_j: f64) -> Self {
        StepCounter {
            meta: DomainMeta::new(name, "test", Source::Measured, "package"),
            raw: AtomicU64::new(0),
            step_mj,
            uncertainty_j,
            read_delay: Duration::ZERO,
            wrap_at: None,
            lost_after: None,
            reads: AtomicU64::new(0),
        }
    }

    /// Every reading takes `delay` after the counter is sampled (a slow sysfs read).
    pub fn slow(mut self, delay: Duration) -> Self {
        self.read_delay = delay;
        self
    }

    /// The counter wraps to 0 after `max_mj` millijoules, and says so.
    pub fn wrapping(mut self, max_mj: u64) -> Self {
        self.wrap_at = Some(max_mj);
        self
    }

    /// Every reading after the first `reads` fails (a counter lost midway: its file went
    /// away, its driver stopped answering).
    pub fn lost_after(mut self, reads: u64) -> Self {
        self.lost_after = Some(reads);
        self
    }
}

impl Domain for StepCounter {
    fn meta(&self) -> &DomainMeta {
        &self.meta
    }
    fn read(&self, _: &ReadContext) -> Result<Reading, String> {
        let n = self.reads.fetch_add(1, Ordering::SeqCst);
        if self.lost_after.is_some_and(|max| n >= max) {
            return Err("the counter can no longer be read (a test's lost counter)".into());
        }
        let raw = self.raw.fetch_add(self.step_mj, Ordering::SeqCst) + self.step_mj;
        std::thread::sleep(self.read_delay);
        Ok(Reading::Counter {
            raw: self.wrap_at.map_or(raw, |m| raw % (m + 1)),
            joules_per_unit: 1e-3,
            wrap_at: self.wrap_at,
        })
    }
    fn uncertainty_j(&self, _: &WindowFacts) -> f64 {
        self.uncertainty_j
    }
    fn min_window(&self) -> Duration {
        Duration::ZERO
    }
}

/// A power-only device (an NVML GPU without an energy counter) at constant `watts`, read as
/// `integrated`, with a 5% uncertainty.
pub struct ConstantPower {
    meta: DomainMeta,
    watts: f64,
}

impl ConstantPower {
    /// A device-scope sensor named `name`.
    pub fn new(name: &str, watts: f64) -> Self {
        ConstantPower {
            meta: DomainMeta::new(name, "nvml", Source::Integrated, "device"),
            watts,
        }
    }
}

impl Domain for ConstantPower {
    fn meta(&self) -> &DomainMeta {
        &self.meta
    }
    fn read(&self, _: &ReadContext) -> Result<Reading, String> {
        Ok(Reading::Power { watts: self.watts })
    }
    fn uncertainty_j(&self, w: &WindowFacts) -> f64 {
        0.05 * w.joules
    }
    fn min_window(&self) -> Duration {
        Duration::from_secs(1)
    }
}

/// A domain whose every reading fails with `why`.
pub struct Unreadable {
    meta: DomainMeta,
    why: String,
}

impl Unreadable {
    /// A dram-scope domain named `name`.
    pub fn new(name: &str, why: &str) -> Self {
        Unreadable {
            meta: DomainMeta::new(name, "test", Source::Measured, "dram"),
            why: why.into(),
        }
    }
}

impl Domain for Unreadable {
    fn meta(&self) -> &DomainMeta {
        &self.meta
    }
    fn read(&self, _: &ReadContext) -> Result<Reading, String> {
        Err(self.why.clone())
    }
    fn uncertainty_j(&self, _: &WindowFacts) -> f64 {
        0.0
    }
    fn min_window(&self) -> Duration {
        Duration::ZERO
    }
}

/// A device with an energy counter that gains `counter_w` watts of real time and a driver
/// power reading of a constant `reported_w` beside it (an NVML GPU with both), for the
/// cross-check of the two.
pub struct CounterWithPower {
    meta: DomainMeta,
    t0: Instant,
    counter_w: f64,
    reported_w: f64,
    reading: PowerReading,
}

impl CounterWithPower {
    /// A device-scope counter named `name`, its power reading instantaneous.
    pub fn new(name: &str, counter_w: f64, reported_w: f64) -> Self {
        CounterWithPower {
            meta: DomainMeta::new(name, "nvml", Source::Measured, "device"),
            t0: Instant::now(),
            counter_w,
            reported_w,
            reading: PowerReading {
                averaging_s: 0.0,
                part_time: false,
                description: "a constant test reading".into(),
            },
        }
    }
}

impl Domain for CounterWithPower {
    fn meta(&self) -> &DomainMeta {
        &self.meta
    }
    fn read(&self, _: &ReadContext) -> Result<Reading, String> {
        let mj = self.t0.elapsed().as_secs_f64() * self.counter_w * 1000.0;
        Ok(Reading::Counter {
            raw: mj as u64,
            joules_per_unit: 1e-3,
            wrap_at: None,
        })
    }
    fn min_window(&self) -> Duration {
        Duration::ZERO
    }
    fn power_reading(&self) -> Option<&PowerReading> {
        Some(&self.reading)
    }
    fn reported_power(&self) -> Result<f64, String> {
        Ok(self.reported_w)
    }
}
