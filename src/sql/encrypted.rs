//! What is encrypted in a plan, in one place: whether an expression's values are ciphertexts, the
//! first encrypted column it reads, and an encrypted input as the functions see it (its metadata
//! and the modulus the plan carries in its field metadata, added at table registration).

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{plan_err, DFSchema, DataFusionError, ExprSchema, Result};
use datafusion::logical_expr::{Expr, ExprSchemable};

use crate::paillier::{BadCiphertext, Modulus};

pub(super) use crate::lake::schema::META_MODULUS;
use crate::lake::schema::{AggregateKind, EncryptedColumn, META_KEY_ID};

/// The modulus of an encrypted column, as the plan carries it: all an aggregate or a per-row
/// function needs (the arithmetic itself is `paillier`'s).
#[derive(Clone, Debug)]
pub(super) struct CipherKey {
    modulus: Arc<Modulus>,
    /// n as it came in the metadata (base64url), passed on to result fields.
    text: String,
}

impl CipherKey {
    /// The modulus.
    pub(super) fn modulus(&self) -> &Modulus {
        &self.modulus
    }

    /// n as field metadata carries it (base64url).
    pub(super) fn metadata_value(&self) -> &str {
        &self.text
    }

    /// Ciphertext bytes W.
    pub(super) fn width(&self) -> usize {
        self.modulus.width()
    }

    fn from_base64(s: &str, column: &str) -> Result<Self> {
        let modulus = Modulus::from_b64(s).map_err(|e| {
            DataFusionError::Plan(format!("column `{column}`: {META_MODULUS}: {e}"))
        })?;
        Ok(CipherKey {
            modulus: Arc::new(modulus),
            text: s.to_owned(),
        })
    }
}

/// The error for bytes that are not a ciphertext of the column's key.
pub(crate) fn bad_ciphertext(name: &str, why: BadCiphertext) -> DataFusionError {
    DataFusionError::Execution(format!(
        "column `{name}`: a value is not a valid ciphertext ({why})"
    ))
}

/// An encrypted input column as an aggregate sees it.
#[derive(Clone, Debug)]
pub(super) struct CipherInput {
    /// Column (or expression) name, for errors.
    pub name: String,
    /// Its cipherlake metadata.
    pub column: EncryptedColumn,
    /// The modulus.
    pub key: CipherKey,
}

impl CipherInput {
    /// Whether values are aggregate values rather than ciphertexts.
    pub(super) fn is_aggregate(&self) -> bool {
        self.column.aggregate.is_some()
    }

    /// For aggregate values (ciphertext + row count), what they are; None for ciphertexts.
    pub(super) fn aggregate(&self) -> Option<AggregateKind> {
        self.column.aggregate
    }

    /// Reads an input field: it must be an encrypted column registered with its public key.
    pub(super) fn from_field(function: &str, field: &Field) -> Result<Self> {
        let name = field.name();
        let column = match EncryptedColumn::from_field(field) {
            Ok(Some(c)) => c,
            Ok(None) if is_binary(field.data_type()) => {
                return plan_err!(
                    "{function}({name}): `{name}` has no cipherlake metadata: it is not an encrypted column, or it merges encrypted columns under different keys or scales (as a UNION of such tables does)"
                )
            }
            Ok(None) => {
                return plan_err!(
                    "{function}({name}): `{name}` is not an encrypted column (it has no cipherlake metadata); use the ordinary SQL aggregate for plaintext columns"
                )
            }
            Err(e) => return plan_err!("{function}({name}): {e}"),
        };
        let Some(modulus) = field.metadata().get(META_MODULUS) else {
            return plan_err!(
                "{function}({name}): `{name}` is encrypted under key {}, but no public key with that id was given (register the table with its public key)",
                column.key_id
            );
        };
        let key = CipherKey::from_base64(modulus, name)?;
        match field.data_type() {
            DataType::FixedSizeBinary(w) => {
                let want = column.value_width(key.width());
                if *w as usize != want {
                    return plan_err!("{function}({name}): values are {w} bytes wide but the key's ciphertexts take {want}");
                }
            }
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {}
            t => return plan_err!("{function}({name}): type {t} is not a ciphertext column"),
        }
        Ok(CipherInput {
            name: name.clone(),
            column,
            key,
        })
    }

    /// The result field of an encrypted aggregate over this input.
    pub(super) fn result_field(
        &self,
        name: &str,
        aggregate: AggregateKind,
        plain_type: DataType,
    ) -> FieldRef {
        let out = EncryptedColumn {
            plain_type,
            aggregate: Some(aggregate),
            ..self.column.clone()
        };
        let mut md = out.metadata();
        md.insert(META_MODULUS.into(), self.key.text.clone());
        Arc::new(
            Field::new(
                name,
                DataType::FixedSizeBinary(out.value_width(self.key.width()) as i32),
                true,
            )
            .with_metadata(md),
        )
    }
}

pub(crate) fn is_binary(t: &DataType) -> bool {
    matches!(
        t,
        DataType::FixedSizeBinary(_)
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
    )
}

/// Plain type of a sum: integers widen to Int64, decimals to Decimal128(38, s), booleans count.
pub(super) fn sum_plain_type(t: &DataType) -> DataType {
    match t {
        DataType::Decimal128(_, s) => DataType::Decimal128(38, *s),
        _ => DataType::Int64,
    }
}

/// Whether `expr` evaluates to ciphertexts (its field names a key).
pub(super) fn is_encrypted(expr: &Expr, schema: &DFSchema) -> bool {
    expr.to_field(schema)
        .is_ok_and(|(_, f)| f.metadata().contains_key(META_KEY_ID))
}

/// The first encrypted column `expr` uses (its value, not only whether it is NULL).
pub(super) fn encrypted_column_in(expr: &Expr, schema: &DFSchema) -> Option<String> {
    let mut found = None;
    let _ = expr.apply(|e| {
        match e {
            // NULL-ness of a ciphertext is visible to the cloud anyway: filtering on it is fine.
            Expr::IsNull(inner) | Expr::IsNotNull(inner)
                if matches!(inner.as_ref(), Expr::Column(_)) =>
            {
                return Ok(TreeNodeRecursion::Jump);
            }
            Expr::Column(c) => {
                if let Ok(f) = schema.field_from_column(c) {
                    if f.metadata().contains_key(META_KEY_ID) {
                        found = Some(c.name.clone());
                        return Ok(TreeNodeRecursion::Stop);
                    }
                }
            }
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// Test support: the 512-bit fixture key, and encrypted fields under it as a registered table
/// gives them (with the modulus).
#[cfg(test)]
pub(crate) mod fixture {
    use std::collections::HashMap;
    use std::sync::Arc;

    use datafusion::arrow::datatypes::{DataType, Field, FieldRef};

    use super::META_MODULUS;
    use crate::lake::schema::{AggregateKind, EncryptedColumn};
    use crate::paillier::wire::b64_encode;
    use crate::paillier::{hazmat, PrivateKey};

    /// The fixture key.
    pub(crate) fn key() -> &'static PrivateKey {
        hazmat::fixture_key_512()
    }

    /// An encrypted field `name` at `scale` with `plain_type`; an aggregate of the given tag
    /// (values W + 8 bytes wide) when `aggregate` is Some.
    pub(crate) fn field(
        name: &str,
        scale: u32,
        plain_type: DataType,
        aggregate: Option<AggregateKind>,
    ) -> FieldRef {
        let pk = key().public_key();
        let column = EncryptedColumn {
            key_id: pk.key_id().into(),
            scale,
            plain_type,
            aggregate,
        };
        let mut md: HashMap<String, String> = column.metadata();
        md.insert(META_MODULUS.into(), b64_encode(pk.n()));
        let width = column.value_width(pk.ciphertext_width());
        Arc::new(Field::new(name, DataType::FixedSizeBinary(width as i32), true).with_metadata(md))
    }
}
