//! Parsing `ptxas -v` output into a per-kernel resource table (used by the kernel check).

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

#[cfg(test)]
mod tests {
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
}
