//! Threshold decryption of a query result file. Each party checks the request (its key, every
//! ciphertext's validity, and its release policy: only aggregates over at least `min_rows` rows,
//! never individual values) and writes its partial decryptions with **one** batched proof, bound
//! to the result file, the request and the party's policy, and sealed to the requester's age
//! key. `combine` opens them with the requester's secret, verifies each party's batch, needs
//! `needed` distinct parties, and turns the encrypted cells into plaintext, suppressing small
//! counts under the strictest policy of the parties used.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::Field;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rayon::prelude::*;
use rug::Integer;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ledger::{suppress_complements, CellKey, Relation};
use super::noise::{CellNoise, Mechanism, NoiseMap};
use super::policy::Policy;
use crate::error::{join_limited, Error, Result};
use crate::lake::decrypt::{binary_values, decrypted_schema, plain_column};
use crate::lake::io::Progress;
use crate::lake::schema::{AggregateValue, EncryptedColumn};
use crate::paillier::threshold::{
    combine, params, partial_decrypt_batch, verify_batch, BatchProof, KeyShare,
};
use crate::paillier::wire::b64_int;
use crate::paillier::{Ciphertext, PublicKey};

/// `kind` of a partial decryption file.
pub const PARTIAL_KIND: &str = "cipherlake.partial_decryption";

/// One party's partial decryptions of every encrypted cell of one result file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialFile {
    /// Always [`PARTIAL_KIND`].
    pub kind: String,
    /// Format version (3: one batched proof, bound to the request and the policy; sealed).
    pub version: u32,
    /// The key id of the threshold key.
    pub key_id: String,
    /// Party name.
    pub party: String,
    /// Party index (1-based).
    pub index: usize,
    /// Lowercase hex SHA-256 of the result file these partials are for.
    pub result_sha256: String,
    /// The id of the decryption request the party re-verified, if it was given one (bound into
    /// the proof, so that a partial cannot be replayed onto another request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The release policy the party applied (its digest is bound into the proof).
    pub policy: Policy,
    /// The age recipient the partials are sealed to (the request's requester), if sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_to: Option<String>,
    /// The partials and their proof, age-encrypted to `sealed_to` (base64url of the age file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
    /// The partials and their proof in the clear (no requester key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<Partials>,
}

/// A party's partial decryptions and the one proof that covers them.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partials {
    /// One entry per encrypted, non-NULL cell, in result order.
    pub cells: Vec<PartialCell>,
    /// The batched proof (absent when there are no cells).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<BatchProof>,
    /// What subtraction can derive among the request's count cells (from the party's
    /// re-verification), for complementary suppression in `combine`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relations: Vec<Relation>,
}

/// A partial decryption of one cell.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialCell {
    /// Column name.
    pub column: String,
    /// 0-based row in the result.
    pub row: u64,
    /// c_i (base64url).
    #[serde(with = "b64_int")]
    pub value: Integer,
    /// The differential-privacy noise the cell was decrypted with: the party decrypted
    /// `cell · noise`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<CellNoise>,
}

/// An encrypted cell of a result.
struct Cell {
    column: String,
    row: u64,
    ciphertext: Ciphertext,
    rows: Option<u64>,
    scale: u32,
    /// A count (or the share behind an AVG of a flag: times its rows, a count).
    count: bool,
}

/// The result file: its hash, batches and encrypted cells.
#[derive(Clone)]
pub struct ResultFile {
    name: String,
    sha256: String,
    batches: Vec<RecordBatch>,
}

impl ResultFile {
    /// Reads a result (a Parquet file from `cipherlake query`); `name` is used in messages.
    pub fn read(name: &str, bytes: Bytes) -> Result<Self> {
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .map_err(|e| Error::Data(format!("{name}: not a Parquet result file: {e}")))?;
        let schema = builder.schema().clone();
        let mut batches = builder
            .build()?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        if batches.is_empty() {
            // A result with no rows (no group matched) still has its columns: it is released as
            // an empty table, not refused as a broken file.
            batches.push(RecordBatch::new_empty(schema));
        }
        Ok(ResultFile {
            name: name.into(),
            sha256,
            batches,
        })
    }

    /// Lowercase hex SHA-256 of the file.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// How many encrypted, non-NULL cells it holds.
    pub fn encrypted_cells(&self) -> Result<usize> {
        let mut n = 0;
        each_encrypted_cell(&self.name, &self.batches, |_, _, _, _| {
            n += 1;
            Ok(())
        })?;
        Ok(n)
    }

    /// The batches as read.
    pub fn batches(&self) -> &[RecordBatch] {
        &self.batches
    }

    /// The same file with its batches replaced by `batches` (the same rows, under a schema a
    /// party derived itself).
    pub fn with_batches(self, batches: Vec<RecordBatch>) -> Self {
        ResultFile { batches, ..self }
    }

    fn cells(&self, pk: &PublicKey) -> Result<Vec<Cell>> {
        // A proof binds a cell by column name and row: two columns of one name would share
        // bindings, and a partial for one could be presented as the other's.
        if let Some(batch) = self.batches.first() {
            let mut names = HashSet::new();
            for f in batch.schema().fields() {
                if !names.insert(f.name().clone()) {
                    return Err(Error::Data(format!(
                        "{}: two columns are named `{}`; give each result column its own name (AS …)",
                        self.name,
                        f.name()
                    )));
                }
            }
        }
        if let Some(batch) = self.batches.first() {
            for field in batch.schema().fields() {
                match EncryptedColumn::from_field(field)? {
                    Some(col) if col.key_id != pk.key_id() => {
                        return Err(Error::KeyMismatch {
                            expected: pk.key_id().into(),
                            found: col.key_id,
                            context: format!(
                                " ({}: column `{}` is encrypted under another key)",
                                self.name,
                                field.name()
                            ),
                        })
                    }
                    _ => {}
                }
            }
        }
        let mut cells = Vec::new();
        each_encrypted_cell(&self.name, &self.batches, |field, col, row, bytes| {
            let at = || format!("{}: row {}, column `{}`", self.name, row + 1, field.name());
            let (ct, rows) = match col.aggregate {
                Some(_) => {
                    let v = AggregateValue::split(bytes, pk.ciphertext_width())
                        .map_err(|e| Error::Data(format!("{}: {e}", at())))?;
                    (v.ciphertext, Some(v.rows))
                }
                None => (bytes, None),
            };
            let ciphertext = pk
                .ciphertext_from_le_bytes(ct)
                .map_err(|e| Error::Data(format!("{}: {e}", at())))?;
            cells.push(Cell {
                column: field.name().clone(),
                row,
                ciphertext,
                rows,
                scale: col.scale,
                count: col.aggregate.is_some_and(|a| a.is_count()),
            });
            Ok(())
        })?;
        Ok(cells)
    }
}

/// Calls `f(field, column, row, bytes)` for every encrypted, non-NULL cell of `batches`, rows
/// numbered from 0 across the batches; `name` names the result in messages.
pub(crate) fn each_encrypted_cell(
    name: &str,
    batches: &[RecordBatch],
    mut f: impl FnMut(&Field, &EncryptedColumn, u64, &[u8]) -> Result<()>,
) -> Result<()> {
    let mut offset = 0u64;
    for batch in batches {
        let schema = batch.schema();
        for (field, array) in schema.fields().iter().zip(batch.columns()) {
            let Some(col) = EncryptedColumn::from_field(field)? else {
                continue;
            };
            let values = binary_values(array).ok_or_else(|| {
                Error::Data(format!("{name}: column `{}` is not binary", field.name()))
            })?;
            for (i, v) in values.iter().enumerate() {
                if let Some(bytes) = v {
                    f(field, &col, offset + i as u64, bytes)?;
                }
            }
        }
        offset += batch.num_rows() as u64;
    }
    Ok(())
}

/// The partial decryption format this build writes and reads.
pub const PARTIAL_VERSION: u32 = 3;

/// What ties a party's batch to one result, one request and one policy:
/// `result SHA-256 (hex) ‖ 0 ‖ request id (hex, or nothing) ‖ 0 ‖ policy digest (32 bytes)`.
fn binding(result_sha256: &str, request_id: Option<&str>, policy: &Policy) -> Vec<u8> {
    let mut b = result_sha256.as_bytes().to_vec();
    b.push(0);
    b.extend_from_slice(request_id.unwrap_or("").as_bytes());
    b.push(0);
    b.extend_from_slice(&policy.digest());
    b
}

/// What names one cell inside a batch: `column ‖ 0 ‖ row (8 bytes)`, then, for a cell decrypted
/// with noise, `0 ‖ the noise's descriptor` (its mechanism, and the ledger entry it is pinned to).
fn cell_name(column: &str, row: u64, noise: Option<&CellNoise>) -> Vec<u8> {
    let mut b = column.as_bytes().to_vec();
    b.push(0);
    b.extend_from_slice(&row.to_be_bytes());
    if let Some(n) = noise {
        b.push(0);
        b.extend_from_slice(&n.descriptor());
    }
    b
}

/// The ciphertext a party decrypts for `cell`: the cell itself, or `cell · noise`.
fn noisy<'a>(
    pk: &PublicKey,
    c: &'a Ciphertext,
    noise: Option<&CellNoise>,
) -> Result<Cow<'a, Ciphertext>> {
    match noise {
        None => Ok(Cow::Borrowed(c)),
        Some(n) => Ok(Cow::Owned(
            pk.add(c, &pk.ciphertext_from_integer(n.noise.clone())?),
        )),
    }
}

/// The disclosure policy: every encrypted cell must be an aggregate over at least `min_rows`
/// rows. Returns the offending cells, described.
fn policy_violations(cells: &[Cell], min_rows: u64) -> Vec<String> {
    cells
        .iter()
        .filter_map(|c| match c.rows {
            None => Some(format!(
                "row {}, column `{}`: an individual encrypted value, not an aggregate",
                c.row + 1,
                c.column
            )),
            Some(r) if r < min_rows => Some(format!(
                "row {}, column `{}`: {r} rows",
                c.row + 1,
                c.column
            )),
            Some(_) => None,
        })
        .collect()
}

/// Party `share` partially decrypts every encrypted cell of `result`, after checking the key and
/// the policy, with one batched proof; sealed to `recipient` (an age X25519 recipient) when
/// given. With `noise` (every cell's), it decrypts each cell times its noise. `progress` is
/// called with the number of cells done.
#[allow(clippy::too_many_arguments)]
pub fn partial_decrypt_result(
    pk: &PublicKey,
    share: &KeyShare,
    result: &ResultFile,
    policy: &Policy,
    request_id: Option<&str>,
    recipient: Option<&str>,
    noise: Option<&NoiseMap>,
    relations: &[Relation],
    progress: Option<Progress>,
) -> Result<PartialFile> {
    share.check_against(pk)?;
    let cells = result.cells(pk)?;
    let bad = policy_violations(&cells, policy.min_rows);
    if !bad.is_empty() {
        return Err(Error::PolicyRefused {
            result: result.name.clone(),
            min_rows: policy.min_rows,
            violations: bad,
        });
    }
    let recipient = recipient
        .map(super::requester::parse_recipient)
        .transpose()?;
    let noise_of = |c: &Cell| -> Result<Option<&CellNoise>> {
        noise
            .map(|n| {
                n.get(&(c.column.clone(), c.row)).ok_or_else(|| {
                    Error::Data(format!(
                        "{}: row {}, column `{}` has no noise",
                        result.name,
                        c.row + 1,
                        c.column
                    ))
                })
            })
            .transpose()
    };
    if let Some(n) = noise {
        if n.len() != cells.len() {
            return Err(Error::Data(format!(
                "{}: noise for {} cell(s), the result has {} encrypted cell(s)",
                result.name,
                n.len(),
                cells.len()
            )));
        }
    }
    let noises: Vec<Option<&CellNoise>> = cells.iter().map(noise_of).collect::<Result<_>>()?;
    let decrypted: Vec<Cow<Ciphertext>> = cells
        .iter()
        .zip(&noises)
        .map(|(c, n)| noisy(pk, &c.ciphertext, *n))
        .collect::<Result<_>>()?;
    let named: Vec<(&Ciphertext, Vec<u8>)> = cells
        .iter()
        .zip(&noises)
        .zip(&decrypted)
        .map(|((c, n), d)| (d.as_ref(), cell_name(&c.column, c.row, *n)))
        .collect();
    let (values, proof) = partial_decrypt_batch(
        pk,
        share,
        &named,
        &binding(&result.sha256, request_id, policy),
        progress.as_deref().map(|p| p as &(dyn Fn(u64) + Sync)),
    )?;
    let partials = Partials {
        cells: cells
            .iter()
            .zip(values)
            .zip(&noises)
            .map(|((c, value), n)| PartialCell {
                column: c.column.clone(),
                row: c.row,
                value,
                noise: n.cloned(),
            })
            .collect(),
        proof,
        relations: relations.to_vec(),
    };
    let (sealed_to, sealed, open) = match &recipient {
        Some(r) => {
            let json = zeroize::Zeroizing::new(
                serde_json::to_vec(&partials)
                    .map_err(|e| Error::Data(format!("cannot write partials: {e}")))?,
            );
            let sealed = age::encrypt(r, &json)
                .map_err(|e| Error::Data(format!("cannot seal the partials: {e}")))?;
            (
                Some(r.to_string()),
                Some(URL_SAFE_NO_PAD.encode(sealed)),
                None,
            )
        }
        None => (None, None, Some(partials)),
    };
    Ok(PartialFile {
        kind: PARTIAL_KIND.into(),
        version: PARTIAL_VERSION,
        key_id: pk.key_id().into(),
        party: share.party().into(),
        index: share.index(),
        result_sha256: result.sha256.clone(),
        request_id: request_id.map(str::to_owned),
        policy: policy.clone(),
        sealed_to,
        sealed,
        open,
    })
}

/// One party's verified partial decryptions.
struct VerifiedParty {
    index: usize,
    party: String,
    policy: Policy,
    values: BTreeMap<CellKey, Integer>,
    noise: BTreeMap<CellKey, Option<CellNoise>>,
    relations: Vec<Relation>,
}

/// What combining did.
#[derive(Debug, Default)]
pub struct Combined {
    /// The plaintext result.
    pub batches: Vec<RecordBatch>,
    /// Parties whose partials were used.
    pub parties: Vec<String>,
    /// Partials given but not needed (not verified), by file.
    pub unused: Vec<String>,
    /// Partials rejected, each with its file, party and reason (combining went on without them).
    pub rejected: Vec<String>,
    /// Cells suppressed as small counts.
    pub suppressed: usize,
    /// Of which suppressed only so that no small count can be derived from the others
    /// (complementary suppression).
    pub complementary: usize,
    /// Per result column decrypted with differential-privacy noise: its mechanism, its decimal
    /// scale, how many cells, and how many of those repeat an earlier release's noise.
    pub noise: BTreeMap<String, NoiseSummary>,
}

/// The noise a result column was released with.
#[derive(Clone, Debug, PartialEq)]
pub struct NoiseSummary {
    /// The mechanism (of its first cell; every cell of a column shares it).
    pub mechanism: Mechanism,
    /// The column's decimal scale.
    pub scale: u32,
    /// Noisy cells.
    pub cells: usize,
    /// Of which pinned to an earlier release (the same noisy answer again).
    pub pinned: usize,
}

/// Opens a party's partials: the clear ones, or the sealed ones with the requester's identity.
fn open_partials<'a>(
    who: &str,
    p: &'a PartialFile,
    identity: Option<&age::x25519::Identity>,
) -> Result<Cow<'a, Partials>> {
    match (&p.open, &p.sealed) {
        (Some(open), None) => Ok(Cow::Borrowed(open)),
        (None, Some(sealed)) => {
            let Some(identity) = identity else {
                return Err(Error::Data(format!(
                    "{who}: sealed to the requester ({}); combining needs the requester's secret key",
                    p.sealed_to.as_deref().unwrap_or("?")
                )));
            };
            let bytes = URL_SAFE_NO_PAD.decode(sealed).map_err(|_| {
                Error::Data(format!("{who}: its sealed partials are not base64url"))
            })?;
            let json = zeroize::Zeroizing::new(age::decrypt(identity, &bytes).map_err(|e| {
                Error::Data(format!(
                    "{who}: cannot open its sealed partials with the requester's key ({e}): sealed to another requester?"
                ))
            })?);
            serde_json::from_slice(&json)
                .map_err(|e| Error::Data(format!("{who}: its sealed partials are not valid: {e}")))
        }
        _ => Err(Error::Data(format!(
            "{who}: a partial file holds either sealed or open partials"
        ))),
    }
}

/// Checks one party's partial file against the result and verifies its batched proof.
#[allow(clippy::too_many_arguments)]
fn verify_party(
    pk: &PublicKey,
    result: &ResultFile,
    cells: &[Cell],
    file: &str,
    p: &PartialFile,
    request: Option<&str>,
    identity: Option<&age::x25519::Identity>,
    progress: Option<&Progress>,
) -> Result<VerifiedParty> {
    let th = params(pk)?;
    let who = format!("{file} (party {})", p.party);
    if p.kind != PARTIAL_KIND {
        return Err(Error::Data(format!("{who}: not a partial decryption file")));
    }
    if p.version != PARTIAL_VERSION {
        return Err(Error::Data(format!(
            "{who}: partial decryption format version {} is not supported (this build reads {PARTIAL_VERSION}, whose one proof binds the request and the policy): partially decrypt again",
            p.version
        )));
    }
    if let Some(want) = request {
        if p.request_id.as_deref() != Some(want) {
            return Err(Error::Data(format!(
                "{who} was made for {}, not for request {want}",
                p.request_id
                    .as_deref()
                    .map_or("no request".to_owned(), |r| format!("request {r}"))
            )));
        }
    }
    if p.key_id != pk.key_id() {
        return Err(Error::KeyMismatch {
            expected: pk.key_id().into(),
            found: p.key_id.clone(),
            context: format!(" ({who} is a partial decryption for another key)"),
        });
    }
    if th.index_of(&p.party) != Some(p.index) {
        return Err(Error::Data(format!("{who}: not one of this key's parties")));
    }
    if p.result_sha256 != result.sha256 {
        return Err(Error::Data(format!(
            "{who} was made for a different result file (SHA-256 {}, this one is {})",
            p.result_sha256, result.sha256
        )));
    }
    p.policy.check(&who)?;
    let partials = open_partials(&who, p, identity)?;
    let by_cell: BTreeMap<(&str, u64), &PartialCell> = partials
        .cells
        .iter()
        .map(|c| ((c.column.as_str(), c.row), c))
        .collect();
    if by_cell.len() != partials.cells.len() || partials.cells.len() != cells.len() {
        return Err(Error::Data(format!(
            "{who}: {} partial decryptions for {} encrypted cells",
            partials.cells.len(),
            cells.len()
        )));
    }
    let mut decrypted = Vec::with_capacity(cells.len());
    let mut names = Vec::with_capacity(cells.len());
    for cell in cells {
        let pc = by_cell
            .get(&(cell.column.as_str(), cell.row))
            .ok_or_else(|| {
                Error::Data(format!(
                    "{who}: no partial decryption for row {}, column `{}`",
                    cell.row + 1,
                    cell.column
                ))
            })?;
        let c = noisy(pk, &cell.ciphertext, pc.noise.as_ref()).map_err(|e| {
            Error::Data(format!(
                "{who}: row {}, column `{}`: its noise: {e}",
                cell.row + 1,
                cell.column
            ))
        })?;
        decrypted.push((c, *pc));
        names.push(cell_name(&cell.column, cell.row, pc.noise.as_ref()));
    }
    let items: Vec<(&Ciphertext, &Integer, Vec<u8>)> = decrypted
        .iter()
        .zip(names)
        .map(|((c, pc), name)| (c.as_ref(), &pc.value, name))
        .collect();
    if !items.is_empty() {
        let proof = partials
            .proof
            .as_ref()
            .ok_or_else(|| Error::Data(format!("{who}: no proof for its partial decryptions")))?;
        let bind = binding(&result.sha256, p.request_id.as_deref(), &p.policy);
        if !verify_batch(pk, p.index, &items, proof, &bind) {
            return Err(Error::ProofRejected { who: who.clone() });
        }
    }
    if let Some(cb) = progress {
        cb(items.len() as u64);
    }
    let mut values = BTreeMap::new();
    let mut noise = BTreeMap::new();
    for ((_, pc), cell) in decrypted.into_iter().zip(cells) {
        let key = (cell.column.clone(), cell.row);
        values.insert(key.clone(), pc.value.clone());
        noise.insert(key, pc.noise.clone());
    }
    Ok(VerifiedParty {
        index: p.index,
        party: p.party.clone(),
        policy: p.policy.clone(),
        values,
        noise,
        relations: partials.relations.clone(),
    })
}

/// Verifies partials and combines them into the plaintext result. Partials are taken in the
/// order given until `needed` of them verify; a bad one (wrong result, wrong key, a proof that
/// fails, a party given twice) is set aside with its reason, and combining goes on without it.
/// Counts (from `paillier_count`) that decrypt to 1..min_rows−1 are suppressed (NULL), under the
/// strictest minimum of `min_rows` and the parties used. Sealed partials need `identity`, the
/// requester's secret key.
pub fn combine_result(
    pk: &PublicKey,
    result: &ResultFile,
    partials: &[(String, PartialFile)],
    min_rows: u64,
    request: Option<&str>,
    identity: Option<&age::x25519::Identity>,
    progress: Option<Progress>,
) -> Result<Combined> {
    let th = params(pk)?;
    let cells = result.cells(pk)?;
    let mut verified: Vec<VerifiedParty> = Vec::new();
    let mut out = Combined::default();
    for (file, p) in partials {
        if verified.len() == th.needed {
            out.unused.push(format!("{file} (party {})", p.party));
            continue;
        }
        if verified.iter().any(|v| v.party == p.party) {
            out.rejected
                .push(format!("{file}: party {} is given twice", p.party));
            continue;
        }
        match verify_party(
            pk,
            result,
            &cells,
            file,
            p,
            request,
            identity,
            progress.as_ref(),
        ) {
            Ok(v) => match verified.first().and_then(|first| {
                first
                    .noise
                    .iter()
                    .find(|(k, n)| v.noise.get(*k) != Some(*n))
                    .map(|((column, row), _)| (first, column, row))
            }) {
                // Parties that decrypted a cell with different noise decrypted different
                // ciphertexts: their partials do not combine.
                Some((first, column, row)) => out.rejected.push(format!(
                    "{file} (party {}): decrypted row {}, column `{column}` with other noise than party {}: every hospital needs the same noise files",
                    v.party,
                    row + 1,
                    first.party
                )),
                None => verified.push(v),
            },
            Err(e) => out.rejected.push(e.to_string()),
        }
    }
    if verified.len() < th.needed {
        let mut msg = format!(
            "{} valid part{} given, {} of {} parties are needed ({})",
            verified.len(),
            if verified.len() == 1 { "y" } else { "ies" },
            th.needed,
            th.parties.len(),
            th.parties.join(", ")
        );
        if !out.rejected.is_empty() {
            msg.push_str(&format!(
                "; rejected: {}",
                join_limited(&out.rejected, "; ")
            ));
        }
        return Err(Error::Data(msg));
    }
    verified.sort_by_key(|v| v.index);
    // The strictest minimum of the parties whose proofs were used (each bound into its proofs).
    let min_rows = min_rows.max(
        verified
            .iter()
            .map(|v| v.policy.min_rows)
            .max()
            .unwrap_or(0),
    );

    // The plaintext of every cell.
    let plain: BTreeMap<(String, u64), Integer> = cells
        .par_iter()
        .map(|cell| {
            let key = (cell.column.clone(), cell.row);
            let shares: Vec<(usize, &Integer)> = verified
                .iter()
                .map(|v| (v.index, &v.values[&key]))
                .collect();
            let raw = combine(pk, &shares)?;
            let v = pk.decode(raw).map_err(|e| {
                Error::Data(format!(
                    "{}: row {}, column `{}`: {e}",
                    result.name,
                    cell.row + 1,
                    cell.column
                ))
            })?;
            Ok((key, v))
        })
        .collect::<Result<_>>()?;

    // Small counts, then whatever would let one be derived by subtraction (the relations every
    // party used reported; more relations only suppress more).
    let count_cells: HashSet<&str> = cells
        .iter()
        .filter(|c| c.count)
        .map(|c| c.column.as_str())
        .collect();
    let mut hidden: std::collections::BTreeSet<CellKey> = plain
        .iter()
        .filter(|((column, _), v)| {
            count_cells.contains(column.as_str()) && **v > 0 && **v < min_rows
        })
        .map(|(k, _)| k.clone())
        .collect();
    let mut relations: Vec<Relation> = verified
        .iter()
        .flat_map(|v| v.relations.iter().cloned())
        .collect();
    relations.sort_by(|a, b| (&a.total, &a.parts).cmp(&(&b.total, &b.parts)));
    relations.dedup();
    out.complementary = suppress_complements(
        &relations,
        |k| plain.get(k).and_then(Integer::to_i128),
        &mut hidden,
        min_rows,
    )
    .len();
    out.suppressed = hidden.len();
    out.parties = verified.iter().map(|v| v.party.clone()).collect();
    for (key, noise) in verified.first().map(|v| &v.noise).into_iter().flatten() {
        let Some(n) = noise else { continue };
        let scale = cells
            .iter()
            .find(|c| c.column == key.0)
            .map_or(0, |c| c.scale);
        let s = out.noise.entry(key.0.clone()).or_insert(NoiseSummary {
            mechanism: n.mechanism,
            scale,
            cells: 0,
            pinned: 0,
        });
        s.cells += 1;
        s.pinned += usize::from(n.pinned.is_some());
    }
    let mut offset = 0u64;
    for batch in &result.batches {
        let schema = batch.schema();
        let mut out_schema = decrypted_schema(&schema, pk.key_id(), &result.name)?;
        if !out.noise.is_empty() {
            // Each noisy column says how it was released (Parquet and Arrow outputs keep it).
            let fields: Vec<Field> = out_schema
                .fields()
                .iter()
                .map(|f| match out.noise.get(f.name()) {
                    None => f.as_ref().clone(),
                    Some(n) => {
                        let mut md = f.metadata().clone();
                        md.insert("cipherlake.dp".into(), n.mechanism.describe(n.scale));
                        f.as_ref().clone().with_metadata(md)
                    }
                })
                .collect();
            out_schema =
                std::sync::Arc::new(datafusion::arrow::datatypes::Schema::new_with_metadata(
                    fields,
                    out_schema.metadata().clone(),
                ));
        }
        let mut columns: Vec<ArrayRef> = Vec::new();
        for (field, array) in schema.fields().iter().zip(batch.columns()) {
            let Some(col) = EncryptedColumn::from_field(field)? else {
                columns.push(array.clone());
                continue;
            };
            let values: Vec<Option<Integer>> = (0..batch.num_rows() as u64)
                .map(|r| {
                    let key = (field.name().clone(), offset + r);
                    if hidden.contains(&key) {
                        return None;
                    }
                    plain.get(&key).cloned()
                })
                .collect();
            let name = field.name();
            let what = |i: usize| {
                format!(
                    "{}: row {}, column `{name}`",
                    result.name,
                    offset + i as u64 + 1
                )
            };
            columns.push(plain_column(values, &col, array, &what)?);
        }
        out.batches.push(RecordBatch::try_new(out_schema, columns)?);
        offset += batch.num_rows() as u64;
    }
    Ok(out)
}
