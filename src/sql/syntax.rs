//! Planning SQL text with cipherlake's session. One thing has to happen on the SQL syntax tree:
//! DataFusion checks the type of a unary minus while it plans (`-x` must be numeric), before any
//! hook or rule of ours can see it, so `-cost` on an encrypted column is written `0 - cost`
//! here, which the planner hook turns into `paillier_neg(cost)`. Only a minus whose operand names
//! an encrypted column of a table in the statement is touched.

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::common::{plan_err, DataFusionError, Result};
use datafusion::dataframe::DataFrame;
use datafusion::execution::session_state::SessionState;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{CopyToSource, DFParser, Statement};
use datafusion::sql::sqlparser::ast::{
    visit_expressions, visit_expressions_mut, BinaryOperator, Expr as SqlExpr, Query, SetExpr,
    Statement as SqlStatement, UnaryOperator, Value, Visit, Visitor,
};

use super::policy::{Refusal, CIPHER_FUNCTIONS};
use crate::lake::schema::META_KEY_ID;

/// Plans and returns one SQL statement, as `SessionContext::sql` does.
pub async fn plan(ctx: &SessionContext, sql: &str) -> Result<DataFrame> {
    let mut statements = DFParser::parse_sql(sql)?;
    match (statements.pop_front(), statements.is_empty()) {
        (Some(s), true) => plan_statement(ctx, s).await,
        (None, _) => plan_err!("no SQL statement given"),
        (Some(_), false) => plan_err!("give one SQL statement at a time (found several)"),
    }
}

/// Plans and returns a parsed statement.
pub async fn plan_statement(ctx: &SessionContext, mut statement: Statement) -> Result<DataFrame> {
    let state = ctx.state();
    let names = encrypted_names(ctx, &state, &statement).await?;
    if !names.is_empty() {
        rewrite(&mut statement, &names);
    }
    // Worked out before planning, which consumes the statement; it is a walk of the syntax tree,
    // cheaper than keeping a copy for the rare failure.
    let diagnosis = (!names.is_empty())
        .then(|| diagnose(&statement, &names))
        .flatten();
    let plan = match state.statement_to_plan(statement).await {
        Ok(plan) => plan,
        // DataFusion refuses most functions of a binary value with a type error that does not
        // say why; name the encrypted column and the reason instead.
        Err(DataFusionError::Plan(e)) => {
            return Err(match diagnosis {
                Some(refusal) => refusal.into(),
                None => DataFusionError::Plan(e),
            })
        }
        Err(e) => return Err(e),
    };
    ctx.execute_logical_plan(plan).await
}

/// The first call of another function on an encrypted column, explained.
fn diagnose(statement: &Statement, names: &HashSet<String>) -> Option<Refusal> {
    let mut found = None;
    let mut check = |e: &SqlExpr| {
        if let SqlExpr::Case { .. } = e {
            if let Some(column) = mentioned(e, names) {
                found = Some(Refusal::Case { column });
                return ControlFlow::Break(());
            }
        }
        if let SqlExpr::Function(f) = e {
            let name = f.name.to_string().to_ascii_lowercase();
            if !CIPHER_FUNCTIONS.contains(&name.as_str()) {
                if let Some(column) = mentioned(e, names) {
                    found = Some(Refusal::Function { what: name, column });
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    };
    let sql = Sql::of(statement)?;
    if let Some(why) = bare_predicate(&sql, names) {
        return Some(why);
    }
    let _ = visit_expressions(&sql, &mut check);
    found
}

/// The SQL inside a DataFusion statement (looking through EXPLAIN and COPY), to visit.
enum Sql<'a> {
    Statement(&'a SqlStatement),
    Query(&'a Query),
}

impl<'a> Sql<'a> {
    fn of(statement: &'a Statement) -> Option<Self> {
        match statement {
            Statement::Statement(s) => Some(Sql::Statement(s)),
            Statement::Explain(e) => Sql::of(&e.statement),
            Statement::CopyTo(c) => match &c.source {
                CopyToSource::Query(q) => Some(Sql::Query(q)),
                _ => None,
            },
            _ => None,
        }
    }
}

impl Visit for Sql<'_> {
    fn visit<V: Visitor>(&self, visitor: &mut V) -> ControlFlow<V::Break> {
        match self {
            Sql::Statement(s) => s.visit(visitor),
            Sql::Query(q) => q.visit(visitor),
        }
    }
}

/// Lowercase names of the encrypted columns of the tables `statement` reads.
async fn encrypted_names(
    ctx: &SessionContext,
    state: &SessionState,
    statement: &Statement,
) -> Result<HashSet<String>> {
    let mut names = HashSet::new();
    for reference in state.resolve_table_references(statement)? {
        // A name that does not resolve is left for the planner to report.
        if let Ok(table) = ctx.table_provider(reference).await {
            for f in table.schema().fields() {
                if f.metadata().contains_key(META_KEY_ID) {
                    names.insert(f.name().to_ascii_lowercase());
                }
            }
        }
    }
    Ok(names)
}

/// `WHERE flag` or `HAVING flag` on an encrypted boolean: DataFusion refuses a binary predicate
/// without saying why.
fn bare_predicate(sql: &Sql, names: &HashSet<String>) -> Option<Refusal> {
    struct Predicates<'a>(&'a HashSet<String>);
    impl Visitor for Predicates<'_> {
        type Break = Refusal;
        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Refusal> {
            if let SetExpr::Select(select) = query.body.as_ref() {
                for (clause, e) in [("WHERE", &select.selection), ("HAVING", &select.having)] {
                    let Some(e) = e else { continue };
                    let bare = matches!(e, SqlExpr::Identifier(_) | SqlExpr::CompoundIdentifier(_));
                    if let (true, Some(column)) = (bare, mentioned(e, self.0)) {
                        return ControlFlow::Break(Refusal::BarePredicate { clause, column });
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    match sql.visit(&mut Predicates(names)) {
        ControlFlow::Break(why) => Some(why),
        ControlFlow::Continue(()) => None,
    }
}

/// The first encrypted column `expr` names.
fn mentioned(expr: &SqlExpr, names: &HashSet<String>) -> Option<String> {
    let hit = visit_expressions(expr, |e| {
        let ident = match e {
            SqlExpr::Identifier(i) => Some(i),
            SqlExpr::CompoundIdentifier(parts) => parts.last(),
            _ => None,
        };
        match ident {
            Some(i) if names.contains(&i.value.to_ascii_lowercase()) => {
                ControlFlow::Break(i.value.clone())
            }
            _ => ControlFlow::Continue(()),
        }
    });
    match hit {
        ControlFlow::Break(name) => Some(name),
        ControlFlow::Continue(()) => None,
    }
}

fn mentions(expr: &SqlExpr, names: &HashSet<String>) -> bool {
    mentioned(expr, names).is_some()
}

fn rewrite(statement: &mut Statement, names: &HashSet<String>) {
    let minus = |e: &mut SqlExpr| {
        if let SqlExpr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } = e
        {
            if mentions(expr, names) {
                let operand = std::mem::replace(expr.as_mut(), SqlExpr::value(Value::Null));
                *e = SqlExpr::BinaryOp {
                    left: Box::new(SqlExpr::value(Value::Number("0".into(), false))),
                    op: BinaryOperator::Minus,
                    right: Box::new(SqlExpr::Nested(Box::new(operand))),
                };
            }
        }
        ControlFlow::<()>::Continue(())
    };
    match statement {
        Statement::Statement(s) => {
            let _ = visit_expressions_mut(s.as_mut(), minus);
        }
        Statement::Explain(e) => rewrite(&mut e.statement, names),
        Statement::CopyTo(c) => {
            if let CopyToSource::Query(q) = &mut c.source {
                let _ = visit_expressions_mut(q.as_mut(), minus);
            }
        }
        _ => {}
    }
}
