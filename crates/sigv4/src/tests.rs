use super::*;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLE";
const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

fn at(date: &str) -> i64 {
    parse_amz_date(date).expect("date")
}

/// The secret of AWS's SigV4 test suite.
const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// AWS's SigV4 test suite, `get-vanilla`.
#[test]
fn the_aws_get_vanilla_vector() {
    let headers = headers(&[
        ("Host", "example.amazonaws.com"),
        ("X-Amz-Date", "20150830T123600Z"),
        (
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ),
    ]);
    let request = Request {
        method: "GET",
        path: "/",
        query: "",
        headers: &headers,
        body_sha256: EMPTY,
    };
    let canonical = canonical_request(
        &request,
        &["host".to_owned(), "x-amz-date".to_owned()],
        EMPTY,
        false,
    );
    assert_eq!(
        canonical,
        format!("GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n{EMPTY}")
    );
    assert_eq!(
        sha256_hex(canonical.as_bytes()),
        "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
    );
    let verified = verify(&request, at("20150830T123600Z"), |key| {
        (key == "AKIDEXAMPLE").then(|| SUITE_SECRET.to_owned())
    })
    .expect("verifies");
    assert_eq!(verified.access_key_id, "AKIDEXAMPLE");
    assert_eq!(
        (verified.region.as_str(), verified.service.as_str()),
        ("us-east-1", "service")
    );
}

fn signed(now: i64, secret: &str, body: &[u8]) -> Vec<(String, String)> {
    let base = headers(&[
        ("host", "127.0.0.1:7474"),
        ("content-type", "application/x-amz-json-1.1"),
        (
            "x-amz-target",
            "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.ListTrails",
        ),
    ]);
    let hash = sha256_hex(body);
    let request = Request {
        method: "POST",
        path: "/v1/trails/arn%3Aaws%3Acloudtrail%3Aus-east-1%3A111122223333%3Atrail%2Fmain",
        query: "b=2&a=1%20x",
        headers: &base,
        body_sha256: &hash,
    };
    let (date, authorization) = sign(
        &request,
        &Credentials {
            access_key_id: "AKIAEXAMPLE",
            secret_access_key: secret,
            region: "eu-west-1",
            service: "cloudtrail",
        },
        now,
    );
    let mut out = base;
    out.push(("X-Amz-Date".into(), date));
    out.push(("Authorization".into(), authorization));
    out
}

fn check(headers: &[(String, String)], body: &[u8], now: i64) -> Result<Verified, SigError> {
    let hash = sha256_hex(body);
    verify(
        &Request {
            method: "POST",
            path: "/v1/trails/arn%3Aaws%3Acloudtrail%3Aus-east-1%3A111122223333%3Atrail%2Fmain",
            query: "a=1%20x&b=2",
            headers,
            body_sha256: &hash,
        },
        now,
        |key| (key == "AKIAEXAMPLE").then(|| SECRET.to_owned()),
    )
}

#[test]
fn sign_then_verify_and_every_failure_class() {
    let now = at("20261201T101500Z");
    let body = br#"{"Name":"main"}"#;
    let good = signed(now, SECRET, body);
    let verified = check(&good, body, now + 60_000).expect("verifies; query order is free");
    assert_eq!(verified.service, "cloudtrail");
    // Wrong secret, other body, other header value: signature mismatch.
    let wrong = signed(now, "not-the-secret", body);
    assert!(matches!(
        check(&wrong, body, now),
        Err(SigError::InvalidSignature(_))
    ));
    assert!(matches!(
        check(&good, b"{}", now),
        Err(SigError::InvalidSignature(_))
    ));
    let mut tampered = good.clone();
    tampered[2].1.push('x');
    assert!(matches!(
        check(&tampered, body, now),
        Err(SigError::InvalidSignature(_))
    ));
    // Skew beyond 15 minutes either way.
    let late = check(&good, body, now + MAX_SKEW_MS + 1000);
    assert!(
        matches!(&late, Err(SigError::InvalidSignature(m)) if m.starts_with("Signature expired"))
    );
    assert!(check(&good, body, now - MAX_SKEW_MS - 1000).is_err());
    // Unknown key.
    let mut other = good.clone();
    let auth = other.last_mut().expect("auth");
    auth.1 = auth.1.replace("AKIAEXAMPLE", "AKIAOTHER");
    assert_eq!(check(&other, body, now), Err(SigError::UnrecognizedClient));
    // Nothing at all; malformed headers.
    let bare = headers(&[("host", "127.0.0.1:7474")]);
    assert_eq!(
        check(&bare, body, now),
        Err(SigError::MissingAuthenticationToken)
    );
    for broken in [
        "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20261201/eu-west-1/cloudtrail/aws4_request, SignedHeaders=host;x-amz-date",
        "AWS4-HMAC-SHA1 Credential=x",
        "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20261201/aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
    ] {
        let mut h = good.clone();
        h.last_mut().expect("auth").1 = broken.to_owned();
        assert!(matches!(check(&h, body, now), Err(SigError::IncompleteSignature(_))), "{broken}");
    }
    // Host must be signed.
    let mut unsigned_host = good.clone();
    let auth = unsigned_host.last_mut().expect("auth");
    auth.1 = auth.1.replace(
        "SignedHeaders=content-type;host;",
        "SignedHeaders=content-type;",
    );
    assert!(check(&unsigned_host, body, now).is_err());
}

#[test]
fn presigned_query_form() {
    let now = at("20261201T101500Z");
    let amz_date = format_amz_date(now);
    let scope = format!("{}/us-east-1/cloudtrail/aws4_request", &amz_date[..8]);
    let query_unsigned = format!(
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={}&X-Amz-Date={amz_date}&X-Amz-Expires=300&X-Amz-SignedHeaders=host",
        uri_encode(&format!("AKIAEXAMPLE/{scope}"), false)
    );
    let headers = headers(&[("host", "127.0.0.1:7474")]);
    let request = Request {
        method: "GET",
        path: "/v1/event-history",
        query: &query_unsigned,
        headers: &headers,
        body_sha256: EMPTY,
    };
    let canonical = canonical_request(&request, &["host".to_owned()], EMPTY, true);
    let signature = hex::encode(hmac(
        &signing_key(SECRET, &amz_date[..8], "us-east-1", "cloudtrail"),
        &string_to_sign(&amz_date, &scope, &canonical),
    ));
    let query = format!("{query_unsigned}&X-Amz-Signature={signature}");
    let presigned = Request {
        query: &query,
        ..request
    };
    let secret = |key: &str| (key == "AKIAEXAMPLE").then(|| SECRET.to_owned());
    assert!(verify(&presigned, now + 299_000, secret).is_ok());
    assert!(matches!(
        verify(&presigned, now + 301_000, secret),
        Err(SigError::InvalidSignature(m)) if m == "Request has expired"
    ));
}

#[test]
fn dates_round_trip() {
    for text in ["20150830T123600Z", "20261201T000000Z", "20000229T235959Z"] {
        assert_eq!(format_amz_date(at(text)), text);
    }
    assert_eq!(at("19700101T000000Z"), 0);
    assert_eq!(parse_amz_date("2015-08-30T12:36:00Z"), None);
    assert_eq!(uri_encode("a b/c~", true), "a%20b/c~");
    assert_eq!(uri_encode("a:b/c", false), "a%3Ab%2Fc");
}

proptest::proptest! {
    /// Whatever arrives — any header names and values, any query, any path — verification
    /// answers an error (or, impossibly, success), never a panic.
    #[test]
    fn verification_never_panics(
        auth in proptest::option::of(".{0,300}"),
        auth_prefixed in ".{0,200}",
        date in proptest::option::of("[0-9TZ]{0,20}"),
        query in ".{0,200}",
        path in "/.{0,100}",
        extra in proptest::collection::vec(("[a-zA-Z-]{1,20}", ".{0,50}"), 0..5),
    ) {
        let mut headers: Vec<(String, String)> = vec![("host".into(), "h".into())];
        if let Some(a) = auth {
            headers.push(("authorization".into(), a));
        }
        headers.push(("authorization".into(), format!("AWS4-HMAC-SHA256 {auth_prefixed}")));
        if let Some(d) = date {
            headers.push(("x-amz-date".into(), d));
        }
        headers.extend(extra);
        let request = Request {
            method: "GET",
            path: &path,
            query: &query,
            headers: &headers,
            body_sha256: EMPTY,
        };
        let _ = verify(&request, 1_700_000_000_000, |_| Some(SECRET.to_owned()));
        let presigned_query = format!("X-Amz-Algorithm=AWS4-HMAC-SHA256&{query}");
        let presigned = Request { query: &presigned_query, headers: &headers[..1], ..request };
        let _ = verify(&presigned, 1_700_000_000_000, |_| None);
    }
}
