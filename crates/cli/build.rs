//! Links the `oathdesk` executable as non-PIE on Linux.
//!
//! A position-independent executable makes the dynamic loader apply a
//! relocation to every page of `.data.rel.ro` at each start (clap's tables,
//! vtables, string slices): about 75 page faults more than a fixed-address
//! executable, which decided whether the one-shot `oathdesk code` is as quick
//! as `oathtool` (BENCHMARKS.md). The code itself stays position-independent
//! (so build scripts and proc-macros are untouched); only the final link of the
//! binaries fixes the address, and shared libraries, the heap and the stack
//! are still randomised. `OATHDESK_PIE=1` at build time keeps a PIE for those
//! who prefer a randomised executable base to a quicker start.
fn main() {
    println!("cargo:rerun-if-env-changed=OATHDESK_PIE");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let pie_requested = std::env::var("OATHDESK_PIE").is_ok_and(|v| v == "1");
    if os == "linux" && env == "gnu" && !pie_requested {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
