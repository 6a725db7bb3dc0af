//! Energy as a criterion [`Measurement`]: `cargo bench` then tracks joules per iteration as it
//! tracks time, with criterion's own statistics and regression report.
//!
//! Only hardware counters are used (`measured` domains in the total: NVML's energy counter,
//! RAPL package/DRAM): an estimate is a model of CPU time, which criterion already measures,
//! and integrated power samples need a background sampler. [`Joules::from_counters`] says
//! why when there is none, so a bench can say clearly that it cannot measure energy here.
//!
//! A counter updates every 1 ms (RAPL) to ~100 ms (NVML) and covers the whole package or
//! device: give each criterion sample at least ten updates ([`Joules::sample_time`]) and keep
//! the machine otherwise idle. Figures are gross (idle power included).
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::Throughput;

use crate::meters::{EnergyWindow, MeterConfig, Meters};
use crate::Source;

/// Joules of the metered counters' total over each criterion sample.
pub struct Joules {
    meters: Meters,
    names: Vec<String>,
}

impl Joules {
    /// The counters of this machine, or why there are none (no RAPL, no NVML counter, or
    /// only an estimate).
    pub fn from_counters(cfg: &MeterConfig) -> Result<Joules, String> {
        let meters = Meters::discover(cfg).map_err(|e| e.to_string())?;
        let counters: Vec<_> = meters
            .domains
            .iter()
            .filter(|d| d.source() == Source::Measured && d.in_total())
            .cloned()
            .collect();
        if counters.is_empty() {
            let why: Vec<String> = meters
                .inventory()
                .into_iter()
                .filter(|m| !m.available)
                .filter_map(|m| Some(format!("{}: {}", m.name, m.reason?)))
                .collect();
            return Err(format!(
                "no hardware energy counter here, so criterion cannot measure energy ({})",
                why.join("; ")
            ));
        }
        let names = counters.iter().map(|d| d.name().to_string()).collect();
        Ok(Joules {
            meters: Meters::from_domains(counters, cfg),
            names,
        })
    }

    /// The counters summed (`cpu-package-0`, `gpu0`, ...).
    pub fn domains(&self) -> &[String] {
        &self.names
    }

    /// A criterion measurement time that gives each of `samples` samples at least ten
    /// updates of the slowest counter.
    pub fn sample_time(&self, samples: usize) -> Duration {
        let update = self
            .meters
            .probes()
            .iter()
            .flatten()
            .filter_map(|p| p.update)
            .max()
            .unwrap_or(Duration::from_millis(100));
        (update * 10) * samples as u32
    }
}

impl Measurement for Joules {
    type Intermediate = Option<EnergyWindow>;
    type Value = f64;

    fn start(&self) -> Option<EnergyWindow> {
        self.meters.start().ok()
    }

    fn end(&self, w: Option<EnergyWindow>) -> f64 {
        // A window that could not start or a counter that could not be read is NaN, which
        // criterion reports, never 0 J; so is a sample in which any counter of the total had
        // no reading, or a reading of it failed (then its readings may cover only part of the
        // sample, or have dropped a step): a partial sum would look like a saving.
        let Some(w) = w else { return f64::NAN };
        let (domains, accs) = self.meters.close(w);
        if (domains.iter().zip(&accs))
            .any(|(d, a)| d.in_total && (d.joules.is_none() || a.error().is_some()))
        {
            return f64::NAN;
        }
        crate::total_energy(&domains)
            .joules
            .map_or(f64::NAN, |iv| iv.value)
    }

    fn add(&self, a: &f64, b: &f64) -> f64 {
        a + b
    }

    fn zero(&self) -> f64 {
        0.0
    }

    fn to_f64(&self, v: &f64) -> f64 {
        *v
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &JoulesFormatter
    }
}

/// Prints joules with an SI prefix, and throughput as elements (bytes) per joule.
struct JoulesFormatter;

impl JoulesFormatter {
    fn scale(typical: f64) -> (f64, &'static str) {
        match typical.abs() {
            v if v >= 1.0 => (1.0, "J"),
            v if v >= 1e-3 => (1e3, "mJ"),
            v if v >= 1e-6 => (1e6, "µJ"),
            _ => (1e9, "nJ"),
        }
    }
}

impl ValueFormatter for JoulesFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (k, unit) = Self::scale(typical);
        values.iter_mut().for_each(|v| *v *= k);
        unit
    }

    fn scale_throughputs(
        &self,
        _typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let (n, unit) = match throughput {
            Throughput::Bytes(b) | Throughput::BytesDecimal(b) => (*b as f64, "B/J"),
            Throughput::Elements(e) => (*e as f64, "elem/J"),
            Throughput::Bits(b) => (*b as f64, "bit/J"),
            Throughput::ElementsAndBytes { elements, .. } => (*elements as f64, "elem/J"),
        };
        values.iter_mut().for_each(|v| *v = n / *v);
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "J"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::StepCounter;
    use std::sync::Arc;

    #[test]
    fn joules_are_the_counters_total_and_estimates_are_refused() {
        let cfg = MeterConfig {
            nvml: false,
            powercap_root: Some("/nonexistent".into()),
            ..MeterConfig::default()
        };
        // Only the CPU estimate here: no counter, and the reason says so.
        let e = Joules::from_counters(&cfg).err().unwrap();
        assert!(e.contains("cannot measure energy"), "{e}");
        // Fake counters: 5 mJ per reading -> 5 mJ between start and end.
        let j = Joules {
            meters: Meters::from_domains(
                vec![Arc::new(StepCounter::new("pkg", 5, 0.0)) as _],
                &cfg,
            ),
            names: vec!["pkg".into()],
        };
        let w = j.start();
        assert!((j.end(w) - 0.005).abs() < 1e-12);
        // A window that could not start is NaN, not 0 J.
        let none = Joules {
            meters: Meters::from_domains(Vec::new(), &cfg),
            names: Vec::new(),
        };
        assert!(none.end(none.start()).is_nan());
        let mut v = [0.002, 0.004];
        assert_eq!(JoulesFormatter.scale_values(0.003, &mut v), "mJ");
        assert_eq!(v, [2.0, 4.0]);
    }

    /// A counter whose reads fail partway through a sample (a transient failure at its end
    /// edge) covers only part of it: its energy would be silently short, so the sample is NaN.
    #[test]
    fn a_sample_with_a_failed_reading_is_nan_not_short() {
        use crate::fake::CounterWithPower;
        let cfg = MeterConfig {
            nvml: false,
            sample_interval: Duration::from_millis(10),
            ..MeterConfig::default()
        };
        // The power reading beside gpu0's counter makes a sampler run: pkg is read at the
        // start and by two ticks, then no more.
        let j = Joules {
            meters: Meters::from_domains(
                vec![
                    Arc::new(CounterWithPower::new("gpu0", 100.0, 100.0)) as _,
                    Arc::new(StepCounter::new("pkg", 5, 0.0).lost_after(3)) as _,
                ],
                &cfg,
            ),
            names: vec!["gpu0".into(), "pkg".into()],
        };
        let w = j.start();
        std::thread::sleep(Duration::from_millis(200));
        let v = j.end(w);
        assert!(v.is_nan(), "{v} J");
        // Both read throughout: a figure.
        let j = Joules {
            meters: Meters::from_domains(
                vec![
                    Arc::new(CounterWithPower::new("gpu0", 100.0, 100.0)) as _,
                    Arc::new(StepCounter::new("pkg", 5, 0.0)) as _,
                ],
                &cfg,
            ),
            names: vec!["gpu0".into(), "pkg".into()],
        };
        let w = j.start();
        std::thread::sleep(Duration::from_millis(50));
        assert!(j.end(w).is_finite());
    }
}
