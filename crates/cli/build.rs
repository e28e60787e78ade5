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
//! - The functions `code` runs placed together before the rest of the code
//!   (build/code_order.rs, from code-order.txt), where the linker reads the
//!   linker script that does it: GNU ld and lld (rustc's default on
//!   x86_64-unknown-linux-gnu since 1.90) do; gold and mold do not, and the
//!   build then says so and links as before. `OATHDESK_CODE_ORDER=0` at
//!   build time leaves the functions where they fall.
use std::path::{Path, PathBuf};

// `matches` is for tests/code_layout.rs.
#[allow(dead_code)]
#[path = "build/code_order.rs"]
mod code_order;

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
    order_code_functions();
}

/// Places the functions of code-order.txt first (build/code_order.rs) if
/// the linker that will link the executable can, and tells the tests which
/// it was through `OATHDESK_CODE_LAYOUT`: `ordered`, or `unordered: why`.
fn order_code_functions() {
    println!("cargo:rerun-if-changed=code-order.txt");
    println!("cargo:rerun-if-changed=build/code_order.rs");
    println!("cargo:rerun-if-env-changed=OATHDESK_CODE_ORDER");
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    let unordered = |why: &str, warn: bool| {
        if warn {
            println!(
                "cargo:warning={why}: the functions of the one-shot `oathdesk code` are not \
                 placed together, so it starts a little slower (BENCHMARKS.md)"
            );
        }
        println!("cargo:rustc-env=OATHDESK_CODE_LAYOUT=unordered: {why}");
    };
    if std::env::var("OATHDESK_CODE_ORDER").is_ok_and(|v| v == "0") {
        return unordered("OATHDESK_CODE_ORDER=0", false);
    }
    let manifest_dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let list = match std::fs::read_to_string(manifest_dir.join("code-order.txt")) {
        Ok(list) => list,
        Err(e) => return unordered(&format!("code-order.txt: {e}"), true),
    };
    let patterns = match code_order::patterns(&list) {
        Ok(patterns) if patterns.is_empty() => return unordered("code-order.txt is empty", true),
        Ok(patterns) => patterns,
        Err(e) => return unordered(&format!("code-order.txt, {e}"), true),
    };
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let script = out.join("code-order.ld");
    std::fs::write(&script, code_order::linker_script(&patterns)).expect("OUT_DIR is writable");
    // `-Wl,` splits its argument at commas.
    let Some(script) = script.to_str().filter(|s| !s.contains(',')) else {
        return unordered(
            "the build directory's path holds a comma or is not UTF-8",
            true,
        );
    };
    if let Err(why) = linker_takes_the_script(&out) {
        return unordered(&why, true);
    }
    println!("cargo:rustc-link-arg-bins=-Wl,-T,{script}");
    println!("cargo:rustc-env=OATHDESK_CODE_LAYOUT=ordered");
}

/// Links a tiny program the way this package's executable will be linked
/// (same rustc, target, flags and linker) with a script of the same form,
/// and checks that the section came out: the linker is chosen by rustc and
/// the user's configuration, so asking it is the only sure way to know.
fn linker_takes_the_script(out: &Path) -> Result<(), String> {
    let dir = out.join("code-order-probe");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let source = dir.join("probe.rs");
    std::fs::write(
        &source,
        "#[no_mangle]\n#[inline(never)]\npub extern \"C\" fn oathdesk_code_order_probe() {}\n\
         fn main() { oathdesk_code_order_probe() }\n",
    )
    .map_err(|e| e.to_string())?;
    let script = dir.join("probe.ld");
    std::fs::write(
        &script,
        code_order::linker_script(&["oathdesk_code_order_probe"]),
    )
    .map_err(|e| e.to_string())?;
    let program = dir.join("probe");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let mut command = std::process::Command::new(rustc);
    command
        .args([
            "--edition",
            "2021",
            "--crate-type",
            "bin",
            "-C",
            "opt-level=0",
        ])
        .args(["-C", "debuginfo=0", "--target"])
        .arg(std::env::var("TARGET").expect("cargo sets TARGET"))
        .arg("-o")
        .arg(&program)
        .arg("-C")
        .arg(format!("link-arg=-Wl,-T,{}", script.display()))
        .arg(&source);
    if let Ok(flags) = std::env::var("CARGO_ENCODED_RUSTFLAGS") {
        command.args(flags.split('\x1f').filter(|f| !f.is_empty()));
    }
    if let Ok(linker) = std::env::var("RUSTC_LINKER") {
        command.arg("-C").arg(format!("linker={linker}"));
    }
    let output = command
        .output()
        .map_err(|e| format!("rustc did not run: {e}"))?;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stderr);
        let line = said
            .lines()
            .map(str::trim)
            .find(|l| l.contains("error") && !l.starts_with("error: linking with"))
            .or_else(|| said.lines().next())
            .unwrap_or("no message")
            .to_owned();
        return Err(format!(
            "the linker does not take the layout script ({line})"
        ));
    }
    let linked = std::fs::read(&program).map_err(|e| e.to_string())?;
    let section = format!("{}\0", code_order::SECTION);
    if !linked
        .windows(section.len())
        .any(|w| w == section.as_bytes())
    {
        return Err("the linker took the layout script but made no section of it".into());
    }
    Ok(())
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
