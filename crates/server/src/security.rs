//! Security: the identity store at first start (an administrator credential written to
//! `<data_dir>/admin-credentials`, 0600, in the AWS CLI's credentials-file format), SigV4
//! verification against it, policy decisions, and the record of every API call as a
//! management event with the caller's `userIdentity` ([`record_call`]).

use crate::ingest::IngestService;
use cairn_api::auth::{user_identity, Authenticator, CallRecord};
use cairn_api::trails::Caller;
use cairn_api::{ApiError, BoxFuture, Ingest, RecordOutcome};
use cairn_iam::{Iam, Principal};
use cairn_model::{prepare_event, Clock, PrepareContext};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The name of the administrator created at first start.
pub const ADMIN_USER: &str = "admin";
/// The file holding the administrator's credential.
pub const ADMIN_CREDENTIALS: &str = "admin-credentials";

/// Creates the administrator (AdministratorAccess, one access key) when the store is empty and
/// writes its credential, once; returns the file's path when it did.
pub fn bootstrap(iam: &Iam, data_dir: &Path, now: i64) -> Result<Option<PathBuf>, String> {
    if !iam.is_empty() {
        return Ok(None);
    }
    iam.create_user(ADMIN_USER, now)
        .map_err(|e| e.to_string())?;
    iam.attach_policy(ADMIN_USER, "AdministratorAccess")
        .map_err(|e| e.to_string())?;
    let key = iam
        .create_access_key(ADMIN_USER, now)
        .map_err(|e| e.to_string())?;
    let path = data_dir.join(ADMIN_CREDENTIALS);
    let text = format!(
        "# Cairn administrator (user {ADMIN_USER}, AdministratorAccess), created at first start.\n# Use: AWS_SHARED_CREDENTIALS_FILE={} aws ... --endpoint-url http://<cairn>\n[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
        path.display(),
        key.id,
        key.secret
    );
    cairn_durable::file::write_private(&path, text.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Some(path))
}

/// One self-audit event.
pub struct AuditEvent<'a> {
    /// Who called.
    pub caller: &'a Caller,
    /// `eventSource`.
    pub source: &'a str,
    /// `eventName`.
    pub name: &'a str,
    /// `readOnly`.
    pub read_only: bool,
    /// `requestParameters`.
    pub request: Value,
    /// `responseElements`.
    pub response: Value,
    /// `errorCode`, `errorMessage`.
    pub error: Option<(String, Option<String>)>,
    /// A resource: (ARN, type).
    pub resource: Option<(String, &'static str)>,
}

/// Records a control-plane call as a management event and waits until it is durable.
pub async fn record(
    ingest: &IngestService,
    clock: &dyn Clock,
    event: AuditEvent<'_>,
) -> Result<(), ApiError> {
    let account = ingest.account_id().to_string();
    let mut record = json!({
        "eventVersion": "1.11",
        "userIdentity": user_identity(event.caller, &account),
        "eventTime": cairn_model::time::format_utc_seconds(clock.now_millis()),
        "eventSource": event.source,
        "eventName": event.name,
        "awsRegion": ingest.region(),
        "sourceIPAddress": event.caller.source_ip,
        "requestParameters": event.request,
        "responseElements": event.response,
        "requestID": uuid::Uuid::new_v4().to_string(),
        "eventID": uuid::Uuid::new_v4().to_string(),
        "readOnly": event.read_only,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": account,
        "eventCategory": "Management",
    });
    if let Some(agent) = &event.caller.user_agent {
        record["userAgent"] = Value::String(agent.clone());
    }
    if let Some((code, message)) = event.error {
        record["errorCode"] = Value::String(code);
        if let Some(message) = message {
            record["errorMessage"] = Value::String(message);
        }
    }
    if let Some((arn, kind)) = event.resource.filter(|(arn, _)| arn != "*") {
        record["resources"] = json!([{ "ARN": arn, "accountId": account, "type": kind }]);
    }
    let bytes = serde_json::to_vec(&record).expect("event serializes");
    let prepared = {
        let fresh = || uuid::Uuid::new_v4().to_string();
        let ctx = PrepareContext {
            account_id: ingest.account_id(),
            fresh_event_id: &fresh,
        };
        prepare_event(&bytes, &ctx)
            .map_err(|r| ApiError::internal(format!("self-audit event is invalid: {r}")))?
    };
    match ingest.record_internal(vec![prepared]).await {
        Ok(outcomes) if outcomes == [RecordOutcome::Accepted] => Ok(()),
        Ok(outcomes) => Err(ApiError::internal(format!(
            "self-audit event was not recorded: {outcomes:?}"
        ))),
        Err(e) => {
            tracing::error!(event_name = event.name, error = %e, "recording a control-plane call failed");
            Err(ApiError::unavailable(format!(
                "the call was not recorded in the audit trail: {}",
                e.message
            )))
        }
    }
}

/// The resource type of an ARN, for `resources[].type`.
pub fn resource_type(arn: &str) -> &'static str {
    if arn.starts_with("arn:aws:iam::") {
        "AWS::IAM::User"
    } else {
        "AWS::CloudTrail::Trail"
    }
}

/// The services a SigV4 credential scope may name: CloudTrail's API and its data plane
/// (PutAuditEvents). A signature scoped to another service (`s3`, `iam`) is refused, as AWS
/// refuses a credential scoped to the wrong service.
pub const SERVED_SERVICES: [&str; 2] = ["cloudtrail", "cloudtrail-data"];

/// The `Authenticator` port.
pub struct Security {
    /// Identities.
    pub iam: Arc<Iam>,
    /// For the record of calls.
    pub ingest: Arc<IngestService>,
    /// The clock (signature dates).
    pub clock: Arc<dyn Clock>,
    /// Whether `/metrics` is readable unsigned.
    pub public_metrics: bool,
}

impl Authenticator for Security {
    fn authenticate(
        &self,
        request: &cairn_sigv4::Request<'_>,
    ) -> Result<Principal, cairn_sigv4::SigError> {
        let verified = cairn_sigv4::verify(request, self.clock.now_millis(), |key| {
            self.iam.secret_of(key)
        })?;
        if !SERVED_SERVICES.contains(&verified.service.as_str()) {
            return Err(cairn_sigv4::SigError::InvalidSignature(format!(
                "Credential should be scoped to a service Cairn serves ({}), not {:?}",
                SERVED_SERVICES.join(", "),
                verified.service
            )));
        }
        self.iam
            .principal_of(&verified.access_key_id)
            .ok_or(cairn_sigv4::SigError::UnrecognizedClient)
    }

    fn authorize(&self, principal: &Principal, action: &str, resource: &str) -> bool {
        self.iam.authorize(principal, action, resource) == cairn_iam::policy::Decision::Allow
    }

    fn record_call(&self, call: CallRecord) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let resource = Some((
                call.operation.resource.clone(),
                resource_type(&call.operation.resource),
            ));
            let result = record(
                &self.ingest,
                self.clock.as_ref(),
                AuditEvent {
                    caller: &call.caller,
                    source: call.operation.event_source,
                    name: &call.operation.event_name,
                    read_only: call.operation.read_only,
                    request: call.request_parameters,
                    response: Value::Null,
                    error: call.error_code.map(|c| (c, call.error_message)),
                    resource,
                },
            )
            .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "a call could not be recorded");
            }
        })
    }

    fn public_metrics(&self) -> bool {
        self.public_metrics
    }
}
