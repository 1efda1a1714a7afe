//! Both ends of a decryption request. The cloud writes one ([`make_request`]) from the plan it ran;
//! each hospital re-verifies it ([`reverify`]) before it decrypts anything:
//!
//! 1. the request's id is the digest of its contents, its roster the pinned one, its result file
//!    the one named;
//! 2. every file is signed by an owner on the roster, for its table's location and partition;
//! 3. the hospital plans the SQL itself over the real tables: the files its own plan reads must
//!    be exactly the request's (none omitted, none added);
//! 4. it copies those files into a private folder, checking each copy's SHA-256 against the
//!    owner's signature (what it reads is what was signed, whatever the storage serves later);
//! 5. it runs the SQL itself over the copies and requires the result to equal the cloud's, row
//!    for row and bit for bit in every encrypted cell (rows in any order; products commute);
//! 6. the tags that decide what a cell is (aggregate kind, scale, plain type, row count) are taken
//!    from its own run, never from the cloud's file;
//! 7. during that run it traces every released cell back to the lake rows that contributed
//!    (`sql::trace`): each cell must be a sum over at least the policy's minimum of distinct rows
//!    from at least its minimum of owners, every row counted once and through the same expression.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::{collect, ExecutionPlan};
use datafusion::prelude::{DataFrame, SessionContext};

use super::policy::Policy;
use super::request::{FileEntry, Request, ResultEntry, TableEntry};
use super::roster::Roster;
use super::signature::{verify_file, FileSignature};
use crate::error::{join_limited, Error, Result};
use crate::lake::schema::EncryptedColumn;
use crate::lake::signed::HashingWriter;
use crate::sql::{self, KeyRing};

/// What a hospital's re-verification established.
#[derive(Debug)]
pub struct Reverified {
    /// The cloud's result rows under the hospital's own schema (its tags).
    pub batches: Vec<RecordBatch>,
    /// Files per owner the result was computed from.
    pub owners: BTreeMap<String, usize>,
    /// Files read.
    pub files: usize,
    /// Every released cell, traced to its lake rows.
    pub cells: Vec<CellProvenance>,
}

/// Where one released cell comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CellProvenance {
    /// Result column.
    pub column: String,
    /// 0-based result row.
    pub row: u64,
    /// Distinct lake rows that contributed.
    pub rows: u64,
    /// Rows per contributing owner.
    pub owners: BTreeMap<String, u64>,
    /// The lake column(s) its values come from (`cost`, or `cost+length_of_stay`).
    pub measure: String,
    /// The contributing rows, per file (by the file's SHA-256): row numbers within the file.
    pub row_set: RowSet,
    /// Whether its values are the lake column's own, without arithmetic (SUM, COUNT or AVG of
    /// the column): what a declared sensitivity is about.
    pub plain: bool,
    /// Whether it counts a flag (a count, or the share behind an AVG of one).
    pub count: bool,
    /// The decimal scale of its encrypted value.
    pub scale: u32,
}

/// A cell's contributing rows: per lake file (its SHA-256, so the same file in any request is the
/// same key), the 0-based row numbers within it.
pub type RowSet = BTreeMap<String, roaring::RoaringBitmap>;

/// An absolute local table location; object stores and globs are not (yet) supported in
/// requests, and say so.
pub fn table_location(location: &str) -> Result<String> {
    let refuse = |why: &str| Err(Error::Invalid(format!("table location {location}: {why}")));
    if location.contains("://") {
        return refuse("a decryption request needs a local table (object-store tables cannot be re-verified yet)");
    }
    if location.contains(['*', '?', '[']) {
        return refuse("a decryption request needs a file or folder, not a glob");
    }
    let p = std::fs::canonicalize(location).map_err(|e| Error::io(location, e))?;
    p.to_str()
        .map(str::to_owned)
        .ok_or_else(|| Error::Invalid(format!("table location {location}: not UTF-8")))
}

/// The local files a physical plan scans, as absolute paths, in plan order without repeats.
pub fn files_read(plan: &Arc<dyn ExecutionPlan>) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    let mut seen = BTreeSet::new();
    plan.apply(|node| {
        if let Some(exec) = node.downcast_ref::<DataSourceExec>() {
            if let Some(scan) = exec.data_source().downcast_ref::<FileScanConfig>() {
                for group in &scan.file_groups {
                    for f in group.files() {
                        let path = format!("/{}", f.object_meta.location);
                        if seen.insert(path.clone()) {
                            out.push(path);
                        }
                    }
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .map_err(|e| Error::Data(format!("cannot list the files of the plan: {e}")))?;
    Ok(out)
}

/// The table a file belongs to: the one whose location holds it (the longest such location).
fn table_of<'a>(tables: &'a [TableEntry], file: &str) -> Option<&'a TableEntry> {
    tables
        .iter()
        .filter(|t| {
            file == t.location
                || file
                    .strip_prefix(&t.location)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
        .max_by_key(|t| t.location.len())
}

/// The cloud's side: the request for a result it wrote, from the plan it executed.
#[allow(clippy::too_many_arguments)]
pub fn make_request(
    sql: &str,
    tables: &[(String, String)],
    plan: &Arc<dyn ExecutionPlan>,
    roster: &Roster,
    requester: &str,
    recipient: &str,
    result: &Path,
) -> Result<Request> {
    super::requester::parse_recipient(recipient)?;
    let tables = tables
        .iter()
        .map(|(name, location)| {
            Ok(TableEntry {
                name: name.clone(),
                location: table_location(location)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut files = Vec::new();
    let mut bad = Vec::new();
    for path in files_read(plan)? {
        let Some(table) = table_of(&tables, &path) else {
            return Err(Error::Data(format!(
                "{path}: read by the query but in none of its tables' locations"
            )));
        };
        match verify_file(roster, Path::new(&path)) {
            Ok(signed) => files.push(FileEntry {
                table: table.name.clone(),
                location: path,
                signature: signed.signature,
            }),
            Err(e) => bad.push(e.to_string()),
        }
    }
    if !bad.is_empty() {
        return Err(Error::Data(format!(
            "no decryption request can be made: hospitals decrypt only results computed from signed files, and {} of the files read are not: {}",
            bad.len(),
            join_limited(&bad, "; ")
        )));
    }
    let (size, sha) = crate::lake::signed::hash_file(result)?;
    Ok(Request::new(
        sql.to_owned(),
        tables,
        files,
        key_ids(&plan.schema())?,
        roster.id().to_owned(),
        requester.to_owned(),
        recipient.to_owned(),
        ResultEntry {
            sha256: hex::encode(sha),
            size,
        },
    ))
}

/// The key ids of a result's encrypted columns, sorted.
fn key_ids(schema: &SchemaRef) -> Result<Vec<String>> {
    let mut ids = BTreeSet::new();
    for f in schema.fields() {
        if let Some(c) = EncryptedColumn::from_field(f)? {
            ids.insert(c.key_id);
        }
    }
    Ok(ids.into_iter().collect())
}

/// A session over `tables` (name, location) with `keys`, one partition per core.
async fn session_over(tables: &[(String, String)], keys: &KeyRing) -> Result<SessionContext> {
    let ctx = sql::session(keys.clone(), None);
    for (name, location) in tables {
        sql::register_table(&ctx, name, location, keys)
            .await
            .map_err(|e| Error::Data(format!("table `{name}` at {location}: {e}")))?;
    }
    Ok(ctx)
}

fn bad_sql(e: datafusion::error::DataFusionError) -> Error {
    Error::Data(format!("the request's SQL does not plan here: {e}"))
}

/// Plans the request's SQL (one query statement) in `ctx`.
async fn plan(ctx: &SessionContext, sql_text: &str) -> Result<DataFrame> {
    sql::plan(ctx, sql_text).await.map_err(bad_sql)
}

/// A hospital's side: re-verifies `request` for the result file `result` (its bytes' SHA-256
/// and size, and its batches as read).
pub async fn reverify(
    request: &Request,
    roster: &Roster,
    keys: &KeyRing,
    policy: &Policy,
    result_sha256: &str,
    result_size: u64,
    result_batches: &[RecordBatch],
) -> Result<Reverified> {
    let refuse = |why: String| Error::Data(format!("request {}: {why}", request.request_id));
    // 1. The request is about this result, under this roster and these keys.
    if request.roster_id != roster.id() {
        return Err(refuse(format!(
            "made under roster {}, not the pinned roster {}",
            request.roster_id,
            roster.id()
        )));
    }
    if request.result.sha256 != result_sha256 || request.result.size != result_size {
        return Err(refuse(
            "it names another result file (its SHA-256 or size differ from the file given)".into(),
        ));
    }
    if let Some(k) = request.key_ids.iter().find(|k| keys.get(k).is_none()) {
        return Err(refuse(format!(
            "it uses key {k}, which this hospital was not given"
        )));
    }
    // 2. Every file signed, for where it is.
    let mut bad = Vec::new();
    for f in &request.files {
        let Some(table) = request.tables.iter().find(|t| t.name == f.table) else {
            bad.push(format!(
                "{}: its table `{}` is not in the request",
                f.location, f.table
            ));
            continue;
        };
        if table_of(&request.tables, &f.location).map(|t| &t.name) != Some(&table.name) {
            bad.push(format!(
                "{}: not inside table `{}` at {}",
                f.location, table.name, table.location
            ));
        }
        if let Err(why) = f.signature.check_at(roster, Path::new(&f.location)) {
            bad.push(format!("{}: {why}", f.location));
        }
    }
    // One signed file, one place: the same file (or two versions of one) read twice would count
    // its rows twice.
    let mut seen: BTreeMap<(&str, &str, &str), &str> = BTreeMap::new();
    for f in &request.files {
        let key = (
            f.table.as_str(),
            f.signature.owner.as_str(),
            f.signature.path.as_str(),
        );
        if let Some(first) = seen.insert(key, &f.location) {
            bad.push(format!(
                "{} and {first}: both signed by `{}` as `{}`; a table may hold one file per signed path, or its rows would count twice",
                f.location, f.signature.owner, f.signature.path
            ));
        }
    }
    let mut by_hash: BTreeMap<&str, &str> = BTreeMap::new();
    for f in &request.files {
        if let Some(first) = by_hash.insert(&f.signature.sha256, &f.location) {
            bad.push(format!(
                "{} and {first} are the same file: its rows would count twice",
                f.location
            ));
        }
    }
    if !bad.is_empty() {
        return Err(refuse(format!(
            "{} file(s) not signed as they must be: {}",
            bad.len(),
            join_limited(&bad, "; ")
        )));
    }
    // 3. The hospital's own plan over the real tables reads exactly the request's files.
    let tables: Vec<(String, String)> = request
        .tables
        .iter()
        .map(|t| (t.name.clone(), t.location.clone()))
        .collect();
    let real = session_over(&tables, keys).await?;
    let real_plan = plan(&real, &request.sql)
        .await?
        .create_physical_plan()
        .await
        .map_err(bad_sql)?;
    let read: BTreeSet<String> = files_read(&real_plan)?.into_iter().collect();
    let listed: BTreeSet<String> = request.files.iter().map(|f| f.location.clone()).collect();
    let omitted: Vec<&String> = read.difference(&listed).collect();
    let added: Vec<&String> = listed.difference(&read).collect();
    if !omitted.is_empty() || !added.is_empty() {
        let mut why = Vec::new();
        if !omitted.is_empty() {
            why.push(format!(
                "the query reads {} file(s) the request does not list: {}",
                omitted.len(),
                join_limited(&omitted, ", ")
            ));
        }
        if !added.is_empty() {
            why.push(format!(
                "the request lists {} file(s) the query does not read: {}",
                added.len(),
                join_limited(&added, ", ")
            ));
        }
        return Err(refuse(why.join("; ")));
    }
    // 4. Private copies, each checked against its signature as it is copied.
    let stage = tempfile::Builder::new()
        .prefix(".cipherlake-verify-")
        .tempdir()
        .map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let mut staged_tables = Vec::new();
    let mut staged_files: BTreeMap<String, PathBuf> = BTreeMap::new();
    for (i, t) in request.tables.iter().enumerate() {
        let root = stage.path().join(i.to_string());
        let single = Path::new(&t.location).is_file();
        let mut target = root.clone();
        for f in request.files.iter().filter(|f| f.table == t.name) {
            let rel = if single {
                PathBuf::from(Path::new(&f.location).file_name().unwrap_or_default())
            } else {
                PathBuf::from(
                    f.location
                        .strip_prefix(&t.location)
                        .unwrap_or(&f.location)
                        .trim_start_matches('/'),
                )
            };
            let to = root.join(&rel);
            copy_checked(Path::new(&f.location), &to, &f.signature)
                .map_err(|e| refuse(e.to_string()))?;
            staged_files.insert(f.location.clone(), to.clone());
            if single {
                target = to;
            }
        }
        std::fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
        staged_tables.push((t.name.clone(), target.to_string_lossy().into_owned()));
    }
    // 5. The hospital's own run over the copies, whose plan must pass the release rules.
    let ctx = session_over(&staged_tables, keys).await?;
    let df = plan(&ctx, &request.sql).await?;
    let reasons = refusals(&ctx, df.logical_plan()).await?;
    if !reasons.is_empty() {
        return Err(Error::ReleaseRefused {
            request: request.request_id.clone(),
            reasons,
        });
    }
    let plan = df.create_physical_plan().await.map_err(bad_sql)?;
    // 6. The run, traced from the staged lake rows to every cell.
    let owner_names: Vec<String> = request
        .files
        .iter()
        .map(|f| f.signature.owner.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let file_owners: Vec<u16> = request
        .files
        .iter()
        .map(|f| {
            owner_names
                .binary_search(&f.signature.owner)
                .unwrap_or_default() as u16
        })
        .collect();
    let tracing = sql::trace::begin().await;
    for (i, f) in request.files.iter().enumerate() {
        let staged = &staged_files[&f.location];
        seed(&tracing, staged, i as u64).map_err(|e| refuse(e.to_string()))?;
    }
    let own = collect(plan.clone(), ctx.task_ctx())
        .await
        .map_err(|e| refuse(format!("the re-run failed: {e}")))?;
    let schema = plan.schema();
    let batches = same_result(&schema, &own, result_batches).map_err(refuse)?;
    let file_shas: Vec<&str> = request
        .files
        .iter()
        .map(|f| f.signature.sha256.as_str())
        .collect();
    let files = Files {
        owner_names: &owner_names,
        owners: &file_owners,
        shas: &file_shas,
    };
    let (cells, mut reasons) = provenance(&tracing, &batches, &files, policy, keys)?;
    // Cells of one request that reveal a few rows by difference (see `release::ledger`; the
    // ledger extends the first rule to every earlier release).
    if reasons.is_empty() {
        reasons.extend(super::ledger::differencing(
            &request.request_id,
            &cells,
            &[],
            policy.min_rows,
        ));
        reasons.extend(super::ledger::complementary(&cells, policy.min_rows));
    }
    drop(tracing);
    if !reasons.is_empty() {
        return Err(Error::ReleaseRefused {
            request: request.request_id.clone(),
            reasons,
        });
    }
    let mut owners = BTreeMap::new();
    for f in &request.files {
        *owners.entry(f.signature.owner.clone()).or_insert(0) += 1;
    }
    Ok(Reverified {
        batches,
        owners,
        files: request.files.len(),
        cells,
    })
}

/// Seeds `trace` with every per-row ciphertext of a staged lake file (file `index`), as row
/// `index << 32 | row in file`.
fn seed(trace: &sql::trace::Trace, path: &Path, index: u64) -> Result<()> {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use datafusion::parquet::arrow::ProjectionMask;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
    let mut columns = Vec::new();
    for (i, f) in builder.schema().fields().iter().enumerate() {
        if EncryptedColumn::from_field(f)?.is_some_and(|c| c.aggregate.is_none()) {
            columns.push(i);
        }
    }
    if columns.is_empty() {
        return Ok(());
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), columns);
    let mut row = 0u64;
    for batch in builder.with_projection(mask).build()? {
        let batch = batch?;
        let schema = batch.schema();
        for (field, array) in schema.fields().iter().zip(batch.columns()) {
            let Some(values) = crate::lake::decrypt::binary_values(array) else {
                continue;
            };
            let column = trace.column(field.name());
            for (r, v) in values.iter().enumerate() {
                if let Some(v) = v {
                    trace.seed(v, index << 32 | (row + r as u64), column);
                }
            }
        }
        row += batch.num_rows() as u64;
    }
    Ok(())
}

/// The request's files, by index (the high 32 bits of a traced row id).
struct Files<'a> {
    /// Owner ids, sorted.
    owner_names: &'a [String],
    /// Each file's owner, as an index into `owner_names`.
    owners: &'a [u16],
    /// Each file's SHA-256.
    shas: &'a [&'a str],
}

/// Every encrypted cell of the result traced to its lake rows (row ids `file << 32 | row`), and
/// what the policy refuses.
fn provenance(
    trace: &sql::trace::Trace,
    batches: &[RecordBatch],
    files: &Files,
    policy: &Policy,
    keys: &KeyRing,
) -> Result<(Vec<CellProvenance>, Vec<String>)> {
    let request_owners = files.owners.iter().collect::<BTreeSet<_>>().len();
    let mut reasons = Vec::new();
    let groups: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if let Some(max) = policy.max_groups.filter(|&m| groups as u64 > m) {
        reasons.push(format!(
            "the result has {groups} rows (groups), more than this hospital's maximum of {max}"
        ));
    }
    use crate::lake::schema::AggregateValue;
    let mut cells = Vec::new();
    super::partial::each_encrypted_cell("the result", batches, |field, col, row, v| {
        let at = format!("row {}, column `{}`", row + 1, field.name());
        if col.aggregate.is_none() {
            reasons.push(format!(
                "{at}: an individual encrypted value{}; only aggregates are released",
                if trace.is_row_value(v) {
                    " of a lake row"
                } else {
                    ""
                }
            ));
            return Ok(());
        }
        let width = keys
            .get(&col.key_id)
            .map(|k| k.ciphertext_width())
            .unwrap_or_default();
        let value =
            AggregateValue::split(v, width).map_err(|e| Error::Data(format!("{at}: {e}")))?;
        let Some(t) = trace.cell(value.ciphertext, value.rows) else {
            reasons.push(format!(
                "{at}: not an aggregate the hospital's own run computed from lake rows"
            ));
            return Ok(());
        };
        for p in &t.problems {
            reasons.push(format!("{at}: {}", p.reason()));
        }
        let distinct = t.rows.len();
        if t.problems.is_empty() && distinct != value.rows {
            reasons.push(format!(
                "{at}: it counts {} rows but {distinct} distinct lake rows contributed",
                value.rows
            ));
        }
        if distinct < policy.min_rows {
            reasons.push(format!(
                "{at}: {distinct} distinct lake row(s), fewer than this hospital's minimum of {}",
                policy.min_rows
            ));
        }
        // Row ids are `file << 32 | row`: the treemap's 32-bit halves are the files.
        let mut owners = BTreeMap::new();
        let mut row_set = RowSet::new();
        for (file, rows) in t.rows.bitmaps() {
            let (Some(&o), Some(sha)) = (
                files.owners.get(file as usize),
                files.shas.get(file as usize),
            ) else {
                continue;
            };
            *owners
                .entry(files.owner_names[o as usize].clone())
                .or_insert(0) += rows.len();
            *row_set.entry((*sha).to_owned()).or_default() |= rows;
        }
        if (owners.len() as u64) < policy.min_owners {
            reasons.push(format!(
                "{at}: rows from {} owner(s), fewer than this hospital's minimum of {}",
                owners.len(),
                policy.min_owners
            ));
        }
        for (owner, &n) in &owners {
            if n < policy.min_rows_per_owner {
                reasons.push(format!(
                    "{at}: owner `{owner}` contributes {n} row(s), fewer than this hospital's minimum of {} per owner",
                    policy.min_rows_per_owner
                ));
            }
        }
        if !policy.owner_breakdown && owners.len() == 1 && request_owners > 1 {
            let only = owners.keys().next().cloned().unwrap_or_default();
            reasons.push(format!(
                "{at}: all its rows come from owner `{only}`, a per-owner breakdown this hospital's policy does not allow"
            ));
        }
        let measure = t.measure.map(|m| trace.measure(m)).unwrap_or_default();
        if !policy.allows(&measure) {
            reasons.push(format!(
                "{at}: its values come from `{measure}`, which this hospital's policy does not release (measures: {})",
                policy.measures.as_deref().unwrap_or_default().join(", ")
            ));
        }
        let plain = t
            .form
            .is_some_and(|f| sql::trace::Trace::is_column_form(f, &measure));
        cells.push(CellProvenance {
            column: field.name().clone(),
            row,
            rows: distinct,
            owners,
            measure,
            row_set,
            plain,
            count: col.aggregate.is_some_and(|a| a.is_count()),
            scale: col.scale,
        });
        Ok(())
    })?;
    Ok((cells, reasons))
}

/// The release-path refusals of `sql_text` as planned and analysed in `ctx` (see
/// `release::plan`), including a run of the plaintext side of each join to check that its keys
/// are unique.
pub async fn release_refusals(ctx: &SessionContext, sql_text: &str) -> Result<Vec<String>> {
    refusals(ctx, plan(ctx, sql_text).await?.logical_plan()).await
}

/// [`release_refusals`] of a planned (not yet analysed) logical plan.
async fn refusals(ctx: &SessionContext, logical: &LogicalPlan) -> Result<Vec<String>> {
    let state = ctx.state();
    let analysed = state
        .analyzer()
        .execute_and_check(logical.clone(), state.config_options(), |_, _| {})
        .map_err(bad_sql)?;
    let mut check = super::plan::check(&analysed);
    for u in &check.unique_keys {
        use datafusion::functions_aggregate::expr_fn::count;
        use datafusion::logical_expr::{col, lit, LogicalPlanBuilder};
        let dup = LogicalPlanBuilder::from(u.plan.clone())
            .aggregate(u.keys.clone(), vec![count(lit(1)).alias("n")])
            .and_then(|b| b.filter(col("n").gt(lit(1))))
            .and_then(|b| b.limit(0, Some(1)))
            .and_then(|b| b.build())
            .map_err(bad_sql)?;
        let found = ctx
            .execute_logical_plan(dup)
            .await
            .map_err(bad_sql)?
            .count()
            .await
            .map_err(|e| Error::Data(format!("cannot check a join's keys: {e}")))?;
        if found > 0 {
            let keys: Vec<String> = u.keys.iter().map(|k| k.to_string()).collect();
            check.reasons.push(format!(
                "a join on {} whose plaintext side repeats a key: each matching lake row would be counted more than once",
                keys.join(", ")
            ));
        }
    }
    Ok(check.reasons)
}

/// Copies `from` to `to`, hashing the bytes written; they must be the signed ones.
fn copy_checked(from: &Path, to: &Path, signature: &FileSignature) -> Result<()> {
    if let Some(p) = to.parent() {
        std::fs::create_dir_all(p).map_err(|e| Error::io(p, e))?;
    }
    let mut src = std::fs::File::open(from).map_err(|e| Error::io(from, e))?;
    let dst = std::fs::File::create(to).map_err(|e| Error::io(to, e))?;
    let mut w = HashingWriter::new(dst);
    std::io::copy(&mut src, &mut w).map_err(|e| Error::io(from, e))?;
    let (n, sha) = w.finish();
    signature
        .check_content(n, &sha)
        .map_err(|reason| Error::Signature {
            file: from.to_owned(),
            reason,
        })
}

/// The cloud's rows under the hospital's schema, if they are the hospital's rows: same column
/// names and types, and the same rows in some order (floating-point columns left out of the
/// comparison: their last bits depend on the order of additions; nothing encrypted is a float).
fn same_result(
    schema: &SchemaRef,
    own: &[RecordBatch],
    cloud: &[RecordBatch],
) -> std::result::Result<Vec<RecordBatch>, String> {
    let theirs_schema = match cloud.first() {
        Some(b) => b.schema(),
        None => {
            let rows: usize = own.iter().map(RecordBatch::num_rows).sum();
            return if rows == 0 {
                Ok(Vec::new())
            } else {
                Err(format!(
                    "the result file has no rows, the re-run has {rows}"
                ))
            };
        }
    };
    let names = |s: &SchemaRef| -> Vec<(String, DataType)> {
        s.fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect()
    };
    if names(schema) != names(&theirs_schema) {
        return Err(format!(
            "the result's columns ({}) are not the re-run's ({})",
            describe(&theirs_schema),
            describe(schema)
        ));
    }
    // The tags too: a count relabelled as a sum would escape small-count suppression at combine.
    let tags = |f: &datafusion::arrow::datatypes::Field| -> BTreeMap<String, String> {
        f.metadata()
            .iter()
            .filter(|(k, _)| k.starts_with("cipherlake."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    for (mine, theirs) in schema.fields().iter().zip(theirs_schema.fields()) {
        if tags(mine) != tags(theirs) {
            return Err(format!(
                "column `{}`: the result's tags ({:?}) are not the re-run's ({:?}): the cloud's file was relabelled",
                mine.name(),
                tags(theirs),
                tags(mine)
            ));
        }
    }
    let keep: Vec<usize> = (0..schema.fields().len())
        .filter(|&i| !schema.field(i).data_type().is_floating())
        .collect();
    let rows = |batches: &[RecordBatch]| -> std::result::Result<Vec<Vec<u8>>, String> {
        let fields = keep
            .iter()
            .map(|&i| SortField::new(schema.field(i).data_type().clone()))
            .collect();
        let conv = RowConverter::new(fields).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for b in batches {
            let cols: Vec<_> = keep.iter().map(|&i| b.column(i).clone()).collect();
            let r = conv.convert_columns(&cols).map_err(|e| e.to_string())?;
            out.extend(r.iter().map(|row| row.as_ref().to_vec()));
        }
        out.sort();
        Ok(out)
    };
    let (a, b) = (rows(own)?, rows(cloud)?);
    if a.len() != b.len() {
        return Err(format!(
            "the result has {} rows, the re-run {}: the cloud's result is not what the request computes",
            b.len(),
            a.len()
        ));
    }
    if let Some(i) = a.iter().zip(&b).position(|(x, y)| x != y) {
        return Err(format!(
            "the result differs from the re-run (at least {} of {} rows differ, in a plaintext value, a ciphertext or a row count): the cloud's result is not what the request computes",
            a.iter().zip(&b).skip(i).filter(|(x, y)| x != y).count(),
            a.len()
        ));
    }
    cloud
        .iter()
        .map(|b| {
            RecordBatch::try_new(schema.clone(), b.columns().to_vec()).map_err(|e| e.to_string())
        })
        .collect()
}

fn describe(s: &SchemaRef) -> String {
    s.fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join(", ")
}
