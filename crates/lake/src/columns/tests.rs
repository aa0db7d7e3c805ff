use super::*;

#[test]
fn name_lengths_let_through_every_name_of_a_length_they_hold_and_no_other() {
    let lengths = NameLengths::of(["arn", "userIdentity"]);
    for name in ["arn", "arm", "userIdentity", "eventVersion"] {
        assert!(lengths.may_be(name), "{name}");
    }
    let long = |n: usize| "x".repeat(n);
    for name in ["", "ar", "type", "sourceIPAddress", &long(63), &long(200)] {
        assert!(!lengths.may_be(name), "{name}");
    }
    assert!(!NameLengths::default().may_be("arn"));
    // Long names: any of 63 bytes or more may be one of them.
    let lengths = NameLengths::of(["arn", &long(70)]);
    for name in ["arn", &long(63), &long(64), &long(70), &long(200)] {
        assert!(lengths.may_be(name), "{name}");
    }
    assert!(!lengths.may_be(&long(62)));
    // Every column's (and struct member's) name passes the lengths of its fellows' names.
    fn check(nodes: &[Node]) {
        let all = NameLengths::of(nodes.iter().map(|c| c.name));
        for node in nodes {
            assert!(all.may_be(node.name), "{}", node.name);
            if let Kind::Struct(members) = node.kind {
                check(members);
            }
        }
    }
    check(COLUMNS);
}

#[test]
fn every_column_name_finds_its_column_and_nothing_else_finds_one() {
    for (i, c) in COLUMNS.iter().enumerate() {
        assert_eq!(column_position(c.name), Some(i), "{}", c.name);
    }
    assert_eq!(COLUMNS[EVENT_SOURCE].name, "eventSource");
    assert_eq!(COLUMNS[USER_IDENTITY].name, "userIdentity");
    let mut others: Vec<String> = vec![
        "".into(),
        "Records".into(),
        "eventname".into(),
        "eventNam".into(),
        "eventNamee".into(),
        "eventNameX".into(),
        "xventName".into(),
        "eventTimeZ".into(),
    ];
    // Member names of the structs, and every column name with one byte changed.
    for m in IDENTITY.iter().chain(SESSION).chain(ISSUER).chain(TLS) {
        if column_position(m.name).is_some() {
            continue;
        }
        others.push(m.name.into());
    }
    for c in COLUMNS {
        for at in 0..c.name.len() {
            let mut b = c.name.as_bytes().to_vec();
            b[at] ^= 0x20;
            others.push(String::from_utf8(b).expect("ASCII"));
        }
    }
    for name in others {
        let found = column_position(&name);
        assert!(
            found.is_none() || COLUMNS[found.unwrap_or(0)].name == name,
            "{name:?} found {found:?}"
        );
        if !COLUMNS.iter().any(|c| c.name == name) {
            assert_eq!(found, None, "{name:?}");
        }
    }
}
