//! Numbers for people: the one formatter every table, summary and report uses.
use crate::energy::Interval;

/// A quantity in `unit`, scaled to units, milli- or micro-units: `1.234 s`, `2.345 ms`,
/// `3.45 µs`; kilo- and mega- above 1000.
pub fn si(v: f64, unit: &str) -> String {
    if !v.is_finite() {
        return format!("{v} {unit}");
    }
    // Each step up where the value would round to 1000 of the smaller unit: a millisecond
    // that arrived as 0.99999999e-3 s is `1.000 ms`, not `1000.00 µs`.
    let a = v.abs();
    if a >= 999_999.5 {
        format!("{:.3} M{unit}", v / 1e6)
    } else if a >= 999.9995 {
        format!("{:.3} k{unit}", v / 1e3)
    } else if a >= 0.999_999_5 || a == 0.0 {
        format!("{v:.3} {unit}")
    } else if a >= 0.999_995e-3 {
        format!("{:.3} m{unit}", v * 1e3)
    } else {
        format!("{:.2} µ{unit}", v * 1e6)
    }
}

/// Seconds for tables: `1.234 s`, `2.345 ms`, `3.45 µs`.
pub fn seconds(s: f64) -> String {
    si(s, "s")
}

/// Joules for tables: `1.234 J`, `2.345 mJ`, `3.45 µJ`.
pub fn joules(j: f64) -> String {
    si(j, "J")
}

/// `x` with four significant digits, without an exponent for everyday magnitudes.
pub fn sig(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let mag = x.abs().log10().floor() as i32;
    if !(-6..9).contains(&mag) {
        return format!("{x:.3e}");
    }
    let decimals = (3 - mag).max(0) as usize;
    format!("{x:.decimals$}")
}

/// An interval scaled by `k`, as `value unit [low – high]` with four significant digits.
pub fn interval(i: &Interval, unit: &str, k: f64) -> String {
    format!(
        "{} {unit} [{} – {}]",
        sig(i.value * k),
        sig(i.low * k),
        sig(i.high * k)
    )
}

/// An interval's bounds relative to its value, for tables: `±5.2%`, or `-52%/+1.6e4%` when
/// they are not symmetric (a lower bound held at zero); empty without a positive value.
pub fn relative(i: &Interval) -> String {
    if i.value.is_nan() || i.value <= 0.0 {
        return String::new();
    }
    let pct = |x: f64| {
        let p = 100.0 * x / i.value;
        if p >= 1e4 {
            format!("{p:.1e}")
        } else if p >= 10.0 {
            format!("{p:.0}")
        } else {
            format!("{p:.1}")
        }
    };
    let (down, up) = (i.value - i.low, i.high - i.value);
    if (down - up).abs() <= 0.01 * up.max(down) {
        format!("±{}%", pct(up))
    } else {
        format!("-{}%/+{}%", pct(down), pct(up))
    }
}

/// Bytes as MiB with one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// Bytes as GiB with two decimals.
pub fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_and_digits() {
        assert_eq!(seconds(1.5), "1.500 s");
        assert_eq!(seconds(0.002345), "2.345 ms");
        assert_eq!(seconds(3.45e-6), "3.45 µs");
        assert_eq!(joules(0.0), "0.000 J");
        assert_eq!(si(1500.0, "W"), "1.500 kW");
        // Values that round up to the next unit are shown in it (a drift note once read
        // "to 1000.00 µs" for a millisecond computed back from a duration).
        assert_eq!(seconds(0.999_999_99e-3), "1.000 ms");
        assert_eq!(seconds(0.999_99e-3), "999.99 µs");
        assert_eq!(seconds(0.999_999_9), "1.000 s");
        assert_eq!(si(999.9999, "W"), "1.000 kW");
        assert_eq!(si(-0.999_999_99e-3, "J"), "-1.000 mJ");
        assert_eq!(sig(0.012345), "0.01235");
        assert_eq!(sig(1234.5), "1234");
        assert_eq!(sig(1.0e12), "1.000e12");
        let i = Interval {
            value: 1.0,
            low: 0.5,
            high: 2.0,
        };
        assert_eq!(interval(&i, "Wh", 1000.0), "1000 Wh [500.0 – 2000]");
        assert_eq!(gib(3 << 30), "3.00 GiB");
        assert_eq!(mib(3 << 20), "3.0 MiB");
    }

    #[test]
    fn relative_intervals_read_as_percentages() {
        assert_eq!(relative(&Interval::symmetric(2.0, 0.1)), "±5.0%");
        assert_eq!(relative(&Interval::symmetric(2.0, 1.0)), "±50%");
        // The lower bound held at zero: no longer symmetric.
        let iv = Interval::symmetric(1.0, 160.0);
        assert_eq!(relative(&iv), "-100%/+1.6e4%");
        assert_eq!(relative(&Interval::symmetric(0.0, 1.0)), "");
    }
}
