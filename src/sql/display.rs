//! Showing results: encrypted cells as short tags for people (table, CSV) and as full hex for
//! programs (JSON); Parquet keeps the binary values and their metadata untouched.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::Result;

use crate::lake::decrypt::binary_values;
use crate::lake::schema::META_KEY_ID;
use crate::lake::schema::{AggregateValue, META_AGGREGATE};

/// How encrypted cells are rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CipherText {
    /// `enc:1a2b3c4d… rows=12` — enough to tell cells apart, not to decrypt them.
    Tag,
    /// The whole value as lowercase hex (ciphertext little-endian, then for aggregates the
    /// 8-byte little-endian row count).
    Hex,
}

/// The schema with encrypted columns as text.
pub fn text_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if f.metadata().contains_key(META_KEY_ID) {
                Field::new(f.name(), DataType::Utf8, true)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// Replaces every encrypted column of `batch` by its text rendering.
pub fn render(batch: &RecordBatch, mode: CipherText) -> Result<RecordBatch> {
    let schema = batch.schema();
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, a)| {
            if !f.metadata().contains_key(META_KEY_ID) {
                return a.clone();
            }
            let aggregate = f.metadata().contains_key(META_AGGREGATE);
            let values = binary_values(a).unwrap_or_default();
            let text: StringArray = values
                .iter()
                .map(|v| v.map(|b| render_value(b, aggregate, mode)))
                .collect();
            Arc::new(text) as ArrayRef
        })
        .collect();
    Ok(RecordBatch::try_new(text_schema(&schema), columns)?)
}

fn render_value(b: &[u8], aggregate: bool, mode: CipherText) -> String {
    let hex = hex::encode;
    match mode {
        CipherText::Hex => hex(b),
        CipherText::Tag => {
            let head = hex(&b[..b.len().min(4)]);
            match AggregateValue::rows_of(b).filter(|_| aggregate) {
                Some(rows) => format!("enc:{head}… rows={rows}"),
                None => format!("enc:{head}…"),
            }
        }
    }
}
