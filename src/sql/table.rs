//! Registering encrypted Parquet tables: a file, a folder (hive-style `hospital=a/` folders become
//! columns), a glob, or an object-store URL (`s3://`, `gs://`, `az://`, `file://`; credentials
//! given by the caller, `register_object_store`). Every file's encrypted columns must agree on key id,
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
use futures::{StreamExt, TryStreamExt};

use super::keyring::KeyRing;
use crate::lake::decrypt::binary_values;
use crate::lake::schema::META_MODULUS;
use crate::lake::EncryptedColumn;
use crate::paillier::wire::b64_encode;

/// Options for object stores (`aws_access_key_id`, `google_service_account`, … as
/// `object_store::parse_url_opts` takes them): the caller's to give, never read from the
/// environment here.
pub type StoreOptions = [(String, String)];

/// Makes sure the object store for `location` is registered, building it from the URL and
/// `options` if needed (a local path needs none).
pub fn register_object_store(
    state: &dyn Session,
    location: &str,
    options: &StoreOptions,
) -> Result<()> {
    ensure_object_store(state, &ListingTableUrl::parse(location)?, options)
}

fn ensure_object_store(
    state: &dyn Session,
    url: &ListingTableUrl,
    options: &StoreOptions,
) -> Result<()> {
    if state.runtime_env().object_store(url).is_ok() {
        return Ok(());
    }
    let base = url.object_store();
    let parsed = url::Url::parse(base.as_str())
        .map_err(|e| DataFusionError::Plan(format!("{base}: {e}")))?;
    let (store, _) = object_store::parse_url_opts(&parsed, options.iter().cloned())
        .map_err(|e| DataFusionError::Plan(format!("cannot open object store {base}: {e}")))?;
    state
        .runtime_env()
        .register_object_store(&parsed, Arc::from(store));
    Ok(())
}

/// A table over encrypted Parquet at `location`, checked and annotated as the module says. A
/// remote location's object store must be registered (`register_object_store`).
pub async fn encrypted_table(
    state: &dyn Session,
    name: &str,
    location: &str,
    keys: &KeyRing,
) -> Result<Arc<dyn TableProvider>> {
    let url = ListingTableUrl::parse(location)?;
    ensure_object_store(state, &url, &[])?;
    let format = Arc::new(ParquetFormat::default().with_skip_metadata(false));
    let mut options = ListingOptions::new(format.clone()).with_file_extension(".parquet");
    let partitions = options.infer_partitions(state, &url).await?;
    options = options.with_table_partition_cols(
        partitions
            .iter()
            .map(|p| (p.clone(), DataType::Utf8))
            .collect(),
    );

    let (store, files) = list_files(state, &url).await?;
    if files.is_empty() {
        return plan_err!("table `{name}`: no .parquet files at {location}");
    }
    // Each file's schema, checked column by column against the first file that had the column.
    let mut seen: HashMap<String, (EncryptedColumn, String)> = HashMap::new();
    let mut schemas = Vec::with_capacity(files.len());
    for meta in &files {
        let file = display_path(&url, &meta.location);
        let schema = format
            .infer_schema(state, &store, std::slice::from_ref(meta))
            .await
            .map_err(|e| file_error(name, &file, &e))?;
        for field in schema.fields() {
            let col = EncryptedColumn::from_field(field)
                .map_err(|e| DataFusionError::Plan(format!("table `{name}`: {file}: {e}")))?;
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

/// The store of a table and its `.parquet` files (as a lake listing sees them).
async fn list_files(
    state: &dyn Session,
    url: &ListingTableUrl,
) -> Result<(
    Arc<dyn object_store::ObjectStore>,
    Vec<object_store::ObjectMeta>,
)> {
    let store = state.runtime_env().object_store(url)?;
    let files = url
        .list_all_files(state, store.as_ref(), ".parquet")
        .await?
        .try_collect()
        .await?;
    Ok((store, files))
}

/// A file of a table as its user knows it: the local path (with its leading `/`, which object
/// store paths leave out), or the full URL.
fn display_path(url: &ListingTableUrl, location: &object_store::path::Path) -> String {
    if url.scheme() == "file" {
        format!("/{location}")
    } else {
        format!("{}{location}", url.object_store().as_str())
    }
}

/// An error reading one file of a table, naming the table and the file (and DataFusion's
/// "Parquet error: " prefix once).
fn file_error(table: &str, file: &str, e: &DataFusionError) -> DataFusionError {
    let msg = match e {
        DataFusionError::ParquetError(p) => p.to_string(),
        other => other.to_string(),
    };
    DataFusionError::Plan(format!("table `{table}`: {file}: {msg}"))
}

/// The first encrypted value in the table at `location` that is not a valid ciphertext of its
/// key, as "FILE: row R, column `C`: reason", or the first file that cannot be read. A query's
/// execution error cannot say which file a bad value came from; this scan, run after such an
/// error, can.
pub async fn find_bad_value(
    state: &dyn Session,
    name: &str,
    location: &str,
    keys: &KeyRing,
) -> Result<Option<String>> {
    use datafusion::datasource::listing::PartitionedFile;
    use datafusion::datasource::physical_plan::parquet::{
        DefaultParquetFileReaderFactory, ParquetFileReaderFactory,
    };
    use datafusion::parquet::arrow::async_reader::AsyncFileReader;
    use datafusion::parquet::arrow::ParquetRecordBatchStreamBuilder;
    use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
    let url = ListingTableUrl::parse(location)?;
    let (store, files) = list_files(state, &url).await?;
    let readers = DefaultParquetFileReaderFactory::new(Arc::clone(&store));
    let metrics = ExecutionPlanMetricsSet::new();
    for meta in files {
        let file = display_path(&url, &meta.location);
        let reader: Box<dyn AsyncFileReader> =
            readers.create_reader(0, PartitionedFile::from(meta), None, &metrics)?;
        let stream = match ParquetRecordBatchStreamBuilder::new(reader).await {
            Ok(b) => b.build(),
            Err(e) => return Ok(Some(format!("table `{name}`: {file}: {e}"))),
        };
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => return Ok(Some(format!("table `{name}`: {file}: {e}"))),
        };
        let mut first_row = 1u64;
        while let Some(batch) = stream.next().await {
            let batch = match batch {
                Ok(b) => b,
                Err(e) => return Ok(Some(format!("table `{name}`: {file}: {e}"))),
            };
            let schema = batch.schema();
            for (field, array) in schema.fields().iter().zip(batch.columns()) {
                let Ok(Some(col)) = EncryptedColumn::from_field(field) else {
                    continue;
                };
                let (Some(pk), Some(values)) = (keys.get(&col.key_id), binary_values(array)) else {
                    continue;
                };
                for (i, v) in values.iter().enumerate() {
                    if let Some(Err(e)) = v.map(|b| pk.ciphertext_from_le_bytes(b)) {
                        return Ok(Some(format!(
                            "table `{name}`: {file}: row {}, column `{}`: {e}",
                            first_row + i as u64,
                            field.name()
                        )));
                    }
                }
            }
            first_row += batch.num_rows() as u64;
        }
    }
    Ok(None)
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

/// `CREATE EXTERNAL TABLE … STORED AS PARQUET LOCATION '…'` through `encrypted_table`. A remote
/// location's store is built from the factory's options and the statement's `OPTIONS (…)`.
#[derive(Debug)]
pub struct EncryptedTableFactory {
    keys: KeyRing,
    store_options: Vec<(String, String)>,
}

impl EncryptedTableFactory {
    /// A factory that annotates tables with the keys of `keys`.
    pub fn new(keys: KeyRing, store_options: Vec<(String, String)>) -> Self {
        EncryptedTableFactory {
            keys,
            store_options,
        }
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
            [location] => {
                let mut options = self.store_options.clone();
                options.extend(cmd.options.iter().map(|(k, v)| (k.clone(), v.clone())));
                register_object_store(state, location, &options)?;
                encrypted_table(state, &name, location, &self.keys).await
            }
            _ => plan_err!("table `{name}`: give one LOCATION (a file, folder, glob or URL)"),
        }
    }
}
