//! `oathdesk vault recovery`: break-glass recovery with shares of a key
//! held by several people (the scheme is in the vault library's
//! `recovery` module; this module prints and reads the shares).

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use oathdesk_formats::qr;
use oathdesk_vault::recovery::{self, ParsedShare, RecoveryShare, RecoveryStatus};
use serde_json::json;
use zeroize::Zeroizing;

use crate::commands::vault::InitArgs;
use crate::input::{self, rfc3339};
use crate::unlock::{VaultOptions, read_passphrase};

#[derive(Subcommand, Debug)]
pub enum RecoveryCommand {
    /// Make a recovery key, split it into shares and print them (admins only).
    #[command(after_help = "\
Each share is 24 words and a QR code; any THRESHOLD of them make a new admin with \
'oathdesk vault recovery use'. The shares are shown once and stored nowhere: hand each to \
its holder. Running it again replaces the recovery slot: the old shares stop working.

Examples:
  oathdesk vault recovery create --shares 5 --threshold 3
  oathdesk vault recovery create --shares 5 --threshold 3 --out-dir /media/usb/shares")]
    Create(CreateArgs),
    /// Break glass: rebuild the recovery key from shares and add a new admin.
    #[command(after_help = "\
Shares come from --share-file (repeatable) and then from standard input, one share (24 words) \
per line, until there are enough. The new admin's passphrase comes from --new-passphrase-file, \
OATHDESK_NEW_PASSPHRASE or a prompt.

Example:
  oathdesk vault recovery use --name carol --share-file share-1.txt --share-file share-4.txt")]
    Use(UseArgs),
    /// Whether a recovery slot exists, with N, K and its date (no secret).
    Status {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// How many shares to make (N).
    #[arg(long, value_name = "N")]
    pub shares: u8,
    /// How many shares open the slot (K, at least 2).
    #[arg(long, value_name = "K")]
    pub threshold: u8,
    /// Write each share to DIR (created, readable by you only) as share-I-of-N.txt and
    /// share-I-of-N.png instead of printing them.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct UseArgs {
    /// The new admin's name.
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// A file holding one share (as 'create --out-dir' wrote it); repeatable.
    #[arg(long, value_name = "FILE")]
    pub share_file: Vec<PathBuf>,
    /// File holding the new admin's passphrase.
    #[arg(long, value_name = "FILE")]
    pub new_passphrase_file: Option<PathBuf>,
    #[command(flatten)]
    pub kdf: InitArgs,
}

pub fn run(command: RecoveryCommand, options: &VaultOptions) -> Result<()> {
    match command {
        RecoveryCommand::Create(args) => create(args, options),
        RecoveryCommand::Use(args) => use_shares(args, options),
        RecoveryCommand::Status { json } => {
            let status = options.open()?.recovery_status()?;
            if json {
                println!("{}", json!({ "recovery_slot": status }));
            } else {
                match status {
                    Some(s) => println!("{}", describe(&s)),
                    None => println!(
                        "no recovery slot: make one with 'oathdesk vault recovery create --shares 5 --threshold 3'"
                    ),
                }
            }
            Ok(())
        }
    }
}

/// One line about the slot, for `status` and `operator list`.
pub fn describe(status: &RecoveryStatus) -> String {
    format!(
        "recovery slot: {} shares, any {} open it; set {}, created {} by {}",
        status.shares,
        status.threshold,
        status.set,
        rfc3339(status.created_at),
        status.created_by
    )
}

fn label(share: &RecoveryShare, status: &RecoveryStatus, vault: &str) -> String {
    format!(
        "oathdesk recovery share {} of {}, threshold {}, vault {vault}, set {}, created {}",
        share.number,
        status.shares,
        status.threshold,
        status.set,
        &rfc3339(status.created_at)[..10]
    )
}

/// The words in numbered rows of six, to copy by hand.
fn numbered(words: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::new());
    let words: Vec<&str> = words.split(' ').collect();
    for (row, chunk) in words.chunks(6).enumerate() {
        let line = Zeroizing::new(
            chunk
                .iter()
                .enumerate()
                .map(|(i, word)| format!("{:>2}. {word:<9}", row * 6 + i + 1))
                .collect::<Vec<_>>()
                .join(" "),
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn create(args: CreateArgs, options: &VaultOptions) -> Result<()> {
    let vault = options.location()?.to_string();
    if let Some(dir) = &args.out_dir {
        make_private_dir(dir)?;
    }
    let kit = options
        .unlock()?
        .recovery_create(args.shares, args.threshold, input::now())?;
    for share in &kit.shares {
        let title = label(share, &kit.status, &vault);
        let words = numbered(&share.words);
        match &args.out_dir {
            Some(dir) => {
                let stem = format!("share-{}-of-{}", share.number, kit.status.shares);
                let text = Zeroizing::new(format!("# {title}\n{}", words.as_str()));
                input::write_private(&dir.join(format!("{stem}.txt")), text.as_bytes())?;
                let png = qr::png(&share.words).map_err(|e| anyhow!("{e}"))?;
                input::write_private(&dir.join(format!("{stem}.png")), &png)?;
            }
            None => {
                println!("{title}\n{}", words.as_str());
                print!(
                    "{}",
                    qr::render_terminal(&share.words).map_err(|e| anyhow!("{e}"))?
                );
                println!();
            }
        }
    }
    eprintln!("oathdesk: {} (audited)", describe(&kit.status));
    if let Some(dir) = &args.out_dir {
        eprintln!(
            "oathdesk: wrote share-I-of-{}.txt and .png for each share to {}: print each, hand it to \
             its holder, then delete the files",
            kit.status.shares,
            dir.display()
        );
    } else {
        eprintln!(
            "oathdesk: hand each share to its holder; clear this terminal's scrollback afterwards"
        );
    }
    if kit.replaced {
        eprintln!("oathdesk: the earlier recovery slot was replaced: its shares open nothing now");
    }
    Ok(())
}

fn make_private_dir(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

fn use_shares(args: UseArgs, options: &VaultOptions) -> Result<()> {
    let mut vault = options.open()?;
    let Some(status) = vault.recovery_status()? else {
        bail!(
            "this vault has no recovery slot: an admin makes one with 'oathdesk vault recovery create'"
        );
    };
    let needed = usize::from(status.threshold);
    let mut shares: Vec<ParsedShare> = Vec::new();
    let have = |share: ParsedShare, shares: &mut Vec<ParsedShare>| {
        if shares.iter().any(|s| s.number() == share.number()) {
            eprintln!(
                "oathdesk: share {} was given already; it counts once",
                share.number()
            );
        } else {
            shares.push(share);
        }
    };
    for path in &args.share_file {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the share file {}", path.display()))?,
        );
        let share = recovery::parse_share(&format!("share file {}", path.display()), &text)?;
        have(share, &mut shares);
    }
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    let mut lines = stdin.lock().lines();
    while shares.len() < needed {
        if interactive {
            eprint!(
                "Share {} of the {needed} needed (24 words, then Enter): ",
                shares.len() + 1
            );
        }
        let Some(line) = lines.next() else { break };
        let line = Zeroizing::new(line?);
        if line.trim().is_empty() {
            continue;
        }
        match recovery::parse_share(&format!("share {} typed", shares.len() + 1), &line) {
            Ok(share) => have(share, &mut shares),
            Err(e) if interactive => eprintln!("oathdesk: {e}; type it again"),
            Err(e) => return Err(e.into()),
        }
    }
    let kdf = args.kdf.kdf()?;
    // Fewer than needed: the vault refuses, saying how many it needs.
    let passphrase = if shares.len() >= needed {
        read_passphrase(
            args.new_passphrase_file.as_ref(),
            "OATHDESK_NEW_PASSPHRASE",
            &format!("New passphrase for {}: ", args.name),
        )?
    } else {
        Zeroizing::new(String::new())
    };
    let session = vault.recover(
        &shares,
        &args.name,
        passphrase.as_bytes(),
        kdf,
        input::now(),
    )?;
    eprintln!(
        "oathdesk: break glass: {} is a new admin of the vault (audited as recovery.use); \
         give them a safe place for the passphrase, then make a new recovery set with \
         'oathdesk vault recovery create' if any share holder's envelope was opened",
        session.operator()
    );
    Ok(())
}
