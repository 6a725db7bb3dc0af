//! Record the libtorch version from its headers, and add an rpath to libtorch's lib directory
//! so binaries and tests of this crate run without LD_LIBRARY_PATH.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let Some(root) = std::env::var_os("LIBTORCH").map(PathBuf::from) else {
        println!("cargo:rustc-env=WATTBENCH_LIBTORCH_VERSION=unknown");
        return;
    };
    // libtorch 2.10+ keeps the numbers in headeronly/version.h; older ones in the C++ API's.
    let text: String = [
        "include/torch/headeronly/version.h",
        "include/torch/csrc/api/include/torch/version.h",
    ]
    .iter()
    .filter_map(|h| std::fs::read_to_string(root.join(h)).ok())
    .collect();
    let num = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("#define TORCH_VERSION_{key} ")))
            .map(|v| v.trim().to_string())
    };
    let version = match (num("MAJOR"), num("MINOR"), num("PATCH")) {
        (Some(a), Some(b), Some(c)) => format!("{a}.{b}.{c}"),
        _ => "unknown".into(),
    };
    println!("cargo:rustc-env=WATTBENCH_LIBTORCH_VERSION={version}");
    println!(
        "cargo:rustc-link-arg=-Wl,-rpath,{}",
        root.join("lib").display()
    );
}
