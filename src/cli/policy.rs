//! `cipherlake policy check FILE`: reads a hospital's release policy and says what it allows.

use std::path::PathBuf;

use cipherlake::release::policy::Policy;

use super::Global;

#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// Check a policy file (TOML or JSON) and print warnings about what it allows.
    Check {
        /// The policy file.
        file: PathBuf,
    },
}

pub(crate) fn run(args: Args, _global: &Global) -> anyhow::Result<()> {
    match args.what {
        What::Check { file } => {
            let p = Policy::load(&file)?;
            println!(
                "{}: min_rows {}, min_owners {}, min_rows_per_owner {}, owner_breakdown {}",
                file.display(),
                p.min_rows,
                p.min_owners,
                p.min_rows_per_owner,
                p.owner_breakdown
            );
            if let Some(dp) = &p.dp {
                let sens: Vec<String> = dp
                    .sensitivity
                    .iter()
                    .map(|(m, s)| format!("{m} {s}"))
                    .collect();
                println!(
                    "differential privacy: ε {} per cell, budget ε {} per lake row{}{}; sensitivity: {} (counts of a flag: 1)",
                    dp.epsilon,
                    dp.budget,
                    dp.budget_per_requester
                        .map_or(String::new(), |b| format!(", ε {b} per requester")),
                    dp.window_days
                        .map_or(String::new(), |d| format!(", over the last {d} days")),
                    if sens.is_empty() {
                        "none declared".to_owned()
                    } else {
                        sens.join(", ")
                    }
                );
            }
            for w in p.warnings() {
                println!("warning: {w}");
            }
            Ok(())
        }
    }
}
