use super::policy::{evaluate, glob, Decision, Policy};
use super::*;

#[test]
fn globs() {
    assert!(glob("cloudtrail:*", "cloudtrail:CreateTrail", true));
    assert!(glob("cloudtrail:get*", "cloudtrail:GetTrailStatus", true));
    assert!(!glob(
        "cloudtrail:Get*",
        "cloudtrail-data:PutAuditEvents",
        true
    ));
    assert!(glob(
        "arn:aws:cloudtrail:*:111122223333:trail/prod-?",
        "arn:aws:cloudtrail:us-east-1:111122223333:trail/prod-1",
        false
    ));
    assert!(!glob(
        "arn:aws:cloudtrail:*:111122223333:trail/prod-?",
        "arn:aws:cloudtrail:us-east-1:111122223333:trail/prod-12",
        false
    ));
    assert!(
        !glob("arn:*:trail/Prod", "arn:aws:trail/prod", false),
        "resources keep case"
    );
    assert!(glob("*", "", false));
}

#[test]
fn explicit_deny_wins_then_allow_then_implicit_deny() {
    let allow = Policy::parse(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"cloudtrail:*","Resource":"*"}]}"#).expect("policy");
    let deny = Policy::parse(r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":["cloudtrail:StopLogging","cloudtrail:DeleteTrail"],"Resource":"arn:aws:cloudtrail:*:*:trail/org-*"}}"#).expect("policy");
    let trail = "arn:aws:cloudtrail:us-east-1:111122223333:trail/org-main";
    assert_eq!(
        evaluate([&allow], "cloudtrail:StopLogging", trail),
        Decision::Allow
    );
    assert_eq!(
        evaluate([&allow, &deny], "cloudtrail:StopLogging", trail),
        Decision::ExplicitDeny
    );
    assert_eq!(
        evaluate([&allow, &deny], "cloudtrail:stoplogging", trail),
        Decision::ExplicitDeny
    );
    assert_eq!(
        evaluate([&allow, &deny], "cloudtrail:StartLogging", trail),
        Decision::Allow
    );
    assert_eq!(
        evaluate([&allow, &deny], "iam:CreateUser", "*"),
        Decision::ImplicitDeny
    );
    let not_action = Policy::parse(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}]}"#).expect("policy");
    assert_eq!(
        evaluate([&not_action], "iam:CreateUser", "*"),
        Decision::ImplicitDeny
    );
    assert_eq!(
        evaluate([&not_action], "cloudtrail:LookupEvents", "*"),
        Decision::Allow
    );
}

#[test]
fn malformed_documents_are_refused_with_the_reason() {
    for (doc, reason) in [
        ("[]", "JSON object"),
        (r#"{"Statement":[]}"#, "Version"),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Maybe","Action":"*","Resource":"*"}]}"#,
            "Effect",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Resource":"*"}]}"#,
            "Action",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"CreateTrail","Resource":"*"}]}"#,
            "service:Operation",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{}}]}"#,
            "not supported",
        ),
    ] {
        let error = Policy::parse(doc).expect_err(doc);
        assert!(error.to_string().contains(reason), "{doc}: {error}");
        // The code travels apart (`__type`); the message does not repeat it.
        let error = IamError::from(error);
        assert_eq!(error.code(), "MalformedPolicyDocument");
        assert!(
            !error.to_string().contains("MalformedPolicyDocument"),
            "{error}"
        );
    }
}

#[test]
fn users_keys_policies_and_the_built_in_roles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("iam.json");
    let iam = Iam::open(&path, "111122223333").expect("open");
    assert!(iam.is_empty());
    let user = iam.create_user("alice", 1).expect("user");
    assert!(user.user_id.starts_with("AIDA"));
    assert!(matches!(
        iam.create_user("Alice", 2),
        Err(IamError::EntityAlreadyExists(_))
    ));
    assert!(matches!(
        iam.create_user("bad name", 2),
        Err(IamError::ValidationError(_))
    ));
    let key = iam.create_access_key("alice", 3).expect("key");
    assert!(key.id.starts_with("AKIA") && key.id.len() == 20);
    assert_eq!(key.secret.len(), 40);
    iam.create_access_key("alice", 4).expect("second key");
    assert!(matches!(
        iam.create_access_key("alice", 5),
        Err(IamError::LimitExceeded)
    ));
    assert!(iam
        .list_access_keys("alice")
        .expect("list")
        .iter()
        .all(|k| k.secret.is_empty()));
    let principal = iam.principal_of(&key.id).expect("principal");
    assert_eq!(principal.arn, "arn:aws:iam::111122223333:user/alice");
    assert_eq!(iam.secret_of(&key.id), Some(key.secret.clone()));
    let trail = "arn:aws:cloudtrail:us-east-1:111122223333:trail/main";
    assert_eq!(
        iam.authorize(&principal, "cloudtrail:LookupEvents", "*"),
        Decision::ImplicitDeny
    );
    iam.attach_policy("alice", "arn:aws:iam::aws:policy/CairnReader")
        .expect("attach");
    assert_eq!(
        iam.authorize(&principal, "cloudtrail:LookupEvents", "*"),
        Decision::Allow
    );
    assert_eq!(
        iam.authorize(&principal, "cloudtrail:GetTrailStatus", trail),
        Decision::Allow
    );
    assert_eq!(
        iam.authorize(&principal, "cloudtrail:StopLogging", trail),
        Decision::ImplicitDeny
    );
    assert_eq!(
        iam.authorize(&principal, "cloudtrail-data:PutAuditEvents", "*"),
        Decision::ImplicitDeny
    );
    iam.put_user_policy("alice", "no-lookup", r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"cloudtrail:LookupEvents","Resource":"*"}]}"#).expect("inline");
    assert_eq!(
        iam.authorize(&principal, "cloudtrail:LookupEvents", "*"),
        Decision::ExplicitDeny
    );
    assert!(iam.attach_policy("alice", "PowerUser").is_err());
    // Persisted, private, and reloaded.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).expect("file").permissions().mode() & 0o777,
            0o600
        );
    }
    let reopened = Iam::open(&path, "111122223333").expect("reopen");
    assert_eq!(reopened.secret_of(&key.id), Some(key.secret.clone()));
    reopened
        .delete_access_key("alice", &key.id)
        .expect("delete");
    assert_eq!(reopened.secret_of(&key.id), None);
    // Writer: ingest only.
    reopened.create_user("feeder", 6).expect("user");
    reopened
        .attach_policy("feeder", "CairnWriter")
        .expect("attach");
    let feeder_key = reopened.create_access_key("feeder", 7).expect("key");
    let feeder = reopened.principal_of(&feeder_key.id).expect("principal");
    assert_eq!(
        reopened.authorize(&feeder, "cloudtrail-data:PutAuditEvents", "*"),
        Decision::Allow
    );
    assert_eq!(
        reopened.authorize(&feeder, "cloudtrail:LookupEvents", "*"),
        Decision::ImplicitDeny
    );
}
