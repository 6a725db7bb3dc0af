// Record the compiler and the git commit at build time, for result provenance when the binary
// runs away from its checkout (e.g. on a GPU machine).
use std::process::Command;

fn out(cmd: &str, args: &[&str]) -> Option<String> {
    let o = Command::new(cmd).args(args).output().ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let v = out(&rustc, &["--version"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=WATTBENCH_RUSTC={v}");
    let commit = out("git", &["rev-parse", "HEAD"]).unwrap_or_default();
    println!("cargo:rustc-env=WATTBENCH_BUILD_COMMIT={commit}");
    println!("cargo:rerun-if-changed=../../.git/HEAD");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Some(root) = std::env::var_os("LIBTORCH") {
        // The tch backend's rpath, repeated here because link args do not propagate to
        // dependents.
        println!(
            "cargo:rustc-link-arg=-Wl,-rpath,{}/lib",
            std::path::Path::new(&root).display()
        );
    }
}
