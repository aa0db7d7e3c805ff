//! String-to-sign, signatures and public keys (spec §3.6–3.8).

use base64::Engine;
use md5::{Digest as _, Md5};
use rsa::pkcs1::{
    DecodeRsaPrivateKey, DecodeRsaPublicKey, EncodeRsaPrivateKey, EncodeRsaPublicKey,
};
use rsa::pkcs1v15::{Signature, SigningKey as RsaSigningKey, VerifyingKey};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;

/// The signature algorithm Cairn writes and accepts.
pub const SIGNATURE_ALGORITHM: &str = "SHA256withRSA";

/// Why signing or verification failed.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// A key could not be generated, read or written.
    #[error("RSA key handling failed: {0}")]
    Key(String),
    /// The signature is not hex, or does not verify.
    #[error("signature verification failed: {0}")]
    Invalid(String),
}

/// The exact string a digest's signature covers:
/// `<digestEndTime>\n<bucket>/<key>\n<sha256 hex of the uncompressed digest>\n<previousDigestSignature or null>`.
pub fn string_to_sign(
    digest_end_time: &str,
    bucket: &str,
    key: &str,
    digest_sha256_hex: &str,
    previous_signature: Option<&str>,
) -> String {
    format!(
        "{digest_end_time}\n{bucket}/{key}\n{digest_sha256_hex}\n{}",
        previous_signature.unwrap_or("null")
    )
}

/// A region's private signing key (RSA-2048, e = 65537).
#[derive(Clone)]
pub struct SigningKey {
    key: RsaPrivateKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("fingerprint", &self.public_key().fingerprint())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh 2048-bit key.
    pub fn generate() -> Result<Self, SigningError> {
        let key = RsaPrivateKey::new(&mut rand::thread_rng(), 2048)
            .map_err(|e| SigningError::Key(e.to_string()))?;
        Ok(Self { key })
    }

    /// Reads a PKCS#1 PEM private key.
    pub fn from_pem(pem: &str) -> Result<Self, SigningError> {
        let key =
            RsaPrivateKey::from_pkcs1_pem(pem).map_err(|e| SigningError::Key(e.to_string()))?;
        Ok(Self { key })
    }

    /// The key as PKCS#1 PEM (to store with 0600 permissions).
    pub fn to_pem(&self) -> Result<String, SigningError> {
        Ok(self
            .key
            .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
            .map_err(|e| SigningError::Key(e.to_string()))?
            .to_string())
    }

    /// Modulus size in bits.
    pub fn bits(&self) -> usize {
        use rsa::traits::PublicKeyParts;
        self.key.size() * 8
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            key: self.key.to_public_key(),
        }
    }

    /// Signs `text` (RSASSA-PKCS1-v1_5, SHA-256); the signature in lowercase hex.
    pub fn sign(&self, text: &str) -> String {
        let signer = RsaSigningKey::<Sha256>::new(self.key.clone());
        hex::encode(signer.sign(text.as_bytes()).to_bytes())
    }
}

/// A public key as `ListPublicKeys` publishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: RsaPublicKey,
}

impl PublicKey {
    /// PKCS#1 `RSAPublicKey` DER.
    pub fn to_der(&self) -> Vec<u8> {
        self.key
            .to_pkcs1_der()
            .expect("an RSA public key always encodes")
            .as_bytes()
            .to_vec()
    }

    /// Base64 of the DER: `ListPublicKeys`' `Value` (starts `MIIBCgKCAQEA` for 2048-bit keys).
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.to_der())
    }

    /// Reads `ListPublicKeys`' `Value` (base64 PKCS#1 DER).
    pub fn from_base64(value: &str) -> Result<Self, SigningError> {
        let der = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .map_err(|e| SigningError::Key(format!("public key is not base64: {e}")))?;
        let key = RsaPublicKey::from_pkcs1_der(&der)
            .map_err(|e| SigningError::Key(format!("not a PKCS#1 public key: {e}")))?;
        Ok(Self { key })
    }

    /// Lowercase hex MD5 of the DER bytes: the digest's `digestPublicKeyFingerprint`.
    pub fn fingerprint(&self) -> String {
        fingerprint_of_der(&self.to_der())
    }

    /// Checks `signature_hex` (either case) over `text` with SHA-256 only.
    pub fn verify(&self, text: &str, signature_hex: &str) -> Result<(), SigningError> {
        let bytes = hex::decode(signature_hex.trim())
            .map_err(|e| SigningError::Invalid(format!("signature is not hex: {e}")))?;
        let signature = Signature::try_from(bytes.as_slice())
            .map_err(|e| SigningError::Invalid(e.to_string()))?;
        VerifyingKey::<Sha256>::new(self.key.clone())
            .verify(text.as_bytes(), &signature)
            .map_err(|e| SigningError::Invalid(e.to_string()))
    }
}

/// Lowercase hex MD5 of DER bytes.
pub fn fingerprint_of_der(der: &[u8]) -> String {
    hex::encode(Md5::digest(der))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::sha256_hex;

    #[test]
    fn string_to_sign_matches_the_spec_vector() {
        let document = crate::DigestDocument::parse(crate::document::tests_vector().as_bytes())
            .expect("vector");
        let text = string_to_sign(
            &document.digest_end_time,
            &document.digest_s3_bucket,
            &document.digest_s3_object,
            &sha256_hex(crate::document::tests_vector().as_bytes()),
            document.previous_digest_signature.as_deref(),
        );
        assert!(text.ends_with("\nnull") && !text.ends_with('\n'));
        assert_eq!(
            sha256_hex(text.as_bytes()),
            "e81f43e73d9e9daaae50dcbd23a21aba1165da9e1102431cca1f03243be142c8"
        );
    }

    #[test]
    fn sign_verify_and_publish() {
        let key = SigningKey::generate().expect("key");
        let public = key.public_key();
        assert!(
            public.to_base64().starts_with("MIIBCgKCAQEA"),
            "PKCS#1 DER of a 2048-bit key"
        );
        assert_eq!(public.to_der().len(), 270);
        assert_eq!(
            PublicKey::from_base64(&public.to_base64()).expect("round trip"),
            public
        );
        assert_eq!(public.fingerprint().len(), 32);
        let text = string_to_sign("2026-03-02T10:01:31Z", "b", "k", &"0".repeat(64), None);
        let signature = key.sign(&text);
        assert_eq!(signature.len(), 512, "2048-bit signature in hex");
        assert_eq!(signature, signature.to_lowercase());
        public.verify(&text, &signature).expect("verifies");
        public
            .verify(&text, &signature.to_uppercase())
            .expect("either case");
        assert!(
            public.verify(&format!("{text}x"), &signature).is_err(),
            "another text"
        );
        let other = SigningKey::generate().expect("key");
        assert!(
            other.public_key().verify(&text, &signature).is_err(),
            "another key"
        );
        assert!(public.verify(&text, "zz").is_err(), "not hex");
        let pem = key.to_pem().expect("pem");
        assert_eq!(
            SigningKey::from_pem(&pem).expect("pem").public_key(),
            public
        );
        assert!(PublicKey::from_base64("MIIBIjANBgkq").is_err());
    }
}
