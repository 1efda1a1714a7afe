//! The encrypted aggregates. All three multiply ciphertexts (a homomorphic sum) and carry how
//! many rows contributed; they differ in what they accept and in what the result decrypts to:
//! - `paillier_sum(x)`: the sum of an encrypted number;
//! - `paillier_count(flag)`: how many rows have an encrypted boolean set (the sum of its 0/1
//!   values); the cloud learns how many rows it counted over, not which of them are TRUE;
//! - `paillier_avg(x)`: the sum and the row count, decrypted as sum ÷ rows (Float64 for
//!   integers and booleans, a share of TRUE for a flag; Decimal128(38, s + 4) for decimals).

use std::sync::{Arc, OnceLock};

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{plan_err, Result};
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, GroupsAccumulator, Signature, Volatility,
};

mod accumulator;
mod sql_aggregate;

pub(super) use accumulator::{CipherSumAccumulator, CipherSumGroupsAccumulator};
pub(super) use sql_aggregate::SqlAggregate;

use crate::lake::schema::{AggregateKind, MAX_SCALE};
use crate::sql::encrypted::{sum_plain_type, CipherInput};

/// Which encrypted aggregate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Kind {
    /// `paillier_sum`
    Sum,
    /// `paillier_count`
    Count,
    /// `paillier_avg`
    Avg,
}

impl Kind {
    /// Every encrypted aggregate, in declaration order (`kind as usize` indexes it).
    pub(super) const ALL: [Kind; 3] = [Kind::Sum, Kind::Count, Kind::Avg];

    /// The SQL name.
    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Sum => "paillier_sum",
            Kind::Count => "paillier_count",
            Kind::Avg => "paillier_avg",
        }
    }

    /// What its results hold (of an ordinary input; see `result_field` for the exceptions).
    pub(super) fn result_kind(self) -> AggregateKind {
        match self {
            Kind::Sum => AggregateKind::Sum,
            Kind::Count => AggregateKind::Count,
            Kind::Avg => AggregateKind::Avg,
        }
    }
}

/// The shared instance of each aggregate, for the session and for plans built in code (the
/// rewrite of `SUM`/`AVG`).
pub(super) fn udaf(kind: Kind) -> Arc<AggregateUDF> {
    static UDAFS: OnceLock<[Arc<AggregateUDF>; 3]> = OnceLock::new();
    let all = UDAFS
        .get_or_init(|| Kind::ALL.map(|k| Arc::new(AggregateUDF::from(CipherAggregate::new(k)))));
    Arc::clone(&all[kind as usize])
}

/// The plain type an average decrypts to.
pub(super) fn avg_plain_type(t: &DataType) -> DataType {
    match t {
        DataType::Decimal128(_, s) => {
            DataType::Decimal128(38, (*s as u32 + 4).min(MAX_SCALE) as i8)
        }
        _ => DataType::Float64,
    }
}

/// An encrypted aggregate (`paillier_sum`, `paillier_count` or `paillier_avg`).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct CipherAggregate {
    kind: Kind,
    signature: Signature,
}

impl CipherAggregate {
    /// The aggregate of this kind.
    pub(super) fn new(kind: Kind) -> Self {
        CipherAggregate {
            kind,
            // Any type: a non-encrypted argument gets a clear message from `return_field`, not a
            // generic type-mismatch error.
            signature: Signature::any(1, Volatility::Immutable),
        }
    }

    /// Reads and checks the input field; `called` is the name the analyst wrote (`SUM` for a
    /// rewritten `SUM(x)`), used in errors.
    pub(super) fn input(&self, called: &str, fields: &[FieldRef]) -> Result<CipherInput> {
        let input = match fields {
            [f] => CipherInput::from_field(called, f)?,
            _ => return plan_err!("{called} takes exactly one encrypted column"),
        };
        let name = &input.name;
        let plain = &input.column.plain_type;
        match (self.kind, input.aggregate()) {
            (_, Some(a)) if a.is_average() => {
                return plan_err!(
                    "{called}({name}): `{name}` is already an average; aggregate the sums instead (an average of averages weighs groups wrongly)"
                )
            }
            (Kind::Avg, Some(_)) => {
                return plan_err!(
                    "{called}({name}): `{name}` is already an aggregate; take the average over the rows directly"
                )
            }
            (Kind::Count, agg) => {
                // A count of counts (from a subquery) is a sum of Int64 counts: also fine.
                let ok = *plain == DataType::Boolean
                    || (agg.is_some() && *plain == DataType::Int64 && input.column.scale == 0);
                if !ok {
                    return plan_err!(
                        "{called}({name}): `{name}` is an encrypted {plain}, not an encrypted boolean: use SUM({name}) (or paillier_sum) to add its values"
                    );
                }
            }
            _ => {}
        }
        Ok(input)
    }

    /// The result field, with errors naming the function as `called`.
    pub(super) fn result_field(&self, called: &str, fields: &[FieldRef]) -> Result<FieldRef> {
        let input = self.input(called, fields)?;
        let plain = match self.kind {
            Kind::Sum => sum_plain_type(&input.column.plain_type),
            Kind::Count => DataType::Int64,
            Kind::Avg => avg_plain_type(&input.column.plain_type),
        };
        // The average of a flag is a share of rows; its count is small-cell suppressed.
        // A sum of counts (over a subquery's counts) is still a count.
        let tag = match (self.kind, &input.column.plain_type, input.aggregate()) {
            (Kind::Avg, DataType::Boolean, _) => AggregateKind::Share,
            (Kind::Sum, _, Some(AggregateKind::Count)) => AggregateKind::Count,
            (kind, _, _) => kind.result_kind(),
        };
        Ok(input.result_field(self.kind.name(), tag, plain))
    }
}

impl AggregateUDFImpl for CipherAggregate {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        plan_err!(
            "{} needs its input's field metadata (return_field)",
            self.kind.name()
        )
    }

    fn return_field(&self, arg_fields: &[FieldRef]) -> Result<FieldRef> {
        self.result_field(self.kind.name(), arg_fields)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(CipherSumAccumulator::new(
            self.input(self.kind.name(), args.expr_fields)?,
        )))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(CipherSumGroupsAccumulator::new(
            self.input(self.kind.name(), args.expr_fields)?,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::schema::{EncryptedColumn, META_AGGREGATE};
    use crate::sql::encrypted::fixture;

    fn field(plain_type: DataType, scale: u32, aggregate: Option<AggregateKind>) -> FieldRef {
        fixture::field("x", scale, plain_type, aggregate)
    }

    fn result(kind: Kind, f: FieldRef) -> Result<(String, DataType)> {
        let out = CipherAggregate::new(kind).result_field("f", &[f])?;
        let col = EncryptedColumn::from_field(&out).unwrap().unwrap();
        Ok((out.metadata()[META_AGGREGATE].clone(), col.plain_type))
    }

    #[test]
    fn result_kinds_and_plain_types() {
        let dec = || field(DataType::Decimal128(12, 2), 2, None);
        let flag = || field(DataType::Boolean, 0, None);
        assert_eq!(
            result(Kind::Sum, dec()).unwrap(),
            ("sum".into(), DataType::Decimal128(38, 2))
        );
        assert_eq!(
            result(Kind::Avg, dec()).unwrap(),
            ("avg".into(), DataType::Decimal128(38, 6))
        );
        assert_eq!(
            result(Kind::Count, flag()).unwrap(),
            ("count".into(), DataType::Int64)
        );
        // The share of a flag is small-cell suppressed like a count; so is a sum of counts.
        assert_eq!(
            result(Kind::Avg, flag()).unwrap(),
            ("share".into(), DataType::Float64)
        );
        let counts = field(DataType::Int64, 0, Some(AggregateKind::Count));
        assert_eq!(
            result(Kind::Sum, counts).unwrap(),
            ("count".into(), DataType::Int64)
        );
        // Averages are not aggregated again, nor averaged over aggregates.
        let e = result(
            Kind::Sum,
            field(DataType::Float64, 0, Some(AggregateKind::Avg)),
        )
        .unwrap_err();
        assert!(e.to_string().contains("already an average"), "{e}");
        let e = result(
            Kind::Avg,
            field(DataType::Int64, 0, Some(AggregateKind::Sum)),
        )
        .unwrap_err();
        assert!(e.to_string().contains("already an aggregate"), "{e}");
        let e = result(Kind::Count, dec()).unwrap_err();
        assert!(e.to_string().contains("not an encrypted boolean"), "{e}");
    }
}
