//! How the `oathdesk` executable is linked on Linux with glibc: for a
//! one-shot `oathdesk code` that starts as quickly as `oathtool`
//! (BENCHMARKS.md, "the loader and the runtime"). Each step keeps the
//! protections the executable had: shared libraries, heap and stack stay
//! randomised, and every imported symbol is still bound at start with the
//! GOT read-only after it (BIND_NOW, full RELRO).
//!
//! - Non-PIE. A position-independent executable makes the dynamic loader
//!   apply a relocation to every page of `.data.rel.ro` at each start
//!   (clap's tables, vtables, string slices): about 75 page faults more than
//!   a fixed-address executable. The code itself stays position-independent
//!   (so build scripts and proc-macros are untouched); only the final link of
//!   the binaries fixes the address. `OATHDESK_PIE=1` at build time keeps a
//!   PIE for those who prefer a randomised executable base to a quicker
//!   start.
//! - `-z max-page-size=0x200000` on x86-64: see `main` below.
//! - `--wrap=main`: the C runtime enters `src/start.rs`, which gives `code`
//!   a short start-up and hands every other command to std's (see there).
//! - The unwinder linked in (`libgcc_eh.a`) instead of loaded
//!   (`libgcc_s.so.1`): one shared library fewer to map and relocate at each
//!   start (its own 56 symbol bindings), and 11 fewer imports of ours (14
//!   `_Unwind_*` out, 3 the archive needs in). Panics unwind as before; the
//!   unwinder is GCC's, updated with the toolchain rather than with the
//!   system's libgcc-s1 package. (libm.so.6 goes the same way through
//!   src/math.rs.)
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=OATHDESK_PIE");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    println!("cargo:rustc-check-cfg=cfg(oathdesk_wrap_main)");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os != "linux" || env != "gnu" {
        return;
    }
    let pie_requested = std::env::var("OATHDESK_PIE").is_ok_and(|v| v == "1");
    if !pie_requested {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    // Segments placed at addresses congruent to their file offsets modulo
    // 2 MiB (the file is not padded). Measured, not explained: the one-shot
    // `code` runs 6–12 % faster, with less user time and the same instructions
    // and page faults (BENCHMARKS.md); no huge page gets mapped.
    if std::env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|a| a == "x86_64") {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,max-page-size=0x200000");
    }
    // Applies to the binary's unit tests too (cargo gives them the bins'
    // link arguments), which is why src/start.rs also builds under cfg(test).
    println!("cargo:rustc-link-arg-bins=-Wl,--wrap=main");
    println!("cargo:rustc-cfg=oathdesk_wrap_main");
    link_unwinder_statically();
}

/// std asks the linker for `-lgcc_s`; a linker script of that name, found
/// first, answers with the static archive instead. GNU ld, lld and mold all
/// read a text file in place of a library as a linker script (glibc's own
/// `libc.so` is one). Where the C compiler that links has no `libgcc_eh.a`
/// (a clang-only system), the unwinder stays a shared library.
fn link_unwinder_statically() {
    let linker = std::env::var("RUSTC_LINKER").unwrap_or_else(|_| "cc".to_owned());
    let archive = std::process::Command::new(linker)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|path| path.is_absolute() && path.is_file());
    let Some(archive) = archive else {
        println!("cargo:warning=no libgcc_eh.a: the unwinder stays a shared library (libgcc_s)");
        return;
    };
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let script = format!(
        "/* oathdesk (crates/cli/build.rs): the unwinder linked in */\nINPUT(\"{}\")\n",
        archive.display()
    );
    std::fs::write(out.join("libgcc_s.so"), script).expect("OUT_DIR is writable");
    println!("cargo:rustc-link-search=native={}", out.display());
}
