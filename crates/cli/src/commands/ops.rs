//! `oathdesk completions` and `oathdesk man`: shell completions and man
//! pages, generated from the same clap definitions that parse the command
//! line, so they can never disagree with it (nothing here is written by
//! hand).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use clap_complete::Shell;

/// Print the completion script for a shell.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  oathdesk completions bash > /etc/bash_completion.d/oathdesk
  oathdesk completions zsh > \"${fpath[1]}/_oathdesk\"
  oathdesk completions fish > ~/.config/fish/completions/oathdesk.fish
  oathdesk completions powershell >> $PROFILE")]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

/// Write the man pages: oathdesk.1 and one page per subcommand.
#[derive(Args, Debug)]
#[command(after_help = "\
Without --out, the top page goes to standard output.

Examples:
  oathdesk man | man -l -
  oathdesk man --out /usr/local/share/man/man1")]
pub struct ManArgs {
    /// Write every page into DIR (created if missing) and list the files written.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Prints the completion script for `args.shell` to standard output.
pub fn completions(args: CompletionsArgs, mut command: clap::Command) -> Result<()> {
    let name = command.get_name().to_owned();
    // Into memory first: clap_complete panics on a write error, and a
    // closed pipe (`| head`) is no reason for a panic.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, name, &mut script);
    to_stdout(&script).context("cannot write the completion script")
}

/// Writes the man pages into `--out`, or the top page to standard output.
pub fn man(args: ManArgs, command: clap::Command) -> Result<()> {
    // 'help' as a subcommand would get a page of its own saying nothing.
    let mut command = command.disable_help_subcommand(true);
    // Building propagates the global options (--vault, --server, …) into
    // every subcommand, so each page lists all that the command accepts.
    command.build();
    let Some(dir) = args.out else {
        let mut page = Vec::new();
        page_of(command).render(&mut page)?;
        return to_stdout(&page).context("cannot write the man page");
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the folder {}", dir.display()))?;
    let mut written = Vec::new();
    write_pages(command, &dir, &mut written)?;
    for path in written {
        println!("{}", path.display());
    }
    Ok(())
}

/// One page for `command` (named after its path, `oathdesk-token-add.1`),
/// then one for each of its visible subcommands, depth first.
fn write_pages(command: clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> Result<()> {
    let subcommands: Vec<clap::Command> = command
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set())
        .cloned()
        .collect();
    let path = page_of(command)
        .generate_to(dir)
        .with_context(|| format!("cannot write a man page into {}", dir.display()))?;
    written.push(path);
    for sub in subcommands {
        write_pages(sub, dir, written)?;
    }
    Ok(())
}

/// The page of `command`, its footer naming oathdesk and its version
/// (clap_mangen would name the bare subcommand: "add 0.1.0"). No date, so
/// that a rebuild makes the same pages.
fn page_of(command: clap::Command) -> clap_mangen::Man {
    clap_mangen::Man::new(command)
        .source(format!("oathdesk {}", env!("CARGO_PKG_VERSION")))
        .manual("oathdesk")
}

/// Writes `bytes` to standard output; a reader that went away (`| head`)
/// is not an error.
fn to_stdout(bytes: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
