//! The `events` table's schema: CloudTrail Lake's column names, their Arrow types, the
//! dictionary-encoded columns of event data stores and the `metadata` column Cairn adds.

use super::*;

/// How a column is read from the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text: strings as they are, other scalars and objects as their JSON text.
    Text,
    /// JSON text of the member (objects stay objects; reach inside with `json_extract_scalar`).
    Json,
    /// `true`/`false` (also the strings `"true"`/`"false"`).
    Bool,
    /// An ISO-8601 UTC time, as a millisecond timestamp.
    Time,
    /// A nested object.
    Struct(&'static [Node]),
    /// `resources[]`: a list of `{accountId, type, ARN}`.
    Resources,
}

/// One column or struct member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    /// The JSON member name, which is also the column name.
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
}

pub(super) const fn text(name: &'static str) -> Node {
    Node {
        name,
        kind: Kind::Text,
    }
}

pub(super) const fn json(name: &'static str) -> Node {
    Node {
        name,
        kind: Kind::Json,
    }
}

pub(super) const fn object(name: &'static str, members: &'static [Node]) -> Node {
    Node {
        name,
        kind: Kind::Struct(members),
    }
}

pub(super) const ATTRIBUTES: &[Node] = &[text("creationDate"), text("mfaAuthenticated")];
pub(super) const ISSUER: &[Node] = &[
    text("type"),
    text("principalId"),
    text("arn"),
    text("accountId"),
    text("userName"),
];
pub(super) const SESSION: &[Node] = &[
    object("attributes", ATTRIBUTES),
    object("sessionIssuer", ISSUER),
    text("sourceIdentity"),
    text("ec2RoleDelivery"),
];
pub(super) const IDENTITY: &[Node] = &[
    text("type"),
    text("principalId"),
    text("arn"),
    text("accountId"),
    text("accessKeyId"),
    text("userName"),
    text("invokedBy"),
    text("identityProvider"),
    text("credentialId"),
    object("sessionContext", SESSION),
];
pub(super) const TLS: &[Node] = &[
    text("tlsVersion"),
    text("cipherSuite"),
    text("clientProvidedHostHeader"),
];

/// The table's columns, in order (CloudTrail Lake's names and record order).
pub const COLUMNS: &[Node] = &[
    text("eventVersion"),
    object("userIdentity", IDENTITY),
    Node {
        name: "eventTime",
        kind: Kind::Time,
    },
    text("eventSource"),
    text("eventName"),
    text("awsRegion"),
    text("sourceIPAddress"),
    text("userAgent"),
    text("errorCode"),
    text("errorMessage"),
    json("requestParameters"),
    json("responseElements"),
    json("additionalEventData"),
    text("requestID"),
    text("eventID"),
    Node {
        name: "readOnly",
        kind: Kind::Bool,
    },
    Node {
        name: "resources",
        kind: Kind::Resources,
    },
    text("eventType"),
    text("apiVersion"),
    Node {
        name: "managementEvent",
        kind: Kind::Bool,
    },
    text("recipientAccountId"),
    text("sharedEventID"),
    text("vpcEndpointId"),
    text("vpcEndpointAccountId"),
    json("serviceEventDetails"),
    text("eventCategory"),
    object("tlsDetails", TLS),
    text("sessionCredentialFromConsole"),
    json("insightDetails"),
];

/// Top-level text columns with few distinct values, stored dictionary-encoded in event data
/// stores: filters and groupings on them compare dictionary codes instead of strings.
pub const DICTIONARY_COLUMNS: &[&str] = &[
    "eventVersion",
    "eventSource",
    "eventName",
    "awsRegion",
    "errorCode",
    "eventType",
    "apiVersion",
    "recipientAccountId",
    "eventCategory",
];

/// Struct members with few distinct values, stored dictionary-encoded likewise (a root-activity
/// query filters every row on `userIdentity.type`).
pub const DICTIONARY_MEMBERS: &[(&str, &str)] = &[("userIdentity", "type")];

/// Where [`DICTIONARY_COLUMNS`] and [`DICTIONARY_MEMBERS`] are in a store file, as column
/// paths: `["eventName"]`, `["userIdentity", "type"]`.
pub fn dictionary_paths() -> impl Iterator<Item = Vec<String>> {
    DICTIONARY_COLUMNS
        .iter()
        .map(|c| vec![(*c).to_owned()])
        .chain(
            DICTIONARY_MEMBERS
                .iter()
                .map(|(c, m)| vec![(*c).to_owned(), (*m).to_owned()]),
        )
}

pub(super) fn dictionary_of_text() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// The schema of event data stores: [`schema`] with [`DICTIONARY_COLUMNS`] and
/// [`DICTIONARY_MEMBERS`] as `Dictionary(Int32, Utf8)` (the same values; SQL sees no
/// difference). Files written before a member was added to the list hold it as text and read
/// the same (see the tests).
pub fn store_schema() -> SchemaRef {
    Arc::new(Schema::new(
        schema()
            .fields()
            .iter()
            .chain(std::iter::once(&Arc::new(metadata_field())))
            .map(|f| match f.data_type() {
                _ if DICTIONARY_COLUMNS.contains(&f.name().as_str()) => {
                    Field::new(f.name(), dictionary_of_text(), true)
                }
                DataType::Struct(members) => {
                    let members: Fields = members
                        .iter()
                        .map(|m| {
                            if DICTIONARY_MEMBERS.contains(&(f.name().as_str(), m.name().as_str()))
                            {
                                Arc::new(Field::new(m.name(), dictionary_of_text(), true))
                            } else {
                                m.clone()
                            }
                        })
                        .collect();
                    Field::new(f.name(), DataType::Struct(members), true)
                }
                _ => f.as_ref().clone(),
            })
            .collect::<Vec<_>>(),
    ))
}

/// Cairn's column after the record's, in event data stores only: what Cairn knows of an event
/// out of band of its record (CloudTrail Lake keeps an integration event's channel in
/// `metadata` likewise): who ingested it.
pub const METADATA_COLUMN: &str = "metadata";

pub(super) fn metadata_members() -> Fields {
    Fields::from(vec![
        Field::new("ingestedByType", DataType::Utf8, true),
        Field::new("ingestedByArn", DataType::Utf8, true),
        Field::new("ingestedByAccessKeyId", DataType::Utf8, true),
    ])
}

pub(super) fn metadata_field() -> Field {
    Field::new(METADATA_COLUMN, DataType::Struct(metadata_members()), true)
}

/// The `metadata` column of rows ingested by `rows` (`Cairn`, `Principal` or `Unknown`).
pub fn metadata_array(rows: &[cairn_model::provenance::Provenance]) -> ArrayRef {
    let mut kind = StringBuilder::new();
    let mut arn = StringBuilder::new();
    let mut key = StringBuilder::new();
    for p in rows {
        kind.append_value(p.kind());
        arn.append_option(p.arn());
        key.append_option(p.access_key_id());
    }
    Arc::new(StructArray::new(
        metadata_members(),
        vec![
            Arc::new(kind.finish()) as ArrayRef,
            Arc::new(arn.finish()),
            Arc::new(key.finish()),
        ],
        None,
    ))
}

/// `batch` (of [`schema`]) with the `metadata` column of `rows` after its own.
pub fn with_metadata(
    batch: &RecordBatch,
    rows: &[cairn_model::provenance::Provenance],
) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(metadata_field());
    let mut columns = batch.columns().to_vec();
    columns.push(metadata_array(rows));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

/// A batch of [`schema`] (its `metadata` null) or of [`schema`] with [`with_metadata`], in
/// [`store_schema`].
pub fn to_store_batch(
    batch: &RecordBatch,
) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    let schema = store_schema();
    let mut columns = batch.columns().to_vec();
    if columns.len() + 1 == schema.fields().len() {
        columns.push(new_null_array(
            &DataType::Struct(metadata_members()),
            batch.num_rows(),
        ));
    }
    let columns = columns
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| datafusion::arrow::compute::cast(c, f.data_type()))
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema, columns)
}

/// Index of a column by name.
pub fn column_index(name: &str) -> Option<usize> {
    COLUMNS.iter().position(|c| c.name == name)
}

pub(super) fn resource_fields() -> Fields {
    Fields::from(vec![
        Field::new("accountId", DataType::Utf8, true),
        Field::new("type", DataType::Utf8, true),
        Field::new("ARN", DataType::Utf8, true),
    ])
}

pub(super) fn struct_fields(members: &[Node]) -> Fields {
    Fields::from(
        members
            .iter()
            .map(|m| Field::new(m.name, data_type(m.kind), true))
            .collect::<Vec<_>>(),
    )
}

/// The Arrow type of a column kind.
pub fn data_type(kind: Kind) -> DataType {
    match kind {
        Kind::Text | Kind::Json => DataType::Utf8,
        Kind::Bool => DataType::Boolean,
        Kind::Time => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        Kind::Struct(members) => DataType::Struct(struct_fields(members)),
        Kind::Resources => DataType::List(Arc::new(Field::new(
            "item",
            DataType::Struct(resource_fields()),
            true,
        ))),
    }
}

/// The full schema of the `events` table.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(
        COLUMNS
            .iter()
            .map(|c| Field::new(c.name, data_type(c.kind), true))
            .collect::<Vec<_>>(),
    ))
}

/// The position of the `eventSource` column.
pub(crate) const EVENT_SOURCE: usize = 3;
/// The position of `userIdentity` in [`COLUMNS`].
pub(crate) const USER_IDENTITY: usize = 1;
