//! The `events` table: CloudTrail Lake's column names, so saved Lake queries run with only the
//! table name changed. `eventTime` is a UTC timestamp; `userIdentity` a struct;
//! `requestParameters`, `responseElements`, `additionalEventData` and `resources` JSON text.

use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};
use std::sync::Arc;

/// Members of `userIdentity` kept as struct fields.
pub const IDENTITY_FIELDS: &[&str] = &[
    "type",
    "principalId",
    "arn",
    "accountId",
    "accessKeyId",
    "userName",
    "invokedBy",
];

/// Top-level text columns, in order.
pub const TEXT_COLUMNS: &[&str] = &[
    "eventVersion",
    "eventSource",
    "eventName",
    "awsRegion",
    "sourceIPAddress",
    "userAgent",
    "errorCode",
    "errorMessage",
    "requestID",
    "eventID",
    "eventType",
    "recipientAccountId",
    "eventCategory",
];

/// Columns holding JSON text.
pub const JSON_COLUMNS: &[&str] = &[
    "requestParameters",
    "responseElements",
    "additionalEventData",
    "resources",
];

/// The identity struct type.
pub fn identity_type() -> DataType {
    DataType::Struct(Fields::from(
        IDENTITY_FIELDS
            .iter()
            .map(|f| Field::new(*f, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ))
}

/// The table's schema.
pub fn schema() -> Arc<Schema> {
    let mut fields = vec![
        Field::new(
            "eventTime",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
        Field::new("userIdentity", identity_type(), true),
    ];
    fields.extend(
        TEXT_COLUMNS
            .iter()
            .map(|c| Field::new(*c, DataType::Utf8, true)),
    );
    fields.extend(
        JSON_COLUMNS
            .iter()
            .map(|c| Field::new(*c, DataType::Utf8, true)),
    );
    fields.push(Field::new("readOnly", DataType::Boolean, true));
    fields.push(Field::new("managementEvent", DataType::Boolean, true));
    Arc::new(Schema::new(fields))
}
