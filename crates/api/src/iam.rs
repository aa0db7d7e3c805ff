//! Identities: users, access keys and their policies (IAM's operation names and shapes).
//!
//! | Route | Operation | Body / answer |
//! |---|---|---|
//! | `POST /v1/iam/users` | CreateUser | `{"UserName"}` → `{"User":{UserName, UserId, Arn, CreateDate}}` |
//! | `GET /v1/iam/users` | ListUsers | `{"Users":[…]}` |
//! | `POST /v1/iam/users/{user}/access-keys` | CreateAccessKey | → `{"AccessKey":{UserName, AccessKeyId, Status, SecretAccessKey, CreateDate}}` (the only time the secret is shown) |
//! | `GET /v1/iam/users/{user}/access-keys` | ListAccessKeys | `{"AccessKeyMetadata":[…]}` (no secrets) |
//! | `DELETE /v1/iam/users/{user}/access-keys/{id}` | DeleteAccessKey | `{}` |
//! | `POST /v1/iam/users/{user}/attached-policies` | AttachUserPolicy | `{"PolicyArn"}`: `AdministratorAccess`, `CairnWriter`, `CairnReader`, `CairnAuditor` (name or `arn:aws:iam::aws:policy/<name>`) |
//! | `PUT /v1/iam/users/{user}/policies/{name}` | PutUserPolicy | the policy document |
//! | `DELETE /v1/iam/users/{user}` | DeleteUser | `{}`; 409 `DeleteConflict` while it has access keys or policies |
//! | `PATCH /v1/iam/users/{user}/access-keys/{id}` | UpdateAccessKey | `{"Status": "Active" \| "Inactive"}` → `{}`; an inactive key signs nothing from the next request on |
//! | `GET /v1/iam/users/{user}/attached-policies` | ListAttachedUserPolicies | `{"AttachedPolicies":[{PolicyName, PolicyArn}]}` |
//! | `DELETE /v1/iam/users/{user}/attached-policies/{policy}` | DetachUserPolicy | `{}` (policy name or URL-encoded ARN) |
//! | `GET /v1/iam/users/{user}/policies` | ListUserPolicies | `{"PolicyNames":[…]}` |
//! | `DELETE /v1/iam/users/{user}/policies/{name}` | DeleteUserPolicy | `{}` |

use crate::error::ApiError;
use crate::routes::{change, read, Resource, Routes};
use crate::trails::Caller;
use crate::{AppState, BoxFuture};
use axum::extract::{Path, State};
use axum::http::Method;
use axum::Json;
use serde_json::{json, Value};

/// Identity administration. Filled by the server, which records every change.
pub trait IamAdmin: Send + Sync {
    /// CreateUser.
    fn create_user(&self, caller: Caller, name: String) -> BoxFuture<'_, Result<Value, ApiError>>;
    /// ListUsers.
    fn list_users(&self) -> Result<Value, ApiError>;
    /// CreateAccessKey.
    fn create_access_key(
        &self,
        caller: Caller,
        user: String,
    ) -> BoxFuture<'_, Result<Value, ApiError>>;
    /// ListAccessKeys.
    fn list_access_keys(&self, user: &str) -> Result<Value, ApiError>;
    /// DeleteAccessKey.
    fn delete_access_key(
        &self,
        caller: Caller,
        user: String,
        key_id: String,
    ) -> BoxFuture<'_, Result<(), ApiError>>;
    /// AttachUserPolicy.
    fn attach_policy(
        &self,
        caller: Caller,
        user: String,
        policy: String,
    ) -> BoxFuture<'_, Result<(), ApiError>>;
    /// DeleteUser.
    fn delete_user(&self, caller: Caller, user: String) -> BoxFuture<'_, Result<(), ApiError>>;
    /// UpdateAccessKey.
    fn update_access_key(
        &self,
        caller: Caller,
        user: String,
        key_id: String,
        status: String,
    ) -> BoxFuture<'_, Result<(), ApiError>>;
    /// ListAttachedUserPolicies.
    fn list_attached_policies(&self, user: &str) -> Result<Value, ApiError>;
    /// DetachUserPolicy.
    fn detach_policy(
        &self,
        caller: Caller,
        user: String,
        policy: String,
    ) -> BoxFuture<'_, Result<(), ApiError>>;
    /// ListUserPolicies.
    fn list_user_policies(&self, user: &str) -> Result<Value, ApiError>;
    /// DeleteUserPolicy.
    fn delete_user_policy(
        &self,
        caller: Caller,
        user: String,
        name: String,
    ) -> BoxFuture<'_, Result<(), ApiError>>;
    /// PutUserPolicy.
    fn put_user_policy(
        &self,
        caller: Caller,
        user: String,
        name: String,
        document: String,
    ) -> BoxFuture<'_, Result<(), ApiError>>;
}

fn member(bytes: &[u8], name: &str) -> Result<String, ApiError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request("ValidationError", format!("body must be JSON: {e}")))?;
    value[name]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| ApiError::bad_request("ValidationError", format!("{name} is required")))
}

async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let name = member(&bytes, "UserName")?;
    Ok(Json(state.iam.create_user(caller, name).await?))
}

async fn list_users(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.iam.list_users()?))
}

async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(user): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.iam.create_access_key(caller, user).await?))
}

async fn list_keys(
    State(state): State<AppState>,
    Path(user): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.iam.list_access_keys(&user)?))
}

async fn delete_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((user, key)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    state.iam.delete_access_key(caller, user, key).await?;
    Ok(Json(json!({})))
}

async fn attach(
    State(state): State<AppState>,
    caller: Caller,
    Path(user): Path<String>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let policy = member(&bytes, "PolicyArn")?;
    state.iam.attach_policy(caller, user, policy).await?;
    Ok(Json(json!({})))
}

async fn put_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path((user, name)): Path<(String, String)>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let document = String::from_utf8(bytes.to_vec()).map_err(|_| {
        ApiError::bad_request("MalformedPolicyDocument", "the document is not UTF-8")
    })?;
    state
        .iam
        .put_user_policy(caller, user, name, document)
        .await?;
    Ok(Json(json!({})))
}

async fn delete_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(user): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.iam.delete_user(caller, user).await?;
    Ok(Json(json!({})))
}

async fn update_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((user, key)): Path<(String, String)>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let status = member(&bytes, "Status")?;
    state
        .iam
        .update_access_key(caller, user, key, status)
        .await?;
    Ok(Json(json!({})))
}

async fn list_attached(
    State(state): State<AppState>,
    Path(user): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.iam.list_attached_policies(&user)?))
}

async fn detach(
    State(state): State<AppState>,
    caller: Caller,
    Path((user, policy)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    state.iam.detach_policy(caller, user, policy).await?;
    Ok(Json(json!({})))
}

async fn list_policies(
    State(state): State<AppState>,
    Path(user): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.iam.list_user_policies(&user)?))
}

async fn delete_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path((user, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    state.iam.delete_user_policy(caller, user, name).await?;
    Ok(Json(json!({})))
}

/// The identity routes, each with the IAM action it needs.
pub fn routes() -> Routes<AppState> {
    use Resource::{Any, User, UserInBody};
    const USER: Resource = User("user");
    Routes::new()
        .route(
            Method::POST,
            "/v1/iam/users",
            change("iam:CreateUser", UserInBody("UserName")),
            create_user,
        )
        .route(
            Method::GET,
            "/v1/iam/users",
            read("iam:ListUsers", Any),
            list_users,
        )
        .route(
            Method::DELETE,
            "/v1/iam/users/{user}",
            change("iam:DeleteUser", USER),
            delete_user,
        )
        .route(
            Method::POST,
            "/v1/iam/users/{user}/access-keys",
            change("iam:CreateAccessKey", USER),
            create_key,
        )
        .route(
            Method::GET,
            "/v1/iam/users/{user}/access-keys",
            read("iam:ListAccessKeys", USER),
            list_keys,
        )
        .route(
            Method::DELETE,
            "/v1/iam/users/{user}/access-keys/{key}",
            change("iam:DeleteAccessKey", USER),
            delete_key,
        )
        .route(
            Method::PATCH,
            "/v1/iam/users/{user}/access-keys/{key}",
            change("iam:UpdateAccessKey", USER),
            update_key,
        )
        .route(
            Method::POST,
            "/v1/iam/users/{user}/attached-policies",
            change("iam:AttachUserPolicy", USER),
            attach,
        )
        .route(
            Method::GET,
            "/v1/iam/users/{user}/attached-policies",
            read("iam:ListAttachedUserPolicies", USER),
            list_attached,
        )
        .route(
            Method::DELETE,
            "/v1/iam/users/{user}/attached-policies/{policy}",
            change("iam:DetachUserPolicy", USER),
            detach,
        )
        .route(
            Method::GET,
            "/v1/iam/users/{user}/policies",
            read("iam:ListUserPolicies", USER),
            list_policies,
        )
        .route(
            Method::PUT,
            "/v1/iam/users/{user}/policies/{name}",
            change("iam:PutUserPolicy", USER),
            put_policy,
        )
        .route(
            Method::DELETE,
            "/v1/iam/users/{user}/policies/{name}",
            change("iam:DeleteUserPolicy", USER),
            delete_policy,
        )
        // Like STS's GetCallerIdentity: any signed caller may ask (see `auth::layer`).
        .route(
            Method::GET,
            "/v1/iam/whoami",
            read("sts:GetCallerIdentity", Any).data_plane(),
            whoami,
        )
}

/// The caller's identity (like `sts get-caller-identity`); needs only a valid signature.
async fn whoami(caller: Caller) -> Json<Value> {
    Json(match caller.identity {
        Some(p) => json!({ "UserId": p.principal_id, "Account": p.account_id, "Arn": p.arn }),
        None => Value::Null,
    })
}
