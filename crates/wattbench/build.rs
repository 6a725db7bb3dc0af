//! Build-time provenance, recorded in every result file: the versions of every dependency as
//! resolved in Cargo.lock and the compiler (the `built` crate), and the git commit of the
//! sources this binary is built from, `-dirty` when they had uncommitted changes. Reading these
//! at build time keeps them right when the binary runs away from its checkout (a GPU bundle).
use std::path::Path;
use std::process::Command;

fn git(root: &Path, args: &[&str]) -> Option<String> {
    let o = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn main() {
    built::write_built_file().expect("writing build-time provenance (built.rs)");

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // What the binary is built from; results/, scripts/ and docs do not change it.
    let sources = [
        "crates",
        "kernels",
        "benchmarks",
        "Cargo.toml",
        "Cargo.lock",
    ];
    let commit = git(&root, &["rev-parse", "HEAD"]).map(|c| {
        let mut args = vec!["status", "--porcelain", "--untracked-files=no", "--"];
        args.extend(sources);
        let dirty = git(&root, &args).is_some_and(|s| !s.is_empty());
        if dirty {
            format!("{c}-dirty")
        } else {
            c
        }
    });
    println!(
        "cargo:rustc-env=WATTBENCH_GIT_COMMIT={}",
        commit.unwrap_or_default()
    );
    // Re-run when the commit moves or any source changes (directories are scanned whole).
    // Relative paths, which cargo resolves against this package's folder at each build: an
    // absolute one would keep pointing at the checkout a target folder was first built in (a
    // target folder copied to warm another checkout's build), whose commit it would record.
    for p in [".git/HEAD", ".git/index", ".git/refs"]
        .iter()
        .chain(&sources)
    {
        println!("cargo:rerun-if-changed=../../{p}");
    }

    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Some(lt) = std::env::var_os("LIBTORCH") {
        // The tch backend's rpath, repeated here because link args do not propagate to
        // dependents.
        println!(
            "cargo:rustc-link-arg=-Wl,-rpath,{}/lib",
            Path::new(&lt).display()
        );
    }
}
