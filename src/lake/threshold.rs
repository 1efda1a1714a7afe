//! Threshold decryption of a query result file. Each party checks the request (its key, every
//! ciphertext's validity, and the disclosure policy: only aggregates over at least `min_rows`
//! rows, never individual values) and writes partial decryptions with proofs, bound to the exact
//! result file by its SHA-256. `combine` verifies every proof, needs `needed` distinct parties,
//! and turns the encrypted cells into plaintext, suppressing small counts.

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rayon::prelude::*;
use rug::Integer;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::decrypt::{binary_values, decrypted_schema, plain_column};
use super::io::Progress;
use super::schema::{AggregateValue, EncryptedColumn};
use crate::error::{join_limited, Error, Result};
use crate::paillier::threshold::{
    combine, params, partial_decrypt, verify_partial, KeyShare, Partial,
};
use crate::paillier::wire::b64_int;
use crate::paillier::{Ciphertext, PublicKey};

/// `kind` of a partial decryption file.
pub const PARTIAL_KIND: &str = "cipherlake.partial_decryption";

/// One party's partial decryptions of every encrypted cell of one result file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PartialFile {
    /// Always [`PARTIAL_KIND`].
    pub kind: String,
    /// Format version (2: the proofs bind the request and the minimum too).
    pub version: u32,
    /// The key id of the threshold key.
    pub key_id: String,
    /// Party name.
    pub party: String,
    /// Party index (1-based).
    pub index: usize,
    /// Lowercase hex SHA-256 of the result file these partials are for.
    pub result_sha256: String,
    /// The minimum contributing rows the party required (bound into every proof).
    pub min_rows: u64,
    /// The id of the decryption request the party re-verified, if it was given one (bound into
    /// every proof, so that a partial cannot be replayed onto another request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// One entry per encrypted, non-NULL cell.
    pub cells: Vec<PartialCell>,
}

/// A partial decryption of one cell, with its proof.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PartialCell {
    /// Column name.
    pub column: String,
    /// 0-based row in the result.
    pub row: u64,
    /// c_i (base64url).
    #[serde(with = "b64_int")]
    pub value: Integer,
    /// Proof challenge (base64url).
    #[serde(with = "b64_int")]
    pub e: Integer,
    /// Proof response (base64url).
    #[serde(with = "b64_int")]
    pub z: Integer,
}

/// An encrypted cell of a result.
struct Cell {
    column: String,
    row: u64,
    ciphertext: Ciphertext,
    rows: Option<u64>,
}

/// The result file: its hash, batches and encrypted cells.
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
        let batches = builder
            .build()?
            .collect::<std::result::Result<Vec<_>, _>>()?;
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
        let mut cells = Vec::new();
        let mut offset = 0u64;
        for batch in &self.batches {
            let schema = batch.schema();
            for (field, array) in schema.fields().iter().zip(batch.columns()) {
                let Some(col) = EncryptedColumn::from_field(field)? else {
                    continue;
                };
                if col.key_id != pk.key_id() {
                    return Err(Error::KeyMismatch {
                        expected: pk.key_id().into(),
                        found: col.key_id,
                        context: format!(
                            " ({}: column `{}` is encrypted under another key)",
                            self.name,
                            field.name()
                        ),
                    });
                }
                let values = binary_values(array).ok_or_else(|| {
                    Error::Data(format!(
                        "{}: column `{}` is not binary",
                        self.name,
                        field.name()
                    ))
                })?;
                for (i, v) in values.iter().enumerate() {
                    let Some(bytes) = v else { continue };
                    let row = offset + i as u64;
                    let at =
                        || format!("{}: row {}, column `{}`", self.name, row + 1, field.name());
                    let (ct, rows) = match col.aggregate {
                        Some(_) => {
                            let v = AggregateValue::split(bytes, pk.ciphertext_width())
                                .map_err(|e| Error::Data(format!("{}: {e}", at())))?;
                            (v.ciphertext, Some(v.rows))
                        }
                        None => (*bytes, None),
                    };
                    let ciphertext = pk
                        .ciphertext_from_le_bytes(ct)
                        .map_err(|e| Error::Data(format!("{}: {e}", at())))?;
                    cells.push(Cell {
                        column: field.name().clone(),
                        row,
                        ciphertext,
                        rows,
                    });
                }
            }
            offset += batch.num_rows() as u64;
        }
        Ok(cells)
    }
}

/// The partial decryption format this build writes and reads.
pub const PARTIAL_VERSION: u32 = 2;

/// What ties a proof to one cell of one result, one request and one party's minimum:
/// `result SHA-256 (hex) ‖ 0 ‖ request id (hex, or nothing) ‖ 0 ‖ min_rows (8 bytes) ‖ column ‖
/// 0 ‖ row (8 bytes)`.
fn binding(
    result_sha256: &str,
    request_id: Option<&str>,
    min_rows: u64,
    column: &str,
    row: u64,
) -> Vec<u8> {
    let mut b = result_sha256.as_bytes().to_vec();
    b.push(0);
    b.extend_from_slice(request_id.unwrap_or("").as_bytes());
    b.push(0);
    b.extend_from_slice(&min_rows.to_be_bytes());
    b.extend_from_slice(column.as_bytes());
    b.push(0);
    b.extend_from_slice(&row.to_be_bytes());
    b
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
/// the policy. `progress` is called with the number of cells done.
pub fn partial_decrypt_result(
    pk: &PublicKey,
    share: &KeyShare,
    result: &ResultFile,
    min_rows: u64,
    request_id: Option<&str>,
    progress: Option<Progress>,
) -> Result<PartialFile> {
    share.check_against(pk)?;
    let cells = result.cells(pk)?;
    let bad = policy_violations(&cells, min_rows);
    if !bad.is_empty() {
        return Err(Error::PolicyRefused {
            result: result.name.clone(),
            min_rows,
            violations: bad,
        });
    }
    let out = cells
        .par_iter()
        .map(|c| {
            let p = partial_decrypt(
                pk,
                share,
                &c.ciphertext,
                &binding(&result.sha256, request_id, min_rows, &c.column, c.row),
            )?;
            if let Some(cb) = &progress {
                cb(1);
            }
            Ok(PartialCell {
                column: c.column.clone(),
                row: c.row,
                value: p.value,
                e: p.e,
                z: p.z,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(PartialFile {
        kind: PARTIAL_KIND.into(),
        version: PARTIAL_VERSION,
        key_id: pk.key_id().into(),
        party: share.party().into(),
        index: share.index(),
        result_sha256: result.sha256.clone(),
        min_rows,
        request_id: request_id.map(str::to_owned),
        cells: out,
    })
}

/// A cell of a result: its column and 0-based row.
type CellKey = (String, u64);

/// One party's verified partial decryptions.
struct VerifiedParty {
    index: usize,
    party: String,
    min_rows: u64,
    values: BTreeMap<CellKey, Integer>,
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
}

/// Checks one party's partial file against the result and verifies every proof in it.
fn verify_party(
    pk: &PublicKey,
    result: &ResultFile,
    cells: &[Cell],
    file: &str,
    p: &PartialFile,
    request: Option<&str>,
    progress: Option<&Progress>,
) -> Result<VerifiedParty> {
    let th = params(pk)?;
    let who = format!("{file} (party {})", p.party);
    if p.kind != PARTIAL_KIND {
        return Err(Error::Data(format!("{who}: not a partial decryption file")));
    }
    if p.version != PARTIAL_VERSION {
        return Err(Error::Data(format!(
            "{who}: partial decryption format version {} is not supported (this build reads {PARTIAL_VERSION}, whose proofs bind the request and the minimum): partially decrypt again",
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
    let by_cell: BTreeMap<(&str, u64), &PartialCell> = p
        .cells
        .iter()
        .map(|c| ((c.column.as_str(), c.row), c))
        .collect();
    let values = cells
        .par_iter()
        .map(|cell| {
            let at = || format!("row {}, column `{}`", cell.row + 1, cell.column);
            let pc = by_cell
                .get(&(cell.column.as_str(), cell.row))
                .ok_or_else(|| Error::Data(format!("{who}: no partial decryption for {}", at())))?;
            let partial = Partial {
                value: pc.value.clone(),
                e: pc.e.clone(),
                z: pc.z.clone(),
            };
            if !verify_partial(
                pk,
                p.index,
                &cell.ciphertext,
                &partial,
                &binding(
                    &result.sha256,
                    p.request_id.as_deref(),
                    p.min_rows,
                    &cell.column,
                    cell.row,
                ),
            ) {
                return Err(Error::ProofRejected {
                    who: who.clone(),
                    column: cell.column.clone(),
                    row: cell.row,
                });
            }
            if let Some(cb) = progress {
                cb(1);
            }
            Ok(((cell.column.clone(), cell.row), partial.value))
        })
        .collect::<Result<BTreeMap<_, _>>>()?;
    Ok(VerifiedParty {
        index: p.index,
        party: p.party.clone(),
        min_rows: p.min_rows,
        values,
    })
}

/// Verifies partials and combines them into the plaintext result. Partials are taken in the
/// order given until `needed` of them verify; a bad one (wrong result, wrong key, a proof that
/// fails, a party given twice) is set aside with its reason, and combining goes on without it.
/// Counts (from `paillier_count`) that decrypt to 1..min_rows−1 are suppressed (NULL).
pub fn combine_result(
    pk: &PublicKey,
    result: &ResultFile,
    partials: &[(String, PartialFile)],
    min_rows: u64,
    request: Option<&str>,
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
        match verify_party(pk, result, &cells, file, p, request, progress.as_ref()) {
            Ok(v) => verified.push(v),
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
    let min_rows = min_rows.max(verified.iter().map(|v| v.min_rows).max().unwrap_or(0));

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

    out.parties = verified.iter().map(|v| v.party.clone()).collect();
    let mut offset = 0u64;
    for batch in &result.batches {
        let schema = batch.schema();
        let out_schema = decrypted_schema(&schema, pk.key_id(), &result.name)?;
        let mut columns: Vec<ArrayRef> = Vec::new();
        for (field, array) in schema.fields().iter().zip(batch.columns()) {
            let Some(col) = EncryptedColumn::from_field(field)? else {
                columns.push(array.clone());
                continue;
            };
            // A share (AVG of a flag) times its rows is a count: suppressed alike.
            let is_count = col.aggregate.is_some_and(|a| a.is_count());
            let values: Vec<Option<Integer>> = (0..batch.num_rows() as u64)
                .map(|r| {
                    let v = plain.get(&(field.name().clone(), offset + r)).cloned()?;
                    if is_count && v > 0 && v < min_rows {
                        out.suppressed += 1;
                        return None;
                    }
                    Some(v)
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
