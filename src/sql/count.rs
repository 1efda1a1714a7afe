//! `paillier_count(x)`: how many rows have an encrypted boolean flag set, as an encrypted count
//! (the homomorphic sum of the 0/1 values). The cloud learns how many rows it counted over, not
//! which of them are TRUE.

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{plan_err, Result};
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, GroupsAccumulator, Signature, Volatility,
};

use super::common::{CipherInput, CipherSumAccumulator, CipherSumGroupsAccumulator};

/// The `paillier_count` aggregate.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PaillierCount {
    signature: Signature,
}

impl Default for PaillierCount {
    fn default() -> Self {
        PaillierCount {
            // Any type: a non-encrypted argument gets a clear message from `return_field`, not a
            // generic type-mismatch error.
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl PaillierCount {
    /// The function's SQL name.
    pub const NAME: &'static str = "paillier_count";

    fn input(&self, fields: &[FieldRef]) -> Result<CipherInput> {
        let input = match fields {
            [f] => CipherInput::from_field(Self::NAME, f)?,
            _ => return plan_err!("{} takes exactly one encrypted boolean column", Self::NAME),
        };
        // A count of counts (from a subquery) is a sum of Int64 counts: also fine.
        let ok = input.column.plain_type == DataType::Boolean
            || (input.is_aggregate
                && input.column.plain_type == DataType::Int64
                && input.column.scale == 0);
        if !ok {
            return plan_err!(
                "{}({}): `{}` is an encrypted {}, not an encrypted boolean: use paillier_sum to add its values",
                Self::NAME,
                input.name,
                input.name,
                input.column.plain_type
            );
        }
        Ok(input)
    }
}

impl AggregateUDFImpl for PaillierCount {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        plan_err!(
            "{} needs its input's field metadata (return_field)",
            Self::NAME
        )
    }

    fn return_field(&self, arg_fields: &[FieldRef]) -> Result<FieldRef> {
        let input = self.input(arg_fields)?;
        Ok(input.result_field(Self::NAME, "count", DataType::Int64))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(CipherSumAccumulator::new(
            self.input(args.expr_fields)?,
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
            self.input(args.expr_fields)?,
        )))
    }
}
