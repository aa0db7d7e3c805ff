//! Classification rules: management vs data events, and read-only vs mutating calls.
//!
//! These apply only when the producer did not say; a producer's `eventCategory`,
//! `managementEvent` and `readOnly` always win.
//!
//! **Read-only rule.** An `eventName` is read-only when it starts with one of
//! [`READ_ONLY_VERBS`] followed by an upper-case letter, a digit or the end of the name
//! (`GetObject`, `ListBuckets`, `Describe`; not `Getaway`), or is one of the AWS KMS
//! cryptographic operations CloudTrail itself marks read-only ([`READ_ONLY_EXCEPTIONS`]).
//! Everything else is mutating.
//!
//! **Data-plane rule.** An event is a data event when its `(eventSource, eventName)` pair is
//! in [`DATA_PLANE_CALLS`]: the calls CloudTrail logs as data events for S3 objects, Lambda
//! invocations, DynamoDB items, SQS messages, SNS publishing and Kinesis records.

/// Verbs whose calls only read.
pub const READ_ONLY_VERBS: &[&str] = &[
    "Get", "List", "Describe", "Head", "Lookup", "Search", "Query", "Scan", "BatchGet", "Select",
    "View", "Preview", "Estimate", "Test", "Verify", "Validate", "Check", "Download", "Export",
];

/// Calls read-only in CloudTrail that the verb rule would call mutating.
pub const READ_ONLY_EXCEPTIONS: &[(&str, &str)] = &[
    ("kms.amazonaws.com", "Decrypt"),
    ("kms.amazonaws.com", "Encrypt"),
    ("kms.amazonaws.com", "GenerateDataKey"),
    ("kms.amazonaws.com", "GenerateDataKeyPair"),
    ("kms.amazonaws.com", "GenerateDataKeyPairWithoutPlaintext"),
    ("kms.amazonaws.com", "GenerateDataKeyWithoutPlaintext"),
    ("kms.amazonaws.com", "GenerateMac"),
    ("kms.amazonaws.com", "GenerateRandom"),
    ("kms.amazonaws.com", "ReEncrypt"),
    ("kms.amazonaws.com", "Sign"),
];

/// Known data-plane calls, by event source.
pub const DATA_PLANE_CALLS: &[(&str, &[&str])] = &[
    (
        "s3.amazonaws.com",
        &[
            "AbortMultipartUpload",
            "CompleteMultipartUpload",
            "CopyObject",
            "CreateMultipartUpload",
            "DeleteObject",
            "DeleteObjectTagging",
            "DeleteObjects",
            "GetObject",
            "GetObjectAcl",
            "GetObjectAttributes",
            "GetObjectLegalHold",
            "GetObjectRetention",
            "GetObjectTagging",
            "GetObjectTorrent",
            "HeadObject",
            "ListObjectVersions",
            "ListObjects",
            "ListObjectsV2",
            "ListParts",
            "PutObject",
            "PutObjectAcl",
            "PutObjectLegalHold",
            "PutObjectRetention",
            "PutObjectTagging",
            "RestoreObject",
            "SelectObjectContent",
            "UploadPart",
            "UploadPartCopy",
        ],
    ),
    (
        "lambda.amazonaws.com",
        &["Invoke", "InvokeAsync", "InvokeWithResponseStream"],
    ),
    (
        "dynamodb.amazonaws.com",
        &[
            "BatchExecuteStatement",
            "BatchGetItem",
            "BatchWriteItem",
            "DeleteItem",
            "ExecuteStatement",
            "ExecuteTransaction",
            "GetItem",
            "PutItem",
            "Query",
            "Scan",
            "TransactGetItems",
            "TransactWriteItems",
            "UpdateItem",
        ],
    ),
    (
        "sqs.amazonaws.com",
        &[
            "ChangeMessageVisibility",
            "ChangeMessageVisibilityBatch",
            "DeleteMessage",
            "DeleteMessageBatch",
            "ReceiveMessage",
            "SendMessage",
            "SendMessageBatch",
        ],
    ),
    ("sns.amazonaws.com", &["Publish", "PublishBatch"]),
    (
        "kinesis.amazonaws.com",
        &[
            "GetRecords",
            "GetShardIterator",
            "PutRecord",
            "PutRecords",
            "SubscribeToShard",
        ],
    ),
];

/// Whether `event_name` (from `event_source`) only reads, by the rule above.
pub fn derive_read_only(event_source: &str, event_name: &str) -> bool {
    if READ_ONLY_EXCEPTIONS.contains(&(event_source, event_name)) {
        return true;
    }
    READ_ONLY_VERBS.iter().any(|verb| {
        event_name.strip_prefix(verb).is_some_and(|rest| {
            rest.chars()
                .next()
                .is_none_or(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        })
    })
}

/// Whether `(event_source, event_name)` is a known data-plane call.
pub fn is_known_data_plane_call(event_source: &str, event_name: &str) -> bool {
    DATA_PLANE_CALLS
        .iter()
        .any(|(source, names)| *source == event_source && names.binary_search(&event_name).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_plane_lists_are_sorted_for_binary_search() {
        for (source, names) in DATA_PLANE_CALLS {
            let mut sorted = names.to_vec();
            sorted.sort_unstable();
            assert_eq!(&sorted, names, "{source}");
        }
    }

    #[test]
    fn read_only_rule() {
        let cases = [
            ("ec2.amazonaws.com", "DescribeInstances", true),
            ("s3.amazonaws.com", "GetObject", true),
            ("s3.amazonaws.com", "HeadBucket", true),
            ("cloudtrail.amazonaws.com", "LookupEvents", true),
            ("iam.amazonaws.com", "List", true),
            ("kms.amazonaws.com", "Decrypt", true),
            ("iam.amazonaws.com", "Getaway", false),
            ("cloudtrail.amazonaws.com", "StopLogging", false),
            ("iam.amazonaws.com", "PutUserPolicy", false),
            ("signin.amazonaws.com", "ConsoleLogin", false),
            ("ec2.amazonaws.com", "Decrypt", false),
        ];
        for (source, name, expected) in cases {
            assert_eq!(derive_read_only(source, name), expected, "{source} {name}");
        }
    }

    #[test]
    fn data_plane_rule() {
        assert!(is_known_data_plane_call("s3.amazonaws.com", "PutObject"));
        assert!(is_known_data_plane_call("lambda.amazonaws.com", "Invoke"));
        assert!(!is_known_data_plane_call(
            "s3.amazonaws.com",
            "CreateBucket"
        ));
        assert!(!is_known_data_plane_call("iam.amazonaws.com", "GetObject"));
    }
}
