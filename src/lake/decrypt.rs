//! Decrypting a table: every encrypted column (input tables and query results alike) becomes its
//! plain type again, decrypted in parallel with the private key. A column under another key is
//! refused, naming both key ids.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use rayon::prelude::*;
use rug::Integer;

use super::schema::{is_average, EncryptedColumn, META_AGGREGATE, ROWS_BYTES};
use super::values::{average_array, to_plain_array};
use crate::error::{Error, Result};
use crate::paillier::PrivateKey;

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
                let aggregate = field.metadata().contains_key(META_AGGREGATE);
                let values = decrypt_column(sk, array, aggregate, &what)?;
                columns.push(plain_column(values, field, &col, array, &what)?);
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

/// Decrypted values of the encrypted column `field` (values in `array`) → its plain array. An
/// average is divided by the row count that trails each of its values.
pub(crate) fn plain_column(
    values: Vec<Option<Integer>>,
    field: &Field,
    col: &EncryptedColumn,
    array: &ArrayRef,
    what: &dyn Fn(usize) -> String,
) -> Result<ArrayRef> {
    let Some(tag) = field.metadata().get(META_AGGREGATE) else {
        return to_plain_array(values, &col.plain_type, what);
    };
    let rows = aggregate_rows(array).unwrap_or_default();
    check_aggregate_range(&values, &rows, tag, &col.plain_type, what)?;
    if is_average(tag) {
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
    tag: &str,
    plain_type: &DataType,
    what: &dyn Fn(usize) -> String,
) -> Result<()> {
    let count = matches!(tag, "count" | "share");
    // The largest magnitude one input row can have.
    let per_row = match plain_type {
        _ if count => Integer::from(1),
        DataType::Decimal128(p, _) => Integer::from(Integer::u_pow_u(10, *p as u32)),
        _ => Integer::from(u64::MAX),
    };
    for (i, v) in values.iter().enumerate() {
        let (Some(v), Some(r)) = (v, rows.get(i).copied().flatten()) else {
            continue;
        };
        let bound = Integer::from(&per_row * r);
        let outside = if count {
            *v < 0 || *v > bound
        } else {
            v.cmp_abs(&bound) == std::cmp::Ordering::Greater
        };
        if outside {
            return Err(Error::Data(format!(
                "{}: overflow: the decrypted {tag} is outside what {r} row(s) of its type can add up to (an input beyond its declared type, whose sum may have wrapped, or a forged row count)",
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
            .map(|v| {
                let v = v?;
                let tail = v.get(v.len().checked_sub(ROWS_BYTES)?..)?;
                Some(u64::from_le_bytes(tail.try_into().ok()?))
            })
            .collect(),
    )
}

fn decrypt_column(
    sk: &PrivateKey,
    array: &ArrayRef,
    aggregate: bool,
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
    values
        .par_iter()
        .enumerate()
        .map(|(i, v)| {
            v.map(|bytes| {
                // An aggregate value is the ciphertext followed by its row count.
                let bytes = if aggregate {
                    &bytes[..bytes.len().saturating_sub(ROWS_BYTES)]
                } else {
                    bytes
                };
                let c = pk
                    .ciphertext_from_le_bytes(bytes)
                    .map_err(|e| Error::Data(format!("{}: {e}", what(i))))?;
                sk.decrypt(&c)
                    .map_err(|e| Error::Data(format!("{}: {e}", what(i))))
            })
            .transpose()
        })
        .collect()
}
