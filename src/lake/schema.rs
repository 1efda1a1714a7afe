//! The encrypted-column contract (docs/FORMAT.md): an Arrow `FixedSizeBinary(W)` field whose
//! metadata names the key id, the decimal scale and the column's type before encryption.

use std::collections::HashMap;
use std::str::FromStr;

use datafusion::arrow::datatypes::{DataType, Field};

use crate::error::{Error, Result};

/// Field metadata key: lowercase hex key id of the public key.
pub const META_KEY_ID: &str = "cipherlake.key_id";
/// Field metadata key: decimal scale s (values were multiplied by 10^s), "0" for integers.
pub const META_SCALE: &str = "cipherlake.scale";
/// Field metadata key: Arrow type of the column before encryption, e.g. `Decimal128(12, 2)`.
pub const META_PLAIN_TYPE: &str = "cipherlake.plain_type";

/// Field metadata key on aggregate results: what they are ([`AggregateKind`]). Its presence means
/// each value is an [`AggregateValue`]: `W` ciphertext bytes, then the number of rows that
/// contributed.
pub const META_AGGREGATE: &str = "cipherlake.aggregate";

/// Field metadata key: the public modulus n (base64url, big-endian), added to encrypted columns
/// when a table is registered with the matching public key. It travels with the plan, so
/// distributed executors need no key of their own.
pub const META_MODULUS: &str = "cipherlake.modulus";

/// Bytes of the trailing row count of an aggregate value.
pub const ROWS_BYTES: usize = 8;

/// What an encrypted aggregate result holds (`cipherlake.aggregate`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AggregateKind {
    /// `SUM` / `paillier_sum`: the encrypted sum.
    Sum,
    /// `SUM` of an encrypted boolean / `paillier_count`: how many rows are TRUE.
    Count,
    /// `AVG` / `paillier_avg` of a number: the encrypted sum, decrypted ÷ rows.
    Avg,
    /// `AVG` of an encrypted boolean: a count, decrypted ÷ rows.
    Share,
}

impl AggregateKind {
    /// Every kind.
    pub const ALL: [AggregateKind; 4] = [Self::Sum, Self::Count, Self::Avg, Self::Share];

    /// The `cipherlake.aggregate` tag.
    pub fn tag(self) -> &'static str {
        match self {
            Self::Sum => "sum",
            Self::Count => "count",
            Self::Avg => "avg",
            Self::Share => "share",
        }
    }

    /// The kind of a tag.
    pub fn from_tag(tag: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.tag() == tag)
    }

    /// Decrypts to its sum ÷ its rows.
    pub fn is_average(self) -> bool {
        matches!(self, Self::Avg | Self::Share)
    }

    /// Its sum is a count of rows (so small values are suppressed like counts).
    pub fn is_count(self) -> bool {
        matches!(self, Self::Count | Self::Share)
    }
}

impl std::fmt::Display for AggregateKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.tag())
    }
}

/// One aggregate value as stored: the ciphertext (little-endian, `W` bytes), then the number of
/// rows that contributed (`u64`, little-endian). Every reader and writer of the layout goes
/// through this type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AggregateValue<'a> {
    /// The ciphertext bytes.
    pub ciphertext: &'a [u8],
    /// Rows that contributed.
    pub rows: u64,
}

impl<'a> AggregateValue<'a> {
    /// Bytes of a value whose ciphertexts take `ciphertext_width`.
    pub fn width(ciphertext_width: usize) -> usize {
        ciphertext_width + ROWS_BYTES
    }

    /// Splits a stored value, which must be exactly `width(ciphertext_width)` bytes.
    pub fn split(bytes: &'a [u8], ciphertext_width: usize) -> Result<Self> {
        if bytes.len() != Self::width(ciphertext_width) {
            return Err(Error::Data(format!(
                "an aggregate value of {} bytes where {} are expected ({ciphertext_width} of ciphertext and {ROWS_BYTES} of row count)",
                bytes.len(),
                Self::width(ciphertext_width)
            )));
        }
        let (ciphertext, rows) = bytes.split_at(ciphertext_width);
        let mut r = [0u8; ROWS_BYTES];
        r.copy_from_slice(rows);
        Ok(AggregateValue {
            ciphertext,
            rows: u64::from_le_bytes(r),
        })
    }

    /// The row count of a stored value of any width (for display), None if it is too short.
    pub fn rows_of(bytes: &[u8]) -> Option<u64> {
        let tail = bytes.get(bytes.len().checked_sub(ROWS_BYTES)?..)?;
        Some(u64::from_le_bytes(tail.try_into().ok()?))
    }

    /// Writes the row count behind the ciphertext the caller wrote into `out[..W]`; `out` is one
    /// whole value.
    pub fn write_rows(out: &mut [u8], rows: u64) {
        let at = out.len().saturating_sub(ROWS_BYTES);
        out[at..].copy_from_slice(&rows.to_le_bytes());
    }
}

/// The largest decimal scale accepted (Decimal128's own limit).
pub const MAX_SCALE: u32 = 38;

/// What the metadata of an encrypted column says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptedColumn {
    /// Key id of the public key the column is encrypted under.
    pub key_id: String,
    /// Decimal scale of the encoded values (for an average: of the encrypted sum).
    pub scale: u32,
    /// The column's type before encryption (and after decryption).
    pub plain_type: DataType,
    /// For an aggregate result, what it holds; None for ciphertexts.
    pub aggregate: Option<AggregateKind>,
}

impl EncryptedColumn {
    /// Reads the metadata of `field`: `None` for a plaintext column, an error naming the column
    /// for incomplete or malformed cipherlake metadata.
    pub fn from_field(field: &Field) -> Result<Option<Self>> {
        Self::from_metadata(field.name(), field.metadata())
    }

    /// As `from_field`, from a metadata map.
    pub fn from_metadata(column: &str, md: &HashMap<String, String>) -> Result<Option<Self>> {
        let Some(key_id) = md.get(META_KEY_ID) else {
            return Ok(None);
        };
        let bad = |what: &str| Error::Data(format!("column `{column}`: {what}"));
        if key_id.len() != 64 || !key_id.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
            return Err(bad(&format!(
                "{META_KEY_ID} `{key_id}` is not a lowercase hex SHA-256"
            )));
        }
        let scale = md
            .get(META_SCALE)
            .ok_or_else(|| bad(&format!("{META_SCALE} is missing")))?;
        let scale: u32 = scale
            .parse()
            .ok()
            .filter(|s| *s <= MAX_SCALE)
            .ok_or_else(|| {
                bad(&format!(
                    "{META_SCALE} `{scale}` is not an integer in 0..=38"
                ))
            })?;
        let plain = md
            .get(META_PLAIN_TYPE)
            .ok_or_else(|| bad(&format!("{META_PLAIN_TYPE} is missing")))?;
        let plain_type = DataType::from_str(plain)
            .map_err(|_| bad(&format!("{META_PLAIN_TYPE} `{plain}` is not an Arrow type")))?;
        let aggregate = match md.get(META_AGGREGATE) {
            None => None,
            Some(tag) => Some(AggregateKind::from_tag(tag).ok_or_else(|| {
                bad(&format!(
                    "{META_AGGREGATE} `{}` is not one of sum, count, avg, share",
                    crate::error::preview(tag)
                ))
            })?),
        };
        // An average decrypts to Float64 (sum ÷ rows) even though the sum was an integer.
        let average = aggregate.is_some_and(AggregateKind::is_average);
        let supported =
            is_supported_plain_type(&plain_type) || (average && plain_type == DataType::Float64);
        if !supported {
            return Err(bad(&format!(
                "{META_PLAIN_TYPE} `{plain}` is not supported"
            )));
        }
        // The scale is written twice (in the decimal type and on its own); a file where the two
        // disagree would decrypt to one number and compute with another.
        let agrees = match plain_type {
            DataType::Decimal128(_, s) if s < 0 => {
                return Err(bad(&format!(
                    "{META_PLAIN_TYPE} `{plain}` has a negative scale"
                )))
            }
            // An average of a decimal keeps 4 more places than its sum.
            DataType::Decimal128(_, s) if average => s as u32 == (scale + 4).min(MAX_SCALE),
            DataType::Decimal128(_, s) => s as u32 == scale,
            // Integers, booleans and the Float64 average of either are whole numbers.
            _ => scale == 0,
        };
        if !agrees {
            return Err(bad(&format!(
                "{META_PLAIN_TYPE} `{plain}` does not agree with {META_SCALE} {scale}"
            )));
        }
        Ok(Some(EncryptedColumn {
            key_id: key_id.clone(),
            scale,
            plain_type,
            aggregate,
        }))
    }

    /// The metadata entries for this column.
    pub fn metadata(&self) -> HashMap<String, String> {
        let mut md = HashMap::from([
            (META_KEY_ID.to_owned(), self.key_id.clone()),
            (META_SCALE.to_owned(), self.scale.to_string()),
            (META_PLAIN_TYPE.to_owned(), self.plain_type.to_string()),
        ]);
        if let Some(a) = self.aggregate {
            md.insert(META_AGGREGATE.to_owned(), a.tag().to_owned());
        }
        md
    }

    /// Bytes of one stored value when its ciphertexts take `ciphertext_width` (an aggregate
    /// value carries its row count too).
    pub fn value_width(&self, ciphertext_width: usize) -> usize {
        match self.aggregate {
            Some(_) => AggregateValue::width(ciphertext_width),
            None => ciphertext_width,
        }
    }

    /// An encrypted field: `FixedSizeBinary(width)`, nullable, with this metadata.
    pub fn field(&self, name: &str, width: usize) -> Field {
        Field::new(name, DataType::FixedSizeBinary(width as i32), true)
            .with_metadata(self.metadata())
    }
}

/// Plain types an encrypted column may decrypt to.
pub fn is_supported_plain_type(t: &DataType) -> bool {
    t.is_integer() || matches!(t, DataType::Boolean | DataType::Decimal128(_, _))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregate_values_split_strictly_and_round_trip() {
        let mut buf = vec![7u8; 16 + ROWS_BYTES];
        AggregateValue::write_rows(&mut buf, 1234);
        let v = AggregateValue::split(&buf, 16).unwrap();
        assert_eq!((v.ciphertext, v.rows), (&[7u8; 16][..], 1234));
        assert_eq!(AggregateValue::rows_of(&buf), Some(1234));
        assert!(AggregateValue::split(&buf, 15).is_err());
        assert_eq!(AggregateValue::rows_of(&[1, 2]), None);
        for k in AggregateKind::ALL {
            assert_eq!(AggregateKind::from_tag(k.tag()), Some(k));
        }
        assert_eq!(AggregateKind::from_tag("max"), None);
    }

    #[test]
    fn metadata_round_trip_and_errors() {
        let col = EncryptedColumn {
            key_id: "ab".repeat(32),
            scale: 2,
            plain_type: DataType::Decimal128(12, 2),
            aggregate: None,
        };
        let f = col.field("cost", 512);
        assert_eq!(f.metadata()[META_PLAIN_TYPE], "Decimal128(12, 2)");
        assert_eq!(EncryptedColumn::from_field(&f).unwrap(), Some(col.clone()));
        assert_eq!(
            EncryptedColumn::from_field(&Field::new("x", DataType::Int64, true)).unwrap(),
            None
        );

        let mut md = col.metadata();
        md.insert(META_SCALE.into(), "x".into());
        let e = EncryptedColumn::from_metadata("cost", &md)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`cost`") && e.contains(META_SCALE), "{e}");
        let mut md = col.metadata();
        md.insert(META_PLAIN_TYPE.into(), "Utf8".into());
        let e = EncryptedColumn::from_metadata("cost", &md)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not supported"), "{e}");
    }
}
