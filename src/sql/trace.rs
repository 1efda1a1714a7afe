//! Row-level provenance of a hospital's own run of a request: for every encrypted cell an
//! aggregate produces, the set of distinct lake rows that contributed (row ids are the caller's:
//! the hospital numbers them by file, so owners follow from them), and whether every row went
//! through the same expression.
//!
//! Ciphertexts are their own identities: each lake ciphertext is unique (fresh randomness), and
//! every per-row function is deterministic, so a value derived from a lake row can be followed by
//! its bytes. The hospital seeds the trace with every ciphertext of the files it verified (row,
//! column); the per-row functions record each output's origin and the *form* of the expression
//! that made it (the column, the operation and its constant); the accumulators collect, per
//! group, the rows and forms of what they multiply in, and record each state and result
//! they emit. After the run, each released cell is looked up by its bytes. What cannot be traced
//! (a ciphertext the lake does not hold, a value combining two rows, two forms in one cell, a row
//! or a partial state counted twice) is reported, and the release path refuses it: whatever SQL
//! got there, a released cell is a sum over distinct lake rows with one weight.
//!
//! A trace is process-wide while it runs ([`begin`] holds it exclusively, one at a time): the
//! functions have no session handle at execution (DataFusion's plans carry them as shared
//! instances). Other queries running in the same process meanwhile are traced too, at some cost,
//! without effect on their results.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, PoisonError, RwLock};

use roaring::RoaringTreemap;
use sha2::{Digest, Sha256};

/// A value's identity: the first 16 bytes of a SHA-256 of its bytes.
type Key = [u8; 16];

fn key(parts: &[&[u8]]) -> Key {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let d = h.finalize();
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    k
}

/// The identity of an aggregate value (its ciphertext and row count).
fn aggregate_key(ciphertext: &[u8], rows: u64) -> Key {
    key(&[b"aggregate", ciphertext, &rows.to_le_bytes()])
}

/// Where a per-row ciphertext came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The lake row, as the seeding numbered it.
    pub row: u64,
    /// The expression that made the value from the row, as a digest.
    pub form: u64,
    /// The value combines ciphertexts of different rows.
    pub mixed: bool,
    /// The ciphertext occurs more than once in the lake.
    pub duplicate: bool,
    /// The lake column(s) the value is made from (see [`Trace::measure`]).
    pub measure: u32,
}

/// Something that makes a cell untraceable or not a plain sum of distinct rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Problem {
    /// A value not held by (nor derived from) the verified lake files.
    Foreign,
    /// A value combining ciphertexts of two rows.
    MixedRows,
    /// Rows that went through different expressions (a per-row weight).
    MixedForms,
    /// A lake row, or a partial result, counted more than once.
    Repeated,
    /// A ciphertext found twice in the lake files.
    DuplicateInLake,
}

impl Problem {
    /// The reason, in words.
    pub fn reason(self) -> &'static str {
        match self {
            Problem::Foreign => "it includes a value that is not from a row of the verified lake files",
            Problem::MixedRows => "it includes a value that combines several lake rows",
            Problem::MixedForms => "its rows do not all go through the same expression: a per-row weight or choice of column can single out a patient",
            Problem::Repeated => "a lake row contributes to it more than once",
            Problem::DuplicateInLake => "it includes a ciphertext that occurs twice in the lake files",
        }
    }
}

/// The provenance of one aggregate cell.
#[derive(Clone, Debug, Default)]
pub struct CellTrace {
    /// The distinct lake rows that contributed.
    pub rows: RoaringTreemap,
    /// The one expression every row went through (None: no row yet).
    pub form: Option<u64>,
    /// The lake column(s) its rows' values come from (see [`Trace::measure`]).
    pub measure: Option<u32>,
    /// What is wrong with it, if anything.
    pub problems: BTreeSet<Problem>,
}

impl CellTrace {
    fn form(&mut self, form: u64) {
        match self.form {
            None => self.form = Some(form),
            Some(f) if f != form => {
                self.problems.insert(Problem::MixedForms);
            }
            Some(_) => {}
        }
    }

    /// Adds one per-row value (None: not traceable).
    pub(crate) fn add_value(&mut self, origin: Option<Origin>) {
        let Some(o) = origin else {
            self.problems.insert(Problem::Foreign);
            return;
        };
        if o.mixed {
            self.problems.insert(Problem::MixedRows);
        }
        if o.duplicate {
            self.problems.insert(Problem::DuplicateInLake);
        }
        self.form(o.form);
        self.measure.get_or_insert(o.measure);
        if !self.rows.insert(o.row) {
            self.problems.insert(Problem::Repeated);
        }
    }

    /// Adds an aggregate value (a partial state, or an inner aggregate's result).
    pub(crate) fn merge(&mut self, other: Option<&CellTrace>) {
        let Some(o) = other else {
            self.problems.insert(Problem::Foreign);
            return;
        };
        if let Some(f) = o.form {
            self.form(f);
        }
        if let Some(m) = o.measure {
            self.measure.get_or_insert(m);
        }
        if self.rows.intersection_len(&o.rows) > 0 {
            self.problems.insert(Problem::Repeated);
        }
        self.rows |= &o.rows;
        self.problems.extend(o.problems.iter().copied());
    }
}

/// A lake column as the trace knows it: the form and measure of its values.
#[derive(Clone, Copy, Debug)]
pub struct Column {
    form: u64,
    measure: u32,
}

/// The provenance collected during one run.
#[derive(Debug, Default)]
pub struct Trace {
    values: RwLock<HashMap<Key, Origin>>,
    cells: RwLock<HashMap<Key, CellTrace>>,
    /// Measure names (`cost`, `cost+length_of_stay`), numbered in the order first seen.
    measures: RwLock<Vec<String>>,
}

/// The digest of a form.
fn form_of(parts: &[&[u8]]) -> u64 {
    let k = key(parts);
    u64::from_le_bytes([k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7]])
}

impl Trace {
    /// The number of a measure name, added if new.
    fn intern(&self, name: &str) -> u32 {
        let mut m = self
            .measures
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match m.iter().position(|x| x == name) {
            Some(i) => i as u32,
            None => {
                m.push(name.to_owned());
                (m.len() - 1) as u32
            }
        }
    }

    /// The name of measure `i`: the lake column a value comes from, or the columns joined by
    /// `+` (in name order) for a value made from several. Whatever the constant weights, two cells
    /// of one measure over row sets that differ by a few rows reveal those rows by difference.
    pub fn measure(&self, i: u32) -> String {
        let m = self.measures.read().unwrap_or_else(PoisonError::into_inner);
        m.get(i as usize).cloned().unwrap_or_default()
    }

    /// The measure of values made from values of measures `a` and `b`.
    fn combined(&self, a: u32, b: u32) -> u32 {
        if a == b {
            return a;
        }
        let (a, b) = (self.measure(a), self.measure(b));
        let mut cols: Vec<&str> = a.split('+').chain(b.split('+')).collect();
        cols.sort_unstable();
        cols.dedup();
        self.intern(&cols.join("+"))
    }

    /// Whether `form` is that of lake column `name`'s own values (no arithmetic on them).
    pub fn is_column_form(form: u64, name: &str) -> bool {
        form == form_of(&[b"column", name.as_bytes()])
    }

    /// A lake column, named once for all its values (see [`seed`](Self::seed)).
    pub fn column(&self, name: &str) -> Column {
        Column {
            form: form_of(&[b"column", name.as_bytes()]),
            measure: self.intern(name),
        }
    }

    /// Records a lake ciphertext: row `row` of `column`.
    pub fn seed(&self, ciphertext: &[u8], row: u64, column: Column) {
        let origin = Origin {
            row,
            form: column.form,
            mixed: false,
            duplicate: false,
            measure: column.measure,
        };
        let mut values = self.values.write().unwrap_or_else(PoisonError::into_inner);
        values
            .entry(key(&[ciphertext]))
            .and_modify(|o| o.duplicate = true)
            .or_insert(origin);
    }

    /// The origin of a per-row ciphertext.
    pub(crate) fn origin(&self, ciphertext: &[u8]) -> Option<Origin> {
        let values = self.values.read().unwrap_or_else(PoisonError::into_inner);
        values.get(&key(&[ciphertext])).copied()
    }

    /// Records the output of a per-row function: made from `inputs` (all must be traced) by the
    /// operation described by `op` (its name and constants).
    pub(crate) fn derive(&self, output: &[u8], op: &[&[u8]], inputs: &[Option<Origin>]) {
        let Some(Some(first)) = inputs.first() else {
            return;
        };
        if inputs.iter().any(Option::is_none) {
            return;
        }
        let mut origin = *first;
        let mut forms = Vec::with_capacity(inputs.len());
        for o in inputs.iter().flatten() {
            forms.push(o.form.to_le_bytes());
            origin.mixed |= o.mixed || o.row != first.row;
            origin.duplicate |= o.duplicate;
            origin.measure = self.combined(origin.measure, o.measure);
        }
        let mut parts: Vec<&[u8]> = op.to_vec();
        parts.extend(forms.iter().map(|f| f.as_slice()));
        origin.form = form_of(&parts);
        let mut values = self.values.write().unwrap_or_else(PoisonError::into_inner);
        values.insert(key(&[output]), origin);
    }

    /// Records an aggregate value an accumulator emitted.
    pub(crate) fn record_cell(&self, ciphertext: &[u8], rows: u64, trace: CellTrace) {
        let mut cells = self.cells.write().unwrap_or_else(PoisonError::into_inner);
        cells.insert(aggregate_key(ciphertext, rows), trace);
    }

    /// The provenance of an aggregate value emitted during the run.
    pub fn cell(&self, ciphertext: &[u8], rows: u64) -> Option<CellTrace> {
        let cells = self.cells.read().unwrap_or_else(PoisonError::into_inner);
        cells.get(&aggregate_key(ciphertext, rows)).cloned()
    }

    /// Merges the provenance of an aggregate value emitted during the run into `into` (without
    /// copying it).
    pub(crate) fn merge_cell(&self, into: &mut CellTrace, ciphertext: &[u8], rows: u64) {
        let cells = self.cells.read().unwrap_or_else(PoisonError::into_inner);
        into.merge(cells.get(&aggregate_key(ciphertext, rows)));
    }

    /// Whether a per-row ciphertext is a lake value (or derived from one).
    pub fn is_row_value(&self, ciphertext: &[u8]) -> bool {
        self.origin(ciphertext).is_some()
    }
}

static ACTIVE: RwLock<Option<Arc<Trace>>> = RwLock::new(None);
static EXCLUSIVE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The trace being collected, if any.
pub(crate) fn current() -> Option<Arc<Trace>> {
    ACTIVE
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// A trace in progress; collection stops when it is dropped.
#[derive(Debug)]
pub struct Tracing {
    trace: Arc<Trace>,
    _exclusive: tokio::sync::MutexGuard<'static, ()>,
}

impl std::ops::Deref for Tracing {
    type Target = Trace;
    fn deref(&self) -> &Trace {
        &self.trace
    }
}

impl Drop for Tracing {
    fn drop(&mut self) {
        *ACTIVE.write().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// Starts collecting provenance (waiting for any other trace in the process to end).
pub async fn begin() -> Tracing {
    let guard = EXCLUSIVE.lock().await;
    let trace = Arc::new(Trace::default());
    *ACTIVE.write().unwrap_or_else(PoisonError::into_inner) = Some(trace.clone());
    Tracing {
        trace,
        _exclusive: guard,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(row: u64, form: u64) -> Option<Origin> {
        Some(Origin {
            row,
            form,
            mixed: false,
            duplicate: false,
            measure: 0,
        })
    }

    #[test]
    fn cells_collect_rows_and_problems() {
        let mut a = CellTrace::default();
        a.add_value(origin(1, 7));
        a.add_value(origin(2, 7));
        assert!(a.problems.is_empty());
        assert_eq!(a.rows.len(), 2);
        let mut b = a.clone();
        b.add_value(origin(2, 7));
        assert!(b.problems.contains(&Problem::Repeated));
        let mut c = a.clone();
        c.add_value(origin(3, 8));
        assert!(c.problems.contains(&Problem::MixedForms));
        let mut d = CellTrace::default();
        d.merge(Some(&a));
        assert!(d.problems.is_empty());
        d.merge(Some(&a));
        assert!(d.problems.contains(&Problem::Repeated));
        let mut e = CellTrace::default();
        e.add_value(None);
        assert!(e.problems.contains(&Problem::Foreign));
    }

    #[test]
    fn derived_values_keep_their_row_and_change_form() {
        let t = Trace::default();
        let (cost, los) = (t.column("cost"), t.column("los"));
        t.seed(b"c1", 1, cost);
        t.seed(b"c2", 2, cost);
        t.seed(b"l1", 1, los);
        t.seed(b"c1", 9, cost);
        assert!(t.origin(b"c1").unwrap().duplicate);
        let c2 = t.origin(b"c2");
        t.derive(b"c2x3", &[b"mul", b"3"], &[c2]);
        let d = t.origin(b"c2x3").unwrap();
        assert_eq!(d.row, 2);
        assert_ne!(d.form, c2.unwrap().form);
        assert_eq!(t.measure(d.measure), "cost");
        t.derive(b"mix", &[b"add"], &[c2, t.origin(b"l1")]);
        let mix = t.origin(b"mix").unwrap();
        assert!(mix.mixed);
        assert_eq!(t.measure(mix.measure), "cost+los");
        t.derive(b"mix2", &[b"add"], &[t.origin(b"l1"), t.origin(b"mix")]);
        assert_eq!(t.origin(b"mix2").unwrap().measure, mix.measure);
        t.derive(b"none", &[b"add"], &[c2, None]);
        assert!(t.origin(b"none").is_none());
    }
}
