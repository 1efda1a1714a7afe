//! The accumulators of every encrypted aggregate: a `paillier::Sum` and a row count per group,
//! for the single-group and the grouped (`GroupsAccumulator`) paths, both two-phase (state →
//! merge) and with `convert_to_state` for high-cardinality GROUP BY.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_err, DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{Accumulator, EmitTo, GroupsAccumulator};

use crate::lake::schema::AggregateValue;
use crate::lake::values::fixed_size_binary;
use crate::paillier::Sum;
use crate::sql::encrypted::{bad_ciphertext, CipherInput};
use crate::sql::trace::{self, CellTrace, Trace};

/// A cell's provenance while a trace runs (see `sql::trace`): what one value adds to it.
fn trace_value(t: &Trace, cell: &mut CellTrace, aggregate: bool, bytes: &[u8], rows: u64) {
    if aggregate {
        t.merge_cell(cell, bytes, rows);
    } else {
        cell.add_value(t.origin(bytes));
    }
}

/// Calls `f(row, ciphertext bytes, contributing rows)` for every non-NULL value that passes the
/// filter, whichever binary type carries the values. `aggregate`: the values are aggregate values
/// (states, or the input's own kind). Checks each value's width.
fn for_each_value<'a>(
    input: &CipherInput,
    aggregate: bool,
    array: &'a ArrayRef,
    filter: Option<&BooleanArray>,
    mut f: impl FnMut(usize, &'a [u8], u64) -> Result<()>,
) -> Result<()> {
    let w = input.key.width();
    let mut visit = |i: usize, v: &'a [u8]| -> Result<()> {
        if filter.is_some_and(|fl| !fl.is_valid(i) || !fl.value(i)) {
            return Ok(());
        }
        if aggregate {
            let v = AggregateValue::split(v, w)
                .map_err(|e| DataFusionError::Execution(format!("column `{}`: {e}", input.name)))?;
            f(i, v.ciphertext, v.rows)
        } else {
            if v.len() != w {
                return exec_err!(
                    "column `{}`: ciphertext of {} bytes, expected {}",
                    input.name,
                    v.len(),
                    w
                );
            }
            f(i, v, 1)
        }
    };
    macro_rules! each {
        ($a:expr) => {{
            let a = $a;
            for i in 0..a.len() {
                if a.is_valid(i) {
                    visit(i, a.value(i))?;
                }
            }
        }};
    }
    match array.data_type() {
        DataType::FixedSizeBinary(_) => each!(array.as_fixed_size_binary()),
        DataType::Binary => each!(array.as_binary::<i32>()),
        DataType::LargeBinary => each!(array.as_binary::<i64>()),
        DataType::BinaryView => each!(array.as_binary_view()),
        t => {
            return exec_err!(
                "column `{}`: type {t} is not a ciphertext column",
                input.name
            )
        }
    }
    Ok(())
}

/// Writes an aggregate value: ciphertext (W bytes, little-endian) then the row count.
fn write_value(out: &mut [u8], acc: &Sum, rows: u64, width: usize) {
    acc.write_le(&mut out[..width]);
    AggregateValue::write_rows(out, rows);
}

/// The encrypted sum of one group: a product of ciphertexts mod n² and a row count.
#[derive(Debug)]
pub(crate) struct CipherSumAccumulator {
    input: CipherInput,
    acc: Sum,
    rows: u64,
    trace: Option<(Arc<Trace>, CellTrace)>,
}

impl CipherSumAccumulator {
    /// A new accumulator over `input`.
    pub(crate) fn new(input: CipherInput) -> Self {
        CipherSumAccumulator {
            input,
            acc: Sum::new(),
            rows: 0,
            trace: trace::current().map(|t| (t, CellTrace::default())),
        }
    }

    /// Multiplies in the values of `array` (aggregate values when `aggregate`). Each value is
    /// checked 0 < c < n² on the way; gcd(c, n) = 1 is left to decryption (a product has a
    /// factor in common with n exactly when one of its factors does).
    fn add(&mut self, array: &ArrayRef, aggregate: bool) -> Result<()> {
        let Self {
            input,
            acc,
            rows,
            trace,
        } = self;
        let m = input.key.modulus();
        // The whole batch at once: the arithmetic multiplies 8 values at a time where it can.
        let mut values = Vec::with_capacity(array.len());
        let mut added = 0;
        for_each_value(input, aggregate, array, None, |_, bytes, k| {
            values.push(bytes);
            added += k;
            if let Some((t, cell)) = trace {
                trace_value(t, cell, aggregate, bytes, k);
            }
            Ok(())
        })?;
        acc.add_all_le(m, &values)
            .map_err(|(_, why)| bad_ciphertext(&input.name, why))?;
        *rows += added;
        Ok(())
    }

    fn value(&self) -> ScalarValue {
        let w = self.input.key.width();
        let size = AggregateValue::width(w);
        if self.rows == 0 {
            return ScalarValue::FixedSizeBinary(size as i32, None);
        }
        let mut out = vec![0u8; size];
        write_value(&mut out, &self.acc, self.rows, w);
        if let Some((t, cell)) = &self.trace {
            t.record_cell(&out[..w], self.rows, cell.clone());
        }
        ScalarValue::FixedSizeBinary(size as i32, Some(out))
    }
}

impl Accumulator for CipherSumAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let aggregate = self.input.is_aggregate();
        self.add(&values[0], aggregate)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.add(&states[0], true)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.value()])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(self.value())
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + 2 * self.input.key.width()
    }
}

/// Encrypted sums for many groups at once.
#[derive(Debug)]
pub(crate) struct CipherSumGroupsAccumulator {
    input: CipherInput,
    accs: Vec<Sum>,
    rows: Vec<u64>,
    trace: Option<(Arc<Trace>, Vec<CellTrace>)>,
}

impl CipherSumGroupsAccumulator {
    /// A new groups accumulator over `input`.
    pub(crate) fn new(input: CipherInput) -> Self {
        CipherSumGroupsAccumulator {
            input,
            accs: Vec::new(),
            rows: Vec::new(),
            trace: trace::current().map(|t| (t, Vec::new())),
        }
    }

    fn add(
        &mut self,
        array: &ArrayRef,
        aggregate: bool,
        groups: &[usize],
        filter: Option<&BooleanArray>,
        total: usize,
    ) -> Result<()> {
        if self.accs.len() < total {
            self.accs.resize(total, Sum::new());
            self.rows.resize(total, 0);
        }
        let Self {
            input,
            accs,
            rows,
            trace,
        } = self;
        if let Some((_, cells)) = trace {
            if cells.len() < total {
                cells.resize(total, CellTrace::default());
            }
        }
        let m = input.key.modulus();
        let mut values = Vec::with_capacity(array.len());
        for_each_value(input, aggregate, array, filter, |i, bytes, k| {
            let g = groups[i];
            values.push((g, bytes));
            rows[g] += k;
            if let Some((t, cells)) = trace {
                trace_value(t, &mut cells[g], aggregate, bytes, k);
            }
            Ok(())
        })?;
        Sum::add_grouped_le(accs, m, &values).map_err(|why| bad_ciphertext(&input.name, why))
    }

    fn emit(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let accs = emit_to.take_needed(&mut self.accs);
        let rows = emit_to.take_needed(&mut self.rows);
        let traced = match &mut self.trace {
            Some((t, cells)) => {
                let mut taken = emit_to.take_needed(cells);
                taken.resize(accs.len(), CellTrace::default());
                Some((&**t, taken))
            }
            None => None,
        };
        values_array(&accs, &rows, self.input.key.width(), traced)
    }
}

/// An array of aggregate values; NULL where no row contributed. While a trace runs, each value
/// is recorded with its cell's provenance.
fn values_array(
    accs: &[Sum],
    rows: &[u64],
    width: usize,
    traced: Option<(&Trace, Vec<CellTrace>)>,
) -> Result<ArrayRef> {
    let size = AggregateValue::width(width);
    let mut buf = vec![0u8; accs.len() * size];
    for ((out, acc), &r) in buf.chunks_exact_mut(size).zip(accs).zip(rows) {
        if r > 0 {
            write_value(out, acc, r, width);
        }
    }
    if let Some((t, cells)) = traced {
        for ((out, &r), cell) in buf.chunks_exact(size).zip(rows).zip(cells) {
            if r > 0 {
                t.record_cell(&out[..width], r, cell);
            }
        }
    }
    fixed_size_binary(buf, size, rows.iter().map(|&r| r > 0))
        .map(|a| Arc::new(a) as ArrayRef)
        .map_err(|e| DataFusionError::External(Box::new(e)))
}

impl GroupsAccumulator for CipherSumGroupsAccumulator {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let aggregate = self.input.is_aggregate();
        self.add(
            &values[0],
            aggregate,
            group_indices,
            opt_filter,
            total_num_groups,
        )
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.add(&values[0], true, group_indices, None, total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        self.emit(emit_to)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.emit(emit_to)?])
    }

    /// Each input row becomes a one-row state: its ciphertext and a count of 1 (NULL when the
    /// value is NULL or filtered out). Used on high-cardinality GROUP BY.
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let n = values[0].len();
        let mut accs = vec![Sum::new(); n];
        let mut rows = vec![0u64; n];
        let key = &self.input.key;
        let aggregate = self.input.is_aggregate();
        let mut cells = self.trace.as_ref().map(|_| vec![CellTrace::default(); n]);
        for_each_value(
            &self.input,
            aggregate,
            &values[0],
            opt_filter,
            |i, bytes, k| {
                accs[i] = Sum::of_le(key.modulus(), bytes)
                    .map_err(|why| bad_ciphertext(&self.input.name, why))?;
                rows[i] = k;
                if let (Some((t, _)), Some(cells)) = (&self.trace, cells.as_mut()) {
                    trace_value(t, &mut cells[i], aggregate, bytes, k);
                }
                Ok(())
            },
        )?;
        let traced = self.trace.as_ref().map(|(t, _)| t.as_ref()).zip(cells);
        Ok(vec![values_array(&accs, &rows, key.width(), traced)?])
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.accs.len() * (2 * self.input.key.width() + 16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::encrypt::encrypt_values;
    use crate::sql::encrypted::fixture::{field, key};

    fn input() -> CipherInput {
        CipherInput::from_field("paillier_sum", &field("v", 0, DataType::Int64, None)).unwrap()
    }

    fn encrypted(values: &[Option<i128>]) -> ArrayRef {
        Arc::new(encrypt_values(key().public_key(), values).unwrap())
    }

    /// Decrypts aggregate values to (sum, rows); None for NULL.
    fn open(array: &ArrayRef) -> Vec<Option<(i128, u64)>> {
        let pk = key().public_key();
        let w = pk.ciphertext_width();
        let a = array.as_fixed_size_binary();
        (0..a.len())
            .map(|i| {
                a.is_valid(i).then(|| {
                    let v = a.value(i);
                    let c = pk.ciphertext_from_le_bytes(&v[..w]).unwrap();
                    let rows = u64::from_le_bytes(v[w..].try_into().unwrap());
                    (key().decrypt(&c).unwrap().to_i128().unwrap(), rows)
                })
            })
            .collect()
    }

    fn scalar_to_array(s: ScalarValue) -> ArrayRef {
        s.to_array().unwrap()
    }

    #[test]
    fn single_accumulator_state_and_merge() {
        let batches = [vec![Some(5), None, Some(-7)], vec![Some(100)], vec![None]];
        let mut parts: Vec<CipherSumAccumulator> = Vec::new();
        for b in &batches {
            let mut acc = CipherSumAccumulator::new(input());
            acc.update_batch(&[encrypted(b)]).unwrap();
            parts.push(acc);
        }
        let mut total = CipherSumAccumulator::new(input());
        for p in &mut parts {
            let state = p.state().unwrap();
            total
                .merge_batch(&[scalar_to_array(state[0].clone())])
                .unwrap();
        }
        assert_eq!(
            open(&scalar_to_array(total.evaluate().unwrap())),
            vec![Some((98, 3))]
        );
        // An accumulator that saw only NULLs evaluates to NULL.
        assert_eq!(
            open(&scalar_to_array(parts[2].evaluate().unwrap())),
            vec![None]
        );
    }

    #[test]
    fn groups_accumulator_agrees_with_single_through_state_and_merge() {
        let values = [
            Some(1),
            Some(2),
            None,
            Some(-4),
            Some(8),
            Some(16),
            Some(32),
        ];
        let groups = [0usize, 1, 1, 0, 2, 0, 1];
        let plain = encrypted(&values);

        // Two partial group accumulators over halves of the rows, merged into a final one.
        let mut final_acc = CipherSumGroupsAccumulator::new(input());
        for (lo, hi) in [(0usize, 3usize), (3, 7)] {
            let mut part = CipherSumGroupsAccumulator::new(input());
            part.update_batch(&[plain.slice(lo, hi - lo)], &groups[lo..hi], None, 3)
                .unwrap();
            let state = part.state(EmitTo::All).unwrap();
            // Partial group ids 0..3 map to the same final ids here.
            let ids: Vec<usize> = (0..state[0].len()).collect();
            final_acc.merge_batch(&state, &ids, 3).unwrap();
        }
        let grouped = open(&final_acc.evaluate(EmitTo::All).unwrap());

        // The single accumulator on each group's rows gives the same.
        for (g, got) in grouped.iter().enumerate() {
            let mine: Vec<Option<i128>> = values
                .iter()
                .zip(&groups)
                .filter(|(_, gg)| **gg == g)
                .map(|(v, _)| *v)
                .collect();
            let mut single = CipherSumAccumulator::new(input());
            single.update_batch(&[encrypted(&mine)]).unwrap();
            assert_eq!(
                *got,
                open(&scalar_to_array(single.evaluate().unwrap()))[0],
                "group {g}"
            );
        }
        assert_eq!(grouped, vec![Some((13, 3)), Some((34, 2)), Some((8, 1))]);
    }

    #[test]
    fn convert_to_state_then_merge_equals_update() {
        let values = [Some(3), None, Some(-9), Some(27)];
        let plain = encrypted(&values);
        let filter = BooleanArray::from(vec![true, true, false, true]);
        let acc = CipherSumGroupsAccumulator::new(input());
        let state = acc
            .convert_to_state(std::slice::from_ref(&plain), Some(&filter))
            .unwrap();
        assert_eq!(
            open(&state[0]),
            vec![Some((3, 1)), None, None, Some((27, 1))]
        );

        let mut merged = CipherSumGroupsAccumulator::new(input());
        merged.merge_batch(&state, &[0, 0, 0, 0], 1).unwrap();
        let mut updated = CipherSumGroupsAccumulator::new(input());
        updated
            .update_batch(&[plain], &[0, 0, 0, 0], Some(&filter), 1)
            .unwrap();
        assert_eq!(
            open(&merged.evaluate(EmitTo::All).unwrap()),
            vec![Some((30, 2))]
        );
        assert_eq!(
            open(&updated.evaluate(EmitTo::All).unwrap()),
            vec![Some((30, 2))]
        );
    }

    #[test]
    fn emit_first_keeps_the_rest() {
        let mut acc = CipherSumGroupsAccumulator::new(input());
        acc.update_batch(
            &[encrypted(&[Some(1), Some(2), Some(3)])],
            &[0, 1, 2],
            None,
            3,
        )
        .unwrap();
        assert_eq!(
            open(&acc.evaluate(EmitTo::First(2)).unwrap()),
            vec![Some((1, 1)), Some((2, 1))]
        );
        assert_eq!(
            open(&acc.evaluate(EmitTo::All).unwrap()),
            vec![Some((3, 1))]
        );
    }

    #[test]
    fn binary_and_binary_view_inputs_sum_like_fixed_size_binary() {
        use datafusion::arrow::array::{BinaryArray, BinaryViewArray};
        let values = [Some(4), None, Some(-1)];
        let fixed = encrypted(&values);
        let fsb = fixed.as_fixed_size_binary();
        let items: Vec<Option<&[u8]>> = (0..fsb.len())
            .map(|i| fsb.is_valid(i).then(|| fsb.value(i)))
            .collect();
        let binary: ArrayRef = Arc::new(BinaryArray::from(items.clone()));
        let view: ArrayRef = Arc::new(BinaryViewArray::from(items));
        for array in [fixed, binary, view] {
            let mut acc = CipherSumAccumulator::new(input());
            acc.update_batch(&[array]).unwrap();
            assert_eq!(
                open(&scalar_to_array(acc.evaluate().unwrap())),
                vec![Some((3, 2))]
            );
        }
    }

    #[test]
    fn invalid_ciphertext_bytes_are_rejected() {
        let w = key().public_key().ciphertext_width();
        let zeros: ArrayRef = Arc::new(fixed_size_binary(vec![0u8; w], w, [true]).unwrap());
        let mut acc = CipherSumAccumulator::new(input());
        let e = acc.update_batch(&[zeros]).unwrap_err().to_string();
        assert!(
            e.contains("column `v`") && e.contains("not a valid ciphertext"),
            "{e}"
        );
    }
}
