//! Text prefilter for raw mode: literals a record must contain to match a query.
//!
//! Parsing JSON costs several times more than searching it. When the query's filters
//! (ANDed, as DataFusion hands them to the scan) compare a text column with a literal —
//! `eventName = 'ConsoleLogin'`, `userIdentity.accessKeyId IN (...)`, `eventName LIKE
//! 'Authorize%'`, `errorCode IS NOT NULL` — a record whose text does not contain that literal
//! (or that member name) cannot match, so it is not parsed; a file that contains none of them is
//! not split into records either. The filters are still applied to the rows that are parsed
//! (the pushdown is inexact), so the prefilter only ever saves work, never changes answers.
//!
//! JSON may spell a character as an escape (`\u0041`, `\/`). A record or file that contains such
//! an escape is never ruled out, and literals with characters JSON must escape (`"`, `\`,
//! control characters) are not used.

use crate::columns::{Kind, Node, COLUMNS};
use datafusion::logical_expr::{BinaryExpr, Expr, Like, Operator};
use datafusion::scalar::ScalarValue;
use memchr::memmem::Finder;

/// Shortest literal worth searching for (shorter ones rule little out).
const MIN_NEEDLE: usize = 2;

/// What a record must contain: for every group, at least one of its texts.
#[derive(Debug, Clone, Default)]
pub struct Needles {
    groups: Vec<Vec<Finder<'static>>>,
    slash: bool,
}

impl PartialEq for Needles {
    fn eq(&self, other: &Self) -> bool {
        self.texts() == other.texts()
    }
}

fn text_literal(e: &Expr) -> Option<&str> {
    match e {
        Expr::Literal(ScalarValue::Utf8(Some(s)), _)
        | Expr::Literal(ScalarValue::LargeUtf8(Some(s)), _)
        | Expr::Literal(ScalarValue::Utf8View(Some(s)), _) => Some(s),
        _ => None,
    }
}

/// The column or struct member `e` reads, if it is one read as text from the record (so a
/// value equal to a literal has the literal in the record's text).
fn text_node(e: &Expr) -> Option<&'static Node> {
    let node = node(e)?;
    matches!(node.kind, Kind::Text | Kind::Json).then_some(node)
}

fn node(e: &Expr) -> Option<&'static Node> {
    match e {
        Expr::Column(c) => COLUMNS.iter().find(|n| n.name == c.name),
        Expr::ScalarFunction(f) if f.func.name() == "get_field" && f.args.len() == 2 => {
            let Kind::Struct(members) = node(&f.args[0])?.kind else {
                return None;
            };
            let name = text_literal(&f.args[1])?;
            members.iter().find(|m| m.name == name)
        }
        // A column as another string type holds the same text.
        Expr::Cast(c) if is_text_type(c.field.data_type()) => node(&c.expr),
        _ => None,
    }
}

fn is_text_type(t: &datafusion::arrow::datatypes::DataType) -> bool {
    use datafusion::arrow::datatypes::DataType;
    matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
}

/// Whether `s` can be searched for verbatim in JSON text (given the escape guard).
fn searchable(s: &str) -> bool {
    s.len() >= MIN_NEEDLE && !s.chars().any(|c| c == '"' || c == '\\' || c.is_control())
}

/// The longest run of literal text in a `LIKE` pattern.
fn like_needle(pattern: &str, escape: Option<char>) -> Option<String> {
    if escape.is_some() || pattern.contains('\\') {
        return None;
    }
    pattern
        .split(['%', '_'])
        .max_by_key(|s| s.len())
        .map(str::to_owned)
}

/// Texts one of which a matching record contains, for one filter (`None`: nothing known).
fn alternatives(e: &Expr) -> Option<Vec<String>> {
    let out = match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::Eq => {
                let lit = match (text_node(left), text_node(right)) {
                    (Some(_), None) => right,
                    (None, Some(_)) => left,
                    _ => return None,
                };
                vec![text_literal(lit)?.to_owned()]
            }
            Operator::Or => {
                let mut l = groups(left).into_iter().next()?;
                l.extend(groups(right).into_iter().next()?);
                l
            }
            _ => return None,
        },
        Expr::InList(list) if !list.negated => {
            text_node(&list.expr)?;
            list.list
                .iter()
                .map(|v| text_literal(v).map(str::to_owned))
                .collect::<Option<Vec<_>>>()?
        }
        Expr::Like(Like {
            negated: false,
            expr,
            pattern,
            escape_char,
            case_insensitive: false,
        }) => {
            text_node(expr)?;
            vec![like_needle(text_literal(pattern)?, *escape_char)?]
        }
        // A member that is present has its name in the record.
        Expr::IsNotNull(inner) => vec![node(inner)?.name.to_owned()],
        _ => return None,
    };
    (!out.is_empty() && out.iter().all(|s| searchable(s))).then_some(out)
}

fn groups(e: &Expr) -> Vec<Vec<String>> {
    match e {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => {
            let mut g = groups(left);
            g.extend(groups(right));
            g
        }
        _ => alternatives(e).into_iter().collect(),
    }
}

impl Needles {
    /// What `filters` (ANDed) require of a record's text.
    pub fn from_filters(filters: &[Expr]) -> Self {
        let groups: Vec<Vec<String>> = filters.iter().flat_map(groups).collect();
        let slash = groups.iter().flatten().any(|s| s.contains('/'));
        Self {
            groups: groups
                .into_iter()
                .map(|g| {
                    g.iter()
                        .map(|s| Finder::new(s.as_bytes()).into_owned())
                        .collect()
                })
                .collect(),
            slash,
        }
    }

    /// Whether there is anything to search for.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The texts, by group.
    pub fn texts(&self) -> Vec<Vec<String>> {
        self.groups
            .iter()
            .map(|g| {
                g.iter()
                    .map(|f| String::from_utf8_lossy(f.needle()).into_owned())
                    .collect()
            })
            .collect()
    }

    /// Whether `text` (a record, or a whole file) may hold a match.
    pub fn admits(&self, text: &[u8]) -> bool {
        if self.groups.is_empty() {
            return true;
        }
        let all_found = self
            .groups
            .iter()
            .all(|g| g.iter().any(|f| f.find(text).is_some()));
        // Built once: building them at each call took a fifth as long as the searches did.
        static ESCAPES: std::sync::OnceLock<[Finder<'static>; 2]> = std::sync::OnceLock::new();
        let [unicode, slash] = ESCAPES.get_or_init(|| {
            [
                Finder::new(b"\\u").into_owned(),
                Finder::new(b"\\/").into_owned(),
            ]
        });
        all_found || unicode.find(text).is_some() || (self.slash && slash.find(text).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The filters DataFusion pushes to a scan for `sql`'s WHERE clause.
    async fn needles(sql_where: &str) -> Vec<Vec<String>> {
        // The Lake's session: identifiers keep their case, as CloudTrail Lake's columns do.
        let ctx = crate::query::session();
        let schema = crate::columns::schema();
        let df = ctx
            .read_empty()
            .expect("an empty frame")
            .select(
                schema
                    .fields()
                    .iter()
                    .map(|f| {
                        datafusion::logical_expr::cast(
                            datafusion::prelude::lit(ScalarValue::Null),
                            f.data_type().clone(),
                        )
                        .alias(f.name())
                    })
                    .collect::<Vec<_>>(),
            )
            .expect("every column, null");
        let expr = df.parse_sql_expr(sql_where).expect("a valid filter");
        Needles::from_filters(&[expr]).texts()
    }

    #[tokio::test]
    async fn literals_a_matching_record_must_contain() {
        let cases: &[(&str, &[&[&str]])] = &[
            ("eventName = 'ConsoleLogin'", &[&["ConsoleLogin"]]),
            ("'ConsoleLogin' = eventName", &[&["ConsoleLogin"]]),
            (
                "userIdentity.accessKeyId = 'AKIAEXAMPLE'",
                &[&["AKIAEXAMPLE"]],
            ),
            ("userIdentity['type'] = 'Root'", &[&["Root"]]),
            (
                "userIdentity.sessionContext.sessionIssuer.userName = 'admin'",
                &[&["admin"]],
            ),
            (
                "awsRegion = 'eu-west-1' AND eventName IN ('A1', 'B2')",
                &[&["eu-west-1"], &["A1", "B2"]],
            ),
            ("eventName LIKE 'Authorize%Ingress'", &[&["Authorize"]]),
            ("errorCode IS NOT NULL", &[&["errorCode"]]),
            ("eventName = 'Ab' OR eventName = 'Cd'", &[&["Ab", "Cd"]]),
            (
                "userIdentity.arn = 'arn:aws:iam::1:user/a'",
                &[&["arn:aws:iam::1:user/a"]],
            ),
            // Nothing to search for: not text, negated, unsafe characters, case-insensitive.
            ("eventTime = TIMESTAMP '2026-01-01 00:00:00'", &[]),
            ("readOnly = true", &[]),
            ("eventName <> 'ConsoleLogin'", &[]),
            ("eventName NOT IN ('A1')", &[]),
            ("eventName ILIKE 'console%'", &[]),
            ("errorMessage = 'say \"hi\"'", &[]),
            ("eventName = 'A'", &[]),
            ("eventName = 'Ab' OR readOnly", &[]),
            ("lower(eventName) = 'consolelogin'", &[]),
        ];
        for (filter, want) in cases {
            let want: Vec<Vec<String>> = want
                .iter()
                .map(|g| g.iter().map(|s| (*s).to_owned()).collect())
                .collect();
            assert_eq!(needles(filter).await, want, "{filter}");
        }
    }

    #[test]
    fn escapes_are_never_ruled_out() {
        let n = Needles {
            groups: vec![vec![Finder::new(b"user/alice").into_owned()]],
            slash: true,
        };
        assert!(n.admits(br#"{"arn":"arn:aws:iam::1:user/alice"}"#));
        assert!(!n.admits(br#"{"arn":"arn:aws:iam::1:user/bob"}"#));
        assert!(n.admits(br#"{"arn":"arn:aws:iam::1:user\/alice"}"#));
        assert!(n.admits(br#"{"arn":"arn:aws:iam::1:user/\u0061lice"}"#));
        assert!(Needles::default().admits(b"anything"));
    }
}
