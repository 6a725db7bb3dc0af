//! The shared libraries this process has loaded, read back from its own memory mappings
//! (`/proc/self/maps`, Linux): which libtorch, cuBLAS or cuDNN really produced a number, and
//! where a library loaded beside another must come from.
use std::path::PathBuf;

/// Every shared object mapped into this process, each once, in mapping order. Empty where
/// `/proc` is not readable.
pub fn loaded() -> Vec<PathBuf> {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return Vec::new();
    };
    parse_maps(&maps)
}

fn parse_maps(maps: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for line in maps.lines() {
        // address perms offset dev inode pathname (the path may contain spaces)
        let Some(path) = line.splitn(6, char::is_whitespace).nth(5).map(str::trim) else {
            continue;
        };
        let name = path.rsplit('/').next().unwrap_or("");
        if path.starts_with('/') && name.contains(".so") && !out.iter().any(|p| p == path) {
            out.push(PathBuf::from(path));
        }
    }
    out
}

/// The loaded library whose file name starts with `stem` (e.g. `libtorch_cpu.so`), if any.
pub fn find(stem: &str) -> Option<PathBuf> {
    loaded().into_iter().find(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(stem))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines_give_each_library_once() {
        let maps = "\
7f00-7f10 r--p 00000000 08:01 123 /usr/lib/x86_64-linux-gnu/libc.so.6
7f10-7f20 r-xp 00010000 08:01 123 /usr/lib/x86_64-linux-gnu/libc.so.6
7f20-7f30 rw-p 00000000 00:00 0
7f30-7f40 r--p 00000000 08:01 77 /opt/my libs/libcublas.so.13.1.0.3
7f40-7f50 r--p 00000000 08:01 78 /usr/bin/wattbench
7ffd-7ffe r--p 00000000 00:00 0 [vdso]
";
        assert_eq!(
            parse_maps(maps),
            vec![
                PathBuf::from("/usr/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/opt/my libs/libcublas.so.13.1.0.3"),
            ]
        );
    }

    #[test]
    fn this_process_has_libc_loaded() {
        if cfg!(target_os = "linux") {
            assert!(find("libc.so").is_some(), "{:?}", loaded());
        }
    }
}
