//! The sqllogictest harness: runs every `tests/slt/*.slt` file with 1 and with 4 target
//! partitions. Encrypted results are decrypted with a fixed test key before comparison, so the
//! expected values in the files are plaintext. Tables are made in SQL with `test_encrypt(x)`, a
//! test-only scalar function that encrypts a plaintext column under the fixture key (with the
//! right cipherlake metadata), e.g.
//! `CREATE TABLE t AS SELECT region, test_encrypt(cost) AS cost FROM plain`.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use cipherlake::lake::decrypt::decrypt_batch;
use cipherlake::lake::encrypt::encrypt_values;
use cipherlake::lake::schema::META_MODULUS;
use cipherlake::lake::EncryptedColumn;
use cipherlake::paillier::wire::b64_encode;
use cipherlake::paillier::{hazmat, PrivateKey};
use cipherlake::sql::{self, KeyRing};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Field, FieldRef};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::{exec_err, DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, LogicalPlan, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};
use datafusion::prelude::SessionContext;
use sqllogictest::{DBOutput, DefaultColumnType};

fn key() -> &'static PrivateKey {
    hazmat::fixture_key_512()
}

/// `test_encrypt(x)`: encrypts Int*, Decimal128 or Boolean values under the fixture key.
#[derive(Debug)]
struct TestEncrypt {
    signature: Signature,
}

impl PartialEq for TestEncrypt {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for TestEncrypt {}
impl Hash for TestEncrypt {
    fn hash<H: Hasher>(&self, state: &mut H) {
        "test_encrypt".hash(state)
    }
}

impl ScalarUDFImpl for TestEncrypt {
    fn name(&self) -> &str {
        "test_encrypt"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::FixedSizeBinary(
            key().public_key().ciphertext_width() as i32,
        ))
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let pk = key().public_key();
        let t = args.arg_fields[0].data_type();
        let (scale, plain_type) = match t {
            DataType::Decimal128(p, s) => (*s as u32, DataType::Decimal128(*p, *s)),
            DataType::Boolean => (0, DataType::Boolean),
            t if t.is_integer() => (0, t.clone()),
            t => return exec_err!("test_encrypt: unsupported type {t}"),
        };
        let col = EncryptedColumn {
            key_id: pk.key_id().to_owned(),
            scale,
            plain_type,
            aggregate: None,
        };
        let mut md = col.metadata();
        md.insert(META_MODULUS.into(), b64_encode(pk.n()));
        Ok(Arc::new(
            Field::new("test_encrypt", self.return_type(&[])?, true).with_metadata(md),
        ))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let array = args.args[0].clone().into_array(args.number_rows)?;
        let values: Vec<Option<i128>> = match array.data_type() {
            DataType::Decimal128(_, _) => array.as_primitive::<Decimal128Type>().iter().collect(),
            DataType::Boolean => array
                .as_boolean()
                .iter()
                .map(|v| v.map(i128::from))
                .collect(),
            DataType::Int64 => array
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                .iter()
                .map(|v| v.map(i128::from))
                .collect(),
            DataType::Int32 => array
                .as_primitive::<datafusion::arrow::datatypes::Int32Type>()
                .iter()
                .map(|v| v.map(i128::from))
                .collect(),
            t => return exec_err!("test_encrypt: unsupported type {t}"),
        };
        let out = encrypt_values(key().public_key(), &values)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

struct CipherDb {
    ctx: SessionContext,
}

#[async_trait]
impl sqllogictest::AsyncDB for CipherDb {
    type Error = DataFusionError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>> {
        let df = sql::plan(&self.ctx, sql).await?;
        let is_statement = matches!(
            df.logical_plan(),
            LogicalPlan::Ddl(_) | LogicalPlan::Statement(_) | LogicalPlan::Dml(_)
        );
        let batches = df.collect().await?;
        if is_statement {
            return Ok(DBOutput::StatementComplete(0));
        }
        let mut rows = Vec::new();
        let mut width = 0;
        for batch in batches {
            let plain = decrypt_batch(key(), &batch, 1, "result")
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            rows.extend(split_lines(format_rows(&plain)?));
            width = plain.num_columns();
        }
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Any; width],
            rows,
        })
    }

    async fn shutdown(&mut self) {}
}

fn format_rows(batch: &RecordBatch) -> Result<Vec<Vec<String>>> {
    let opts = FormatOptions::default().with_null("NULL");
    let formatters = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((0..batch.num_rows())
        .map(|r| formatters.iter().map(|f| f.value(r).to_string()).collect())
        .collect())
}

/// A cell of several lines (an EXPLAIN plan) becomes one row per line, as in DataFusion's own
/// `.slt` files: the first line beside the row's other cells, each further line alone with its
/// indentation written as `-` (whitespace is not significant to the runner).
fn split_lines(rows: Vec<Vec<String>>) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for row in rows {
        let mut rest: Vec<String> = Vec::new();
        let first: Vec<String> = row
            .into_iter()
            .map(|cell| {
                let mut lines = cell.lines();
                let head = lines.next().unwrap_or_default().to_owned();
                for l in lines {
                    let body = l.trim_start();
                    rest.push(format!("{}{body}", "-".repeat(l.len() - body.len())));
                }
                head
            })
            .collect();
        out.push(first);
        out.extend(rest.into_iter().map(|l| vec![l]));
    }
    out
}

fn make_db(partitions: usize) -> CipherDb {
    let mut keys = KeyRing::new();
    keys.add(key().public_key().clone());
    let ctx = sql::session(keys, Some(partitions));
    ctx.register_udf(ScalarUDF::from(TestEncrypt {
        signature: Signature::any(1, Volatility::Volatile),
    }));
    CipherDb { ctx }
}

fn slt_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/slt"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt files in {}", dir.display());
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqllogictest_files() {
    let mut failures = Vec::new();
    for file in slt_files() {
        for partitions in [1usize, 4] {
            let mut runner =
                sqllogictest::Runner::new(move || async move { Ok(make_db(partitions)) });
            if let Err(e) = runner.run_file_async(&file).await {
                failures.push(format!(
                    "{} (target_partitions = {partitions}):\n{e}",
                    file.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
