//! libtorch's version from its headers, shared by the build script (the libtorch this crate
//! is built against) and the library (the one a process loaded, found beside the loaded
//! `libtorch_cpu.so`): the two differ when `LD_LIBRARY_PATH` or a moved install points the
//! binary at another libtorch than the one it was built with.
use std::path::Path;

/// The version headers under a libtorch root, newest layout first (libtorch 2.10+ keeps the
/// numbers in `headeronly/version.h`, older ones in the C++ API's).
const HEADERS: [&str; 2] = [
    "include/torch/headeronly/version.h",
    "include/torch/csrc/api/include/torch/version.h",
];

/// `MAJOR.MINOR.PATCH` from the version headers' text, if all three are defined.
pub fn parse(text: &str) -> Option<String> {
    let num = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("#define TORCH_VERSION_{key} ")))
            .map(|v| v.trim().to_string())
    };
    Some(format!(
        "{}.{}.{}",
        num("MAJOR")?,
        num("MINOR")?,
        num("PATCH")?
    ))
}

/// The version of the libtorch installed at `root` (the folder holding `include/` and
/// `lib/`), from its headers; `None` when they are absent or unreadable.
pub fn of_root(root: &Path) -> Option<String> {
    let text: String = HEADERS
        .iter()
        .filter_map(|h| std::fs::read_to_string(root.join(h)).ok())
        .collect();
    parse(&text)
}
