//! Raw mode builds only the members of `userIdentity` a query reads.
//!
//! `userIdentity` is a struct of a dozen members, some of them structs themselves; a query
//! usually reads one or two (`userIdentity.arn`, `userIdentity.type`). DataFusion hands a table
//! the columns a query reads, not the members, so a raw scan built every member of every
//! record's identity: on a tree of busy files, a third of the scan's work for a query that
//! reads only `userIdentity.arn`. [`IdentityMembers`] looks at the whole plan: when every use
//! of a column named `userIdentity` is a member access with a literal name
//! (`get_field(userIdentity, 'arn')`, what `userIdentity.arn` plans to), the tree's scans
//! build those members only and give the others as nulls, which nothing in the plan reads.
//!
//! Any other use keeps the whole struct: the column itself (`SELECT *`, `userIdentity IS
//! NULL`, an alias, a comparison of whole rows), a member named by an expression, the column
//! in the plan's output, or a node that is not known to reach its columns only through
//! expressions. Names are matched without their table, so a second table's `userIdentity`
//! only widens the set.

use crate::columns::{COLUMNS, USER_IDENTITY};
use crate::raw::TreeTable;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, Result};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use std::collections::BTreeSet;
use std::sync::Arc;

const IDENTITY: &str = COLUMNS[USER_IDENTITY].name;

/// The optimizer rule (see the module documentation).
#[derive(Debug, Default)]
pub struct IdentityMembers;

impl OptimizerRule for IdentityMembers {
    fn name(&self) -> &str {
        "cairn_identity_members"
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let Some(read) = members_read(&plan)? else {
            return Ok(Transformed::no(plan));
        };
        let read: Vec<String> = read.into_iter().collect();
        plan.transform_up_with_subqueries(|node| {
            let LogicalPlan::TableScan(mut scan) = node else {
                return Ok(Transformed::no(node));
            };
            let provider = source_as_provider(&scan.source)?;
            let Some(tree) = provider.downcast_ref::<TreeTable>() else {
                return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
            };
            if tree.identity_members() == Some(&read[..]) {
                return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
            }
            scan.source = provider_as_source(Arc::new(tree.reading_identity_members(read.clone())));
            Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
        })
    }
}

/// The members of `userIdentity` the plan reads, when it reads it only by members with
/// literal names; `None` when it uses the struct otherwise, or not at all.
fn members_read(plan: &LogicalPlan) -> Result<Option<BTreeSet<String>>> {
    if names_identity(plan.schema()) {
        return Ok(None);
    }
    let mut read = BTreeSet::new();
    let mut whole = false;
    plan.apply_with_subqueries(|node| {
        let passes_columns_through_expressions = matches!(
            node,
            LogicalPlan::Projection(_)
                | LogicalPlan::Filter(_)
                | LogicalPlan::Aggregate(_)
                | LogicalPlan::Sort(_)
                | LogicalPlan::Limit(_)
                | LogicalPlan::TableScan(_)
                | LogicalPlan::SubqueryAlias(_)
                | LogicalPlan::Window(_)
                | LogicalPlan::Join(_)
                | LogicalPlan::Union(_)
                | LogicalPlan::Repartition(_)
        );
        if !passes_columns_through_expressions && names_identity(node.schema()) {
            whole = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        node.apply_expressions(|e| e.apply(|e| Ok(member_use(e, &mut read, &mut whole))))?;
        Ok(if whole {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })?;
    Ok((!whole && !read.is_empty()).then_some(read))
}

/// Notes what `e` reads of `userIdentity`: a member by its literal name, or the whole struct.
fn member_use(e: &Expr, read: &mut BTreeSet<String>, whole: &mut bool) -> TreeNodeRecursion {
    match e {
        Expr::ScalarFunction(f) if f.name() == "get_field" => {
            let member = match f.args.as_slice() {
                [Expr::Column(c), Expr::Literal(name, _), ..] if c.name == IDENTITY => {
                    name.try_as_str().flatten()
                }
                _ => None,
            };
            match member {
                Some(name) => {
                    read.insert(name.to_owned());
                    TreeNodeRecursion::Jump
                }
                None => TreeNodeRecursion::Continue,
            }
        }
        Expr::Column(c) if c.name == IDENTITY => {
            *whole = true;
            TreeNodeRecursion::Stop
        }
        Expr::OuterReferenceColumn(_, c) if c.name == IDENTITY => {
            *whole = true;
            TreeNodeRecursion::Stop
        }
        _ => TreeNodeRecursion::Continue,
    }
}

fn names_identity(schema: &DFSchema) -> bool {
    schema.fields().iter().any(|f| f.name() == IDENTITY)
}
