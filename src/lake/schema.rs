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

/// Field metadata key on aggregate results: what they are (`sum`, `count`, `avg`, or `share` for
/// the average of a boolean; `avg` and `share` decrypt to the sum divided by the row count).
/// Its presence means each value is `W` ciphertext bytes followed by an 8-byte little-endian
/// count of the rows that contributed.
pub const META_AGGREGATE: &str = "cipherlake.aggregate";
/// Whether an aggregate of this `cipherlake.aggregate` tag decrypts to its sum ÷ its rows.
pub fn is_average(tag: &str) -> bool {
    matches!(tag, "avg" | "share")
}

/// Bytes of the trailing row count of an aggregate value.
pub const ROWS_BYTES: usize = 8;

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
        // An average decrypts to Float64 (sum ÷ rows) even though the sum was an integer.
        let average = md.get(META_AGGREGATE).is_some_and(|a| is_average(a));
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
        }))
    }

    /// The metadata entries for this column.
    pub fn metadata(&self) -> HashMap<String, String> {
        HashMap::from([
            (META_KEY_ID.to_owned(), self.key_id.clone()),
            (META_SCALE.to_owned(), self.scale.to_string()),
            (META_PLAIN_TYPE.to_owned(), self.plain_type.to_string()),
        ])
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
    fn metadata_round_trip_and_errors() {
        let col = EncryptedColumn {
            key_id: "ab".repeat(32),
            scale: 2,
            plain_type: DataType::Decimal128(12, 2),
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
