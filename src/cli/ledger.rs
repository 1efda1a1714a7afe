//! `cipherlake ledger verify FILE`: checks the consortium's release ledger and lists its releases.

use std::collections::BTreeMap;
use std::path::PathBuf;

use cipherlake::release::ledger::{Head, Ledger};

use super::Global;

#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// Check every entry's link and signature against the roster, and list the releases.
    Verify {
        /// The ledger file.
        ledger: PathBuf,
        #[command(flatten)]
        roster: super::owners::RosterFlags,
        /// A head recorded earlier (SEQ:SHA256, as a hospital's audit log has it): the ledger
        /// must still hold that entry unchanged.
        #[arg(long, value_name = "SEQ:SHA256")]
        head: Option<Head>,
    },
}

pub(crate) fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    match args.what {
        What::Verify {
            ledger,
            roster,
            head,
        } => {
            let roster = roster
                .load()?
                .ok_or_else(|| anyhow::anyhow!("--roster is needed to check the signatures"))?;
            let (releases, last) = Ledger::new(&ledger).read(&roster, head.as_ref())?;
            let mut by_party: BTreeMap<&str, usize> = BTreeMap::new();
            let mut requests = std::collections::BTreeSet::new();
            for r in &releases {
                *by_party.entry(r.entry.party.as_str()).or_default() += 1;
                requests.insert(r.entry.request_id.as_str());
            }
            let parties: Vec<String> = by_party.iter().map(|(p, n)| format!("{p} ({n})")).collect();
            match last {
                Some(h) => println!(
                    "{}: {} entries, chain and signatures intact; {} request(s) released, entries by {}; head {h}",
                    ledger.display(),
                    releases.len(),
                    requests.len(),
                    parties.join(", ")
                ),
                None => println!("{}: empty", ledger.display()),
            }
            if !global.quiet {
                for r in &releases {
                    eprintln!(
                        "  entry {}: `{}` released request {}… ({} cell(s)): {}",
                        r.seq,
                        r.entry.party,
                        &r.entry.request_id[..r.entry.request_id.len().min(16)],
                        r.entry.cells.len(),
                        r.entry.sql.split_whitespace().collect::<Vec<_>>().join(" ")
                    );
                }
            }
            Ok(())
        }
    }
}
