//! Record the libtorch version from its headers, and add an rpath to libtorch's lib directory
//! so binaries and tests of this crate run without LD_LIBRARY_PATH.
use std::path::PathBuf;

#[path = "src/torch_version.rs"]
mod torch_version;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let Some(root) = std::env::var_os("LIBTORCH").map(PathBuf::from) else {
        println!("cargo:rustc-env=WATTBENCH_LIBTORCH_VERSION=unknown");
        return;
    };
    let version = torch_version::of_root(&root).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=WATTBENCH_LIBTORCH_VERSION={version}");
    println!(
        "cargo:rustc-link-arg=-Wl,-rpath,{}",
        root.join("lib").display()
    );
}
