//! `oathdesk-entra-sim`: the Entra sign-in and Graph hardware OATH simulator
//! as a program, to try `oathdesk entra` without a tenant.
//!
//! ```sh
//! OATHDESK_ENTRA_CLIENT_SECRET=demo cargo run -p oathdesk-entra-sim -- --user bob@contoso.com
//! ```
//!
//! It prints the environment to point oathdesk at it. The app it registers
//! has every permission oathdesk needs; its client secret is read from
//! OATHDESK_ENTRA_CLIENT_SECRET (never from the command line). Device-code
//! sign-ins are approved at once as `admin@contoso.com`, who holds the
//! Authentication Policy Administrator and Authentication Administrator roles.

use std::process::ExitCode;

use oathdesk_entra_sim::{Simulator, permissions, roles};

const CLIENT_ID: &str = "0a1b2c3d-0000-4000-8000-0000000000d1";

fn main() -> ExitCode {
    let mut port = 0u16;
    let mut users = Vec::new();
    let mut directory = 0usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => match args.next().and_then(|p| p.parse().ok()) {
                Some(p) => port = p,
                None => return usage("--port takes a number"),
            },
            "--user" => match args.next() {
                Some(upn) => users.push(upn),
                None => return usage("--user takes a UPN"),
            },
            "--directory" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) => directory = n,
                None => return usage("--directory takes a number of users"),
            },
            "--help" | "-h" => {
                println!(
                    "usage: oathdesk-entra-sim [--port N] [--user UPN]... [--directory N]\n\
                     --directory N adds N users with phones, employee ids and managers\n\
                     (user0@contoso.com … ; user0 manages user1-10, user1 manages 11-20, …).\n\
                     The app's client secret comes from OATHDESK_ENTRA_CLIENT_SECRET."
                );
                return ExitCode::SUCCESS;
            }
            other => return usage(&format!("unknown argument '{other}'")),
        }
    }
    let Ok(secret) = std::env::var("OATHDESK_ENTRA_CLIENT_SECRET") else {
        return usage(
            "set OATHDESK_ENTRA_CLIENT_SECRET to the secret the simulated app should accept",
        );
    };
    let simulator = Simulator::start_on(port);
    simulator.add_app(CLIENT_ID, &secret, &permissions::ALL);
    simulator.add_user("admin@contoso.com", true);
    simulator.set_roles(
        "admin@contoso.com",
        &[roles::AUTH_POLICY_ADMIN, roles::AUTH_ADMIN],
    );
    simulator.auto_approve("admin@contoso.com");
    for upn in &users {
        simulator.add_user(upn, false);
    }
    simulator.seed_directory(directory);
    println!("export OATHDESK_GRAPH_URL={}", simulator.url());
    println!("export OATHDESK_AUTHORITY_URL={}", simulator.url());
    println!("export OATHDESK_ENTRA_TENANT={}", simulator.tenant());
    println!("export OATHDESK_ENTRA_CLIENT_ID={CLIENT_ID}");
    eprintln!(
        "oathdesk-entra-sim: listening on {}; Ctrl-C stops it",
        simulator.url()
    );
    loop {
        std::thread::park();
    }
}

fn usage(message: &str) -> ExitCode {
    eprintln!("oathdesk-entra-sim: {message}");
    ExitCode::from(1)
}
