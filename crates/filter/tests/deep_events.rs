//! One depth model for events: whatever ingest accepts, every reader handles in full. For
//! generated events nested to every depth around the limit, with siblings at each level, in
//! objects and arrays: ingest accepts exactly those within `MAX_EVENT_DEPTH`, and every accepted
//! one is matched by a metric filter on its top-level fields (the CIS root-use alarm's) and on
//! its deepest value, and is readable as an Event history view. A root `CreateAccessKey` can no
//! longer hide from the alarm by wrapping its parameters 600 levels deep: it is refused.

use cairn_filter::parse;
use cairn_model::{prepare_event, AccountId, EventView, PrepareContext, MAX_EVENT_DEPTH};
use proptest::prelude::*;

/// One level of nesting: an object (`{"k": <inner>, "s0": 0, ...}`) or an array
/// (`[<inner>, 0, ...]`), with `siblings` scalar siblings beside the inner value.
#[derive(Debug, Clone)]
struct Level {
    array: bool,
    siblings: usize,
}

/// The first level is `requestParameters` itself, which must be an object.
fn levels() -> impl Strategy<Value = Vec<Level>> {
    prop::collection::vec(
        (any::<bool>(), 0usize..3).prop_map(|(array, siblings)| Level { array, siblings }),
        1..140,
    )
    .prop_map(|mut levels| {
        levels[0].array = false;
        levels
    })
}

/// The event, and the selector reaching its deepest value.
fn event(levels: &[Level]) -> (String, String) {
    let mut inner = "\"deep-marker\"".to_owned();
    for level in levels.iter().rev() {
        inner = if level.array {
            let mut items = vec![inner];
            items.extend((0..level.siblings).map(|i| i.to_string()));
            format!("[{}]", items.join(","))
        } else {
            let mut members = vec![format!("\"k\":{inner}")];
            members.extend((0..level.siblings).map(|i| format!("\"s{i}\":{i}")));
            format!("{{{}}}", members.join(","))
        };
    }
    let mut selector = "$.requestParameters".to_owned();
    for level in levels {
        selector.push_str(if level.array { "[0]" } else { ".k" });
    }
    let record = format!(
        r#"{{"eventVersion":"1.08","userIdentity":{{"type":"Root","arn":"arn:aws:iam::111122223333:root"}},"eventTime":"2026-12-01T10:00:00Z","eventSource":"iam.amazonaws.com","eventName":"CreateAccessKey","awsRegion":"us-east-1","eventType":"AwsApiCall","requestParameters":{inner}}}"#
    );
    (record, selector)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_accepted_event_is_seen_whole(levels in levels()) {
        let (record, selector) = event(&levels);
        // The event object is level 1; requestParameters (the first generated level) level 2.
        let depth = 1 + levels.len();
        let account: AccountId = "111122223333".parse().expect("account");
        let fresh = || "generated-id".to_owned();
        let ctx = PrepareContext { account_id: &account, fresh_event_id: &fresh };
        match prepare_event(record.as_bytes(), &ctx) {
            Ok(prepared) => {
                prop_assert!(depth <= MAX_EVENT_DEPTH, "accepted at depth {depth}");
                let stored = std::str::from_utf8(&prepared.record).expect("utf8");
                let root = parse(r#"{ $.userIdentity.type = "Root" && $.eventType != "AwsServiceEvent" }"#)
                    .expect("pattern");
                prop_assert!(root.matches(stored), "the root-use filter missed an accepted event at depth {depth}");
                let deep = parse(&format!(r#"{{ {selector} = "deep-marker" }}"#)).expect("deep pattern");
                prop_assert!(deep.matches(stored), "the deepest value is invisible at depth {depth}");
                prop_assert!(EventView::from_record(&prepared.record).is_ok());
            }
            Err(rejection) => {
                prop_assert!(depth > MAX_EVENT_DEPTH, "refused at depth {depth}: {rejection}");
                prop_assert_eq!(rejection.kind, cairn_model::RejectKind::TooDeep);
            }
        }
    }
}
