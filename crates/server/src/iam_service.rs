//! Identity administration (the API's `IamAdmin` port): every change recorded as an
//! `iam.amazonaws.com` management event; secrets appear only in the CreateAccessKey answer,
//! never in events or logs.

use crate::ingest::IngestService;
use crate::security::{record, AuditEvent};
use cairn_api::iam::IamAdmin;
use cairn_api::trails::Caller;
use cairn_api::{ApiError, BoxFuture};
use cairn_iam::{Iam, IamError};
use cairn_model::Clock;
use serde_json::{json, Value};
use std::sync::Arc;

/// The identity service.
pub struct IamService {
    /// The store.
    pub iam: Arc<Iam>,
    /// For the record of calls.
    pub ingest: Arc<IngestService>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
}

fn iam_error(error: IamError) -> ApiError {
    let status = match &error {
        IamError::NoSuchEntity(_) => axum::http::StatusCode::NOT_FOUND,
        IamError::EntityAlreadyExists(_) | IamError::DeleteConflict(_) => {
            axum::http::StatusCode::CONFLICT
        }
        IamError::Io { .. } => axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        _ => axum::http::StatusCode::BAD_REQUEST,
    };
    ApiError {
        status,
        code: error.code(),
        message: error.to_string(),
    }
}

fn date(ms: i64) -> String {
    cairn_model::time::format_utc_seconds(ms)
}

impl IamService {
    fn user_out(&self, user: &cairn_iam::User) -> Value {
        json!({
            "UserName": user.name,
            "UserId": user.user_id,
            "Arn": self.iam.user_arn(&user.name),
            "Path": "/",
            "CreateDate": date(user.created),
        })
    }

    async fn audit(
        &self,
        caller: &Caller,
        name: &str,
        user: &str,
        request: Value,
        response: Value,
    ) -> Result<(), ApiError> {
        record(
            &self.ingest,
            self.clock.as_ref(),
            AuditEvent {
                caller,
                source: "iam.amazonaws.com",
                name,
                read_only: false,
                request,
                response,
                error: None,
                resource: Some((self.iam.user_arn(user), "AWS::IAM::User")),
            },
        )
        .await
    }

    /// Applies a change to the store (off the async threads) and records it: the shape every
    /// identity change shares.
    async fn change(
        &self,
        caller: &Caller,
        event: &str,
        user: &str,
        request: Value,
        apply: impl FnOnce(&Iam) -> Result<(), IamError> + Send + 'static,
    ) -> Result<(), ApiError> {
        self.blocking(apply).await?;
        self.audit(caller, event, user, request, Value::Null).await
    }

    fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Iam) -> Result<T, IamError> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<T, ApiError>> {
        let iam = self.iam.clone();
        async move {
            tokio::task::spawn_blocking(move || f(&iam))
                .await
                .map_err(|e| ApiError::internal(format!("identity task failed: {e}")))?
                .map_err(iam_error)
        }
    }
}

impl IamAdmin for IamService {
    fn create_user(&self, caller: Caller, name: String) -> BoxFuture<'_, Result<Value, ApiError>> {
        Box::pin(async move {
            let now = self.clock.now_millis();
            let wanted = name.clone();
            let user = self
                .blocking(move |iam| iam.create_user(&wanted, now))
                .await?;
            let out = json!({ "User": self.user_out(&user) });
            self.audit(
                &caller,
                "CreateUser",
                &name,
                json!({ "userName": name }),
                out.clone(),
            )
            .await?;
            Ok(out)
        })
    }

    fn list_users(&self) -> Result<Value, ApiError> {
        let users: Vec<Value> = self
            .iam
            .list_users()
            .iter()
            .map(|u| self.user_out(u))
            .collect();
        Ok(json!({ "Users": users, "IsTruncated": false }))
    }

    fn create_access_key(
        &self,
        caller: Caller,
        user: String,
    ) -> BoxFuture<'_, Result<Value, ApiError>> {
        Box::pin(async move {
            let now = self.clock.now_millis();
            let wanted = user.clone();
            let key = self
                .blocking(move |iam| iam.create_access_key(&wanted, now))
                .await?;
            // The event holds the key id, never the secret.
            self.audit(
                &caller,
                "CreateAccessKey",
                &user,
                json!({ "userName": user }),
                json!({ "accessKey": { "userName": user, "accessKeyId": key.id, "status": "Active", "createDate": date(key.created) } }),
            )
            .await?;
            Ok(json!({ "AccessKey": {
                "UserName": user,
                "AccessKeyId": key.id,
                "Status": "Active",
                "SecretAccessKey": key.secret,
                "CreateDate": date(key.created),
            }}))
        })
    }

    fn list_access_keys(&self, user: &str) -> Result<Value, ApiError> {
        let keys = self.iam.list_access_keys(user).map_err(iam_error)?;
        let list: Vec<Value> = keys
            .iter()
            .map(|k| json!({ "UserName": k.user, "AccessKeyId": k.id, "Status": k.status, "CreateDate": date(k.created) }))
            .collect();
        Ok(json!({ "AccessKeyMetadata": list, "IsTruncated": false }))
    }

    fn delete_access_key(
        &self,
        caller: Caller,
        user: String,
        key_id: String,
    ) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move {
            let (u, k) = (user.clone(), key_id.clone());
            let request = json!({ "userName": user, "accessKeyId": key_id });
            self.change(&caller, "DeleteAccessKey", &user, request, move |iam| {
                iam.delete_access_key(&u, &k)
            })
            .await
        })
    }

    fn attach_policy(
        &self,
        caller: Caller,
        user: String,
        policy: String,
    ) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move {
            let (u, p) = (user.clone(), policy.clone());
            let request = json!({ "userName": user, "policyArn": policy });
            self.change(&caller, "AttachUserPolicy", &user, request, move |iam| {
                iam.attach_policy(&u, &p)
            })
            .await
        })
    }

    fn delete_user(&self, caller: Caller, user: String) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move {
            let u = user.clone();
            let request = json!({ "userName": user });
            self.change(&caller, "DeleteUser", &user, request, move |iam| {
                iam.delete_user(&u)
            })
            .await
        })
    }

    fn update_access_key(
        &self,
        caller: Caller,
        user: String,
        key_id: String,
        status: String,
    ) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move {
            let (u, k, st) = (user.clone(), key_id.clone(), status.clone());
            let request = json!({ "userName": user, "accessKeyId": key_id, "status": status });
            self.change(&caller, "UpdateAccessKey", &user, request, move |iam| {
                iam.update_access_key(&u, &k, &st)
            })
            .await
        })
    }

    fn list_attached_policies(&self, user: &str) -> Result<Value, ApiError> {
        let user = self.iam.get_user(user).map_err(iam_error)?;
        let list: Vec<Value> = user
            .attached
            .iter()
            .map(|name| json!({ "PolicyName": name, "PolicyArn": format!("arn:aws:iam::aws:policy/{name}") }))
            .collect();
        Ok(json!({ "AttachedPolicies": list, "IsTruncated": false }))
    }

    fn detach_policy(
        &self,
        caller: Caller,
        user: String,
        policy: String,
    ) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move {
            let (u, p) = (user.clone(), policy.clone());
            let request = json!({ "userName": user, "policyArn": policy });
            self.change(&caller, "DetachUserPolicy", &user, request, move |iam| {
                iam.detach_policy(&u, &p)
            })
            .await
        })
    }

    fn list_user_policies(&self, user: &str) -> Result<Value, ApiError> {
        let user = self.iam.get_user(user).map_err(iam_error)?;
        let names: Vec<&str> = user.inline.iter().map(|(n, _)| n.as_str()).collect();
        Ok(json!({ "PolicyNames": names, "IsTruncated": false }))
    }

    fn delete_user_policy(
        &self,
        caller: Caller,
        user: String,
        name: String,
    ) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move {
            let (u, n) = (user.clone(), name.clone());
            let request = json!({ "userName": user, "policyName": name });
            self.change(&caller, "DeleteUserPolicy", &user, request, move |iam| {
                iam.delete_user_policy(&u, &n)
            })
            .await
        })
    }

    fn put_user_policy(
        &self,
        caller: Caller,
        user: String,
        name: String,
        document: String,
    ) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move {
            let (u, n, d) = (user.clone(), name.clone(), document.clone());
            let request =
                json!({ "userName": user, "policyName": name, "policyDocument": document });
            self.change(&caller, "PutUserPolicy", &user, request, move |iam| {
                iam.put_user_policy(&u, &n, &d)
            })
            .await
        })
    }
}
