//! `cipherlake audit verify LOG`: checks a hospital's hash-chained audit log.

use std::path::PathBuf;

use cipherlake::release::audit::{self, Head};

use super::Global;

#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// Check that no entry of the log was edited, removed, inserted or reordered.
    Verify {
        /// The audit log (audit.log beside the share file, or `partial-decrypt --audit-log`).
        log: PathBuf,
        /// A head recorded earlier (SEQ:SHA256, as `partial-decrypt` prints it): the log must
        /// still hold that entry unchanged, so nothing was cut from its end since.
        #[arg(long, value_name = "SEQ:SHA256")]
        head: Option<Head>,
    },
}

pub(crate) fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    match args.what {
        What::Verify { log, head } => {
            let checked = audit::verify(&log, head.as_ref())?;
            match &checked.head {
                Some(h) => println!(
                    "{}: {} entries, chain intact; head {h}",
                    log.display(),
                    checked.entries
                ),
                None => println!("{}: empty", log.display()),
            }
            if head.is_none() && !global.quiet {
                eprintln!("(entries cut from the end are caught only with --head: compare with a head recorded elsewhere)");
            }
            Ok(())
        }
    }
}
