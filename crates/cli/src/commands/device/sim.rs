//! `device sim`: the simulators of the Token2 devices, as files and as a local service.

use super::*;

pub(super) fn sim(command: SimCommand) -> Result<()> {
    match command {
        SimCommand::New {
            file,
            family,
            serial,
            options,
            force,
        } => {
            if file.exists() && !force {
                bail!(
                    "{} exists already (pass --force to replace it)",
                    file.display()
                );
            }
            let mut simulator = Simulator::new(family, serial.as_deref());
            if !options.is_empty() {
                apply_sim_options(&mut simulator, &options)?;
            }
            simulator.save(&file)?;
            println!(
                "created a simulated {} {} in {}: use --transport sim:{}",
                family.product(),
                simulator.serial(),
                file.display(),
                file.display()
            );
        }
        SimCommand::Press { file } => {
            let mut simulator = Simulator::load(&file)?;
            let outcome = simulator.press_button();
            simulator.save(&file)?;
            println!(
                "{}",
                match outcome {
                    ButtonOutcome::Nothing => "▲ pressed: nothing was waiting for confirmation",
                    ButtonOutcome::FactoryReset =>
                        "▲ pressed: factory reset done, every slot wiped",
                    ButtonOutcome::KeyChanged => "▲ pressed: the new customer key is in force",
                }
            );
        }
        SimCommand::Show { file, slot } => {
            let simulator = Simulator::load(&file)?;
            match simulator.display(slot, input::now()) {
                Display::Code(code) => println!("{code}"),
                Display::Empty => bail!("slot {slot} of {} holds no seed", simulator.serial()),
                Display::Locked => bail!("the screen of {} is locked", simulator.serial()),
            }
        }
        SimCommand::Serve { file } => serve(&file)?,
    }
    Ok(())
}

pub(super) fn apply_sim_options(simulator: &mut Simulator, options: &[String]) -> Result<()> {
    let mut object = serde_json::Map::new();
    for option in options {
        let (name, value) = option
            .split_once('=')
            .ok_or_else(|| anyhow!("--option {option}: use NAME=VALUE"))?;
        let value = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
        object.insert(name.replace('-', "_"), value);
    }
    let object = serde_json::Value::Object(object);
    match simulator {
        Simulator::Molto2(sim) => {
            sim.options = serde_json::from_value(object).map_err(|e| anyhow!("--option: {e}"))?;
            let profiles = usize::from(sim.options.profiles);
            sim.profiles.resize(profiles, Default::default());
            sim.attempts_left = sim.options.attempts;
        }
        Simulator::SingleProfile(sim) => {
            sim.options = serde_json::from_value(object).map_err(|e| anyhow!("--option: {e}"))?;
        }
    }
    Ok(())
}

/// The exec bridge's other end, for a simulator: one hex line in, one out.
pub(super) fn serve(file: &std::path::Path) -> Result<()> {
    use std::io::{BufRead, Write};
    let mut transport = SimTransport::open_file(file, None, None)?;
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = line.context("reading an APDU")?;
        let Some(command) = oathdesk_devices::hex::decode(&line) else {
            bail!(
                "the bridge got a line that is not hex ({} characters)",
                line.len()
            );
        };
        let response = transport.transmit(&command)?;
        writeln!(stdout, "{}", oathdesk_devices::hex::encode(&response))?;
        stdout.flush()?;
    }
    Ok(())
}
