//! The selector matrix: one line per (selectors, event, expected).

use super::*;

/// Subjects borrow their record; tests keep the record for the test's duration.
fn subject(extra: &str) -> Subject<'static> {
    let record = format!(
        r#"{{"eventVersion":"1.11","awsRegion":"us-east-1","recipientAccountId":"111122223333","userIdentity":{{"arn":"arn:aws:iam::111122223333:user/alice"}}{extra}}}"#
    );
    let record: &'static str = Box::leak(record.into_boxed_str());
    Subject::from_record(record.as_bytes()).expect("subject")
}

fn mgmt(source: &str, name: &str, read_only: bool) -> Subject<'static> {
    subject(&format!(
        r#","eventCategory":"Management","eventSource":"{source}","eventName":"{name}","readOnly":{read_only},"eventType":"AwsApiCall""#
    ))
}

fn data(resource_type: &str, arn: &str, name: &str, read_only: bool) -> Subject<'static> {
    subject(&format!(
        r#","eventCategory":"Data","eventSource":"s3.amazonaws.com","eventName":"{name}","readOnly":{read_only},"resources":[{{"type":"AWS::S3::Bucket","ARN":"arn:aws:s3:::other"}},{{"type":"{resource_type}","ARN":"{arn}"}}]"#
    ))
}

fn selectors(json: &str) -> Selectors {
    let selectors: Selectors = serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"));
    selectors
        .validate()
        .unwrap_or_else(|e| panic!("{json}: {e}"));
    selectors
}

macro_rules! matches {
    ($selectors:expr, $subject:expr) => {
        assert!(
            selectors($selectors).matches(&$subject),
            "{} should match {:?}",
            $selectors,
            $subject
        )
    };
}
macro_rules! no_match {
    ($selectors:expr, $subject:expr) => {
        assert!(
            !selectors($selectors).matches(&$subject),
            "{} should not match {:?}",
            $selectors,
            $subject
        )
    };
}
macro_rules! rejects {
    ($selectors:expr, $needle:expr) => {{
        let parsed: Result<Selectors, _> = serde_json::from_str($selectors);
        match parsed {
            Err(e) => assert!(e.to_string().contains($needle), "{}: {e}", $selectors),
            Ok(s) => {
                let e = s.validate().expect_err($selectors);
                assert!(
                    e.0.contains($needle),
                    "{}: {} lacks {:?}",
                    $selectors,
                    e.0,
                    $needle
                );
            }
        }
    }};
}

const S3_OBJECT: &str = "AWS::S3::Object";

#[test]
fn default_logs_all_management_events_only() {
    let default = Selectors::default();
    assert!(default.matches(&mgmt("iam.amazonaws.com", "CreateUser", false)));
    assert!(default.matches(&mgmt("ec2.amazonaws.com", "DescribeInstances", true)));
    assert!(!default.matches(&data(S3_OBJECT, "arn:aws:s3:::b/k", "GetObject", true)));
    let insight = subject(
        r#","eventCategory":"Insight","insightDetails":{"eventSource":"ec2.amazonaws.com","eventName":"RunInstances"}"#,
    );
    assert!(!default.matches(&insight));
    let network = subject(
        r#","eventCategory":"NetworkActivity","eventSource":"s3.amazonaws.com","eventName":"GetObject""#,
    );
    assert!(!default.matches(&network));
    let integration = subject(
        r#","eventCategory":"ActivityAuditLog","eventData":{"eventSource":"billing.example","eventName":"Approve"}"#,
    );
    assert!(default.matches(&integration));
    assert_eq!(integration.event_source, "billing.example");
}

#[test]
fn basic_read_write_and_exclusions() {
    let read_only = r#"{"EventSelectors":[{"ReadWriteType":"ReadOnly"}]}"#;
    matches!(
        read_only,
        mgmt("ec2.amazonaws.com", "DescribeInstances", true)
    );
    no_match!(read_only, mgmt("iam.amazonaws.com", "CreateUser", false));
    let write_only = r#"{"EventSelectors":[{"ReadWriteType":"WriteOnly"}]}"#;
    matches!(write_only, mgmt("iam.amazonaws.com", "CreateUser", false));
    no_match!(
        write_only,
        mgmt("ec2.amazonaws.com", "DescribeInstances", true)
    );
    let no_kms = r#"{"EventSelectors":[{"ExcludeManagementEventSources":["kms.amazonaws.com"]}]}"#;
    no_match!(no_kms, mgmt("kms.amazonaws.com", "Decrypt", true));
    matches!(no_kms, mgmt("iam.amazonaws.com", "CreateUser", false));
    let none = r#"{"EventSelectors":[{"IncludeManagementEvents":false}]}"#;
    no_match!(none, mgmt("iam.amazonaws.com", "CreateUser", false));
}

#[test]
fn basic_data_resources() {
    let all_s3 = r#"{"EventSelectors":[{"IncludeManagementEvents":false,"DataResources":[{"Type":"AWS::S3::Object","Values":["arn:aws:s3"]}]}]}"#;
    matches!(
        all_s3,
        data(S3_OBJECT, "arn:aws:s3:::any/key", "PutObject", false)
    );
    no_match!(all_s3, mgmt("s3.amazonaws.com", "CreateBucket", false));
    let bucket = r#"{"EventSelectors":[{"DataResources":[{"Type":"AWS::S3::Object","Values":["arn:aws:s3:::photos/"]}]}]}"#;
    matches!(
        bucket,
        data(S3_OBJECT, "arn:aws:s3:::photos/cat.jpg", "GetObject", true)
    );
    no_match!(
        bucket,
        data(
            S3_OBJECT,
            "arn:aws:s3:::photos-old/cat.jpg",
            "GetObject",
            true
        )
    );
    let prefix = r#"{"EventSelectors":[{"DataResources":[{"Type":"AWS::S3::Object","Values":["arn:aws:s3:::photos/2026/"]}]}]}"#;
    matches!(
        prefix,
        data(
            S3_OBJECT,
            "arn:aws:s3:::photos/2026/a.jpg",
            "GetObject",
            true
        )
    );
    no_match!(
        prefix,
        data(
            S3_OBJECT,
            "arn:aws:s3:::photos/2025/a.jpg",
            "GetObject",
            true
        )
    );
    let function = r#"{"EventSelectors":[{"DataResources":[{"Type":"AWS::Lambda::Function","Values":["arn:aws:lambda:us-east-1:111122223333:function:helloworld"]}]}]}"#;
    matches!(
        function,
        data(
            "AWS::Lambda::Function",
            "arn:aws:lambda:us-east-1:111122223333:function:helloworld",
            "Invoke",
            false
        )
    );
    no_match!(
        function,
        data(
            "AWS::Lambda::Function",
            "arn:aws:lambda:us-east-1:111122223333:function:helloworld2",
            "Invoke",
            false
        )
    );
    let all_lambda = r#"{"EventSelectors":[{"DataResources":[{"Type":"AWS::Lambda::Function","Values":["arn:aws:lambda"]}]}]}"#;
    matches!(
        all_lambda,
        data(
            "AWS::Lambda::Function",
            "arn:aws:lambda:eu-west-1:1:function:x",
            "Invoke",
            false
        )
    );
    no_match!(
        all_lambda,
        data(S3_OBJECT, "arn:aws:s3:::b/k", "GetObject", true)
    );
    let reads_only = r#"{"EventSelectors":[{"ReadWriteType":"ReadOnly","DataResources":[{"Type":"AWS::S3::Object","Values":["arn:aws:s3"]}]}]}"#;
    matches!(
        reads_only,
        data(S3_OBJECT, "arn:aws:s3:::b/k", "GetObject", true)
    );
    no_match!(
        reads_only,
        data(S3_OBJECT, "arn:aws:s3:::b/k", "PutObject", false)
    );
}

#[test]
fn advanced_each_operator() {
    let with = |field: &str, operator: &str, value: &str| {
        format!(
            r#"{{"AdvancedEventSelectors":[{{"FieldSelectors":[{{"Field":"eventCategory","Equals":["Management"]}},{{"Field":"{field}","{operator}":["{value}"]}}]}}]}}"#
        )
    };
    let event = mgmt("iam.amazonaws.com", "CreateUser", false);
    // (field, operator, value, expected)
    let cases = [
        ("eventName", "Equals", "CreateUser", true),
        ("eventName", "Equals", "createuser", false),
        ("eventName", "StartsWith", "Create", true),
        ("eventName", "StartsWith", "Delete", false),
        ("eventName", "EndsWith", "User", true),
        ("eventName", "EndsWith", "Role", false),
        ("eventName", "NotEquals", "CreateUser", false),
        ("eventName", "NotEquals", "DeleteUser", true),
        ("eventName", "NotStartsWith", "Create", false),
        ("eventName", "NotStartsWith", "Delete", true),
        ("eventName", "NotEndsWith", "User", false),
        ("eventName", "NotEndsWith", "Role", true),
        ("eventSource", "NotEquals", "kms.amazonaws.com", true),
        ("readOnly", "Equals", "false", true),
        ("readOnly", "Equals", "true", false),
        ("eventType", "Equals", "AwsApiCall", true),
        (
            "userIdentity.arn",
            "StartsWith",
            "arn:aws:iam::111122223333:user/",
            true,
        ),
        ("userIdentity.arn", "NotEndsWith", "/alice", false),
        ("sessionCredentialFromConsole", "Equals", "true", false),
        ("sessionCredentialFromConsole", "NotEquals", "true", true),
        ("eventName", "Equals", "*", false),
    ];
    for (field, operator, value, expected) in cases {
        let json = with(field, operator, value);
        assert_eq!(
            selectors(&json).matches(&event),
            expected,
            "{field} {operator} {value}"
        );
    }
}

#[test]
fn advanced_data_and_or_and_semantics() {
    let example = r#"{"AdvancedEventSelectors":[
        {"Name":"mgmt-no-kms","FieldSelectors":[{"Field":"eventCategory","Equals":["Management"]},{"Field":"eventSource","NotEquals":["kms.amazonaws.com"]}]},
        {"Name":"s3-writes","FieldSelectors":[{"Field":"eventCategory","Equals":["Data"]},{"Field":"resources.type","Equals":["AWS::S3::Object"]},
            {"Field":"readOnly","Equals":["false"]},{"Field":"resources.ARN","NotStartsWith":["arn:aws:s3:::acme-audit/"]}]}]}"#;
    matches!(example, mgmt("iam.amazonaws.com", "CreateUser", false));
    no_match!(example, mgmt("kms.amazonaws.com", "Decrypt", true));
    matches!(
        example,
        data(S3_OBJECT, "arn:aws:s3:::photos/a", "PutObject", false)
    );
    no_match!(
        example,
        data(S3_OBJECT, "arn:aws:s3:::photos/a", "GetObject", true)
    );
    no_match!(
        example,
        data(
            S3_OBJECT,
            "arn:aws:s3:::acme-audit/log.gz",
            "PutObject",
            false
        )
    );
    // resources.type and resources.ARN must hold for the same resource: the bucket element
    // (type AWS::S3::Bucket) must not satisfy the object conditions.
    let same_resource = r#"{"AdvancedEventSelectors":[{"FieldSelectors":[{"Field":"eventCategory","Equals":["Data"]},{"Field":"resources.type","Equals":["AWS::S3::Object"]},{"Field":"resources.ARN","Equals":["arn:aws:s3:::other"]}]}]}"#;
    no_match!(
        same_resource,
        data(S3_OBJECT, "arn:aws:s3:::photos/a", "PutObject", false)
    );
    let two_operators = r#"{"AdvancedEventSelectors":[{"FieldSelectors":[{"Field":"eventCategory","Equals":["Management"]},{"Field":"eventName","StartsWith":["Create"],"NotEndsWith":["Role"]}]}]}"#;
    matches!(
        two_operators,
        mgmt("iam.amazonaws.com", "CreateUser", false)
    );
    no_match!(
        two_operators,
        mgmt("iam.amazonaws.com", "CreateRole", false)
    );
    let network = r#"{"AdvancedEventSelectors":[{"FieldSelectors":[{"Field":"eventCategory","Equals":["NetworkActivity"]},{"Field":"eventSource","Equals":["s3.amazonaws.com"]},{"Field":"errorCode","Equals":["VpceAccessDenied"]}]}]}"#;
    matches!(
        network,
        subject(
            r#","eventCategory":"NetworkActivity","eventSource":"s3.amazonaws.com","eventName":"GetObject","errorCode":"VpceAccessDenied""#
        )
    );
    no_match!(
        network,
        subject(
            r#","eventCategory":"NetworkActivity","eventSource":"s3.amazonaws.com","eventName":"GetObject""#
        )
    );
    no_match!(network, mgmt("s3.amazonaws.com", "GetObject", true));
}

#[test]
fn invalid_configurations_are_refused_with_the_reason() {
    rejects!(r#"{"EventSelectors":[]}"#, "1 to 5");
    rejects!(r#"{"EventSelectors":[{},{},{},{},{},{}]}"#, "1 to 5");
    rejects!(
        r#"{"EventSelectors":[{"ReadWriteType":"Sometimes"}]}"#,
        "unknown variant"
    );
    rejects!(
        r#"{"EventSelectors":[{"ExcludeManagementEventSources":["iam.amazonaws.com"]}]}"#,
        "ExcludeManagementEventSources"
    );
    rejects!(
        r#"{"EventSelectors":[{"DataResources":[{"Type":"AWS::SNS::Topic","Values":["arn:aws:sns"]}]}]}"#,
        "not supported by basic selectors"
    );
    rejects!(
        r#"{"EventSelectors":[{"DataResources":[{"Type":"AWS::S3::Object","Values":[]}]}]}"#,
        "at least one value"
    );
    rejects!(
        r#"{"EventSelectors":[{"DataResources":[{"Type":"AWS::S3::Object","Values":["arn:aws:lambda"]}]}]}"#,
        "arn:<partition>:s3"
    );
    rejects!(r#"{"EventSelectors":[{"Bogus":1}]}"#, "unknown field");
    rejects!(r#"{"AdvancedEventSelectors":[]}"#, "at least one selector");
    rejects!(
        r#"{"AdvancedEventSelectors":[{"FieldSelectors":[]}]}"#,
        "at least one condition"
    );
    rejects!(
        r#"{"AdvancedEventSelectors":[{"FieldSelectors":[{"Field":"eventName","Equals":["X"]}]}]}"#,
        "eventCategory is required"
    );
    rejects!(
        r#"{"AdvancedEventSelectors":[{"FieldSelectors":[{"Field":"eventCategory","StartsWith":["Man"]}]}]}"#,
        "exactly one of"
    );
    rejects!(
        r#"{"AdvancedEventSelectors":[{"FieldSelectors":[{"Field":"eventCategory","Equals":["Data"]}]}]}"#,
        "resources.type"
    );
    rejects!(
        r#"{"AdvancedEventSelectors":[{"FieldSelectors":[{"Field":"eventCategory","Equals":["Management"]},{"Field":"resources.ARN","StartsWith":["arn:"]}]}]}"#,
        "not supported for Management"
    );
    rejects!(
        r#"{"AdvancedEventSelectors":[{"FieldSelectors":[{"Field":"eventCategory","Equals":["Management"]},{"Field":"readOnly","NotEquals":["true"]}]}]}"#,
        "only Equals"
    );
    rejects!(
        r#"{"AdvancedEventSelectors":[{"FieldSelectors":[{"Field":"eventCategory","Equals":["Management"]},{"Field":"readOnly","Equals":["yes"]}]}]}"#,
        "\"true\" or \"false\""
    );
    rejects!(
        r#"{"AdvancedEventSelectors":[{"FieldSelectors":[{"Field":"eventCategory","Equals":["Data"]},{"Field":"resources.type","Equals":["AWS::S3::Object","AWS::Lambda::Function"]}]}]}"#,
        "exactly one resource type"
    );
    rejects!(
        r#"{"AdvancedEventSelectors":[{"FieldSelectors":[{"Field":"eventCategory","Equals":["Management"]},{"Field":"eventName"}]}]}"#,
        "no operator"
    );
    rejects!(
        r#"{"AdvancedEventSelectors":[{"FieldSelectors":[{"Field":"eventCategory","Equals":["Management"]},{"Field":"eventName","Equals":[""]}]}]}"#,
        "1 to 2048"
    );
    rejects!(
        r#"{"AdvancedEventSelectors":[{"FieldSelectors":[{"Field":"eventCategory","Equals":["NetworkActivity"]}]}]}"#,
        "eventSource"
    );
    rejects!(
        r#"{"AdvancedEventSelectors":[{"FieldSelectors":[{"Field":"eventCategory","Equals":["Management"]},{"Field":"eventName","Equals":["A"]},{"Field":"eventName","Equals":["B"]}]}]}"#,
        "more than one condition"
    );
    let many: Vec<String> = (0..501).map(|i| format!("\"E{i}\"")).collect();
    rejects!(
        &format!(
            r#"{{"AdvancedEventSelectors":[{{"FieldSelectors":[{{"Field":"eventCategory","Equals":["Management"]}},{{"Field":"eventName","Equals":[{}]}}]}}]}}"#,
            many.join(",")
        ),
        "at most 500"
    );
    let buckets: Vec<String> = (0..251)
        .map(|i| format!("\"arn:aws:s3:::b{i}/\""))
        .collect();
    rejects!(
        &format!(
            r#"{{"EventSelectors":[{{"DataResources":[{{"Type":"AWS::S3::Object","Values":[{}]}}]}}]}}"#,
            buckets.join(",")
        ),
        "at most 250"
    );
}

#[test]
fn json_round_trip_keeps_the_aws_shape() {
    let json = r#"{"AdvancedEventSelectors":[{"Name":"n","FieldSelectors":[{"Field":"eventCategory","Equals":["Management"]}]}]}"#;
    let parsed: Selectors = serde_json::from_str(json).expect("parse");
    assert_eq!(serde_json::to_string(&parsed).expect("json"), json);
    let basic = serde_json::to_string(&Selectors::default()).expect("json");
    assert_eq!(
        basic,
        r#"{"EventSelectors":[{"ReadWriteType":"All","IncludeManagementEvents":true,"DataResources":[],"ExcludeManagementEventSources":[]}]}"#
    );
}
