//! Registering encrypted Parquet tables: a file, a folder (hive-style `hospital=a/` folders become
//! columns), a glob, or an object-store URL (`s3://`, `gs://`, `az://`, `file://`; credentials
//! from the usual environment variables). Every file's encrypted columns must agree on key id,
//! scale and plain type (an error names the two files that disagree), and each encrypted column
//! gets the modulus of its public key from the session's key ring in its field metadata, so
//! that the aggregates find it in the plan.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider, TableProviderFactory};
use datafusion::common::{plan_err, DataFusionError, Result};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::logical_expr::CreateExternalTable;
use futures::TryStreamExt;

use super::common::META_MODULUS;
use crate::lake::EncryptedColumn;
use crate::paillier::wire::b64_encode;
use crate::paillier::PublicKey;

/// The public keys a session knows, by key id. The query path holds public keys only.
#[derive(Clone, Debug, Default)]
pub struct KeyRing {
    keys: HashMap<String, PublicKey>,
}

impl KeyRing {
    /// An empty key ring.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a public key.
    pub fn add(&mut self, pk: PublicKey) {
        self.keys.insert(pk.key_id().to_owned(), pk);
    }

    /// The key with this id, if known.
    pub fn get(&self, key_id: &str) -> Option<&PublicKey> {
        self.keys.get(key_id)
    }
}

/// Makes sure the object store for `url` is registered, building it from the URL and the
/// environment (AWS_*, GOOGLE_*, AZURE_* variables) if needed.
fn ensure_object_store(state: &dyn Session, url: &ListingTableUrl) -> Result<()> {
    if state.runtime_env().object_store(url).is_ok() {
        return Ok(());
    }
    let base = url.object_store();
    let parsed = url::Url::parse(base.as_str())
        .map_err(|e| DataFusionError::Plan(format!("{base}: {e}")))?;
    let (store, _) = object_store::parse_url_opts(&parsed, std::env::vars())
        .map_err(|e| DataFusionError::Plan(format!("cannot open object store {base}: {e}")))?;
    state
        .runtime_env()
        .register_object_store(&parsed, Arc::from(store));
    Ok(())
}

/// A table over encrypted Parquet at `location`, checked and annotated as the module says.
pub async fn encrypted_table(
    state: &dyn Session,
    name: &str,
    location: &str,
    keys: &KeyRing,
) -> Result<Arc<dyn TableProvider>> {
    let url = ListingTableUrl::parse(location)?;
    ensure_object_store(state, &url)?;
    let format = Arc::new(ParquetFormat::default().with_skip_metadata(false));
    let mut options = ListingOptions::new(format.clone()).with_file_extension(".parquet");
    let partitions = options.infer_partitions(state, &url).await?;
    options = options.with_table_partition_cols(
        partitions
            .iter()
            .map(|p| (p.clone(), DataType::Utf8))
            .collect(),
    );

    let store = state.runtime_env().object_store(&url)?;
    let files: Vec<_> = url
        .list_all_files(state, store.as_ref(), ".parquet")
        .await?
        .try_collect()
        .await?;
    if files.is_empty() {
        return plan_err!("table `{name}`: no .parquet files at {location}");
    }
    // Each file's schema, checked column by column against the first file that had the column.
    let mut seen: HashMap<String, (EncryptedColumn, String)> = HashMap::new();
    let mut schemas = Vec::with_capacity(files.len());
    for meta in &files {
        let file = meta.location.to_string();
        let schema = format
            .infer_schema(state, &store, std::slice::from_ref(meta))
            .await?;
        for field in schema.fields() {
            let col = EncryptedColumn::from_field(field)
                .map_err(|e| DataFusionError::Plan(format!("table `{name}`, file {file}: {e}")))?;
            let Some(col) = col else { continue };
            match seen.get(field.name()) {
                None => {
                    seen.insert(field.name().clone(), (col, file.clone()));
                }
                Some((first, first_file)) => {
                    let what = if first.key_id != col.key_id {
                        Some(format!("key id {} vs {}", first.key_id, col.key_id))
                    } else if first.scale != col.scale {
                        Some(format!("scale {} vs {}", first.scale, col.scale))
                    } else if first.plain_type != col.plain_type {
                        Some(format!(
                            "plain type {} vs {}",
                            first.plain_type, col.plain_type
                        ))
                    } else {
                        None
                    };
                    if let Some(what) = what {
                        return plan_err!(
                            "table `{name}`: column `{}` is encrypted differently in {first_file} and {file} ({what}); a column must use one key and one scale",
                            field.name()
                        );
                    }
                }
            }
        }
        schemas.push(strip_cipher_metadata(&schema));
    }
    let merged = Schema::try_merge(schemas.iter().map(|s| s.as_ref().clone())).map_err(|e| {
        DataFusionError::Plan(format!(
            "table `{name}`: files have incompatible columns: {e}"
        ))
    })?;
    let schema = annotate(&merged, &seen, keys);
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(schema);
    Ok(Arc::new(ListingTable::try_new(config)?))
}

/// A schema without cipherlake metadata (merged separately, after the per-column checks).
fn strip_cipher_metadata(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let mut md = f.metadata().clone();
            md.retain(|k, _| !k.starts_with("cipherlake."));
            f.as_ref().clone().with_metadata(md)
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// Puts each encrypted column's metadata back, with the modulus when the key ring has its key.
fn annotate(
    schema: &Schema,
    columns: &HashMap<String, (EncryptedColumn, String)>,
    keys: &KeyRing,
) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match columns.get(f.name()) {
            None => f.as_ref().clone(),
            Some((col, _)) => {
                let mut md = f.metadata().clone();
                md.extend(col.metadata());
                if let Some(pk) = keys.get(&col.key_id) {
                    md.insert(META_MODULUS.into(), b64_encode(pk.n()));
                }
                f.as_ref().clone().with_metadata(md)
            }
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `CREATE EXTERNAL TABLE … STORED AS PARQUET LOCATION '…'` through `encrypted_table`.
#[derive(Debug)]
pub struct EncryptedTableFactory {
    keys: KeyRing,
}

impl EncryptedTableFactory {
    /// A factory that annotates tables with the keys of `keys`.
    pub fn new(keys: KeyRing) -> Self {
        EncryptedTableFactory { keys }
    }
}

#[async_trait]
impl TableProviderFactory for EncryptedTableFactory {
    async fn create(
        &self,
        state: &dyn Session,
        cmd: &CreateExternalTable,
    ) -> Result<Arc<dyn TableProvider>> {
        let name = cmd.name.to_string();
        match cmd.locations.as_slice() {
            [location] => encrypted_table(state, &name, location, &self.keys).await,
            _ => plan_err!("table `{name}`: give one LOCATION (a file, folder, glob or URL)"),
        }
    }
}
