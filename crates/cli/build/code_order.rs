//! The functions the one-shot `oathdesk code` runs, placed together at the
//! start of the executable's code (crates/cli/build.rs; the list is
//! crates/cli/code-order.txt, made by bench/code-order.sh from a profile).
//!
//! Why: those few dozen functions are otherwise spread over 16 MB of
//! `.text`, and each page the process touches for the first time is a page
//! fault (BENCHMARKS.md, "the loader and the runtime").
//!
//! How: rustc puts every function in a section of its own, named
//! `.text.SYMBOL` (`.text.unlikely.SYMBOL` if it is cold). A linker script that only adds an output section and
//! `INSERT`s it before `.text` keeps the linker's default layout for
//! everything else; GNU ld and lld both read it. Its input section patterns
//! are globs, so the list can name `_ZN8oathdesk4main17h*` and stay right
//! when a new compiler or a changed dependency moves the hash at the end of
//! a mangled name (lld's `--symbol-ordering-file` would need every exact
//! name, which a build script cannot know before the link).
//!
//! Pure functions: build.rs does the reading, writing and probing, and
//! tests/code_layout.rs checks these.

/// The output section that holds the listed functions, in the list's order.
pub const SECTION: &str = ".text.oathdesk_code";

/// The symbol patterns of the list: one a line, `#` starts a comment, `*`
/// matches any run of characters. A pattern is refused, with its line
/// number, if it holds anything but the characters of mangled Rust symbols
/// and `*`: a linker script reads `(`, `)`, `;`, spaces and quotes as syntax,
/// so such a name could not be placed as written.
pub fn patterns(list: &str) -> Result<Vec<&str>, String> {
    let mut patterns = Vec::new();
    for (index, line) in list.lines().enumerate() {
        let pattern = line.split('#').next().unwrap_or_default().trim();
        if pattern.is_empty() {
            continue;
        }
        let symbol_text = |b: u8| b.is_ascii_alphanumeric() || b"_.$*".contains(&b);
        if !pattern.bytes().all(symbol_text) {
            return Err(format!(
                "line {}: '{pattern}' is not a symbol pattern (letters, digits, '_', '.', '$' \
                 and '*' only)",
                index + 1
            ));
        }
        patterns.push(pattern);
    }
    Ok(patterns)
}

/// The linker script that places the sections of `patterns`' functions, in
/// that order, in [`SECTION`] just before `.text`. A section matched by an
/// earlier pattern stays where that one put it.
pub fn linker_script(patterns: &[&str]) -> String {
    let mut script = format!(
        "/* oathdesk (crates/cli/build.rs): the functions of the one-shot `oathdesk code` first,\n   \
         from crates/cli/code-order.txt */\nSECTIONS\n{{\n  {SECTION} :\n  {{\n"
    );
    for pattern in patterns {
        // LLVM names a cold function's section `.text.unlikely.SYMBOL`.
        script.push_str(&format!(
            "    *(.text.{pattern} .text.unlikely.{pattern})\n"
        ));
    }
    script.push_str("  }\n}\nINSERT BEFORE .text;\n");
    script
}

/// Whether `name` matches `pattern`, where `*` matches any run of
/// characters (as the linker's glob does for these patterns).
pub fn matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}
