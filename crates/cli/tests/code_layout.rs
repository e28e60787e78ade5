//! The functions of the one-shot `oathdesk code` placed together
//! (crates/cli/build.rs, build/code_order.rs, code-order.txt): the list
//! reads, the linker script says what it should, and in the executable the
//! tests run, every function a pattern names lies in the section made for
//! them.

#[path = "../build/code_order.rs"]
mod code_order;

use code_order::{SECTION, linker_script, matches, patterns};

const LIST: &str = include_str!("../code-order.txt");

#[test]
fn the_list_reads_and_names_the_entry_of_code() {
    let listed = patterns(LIST).expect("code-order.txt reads");
    assert!(listed.len() >= 20, "{} patterns", listed.len());
    assert!(listed.contains(&"__wrap_main"), "{listed:?}");
    assert!(
        listed
            .iter()
            .any(|p| p.starts_with("_ZN8oathdesk") && p.ends_with("17h*")),
        "our own functions are listed with their hash as a glob: {listed:?}"
    );
}

#[test]
fn patterns_skip_comments_and_refuse_what_a_script_would_misread() {
    let list = "# a comment\n\n_ZN8oathdesk4main17h*  # oathdesk::main\n  __wrap_main\n";
    assert_eq!(
        patterns(list).unwrap(),
        ["_ZN8oathdesk4main17h*", "__wrap_main"]
    );
    for bad in ["two words", "f(x)", "a;b", "\"quoted\"", "{", "a/b"] {
        let error = patterns(&format!("__wrap_main\n{bad}\n")).unwrap_err();
        assert!(error.starts_with("line 2: "), "{bad}: {error}");
    }
}

#[test]
fn the_script_inserts_one_section_in_the_list_order() {
    let script = linker_script(&["b17h*", "a"]);
    let b = script
        .find("*(.text.b17h* .text.unlikely.b17h*)")
        .expect("b placed");
    let a = script
        .find("*(.text.a .text.unlikely.a)")
        .expect("a placed, cold or not");
    assert!(b < a, "{script}");
    assert!(script.contains(&format!("  {SECTION} :\n")), "{script}");
    assert!(
        script.trim_end().ends_with("INSERT BEFORE .text;"),
        "{script}"
    );
    assert_eq!(script.matches('{').count(), script.matches('}').count());
}

#[test]
fn globs_match_as_the_linker_reads_them() {
    let hash = "_ZN8oathdesk4main17h0123456789abcdefE";
    assert!(matches("_ZN8oathdesk4main17h*", hash));
    assert!(matches("_ZN8oathdesk4main17h*", &format!("{hash}.llvm.42")));
    assert!(!matches(
        "_ZN8oathdesk4main17h*",
        "_ZN8oathdesk4main4plan17h0E"
    ));
    assert!(matches("__wrap_main", "__wrap_main"));
    assert!(!matches("__wrap_main", "__wrap_main2"));
    assert!(matches("a*b*c", "aXbYc") && !matches("a*b*c", "aXcYb"));
    assert!(matches("ab*b", "abb") && !matches("ab*b", "ab"));
}

/// A section's address range, by name.
struct Section {
    name: String,
    start: u64,
    size: u64,
}

/// The sections and function symbols (name, address) of a little-endian
/// ELF64 executable: enough of the format for this check.
fn sections_and_functions(file: &[u8]) -> (Vec<Section>, Vec<(String, u64)>) {
    let u16_at = |at: usize| u16::from_le_bytes(file[at..at + 2].try_into().unwrap()) as usize;
    let u32_at = |at: usize| u32::from_le_bytes(file[at..at + 4].try_into().unwrap()) as usize;
    let u64_at = |at: usize| u64::from_le_bytes(file[at..at + 8].try_into().unwrap());
    assert_eq!(&file[..4], b"\x7fELF");
    assert_eq!((file[4], file[5]), (2, 1), "ELF64, little-endian");
    let (table, entry, count) = (u64_at(0x28) as usize, u16_at(0x3a), u16_at(0x3c));
    let header = |i: usize| table + i * entry;
    let name_at = |strings: usize, at: usize| {
        let text = &file[strings + at..];
        String::from_utf8_lossy(&text[..text.iter().position(|&b| b == 0).unwrap()]).into_owned()
    };
    let section_names = u64_at(header(u16_at(0x3e)) + 24) as usize;
    let mut sections = Vec::new();
    let mut functions = Vec::new();
    for i in 0..count {
        let h = header(i);
        sections.push(Section {
            name: name_at(section_names, u32_at(h)),
            start: u64_at(h + 16),
            size: u64_at(h + 32),
        });
        // SHT_SYMTAB: 24-byte symbols, names in the section of sh_link.
        if u32_at(h + 4) == 2 {
            let (offset, size) = (u64_at(h + 24) as usize, u64_at(h + 32) as usize);
            let strings = u64_at(header(u32_at(h + 40)) + 24) as usize;
            for symbol in (offset..offset + size).step_by(24) {
                // STT_FUNC
                if file[symbol + 4] & 0xf == 2 {
                    functions.push((name_at(strings, u32_at(symbol)), u64_at(symbol + 8)));
                }
            }
        }
    }
    (sections, functions)
}

#[test]
fn the_listed_functions_lie_together_where_the_linker_could_place_them() {
    let file = std::fs::read(env!("CARGO_BIN_EXE_oathdesk")).unwrap();
    let (sections, functions) = sections_and_functions(&file);
    let placed = sections.iter().find(|s| s.name == SECTION);
    // build.rs says whether the linker took the script (a cargo warning
    // says why not); on Linux with glibc and GNU ld or lld it does.
    let layout = option_env!("OATHDESK_CODE_LAYOUT").unwrap_or("unordered: not Linux with glibc");
    if layout != "ordered" {
        assert!(placed.is_none(), "{layout}, yet {SECTION} is there");
        return;
    }
    let placed = placed.unwrap_or_else(|| panic!("no {SECTION} though build.rs ordered it"));
    let text = sections.iter().find(|s| s.name == ".text").expect(".text");
    assert!(placed.start < text.start, "{SECTION} comes before .text");
    let listed = patterns(LIST).unwrap();
    let mut inside = 0;
    for (name, address) in &functions {
        if listed.iter().any(|p| matches(p, name)) {
            assert!(
                (placed.start..placed.start + placed.size).contains(address),
                "{name} at {address:#x}, outside {SECTION} ({:#x}, {} bytes)",
                placed.start,
                placed.size
            );
            inside += 1;
        }
    }
    assert!(
        functions.iter().any(|(n, a)| n == "__wrap_main"
            && *a >= placed.start
            && *a < placed.start + placed.size),
        "the entry of `code` is placed"
    );
    // This test binary is a debug build: fewer functions are inlined, so at
    // least as many of the release profile's functions exist to be placed.
    assert!(
        inside >= listed.len() / 2,
        "{inside} of {} patterns placed",
        listed.len()
    );
}
