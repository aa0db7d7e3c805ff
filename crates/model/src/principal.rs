//! The identity that signed a request, as the API edge and self-audit see it.

/// Who signed a request: what self-audit events record as `userIdentity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `IAMUser`.
    pub kind: &'static str,
    /// The user's `AIDA…` id.
    pub principal_id: String,
    /// `arn:aws:iam::<account>:user/<name>`.
    pub arn: String,
    /// The account.
    pub account_id: String,
    /// The access key that signed.
    pub access_key_id: String,
    /// The user name.
    pub user_name: String,
}
