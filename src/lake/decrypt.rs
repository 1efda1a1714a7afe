//! Decrypting a table: every encrypted column (input tables and query results alike) becomes its
//! plain type again, decrypted in parallel with the private key. A column under another key is
//! refused, naming both key ids.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use rayon::prelude::*;
use rug::Integer;

use super::schema::{AggregateKind, AggregateValue, EncryptedColumn};
use super::values::{average_array, to_plain_array};
use crate::error::{Error, Result};
use crate::paillier::{Ciphertext, PrivateKey};

/// The schema after decryption: encrypted columns get their plain type back and lose the
/// cipherlake metadata. Checks every encrypted column's key id against `key_id`.
pub fn decrypted_schema(schema: &Schema, key_id: &str, source: &str) -> Result<SchemaRef> {
    let fields = schema
        .fields()
        .iter()
        .map(|f| {
            Ok(match EncryptedColumn::from_field(f).map_err(|e| Error::Data(format!("{source}: {e}")))? {
                Some(col) => {
                    if col.key_id != key_id {
                        return Err(Error::KeyMismatch {
                            expected: col.key_id,
                            found: key_id.to_owned(),
                            context: format!(
                                " ({source}: column `{}` is encrypted under the first key, the private key given is the second)",
                                f.name()
                            ),
                        });
                    }
                    let mut md = f.metadata().clone();
                    md.retain(|k, _| !k.starts_with("cipherlake."));
                    Field::new(f.name(), col.plain_type, true).with_metadata(md)
                }
                None => f.as_ref().clone(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(Schema::new_with_metadata(
        fields,
        schema.metadata().clone(),
    )))
}

/// Decrypts every encrypted column of `batch`. `first_row` (1-based) and `source` locate errors.
pub fn decrypt_batch(
    sk: &PrivateKey,
    batch: &RecordBatch,
    first_row: u64,
    source: &str,
) -> Result<RecordBatch> {
    let schema = batch.schema();
    let out_schema = decrypted_schema(&schema, sk.public_key().key_id(), source)?;
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (field, array) in schema.fields().iter().zip(batch.columns()) {
        match EncryptedColumn::from_field(field)? {
            None => columns.push(array.clone()),
            Some(col) => {
                let name = field.name();
                let what =
                    |i: usize| format!("{source}: row {}, column `{name}`", first_row + i as u64);
                let values = decrypt_column(sk, array, &col, &what)?;
                columns.push(plain_column(values, &col, array, &what)?);
            }
        }
    }
    Ok(RecordBatch::try_new(out_schema, columns)?)
}

/// The raw ciphertext bytes of a binary column, whichever binary type carries them.
pub fn binary_values(array: &ArrayRef) -> Option<Vec<Option<&[u8]>>> {
    Some(match array.data_type() {
        DataType::FixedSizeBinary(_) => array.as_fixed_size_binary().iter().collect(),
        DataType::Binary => array.as_binary::<i32>().iter().collect(),
        DataType::LargeBinary => array.as_binary::<i64>().iter().collect(),
        DataType::BinaryView => array.as_binary_view().iter().collect(),
        _ => return None,
    })
}

/// Decrypted values of the encrypted column `col` (values in `array`) → its plain array. An
/// average is divided by the row count that trails each of its values.
pub(crate) fn plain_column(
    values: Vec<Option<Integer>>,
    col: &EncryptedColumn,
    array: &ArrayRef,
    what: &dyn Fn(usize) -> String,
) -> Result<ArrayRef> {
    let Some(kind) = col.aggregate else {
        return to_plain_array(values, &col.plain_type, what);
    };
    let rows = aggregate_rows(array).unwrap_or_default();
    check_aggregate_range(&values, &rows, kind, &col.plain_type, what)?;
    if kind.is_average() {
        average_array(values, &rows, col.scale, &col.plain_type, what)
    } else {
        to_plain_array(values, &col.plain_type, what)
    }
}

/// A sum of `rows` values of a column's type lies within `rows` times that type's range, and a
/// count within 0..=rows. A decrypted aggregate outside that did not come from honest inputs: a
/// foreign file holding values beyond its declared type (whose sum may have wrapped modulo n), or
/// a forged row count. Reported as an overflow rather than printed.
fn check_aggregate_range(
    values: &[Option<Integer>],
    rows: &[Option<u64>],
    kind: AggregateKind,
    plain_type: &DataType,
    what: &dyn Fn(usize) -> String,
) -> Result<()> {
    let count = kind.is_count();
    // The largest magnitude one input row can have (a count's rows are 0 or 1; a Decimal128(38)
    // row stays below 10³⁸ < 2¹²⁷, so the bound saturates only far above any decodable sum).
    let per_row: u128 = match plain_type {
        _ if count => 1,
        DataType::Decimal128(p, _) => 10u128.saturating_pow(*p as u32),
        _ => u64::MAX as u128,
    };
    for (i, v) in values.iter().enumerate() {
        let (Some(v), Some(r)) = (v, rows.get(i).copied().flatten()) else {
            continue;
        };
        let bound = per_row.saturating_mul(r as u128);
        let magnitude = v.as_abs().to_u128();
        let outside = (count && v.is_negative()) || magnitude.is_none_or(|m| m > bound);
        if outside {
            return Err(Error::Data(format!(
                "{}: overflow: the decrypted {kind} is outside what {r} row(s) of its type can add up to (an input beyond its declared type, whose sum may have wrapped, or a forged row count)",
                what(i)
            )));
        }
    }
    Ok(())
}

/// The row counts that trail the values of an aggregate column (None for NULL or malformed).
fn aggregate_rows(array: &ArrayRef) -> Option<Vec<Option<u64>>> {
    Some(
        binary_values(array)?
            .into_iter()
            .map(|v| AggregateValue::rows_of(v?))
            .collect(),
    )
}

fn decrypt_column(
    sk: &PrivateKey,
    array: &ArrayRef,
    col: &EncryptedColumn,
    what: &(dyn Fn(usize) -> String + Sync),
) -> Result<Vec<Option<Integer>>> {
    let values = binary_values(array).ok_or_else(|| {
        Error::Data(format!(
            "{}: type {} is not binary",
            what(0),
            array.data_type()
        ))
    })?;
    let pk = sk.public_key();
    let cts: Vec<Option<Ciphertext>> = values
        .par_iter()
        .enumerate()
        .map(|(i, v)| {
            v.map(|bytes| {
                let at = |e: Error| Error::Data(format!("{}: {e}", what(i)));
                // An aggregate value is the ciphertext followed by its row count.
                let bytes = match col.aggregate {
                    Some(_) => {
                        AggregateValue::split(bytes, pk.ciphertext_width())
                            .map_err(at)?
                            .ciphertext
                    }
                    None => bytes,
                };
                pk.ciphertext_from_le_bytes(bytes)
                    .map_err(|e| Error::Data(format!("{}: {e}", what(i))))
            })
            .transpose()
        })
        .collect::<Result<_>>()?;
    // Four at a time: what the IFMA kernel decrypts in one pass (one by one without it).
    let present: Vec<(usize, &Ciphertext)> = cts
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.as_ref().map(|c| (i, c)))
        .collect();
    let mut out: Vec<Option<Integer>> = vec![None; cts.len()];
    let plain: Vec<(usize, Result<Integer>)> = present
        .par_chunks(4)
        .flat_map_iter(|chunk| {
            let cs: Vec<&Ciphertext> = chunk.iter().map(|(_, c)| *c).collect();
            let raws = sk.decrypt_raw_many(&cs);
            chunk
                .iter()
                .zip(raws)
                .map(|((i, _), raw)| {
                    let v = pk
                        .decode(raw)
                        .map_err(|e| Error::Data(format!("{}: {e}", what(*i))));
                    (*i, v)
                })
                .collect::<Vec<_>>()
        })
        .collect();
    for (i, v) in plain {
        out[i] = Some(v?);
    }
    Ok(out)
}
