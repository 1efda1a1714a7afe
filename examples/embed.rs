//! Embedding cipherlake in a Rust program: make a key, encrypt a synthetic extract into a lake,
//! build a DataFusion session with the encrypted aggregates, run SQL as the cloud would (public
//! key only), and decrypt the result as the key holder.
//!
//! Run with `cargo run --release --example embed`.

use cipherlake::lake::{decrypt_batch, encrypt_path, EncryptOptions, EncryptSpec};
use cipherlake::paillier::PrivateKey;
use cipherlake::sql::{self, KeyRing};
use cipherlake::synth;
use datafusion::arrow::util::pretty::print_batches;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;

    // The key holder: a 2048-bit key pair (in production: `cipherlake keygen`, or the threshold
    // ceremony, and the private key never leaves the holder).
    let private_key = PrivateKey::generate(2048)?;
    let public_key = private_key.public_key().clone();

    // A data owner: 2,000 synthetic admissions, cost and flags encrypted into the lake.
    let csv = dir.path().join("admissions.csv");
    synth::write_admissions(&csv, 0, 2_000, 42)?;
    let lake = dir.path().join("lake/hospital=a/admissions.parquet");
    let options = EncryptOptions {
        // cost at 2 decimal places; the integer and the flag as they are.
        columns: vec![
            EncryptSpec::new("cost", Some(2)),
            EncryptSpec::new("length_of_stay", None),
            EncryptSpec::new("diabetic", None),
        ],
        batch_size: 8192,
        progress: None,
        overwrite: false,
        signer: None,
    };
    encrypt_path(&public_key, &csv, &lake, &options)?;

    // The cloud: a session that knows only the public key.
    let mut keys = KeyRing::new();
    keys.add(public_key);
    let ctx = sql::session(keys.clone(), None);
    sql::register_table(
        &ctx,
        "admissions",
        dir.path().join("lake").to_str().unwrap_or_default(),
        &keys,
    )
    .await?;
    // Ordinary SQL: on encrypted columns SUM and AVG (and + - * inside them) run on ciphertexts.
    // `sql::plan` is `SessionContext::sql` plus the one step that needs the SQL text (`-x`).
    let encrypted = sql::plan(
        &ctx,
        "SELECT region, SUM(cost) AS total_cost, AVG(length_of_stay) AS mean_stay, \
         SUM(diabetic) AS diabetic, COUNT(*) AS n \
         FROM admissions GROUP BY region ORDER BY region",
    )
    .await?
    .collect()
    .await?;

    // Back at the key holder: decrypt every encrypted column of the result.
    let mut plain = Vec::new();
    for batch in &encrypted {
        plain.push(decrypt_batch(&private_key, batch, 1, "result")?);
    }
    print_batches(&plain)?;
    Ok(())
}
