//! `sum` and `avg` as the session knows them. SQL planning checks every function's signature
//! and return type, before any analyzer rule runs, so `SUM(x)` on a ciphertext needs a function
//! that accepts binary input and knows the encrypted result's field. [`SqlAggregate`] is
//! DataFusion's own `sum`/`avg` for plaintext arguments; for an encrypted argument its result
//! field is the encrypted aggregate's. The function rewrite (`rewrite.rs`) then swaps each call
//! for the function that runs (`paillier_sum`, `paillier_count`, `paillier_avg`, or DataFusion's
//! own), so `EXPLAIN` shows what runs and no optimizer rule ever sees the wrapper.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::Result;
use datafusion::functions_aggregate::average::avg_udaf;
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Coercion, GroupsAccumulator, Signature,
    TypeSignature, TypeSignatureClass,
};
use datafusion::logical_expr_common::signature::Volatility;

use super::{CipherAggregate, Kind};
use crate::lake::schema::{EncryptedColumn, META_KEY_ID};
use crate::sql::encrypted::is_binary;

/// `sum` or `avg` as the session knows them: DataFusion's function, which on an encrypted
/// argument plans as the encrypted aggregate (see the module documentation).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct SqlAggregate {
    builtin: Arc<AggregateUDF>,
    avg: bool,
    signature: Signature,
}

impl SqlAggregate {
    /// `sum`.
    pub(crate) fn sum() -> Self {
        Self::new(sum_udaf(), false)
    }

    /// `avg`.
    pub(crate) fn avg() -> Self {
        Self::new(avg_udaf(), true)
    }

    fn new(builtin: Arc<AggregateUDF>, avg: bool) -> Self {
        let base = builtin.signature();
        let mut variants = match &base.type_signature {
            TypeSignature::OneOf(v) => v.clone(),
            t => vec![t.clone()],
        };
        // Ciphertexts, uncast (a cast would lose the field metadata naming their key).
        variants.push(TypeSignature::Coercible(vec![Coercion::new_exact(
            TypeSignatureClass::Binary,
        )]));
        SqlAggregate {
            signature: Signature::one_of(variants, Volatility::Immutable),
            builtin,
            avg,
        }
    }

    /// DataFusion's own function.
    pub(crate) fn builtin(&self) -> &Arc<AggregateUDF> {
        &self.builtin
    }

    /// The encrypted aggregate a call on `field` becomes, or None for a plaintext argument.
    pub(crate) fn target(&self, field: &Field) -> Option<Kind> {
        if !is_binary(field.data_type()) && !field.metadata().contains_key(META_KEY_ID) {
            return None;
        }
        let boolean = matches!(
            EncryptedColumn::from_field(field),
            Ok(Some(c)) if c.plain_type == DataType::Boolean
        );
        Some(match (self.avg, boolean) {
            (true, _) => Kind::Avg,
            (false, true) => Kind::Count,
            (false, false) => Kind::Sum,
        })
    }

    fn called(&self) -> &'static str {
        if self.avg {
            "AVG"
        } else {
            "SUM"
        }
    }
}

impl AggregateUDFImpl for SqlAggregate {
    fn name(&self) -> &str {
        self.builtin.name()
    }

    fn aliases(&self) -> &[String] {
        self.builtin.aliases()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.builtin.return_type(arg_types)
    }

    fn return_field(&self, arg_fields: &[FieldRef]) -> Result<FieldRef> {
        match arg_fields {
            [f] => match self.target(f) {
                Some(kind) => CipherAggregate::new(kind).result_field(self.called(), arg_fields),
                None => self.builtin.return_field(arg_fields),
            },
            _ => self.builtin.return_field(arg_fields),
        }
    }

    fn is_nullable(&self) -> bool {
        self.builtin.is_nullable()
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.builtin.state_fields(args)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.builtin.accumulator(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.builtin.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        self.builtin.create_groups_accumulator(args)
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.builtin.create_sliding_accumulator(args)
    }

    fn default_value(&self, data_type: &DataType) -> Result<datafusion::common::ScalarValue> {
        self.builtin.default_value(data_type)
    }

    fn documentation(&self) -> Option<&datafusion::logical_expr::Documentation> {
        self.builtin.documentation()
    }
}
