//! `paillier_sum(x)`: the homomorphic sum of an encrypted column. The result stays encrypted and
//! carries how many rows contributed.

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{plan_err, Result};
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, GroupsAccumulator, Signature, Volatility,
};

use super::common::{
    sum_plain_type, CipherInput, CipherSumAccumulator, CipherSumGroupsAccumulator,
};

/// The `paillier_sum` aggregate.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PaillierSum {
    signature: Signature,
}

impl Default for PaillierSum {
    fn default() -> Self {
        PaillierSum {
            // Any type: a non-encrypted argument gets a clear message from `return_field`, not a
            // generic type-mismatch error.
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl PaillierSum {
    /// The function's SQL name.
    pub const NAME: &'static str = "paillier_sum";

    fn input(&self, fields: &[FieldRef]) -> Result<CipherInput> {
        match fields {
            [f] => CipherInput::from_field(Self::NAME, f),
            _ => plan_err!("{} takes exactly one encrypted column", Self::NAME),
        }
    }
}

impl AggregateUDFImpl for PaillierSum {
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
        let plain = sum_plain_type(&input.column.plain_type);
        Ok(input.result_field(Self::NAME, "sum", plain))
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
