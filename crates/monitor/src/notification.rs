//! The message a topic sends to an HTTP(S) subscriber: Amazon SNS's notification shape, signed
//! as SNS SignatureVersion 2 does (RSA PKCS#1 v1.5 with SHA-256 over the canonical string of
//! the message's fields), base64. Receivers verify with the topic's public key.

use base64::Engine;
use cairn_digest::{PublicKey, SigningKey};
use serde_json::{json, Value};

/// An SNS `Notification`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// `MessageId`.
    pub message_id: String,
    /// `TopicArn`.
    pub topic_arn: String,
    /// `Subject`.
    pub subject: String,
    /// `Message`.
    pub message: String,
    /// `Timestamp`, `YYYY-MM-DDTHH:MM:SS.sssZ`.
    pub timestamp: String,
}

impl Notification {
    /// What is signed (SNS's canonical form for notifications with a subject).
    pub fn string_to_sign(&self) -> String {
        format!(
            "Message\n{}\nMessageId\n{}\nSubject\n{}\nTimestamp\n{}\nTopicArn\n{}\nType\nNotification\n",
            self.message, self.message_id, self.subject, self.timestamp, self.topic_arn
        )
    }

    /// The JSON body, signed with `key`; `signing_cert_url` says where the public key is.
    pub fn to_json(&self, key: &SigningKey, signing_cert_url: &str) -> Value {
        let signature = base64::engine::general_purpose::STANDARD
            .encode(hex::decode(key.sign(&self.string_to_sign())).expect("signatures are hex"));
        json!({
            "Type": "Notification",
            "MessageId": self.message_id,
            "TopicArn": self.topic_arn,
            "Subject": self.subject,
            "Message": self.message,
            "Timestamp": self.timestamp,
            "SignatureVersion": "2",
            "Signature": signature,
            "SigningCertURL": signing_cert_url,
        })
    }
}

/// Verifies a received notification body with the topic's public key.
pub fn verify(body: &Value, key: &PublicKey) -> bool {
    let field = |name: &str| body[name].as_str().map(str::to_owned);
    let (Some(message_id), Some(topic_arn), Some(subject), Some(message), Some(timestamp)) = (
        field("MessageId"),
        field("TopicArn"),
        field("Subject"),
        field("Message"),
        field("Timestamp"),
    ) else {
        return false;
    };
    let Some(signature) = body["Signature"]
        .as_str()
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
    else {
        return false;
    };
    let notification = Notification {
        message_id,
        topic_arn,
        subject,
        message,
        timestamp,
    };
    body["Type"] == "Notification"
        && key
            .verify(&notification.string_to_sign(), &hex::encode(signature))
            .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_and_verified_and_tamper_evident() {
        let key = SigningKey::generate().expect("key");
        let n = Notification {
            message_id: "m-1".into(),
            topic_arn: "arn:aws:sns:us-east-1:111122223333:security".into(),
            subject: "ALARM: \"RootAccountUsage\" in us-east-1".into(),
            message: r#"{"AlarmName":"RootAccountUsage","NewStateValue":"ALARM"}"#.into(),
            timestamp: "2026-12-01T10:00:00.000Z".into(),
        };
        let mut body = n.to_json(&key, "http://127.0.0.1:7474/v1/topics/signing-key");
        assert_eq!(body["Type"], "Notification");
        assert!(verify(&body, &key.public_key()));
        body["Message"] = Value::String("{}".into());
        assert!(!verify(&body, &key.public_key()), "a changed message fails");
        let other = SigningKey::generate().expect("key");
        assert!(
            !verify(&n.to_json(&other, "x"), &key.public_key()),
            "another key fails"
        );
    }
}
