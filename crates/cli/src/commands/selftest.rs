//! `oathdesk selftest`: the RFC conformance vectors, computed by this build.

use anyhow::{Result, bail};
use clap::Args;
use oathdesk_otp::selftest;

/// Run every RFC 4226 Appendix D and RFC 6238 Appendix B vector; exit 1 if
/// any fails.
#[derive(Args, Debug)]
pub struct SelftestArgs {
    /// List every vector, not only failures.
    #[arg(long, short)]
    pub verbose: bool,
}

pub fn run(args: SelftestArgs) -> Result<()> {
    let results = selftest::run();
    let failed = results.iter().filter(|r| !r.passed()).count();
    for result in &results {
        if !result.passed() {
            println!(
                "FAIL  {}: expected {}, computed {}",
                result.name, result.expected, result.actual
            );
        } else if args.verbose {
            println!("ok    {}: {}", result.name, result.actual);
        }
    }
    println!(
        "selftest: {} vectors, {} passed, {failed} failed",
        results.len(),
        results.len() - failed
    );
    if failed > 0 {
        bail!("{failed} conformance vector(s) failed: this build computes wrong codes");
    }
    Ok(())
}
