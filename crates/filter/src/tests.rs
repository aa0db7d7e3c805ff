use super::*;

/// Removes insignificant whitespace from JSON text, keeping key order and spelling.
fn compact(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in raw.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

#[derive(serde::Deserialize)]
struct Vector<'a> {
    pattern: String,
    #[serde(borrow)]
    event: &'a serde_json::value::RawValue,
    #[serde(rename = "match")]
    expected: bool,
    why: String,
}

/// Every line of the spec's vector file (copied to `testdata/filter-vectors.jsonl`).
#[test]
fn every_vector_of_the_spec() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/filter-vectors.jsonl");
    let text = std::fs::read_to_string(&path).expect("vectors");
    let mut failures = Vec::new();
    let mut count = 0;
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        count += 1;
        let vector: Vector<'_> = serde_json::from_str(line).expect("vector line");
        let raw = vector.event.get();
        let message = if raw.starts_with('"') {
            serde_json::from_str::<String>(raw).expect("string event")
        } else {
            compact(raw)
        };
        match parse(&vector.pattern) {
            Err(e) => failures.push(format!(
                "line {}: pattern {:?} rejected: {e}",
                n + 1,
                vector.pattern
            )),
            Ok(pattern) => {
                if pattern.matches(&message) != vector.expected {
                    failures.push(format!(
                        "line {}: {:?} on {:?}: expected {} ({})",
                        n + 1,
                        vector.pattern,
                        message.chars().take(120).collect::<String>(),
                        vector.expected,
                        vector.why
                    ));
                }
            }
        }
    }
    assert_eq!(count, 135, "the spec has 135 vectors");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The lazy reader of a pattern set gives the same answers as the full one, on every vector.
#[test]
fn a_match_set_agrees_with_each_pattern() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/filter-vectors.jsonl");
    let text = std::fs::read_to_string(&path).expect("vectors");
    let vectors: Vec<(String, String)> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let vector: Vector<'_> = serde_json::from_str(line).expect("vector");
            let raw = vector.event.get();
            let message = if raw.starts_with('"') {
                serde_json::from_str::<String>(raw).expect("string")
            } else {
                compact(raw)
            };
            (vector.pattern, message)
        })
        .collect();
    let patterns: Vec<Pattern> = vectors
        .iter()
        .map(|(p, _)| parse(p).expect("valid"))
        .collect();
    let set = MatchSet::new(patterns.clone());
    for (_, message) in &vectors {
        let together = set.matches(message);
        for (i, pattern) in patterns.iter().enumerate() {
            assert_eq!(
                together[i],
                pattern.matches(message),
                "{:?} on {message:?}",
                vectors[i].0
            );
        }
    }
    // The CIS pack parses, verbatim.
    for control in cis::CONTROLS {
        parse(control.pattern).unwrap_or_else(|e| panic!("{}: {e}", control.id));
    }
    assert_eq!(cis::CONTROLS.len(), 15);
}

/// Section 10 of the spec: every pattern that MUST be rejected, with where and why.
#[test]
fn the_patterns_that_must_be_rejected() {
    let long = "a".repeat(1025);
    let cases: Vec<(&str, &str)> = vec![
        ("ERR*", "invalid character '*'"),
        ("\"ERROR", "unterminated"),
        ("%^(ERROR|WARN)%", "not allowed"),
        ("%ERROR(?= 500)%", "not allowed"),
        ("%hello!%", "not allowed"),
        ("%café%", "not allowed"),
        ("%[abc%", "does not compile"),
        ("{ $.v = 1", "closing '}'"),
        ("{ $.v EXISTS }", "EXISTS alone"),
        ("{ $.v IS NOT NULL }", "IS NOT"),
        ("{ $.v == 1 }", "'=='"),
        ("{ !($.v = 1) }", "negation"),
        ("{ $.v > 0 AND $.v < 2 }", "expected '&&'"),
        ("{ $.v = null }", "IS NULL"),
        ("{ $.v > \"Alpha\" }", "need a number"),
        ("{ status = 401 }", "'$'"),
        ("{ \"v\": [1] }", "'$'"),
        ("{ $..value = \"x\" }", "recursive descent"),
        ("{ $.arr[-1] = 1 }", "non-negative index"),
        ("{ $.arr[0:2] = 1 }", "slices"),
        ("{ $.items[*].* = 1 }", "at most one wildcard"),
        (
            "{ $.a[*] = 1 || $.b[*] = 1 || $.* = 1 || $.c[*] = 1 }",
            "at most 3 wildcard",
        ),
        (
            "{ $.v = %A% || $.v = %B% || $.v = %C% }",
            "at most 2 regular",
        ),
        ("[..., status, ...]", "duplicate field '...'"),
        ("[word, word]", "duplicate field"),
        (
            "[ip, user, username, timestamp, request, status_code = 4* && bytes > 1000]",
            "may only test",
        ),
        ("{ $.v = 'Root' }", "single-quoted"),
        ("- ERROR", "expected a term"),
        ("ERROR -", "expected a term"),
        ("ERROR && WARN", "invalid character '&'"),
        (&long, "at most 1024"),
    ];
    for (pattern, reason) in cases {
        match parse(pattern) {
            Ok(p) => panic!("{pattern:?} was accepted: {p:?}"),
            Err(e) => assert!(
                e.to_string().contains(reason),
                "{pattern:?}: {e} (expected to mention {reason:?})"
            ),
        }
    }
    // The position points at the fault.
    let e = parse("{ $.a = 1 && $.b == 2 }").expect_err("==");
    assert_eq!(e.position, 17);
    let e = parse("ERROR ERR*").expect_err("*");
    assert_eq!(e.position, 9);
}

#[test]
fn extracted_values_of_space_delimited_patterns() {
    let p = parse("[ip, user, ..., status_code=4*, size]").expect("pattern");
    let line = "127.0.0.1 frank [10/Oct/2000:13:25:15 -0700] \"GET /a HTTP/1.0\" 404 1534";
    let values = p.evaluate(line).expect("match");
    assert_eq!(values["$ip"], "127.0.0.1");
    assert_eq!(values["$status_code"], "404");
    assert_eq!(values["$3"], "10/Oct/2000:13:25:15 -0700");
    assert_eq!(values["$4"], "GET /a HTTP/1.0");
    let p = parse("[w1=ERROR, w2]").expect("pattern");
    assert_eq!(
        p.evaluate("ERROR 09/25/2014 12:00:02 Failed to process")
            .expect("match")["$w2"],
        "09/25/2014 12:00:02 Failed to process"
    );
    assert!(!p.matches("ERROR"));
}

proptest::proptest! {
    /// Any text is either a valid pattern or refused with a position inside it; evaluating a
    /// valid one on any message never panics.
    #[test]
    fn no_input_panics(pattern in ".{0,80}", message in ".{0,80}") {
        match parse(&pattern) {
            Ok(p) => { let _ = p.evaluate(&message); }
            Err(e) => proptest::prop_assert!(e.position <= pattern.chars().count().max(1024)),
        }
    }

    #[test]
    fn structured_inputs_never_panic(
        pattern in "[{\\[ ]{1}[$.a-z0-9*\\[\\]'\"=<>!&|() %,_-]{0,60}[}\\]]{0,1}",
        message in "[{\\[\"a-z0-9:, \\]}.-]{0,60}",
    ) {
        if let Ok(p) = parse(&pattern) {
            let _ = p.evaluate(&message);
        }
    }
}
