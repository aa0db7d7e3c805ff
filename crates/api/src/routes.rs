//! The route table: every route declares, where it is registered, the IAM action it needs and
//! the resource that action is on ([`Action`]). [`Routes`] builds the axum router and the
//! [`RouteTable`] together, so a route cannot exist without its action; the authoriser
//! (`auth::layer`) finds a request's action in that table.

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{on, MethodFilter};
use axum::Router;

/// Where an action's resource (its ARN) comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// None applies: `*`.
    Any,
    /// A trail named (or ARN'd) by the path parameter.
    Trail(&'static str),
    /// A trail named by a member of the JSON body.
    TrailInBody(&'static str),
    /// An IAM user named by the path parameter.
    User(&'static str),
    /// An IAM user named by a member of the JSON body.
    UserInBody(&'static str),
    /// A log group named by the path parameter.
    LogGroup(&'static str),
    /// A topic named by the path parameter.
    Topic(&'static str),
    /// An alarm named by the path parameter.
    Alarm(&'static str),
    /// An event data store named (id, or ARN) by the path parameter.
    Store(&'static str),
    /// An event data store named by a member of the JSON body.
    StoreInBody(&'static str),
    /// CloudTrail's JSON protocol: the operation is named by `X-Amz-Target`, its resource by
    /// the body.
    Protocol,
}

/// What a route needs and how its calls are recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    /// IAM action, `service:Operation` (unused for [`Resource::Protocol`]).
    pub name: &'static str,
    /// The resource it acts on.
    pub resource: Resource,
    /// Only reads.
    pub read_only: bool,
    /// The handler records successful calls itself (changes).
    pub handler_records: bool,
    /// Ingestion or metrics: success is not recorded.
    pub data_plane: bool,
}

/// A read of `resource`.
pub const fn read(name: &'static str, resource: Resource) -> Action {
    Action {
        name,
        resource,
        read_only: true,
        handler_records: false,
        data_plane: false,
    }
}

/// A change of `resource`, recorded by its handler.
pub const fn change(name: &'static str, resource: Resource) -> Action {
    Action {
        name,
        resource,
        read_only: false,
        handler_records: true,
        data_plane: false,
    }
}

/// A call that neither only reads nor records itself (it is recorded by the authoriser).
pub const fn call(name: &'static str, resource: Resource) -> Action {
    Action {
        name,
        resource,
        read_only: false,
        handler_records: false,
        data_plane: false,
    }
}

impl Action {
    /// Data-plane traffic: a success is not recorded.
    pub const fn data_plane(mut self) -> Self {
        self.data_plane = true;
        self
    }
}

/// One part of a path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(&'static str),
    Param(&'static str),
}

#[derive(Debug, Clone)]
struct Entry {
    method: Method,
    parts: Vec<Part>,
    /// `None`: a public route (no authentication).
    action: Option<Action>,
}

impl Entry {
    /// The path parameters of `segments` if this entry's pattern takes them.
    fn matches<'a>(&self, segments: &[&'a str]) -> Option<Vec<(&'static str, &'a str)>> {
        if self.parts.len() != segments.len() {
            return None;
        }
        let mut params = Vec::new();
        for (part, segment) in self.parts.iter().zip(segments) {
            match part {
                Part::Literal(l) if l == segment => {}
                Part::Param(name) if !segment.is_empty() => params.push((*name, *segment)),
                _ => return None,
            }
        }
        Some(params)
    }

    fn literals(&self) -> usize {
        self.parts
            .iter()
            .filter(|p| matches!(p, Part::Literal(_)))
            .count()
    }
}

fn parts(path: &'static str) -> Vec<Part> {
    path.trim_start_matches('/')
        .split('/')
        .map(
            |p| match p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) => Part::Param(name),
                None => Part::Literal(p),
            },
        )
        .collect()
}

/// The actions of every route, found by method and path.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    entries: Vec<Entry>,
}

/// A route's action with the request's path parameters (still percent-encoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found<'a> {
    /// The action.
    pub action: Action,
    /// `(name, value)` of each `{name}` in the route's pattern.
    pub params: Vec<(&'static str, &'a str)>,
}

impl Found<'_> {
    /// The value of the path parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }
}

impl RouteTable {
    /// The route `method` `path` goes to (as the router picks it: literal segments before
    /// parameters), with its path parameters; `None` when no route takes it.
    fn entry<'a>(
        &self,
        method: &Method,
        path: &'a str,
    ) -> Option<(&Entry, Vec<(&'static str, &'a str)>)> {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        self.entries
            .iter()
            .filter(|e| e.method == *method)
            .filter_map(|e| e.matches(&segments).map(|params| (e, params)))
            .max_by_key(|(e, _)| e.literals())
    }

    /// The action of `method` `path`; `None` when no route takes it or the route is public.
    pub fn find<'a>(&self, method: &Method, path: &'a str) -> Option<Found<'a>> {
        let (entry, params) = self.entry(method, path)?;
        Some(Found {
            action: entry.action?,
            params,
        })
    }

    /// Whether `method` `path` goes to a public route (no authentication).
    pub fn is_public(&self, method: &Method, path: &str) -> bool {
        self.entry(method, path)
            .is_some_and(|(entry, _)| entry.action.is_none())
    }

    /// Every route: method, pattern, action (`None` for public routes).
    pub fn routes(&self) -> impl Iterator<Item = (&Method, String, Option<&Action>)> {
        self.entries.iter().map(|e| {
            let pattern = e
                .parts
                .iter()
                .map(|p| match p {
                    Part::Literal(l) => (*l).to_owned(),
                    Part::Param(n) => format!("{{{n}}}"),
                })
                .collect::<Vec<_>>()
                .join("/");
            (&e.method, format!("/{pattern}"), e.action.as_ref())
        })
    }
}

/// An axum router and the actions of its routes, built together.
pub struct Routes<S> {
    router: Router<S>,
    table: RouteTable,
}

impl<S: Clone + Send + Sync + 'static> Default for Routes<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    /// No routes.
    pub fn new() -> Self {
        Self {
            router: Router::new(),
            table: RouteTable::default(),
        }
    }

    /// `handler` answers `method` on `path` (axum's pattern syntax, `{name}` parameters), for
    /// callers allowed `action`.
    pub fn route<H, T>(self, method: Method, path: &'static str, action: Action, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.register(method, path, Some(action), handler)
    }

    /// A route anyone may call, unauthenticated (health checks): it has no action.
    pub fn public<H, T>(self, method: Method, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.register(method, path, None, handler)
    }

    fn register<H, T>(
        mut self,
        method: Method,
        path: &'static str,
        action: Option<Action>,
        handler: H,
    ) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone())
            .unwrap_or_else(|_| panic!("{method} is not a method axum routes"));
        self.router = self.router.route(path, on(filter, handler));
        self.table.entries.push(Entry {
            method,
            parts: parts(path),
            action,
        });
        self
    }

    /// These routes and `other`'s.
    pub fn merge(mut self, other: Routes<S>) -> Self {
        self.router = self.router.merge(other.router);
        self.table.entries.extend(other.table.entries);
        self
    }

    /// The router and the table.
    pub fn into_parts(self) -> (Router<S>, RouteTable) {
        (self.router, self.table)
    }
}

/// The route table as `docs/API.md` shows it: one Markdown row per route.
pub fn markdown(table: &RouteTable) -> String {
    let mut out = String::from("| Route | IAM action | Resource | Recorded |\n|---|---|---|---|\n");
    for (method, pattern, action) in table.routes() {
        let (name, resource, recorded) = match action {
            None => ("none (public)".to_owned(), "—".to_owned(), "no".to_owned()),
            Some(a) => {
                let resource = match a.resource {
                    Resource::Any => "`*`".to_owned(),
                    Resource::Trail(p) => format!("trail `{{{p}}}`"),
                    Resource::TrailInBody(m) => format!("trail `{m}` of the body"),
                    Resource::User(p) => format!("user `{{{p}}}`"),
                    Resource::UserInBody(m) => format!("user `{m}` of the body"),
                    Resource::LogGroup(p) => format!("log group `{{{p}}}`"),
                    Resource::Topic(p) => format!("topic `{{{p}}}`"),
                    Resource::Alarm(p) => format!("alarm `{{{p}}}`"),
                    Resource::Store(p) => format!("event data store `{{{p}}}`"),
                    Resource::StoreInBody(m) => format!("event data store `{m}` of the body"),
                    Resource::Protocol => {
                        "the trail or store the body names (`Name`, `TrailName`, `EventDataStore`)"
                            .to_owned()
                    }
                };
                let name = match a.resource {
                    Resource::Protocol => "`cloudtrail:<X-Amz-Target operation>`".to_owned(),
                    _ => format!("`{}`", a.name),
                };
                // As `auth::layer` decides (a denial is always recorded).
                let recorded = if a.resource == Resource::Protocol {
                    "reads always; changes by their handler, failures too"
                } else if a.name == "cairn:GetMetrics" {
                    "when denied"
                } else if a.data_plane {
                    "when it fails"
                } else if a.handler_records {
                    "by its handler; failures too"
                } else if a.read_only {
                    "always"
                } else {
                    "when it fails"
                };
                (name, resource, recorded.to_owned())
            }
        };
        out.push_str(&format!(
            "| `{method} {pattern}` | {name} | {resource} | {recorded} |\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/API.md` lists every route with its action, as the table holds them.
    #[test]
    fn the_api_document_lists_every_route_and_its_action() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/API.md"),
        )
        .expect("docs/API.md");
        let begin = "<!-- route-actions:begin -->\n";
        let end = "<!-- route-actions:end -->";
        let listed = doc
            .split_once(begin)
            .and_then(|(_, rest)| rest.split_once(end))
            .map(|(table, _)| table)
            .expect("docs/API.md has the route-actions markers");
        let want = markdown(&crate::route_table());
        assert!(
            listed == want,
            "docs/API.md's route table is out of date; it should read:\n{want}"
        );
    }

    #[test]
    fn a_literal_segment_wins_over_a_parameter_as_in_the_router() {
        let table = crate::route_table();
        assert!(table.is_public(&Method::GET, "/v1/topics/signing-key"));
        let put = table
            .find(&Method::PUT, "/v1/topics/signing-key")
            .expect("a topic named signing-key");
        assert_eq!(put.action.name, "sns:CreateTopic");
        assert_eq!(put.param("name"), Some("signing-key"));
        let cis = table
            .find(&Method::POST, "/v1/alarms/install-cis")
            .expect("route");
        assert_eq!(cis.action.name, "cairn:InstallCisPack");
        assert!(table.find(&Method::GET, "/v1/trails//status").is_none());
        assert!(table.find(&Method::GET, "/v1/nowhere").is_none());
    }
}
