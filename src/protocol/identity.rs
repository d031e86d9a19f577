//! Request identity (Restate's "request identity v1"): signing every request this server makes
//! to a deployment — discovery and every invocation attempt — so an SDK given the matching
//! public key (`identityKeys` in TypeScript, `identity_key` in the Rust SDK) accepts it
//! and refuses requests from anyone else.
//!
//! This module owns the private key (one Ed25519 key, read once at start-up from the PKCS#8
//! PEM file named by `worker.invoker.request-identity-private-key-pem-file`), the key id the
//! SDKs are given (`publickeyv1_` + base58 of the 32-byte public key) and the token: a compact
//! JWS `base64url(header).base64url(claims).base64url(signature)` with header
//! `{"typ":"JWT","alg":"EdDSA","kid":…}` and claims `aud` (the request path relative to the
//! deployment: `/discover` or `/invoke/{service}/{handler}`), `exp`, `iat`, `nbf` and, for
//! keyed handlers, `sub` (the object or workflow key). It goes in `x-restate-jwt-v1`, next to
//! `x-restate-signature-scheme: v1`.
//!
//! Invariants:
//! - A [`RequestSigner`] exists only for a key that parsed as Ed25519, so signing never fails.
//! - A token is valid from `iat − validity` to `iat + validity`, validity at least 1 s; for the
//!   same signing key, path, object key and second it is byte for byte the token Restate 1.7
//!   sends.
//! - Without a key no identity header is sent at all (what Restate does).
//! - The private key is never printed: `Debug` shows the key id only.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::pkcs8::spki::der::pem;
use ed25519_dalek::pkcs8::{ObjectIdentifier, PrivateKeyInfo, SecretDocument, ALGORITHM_OID};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use http::{HeaderMap, HeaderName, HeaderValue};

/// The header naming how a request is signed.
pub const SIGNATURE_SCHEME_HEADER: HeaderName =
    HeaderName::from_static("x-restate-signature-scheme");
/// The header carrying the token of scheme `v1`.
pub const JWT_HEADER: HeaderName = HeaderName::from_static("x-restate-jwt-v1");
/// The one signature scheme this server signs with.
pub const SCHEME_V1: &str = "v1";
/// Prefix of a v1 public key id.
pub const KEY_ID_PREFIX: &str = "publickeyv1_";
/// How long either side of its issue time a token is valid unless configured
/// (`worker.invoker.request-identity-expiration`, Restate's default).
pub const VALIDITY_DEFAULT: Duration = Duration::from_secs(60);
/// The shortest validity used; shorter configured values are raised to it.
pub const VALIDITY_MIN: Duration = Duration::from_secs(1);

/// Signs requests to deployments with one Ed25519 key.
pub struct RequestSigner {
    key: SigningKey,
    kid: String,
    /// `base64url` of the token header, the same for every token.
    header_b64: String,
    validity_secs: u64,
}

impl std::fmt::Debug for RequestSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestSigner")
            .field("kid", &self.kid)
            .field("validity_secs", &self.validity_secs)
            .finish_non_exhaustive()
    }
}

/// Two signers are equal when they hold the same key and validity.
impl PartialEq for RequestSigner {
    fn eq(&self, other: &Self) -> bool {
        self.kid == other.kid && self.validity_secs == other.validity_secs
    }
}

/// Why a private key file cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error(
        "{path} is not a PEM file ({detail}); it must hold one unencrypted PKCS#8 Ed25519 \
         private key (`-----BEGIN PRIVATE KEY-----`), as written by `openssl genpkey -algorithm \
         ed25519`"
    )]
    NotPem { path: String, detail: String },
    #[error(
        "{path} holds a `{label}` PEM block, not an unencrypted PKCS#8 `PRIVATE KEY`; create \
         the key with `openssl genpkey -algorithm ed25519`"
    )]
    WrongLabel { path: String, label: String },
    #[error(
        "{path} holds {algorithm} private key, not an Ed25519 key; create one with `openssl \
         genpkey -algorithm ed25519`"
    )]
    NotEd25519 { path: String, algorithm: String },
    #[error("{path} is not a valid PKCS#8 Ed25519 private key: {detail}")]
    Malformed { path: String, detail: String },
}

impl RequestSigner {
    /// Reads the PEM file at `path` (see [`RequestSigner::from_pem`]).
    pub fn from_pem_file(path: &Path, validity: Duration) -> Result<RequestSigner, KeyError> {
        let shown = path.display().to_string();
        let text = std::fs::read(path)
            .map_err(|e| KeyError::Read { path: shown.clone(), message: e.to_string() })?;
        let text = String::from_utf8(text).map_err(|_| KeyError::NotPem {
            path: shown.clone(),
            detail: "it is not text".into(),
        })?;
        RequestSigner::from_pem(&text, &shown, validity)
    }

    /// Parses one unencrypted PKCS#8 Ed25519 private key in PEM form; `shown` names its source
    /// in errors. `validity` below [`VALIDITY_MIN`] is raised to it.
    pub fn from_pem(pem: &str, shown: &str, validity: Duration) -> Result<RequestSigner, KeyError> {
        let path = shown.to_string();
        let pem = pem.trim_start();
        let label = pem::decode_label(pem.as_bytes()).map_err(|e| KeyError::NotPem {
            path: path.clone(),
            detail: if pem.contains("-----BEGIN ") {
                e.to_string()
            } else {
                "it has no `-----BEGIN …-----` line".into()
            },
        })?;
        if label != "PRIVATE KEY" {
            return Err(KeyError::WrongLabel { path, label: label.to_string() });
        }
        let (_, der) = SecretDocument::from_pem(pem)
            .map_err(|e| KeyError::Malformed { path: path.clone(), detail: e.to_string() })?;
        let info = PrivateKeyInfo::try_from(der.as_bytes())
            .map_err(|e| KeyError::Malformed { path: path.clone(), detail: e.to_string() })?;
        if info.algorithm.oid != ALGORITHM_OID {
            return Err(KeyError::NotEd25519 {
                path,
                algorithm: algorithm_name(info.algorithm.oid),
            });
        }
        let key = SigningKey::try_from(info)
            .map_err(|e| KeyError::Malformed { path, detail: e.to_string() })?;
        Ok(RequestSigner::new(key, validity))
    }

    /// A signer for `key`; `validity` below [`VALIDITY_MIN`] is raised to it.
    pub fn new(key: SigningKey, validity: Duration) -> RequestSigner {
        let kid = key_id(&key.verifying_key());
        let header = format!(r#"{{"typ":"JWT","alg":"EdDSA","kid":"{kid}"}}"#);
        RequestSigner {
            header_b64: URL_SAFE_NO_PAD.encode(header),
            kid,
            key,
            validity_secs: validity.max(VALIDITY_MIN).as_secs(),
        }
    }

    /// The public key id to give SDKs (`publickeyv1_…`).
    pub fn key_id(&self) -> &str {
        &self.kid
    }

    /// How long either side of its issue time a token is valid.
    pub fn validity(&self) -> Duration {
        Duration::from_secs(self.validity_secs)
    }

    /// The token for a request to `path` (relative to the deployment: `/discover`,
    /// `/invoke/{service}/{handler}`) for the object/workflow key `subject`, issued at
    /// `now_secs` (Unix seconds).
    pub fn token_at(&self, path: &str, subject: Option<&str>, now_secs: u64) -> String {
        // Claims in Restate's order; strings through serde_json for JSON escaping.
        let mut claims = format!(
            r#"{{"aud":{},"exp":{},"iat":{now_secs},"nbf":{}"#,
            json_string(path),
            now_secs.saturating_add(self.validity_secs),
            now_secs.saturating_sub(self.validity_secs),
        );
        if let Some(sub) = subject {
            claims.push_str(r#","sub":"#);
            claims.push_str(&json_string(sub));
        }
        claims.push('}');
        let mut token = String::with_capacity(self.header_b64.len() + claims.len() * 4 / 3 + 90);
        token.push_str(&self.header_b64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(claims, &mut token);
        let signature = self.key.sign(token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.to_bytes(), &mut token);
        token
    }

    /// Sets the identity headers of a request to `path` for `subject`, issued now; replaces
    /// any of the same name (say, from a deployment's additional headers).
    pub fn sign(&self, headers: &mut HeaderMap, path: &str, subject: Option<&str>) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let token = self.token_at(path, subject, now);
        // base64url and dots only: always a valid header value.
        let Ok(token) = HeaderValue::try_from(token) else { return };
        headers.insert(SIGNATURE_SCHEME_HEADER, HeaderValue::from_static(SCHEME_V1));
        headers.insert(JWT_HEADER, token);
    }
}

/// `publickeyv1_` + base58 (Bitcoin alphabet) of the 32-byte public key.
pub fn key_id(key: &VerifyingKey) -> String {
    format!("{KEY_ID_PREFIX}{}", bs58::encode(key.as_bytes()).into_string())
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// A readable name for the key algorithms people mistake for Ed25519.
fn algorithm_name(oid: ObjectIdentifier) -> String {
    match oid.to_string().as_str() {
        "1.2.840.113549.1.1.1" => "an RSA".into(),
        "1.2.840.10045.2.1" => "an elliptic-curve (ECDSA)".into(),
        "1.3.101.110" => "an X25519".into(),
        "1.3.101.111" => "an X448".into(),
        "1.3.101.113" => "an Ed448".into(),
        other => format!("a {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;
    use ed25519_dalek::{Signature, Verifier as _};

    /// A test-only key made with `openssl genpkey -algorithm ed25519`, and the kid and tokens
    /// Restate 1.7.12 produced with it (its discovery request, then invocations of a service
    /// and of an object with key `k/1`).
    const OPENSSL_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIHYXQgQIriHN8qdZlCYoC/T2DzEFzzCX2zfE+xDjgl3Y
-----END PRIVATE KEY-----
";
    const OPENSSL_KID: &str = "publickeyv1_A6SeJhTcFFaiQSv8XAFDqCB6rL48XKe1mMw4Fj3MLsoA";
    const RESTATE_DISCOVER: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSIsImtpZCI6InB1YmxpY2tleXYxX0E2U2VKaFRjRkZhaVFTdjhYQUZEcUNCNnJMNDhYS2UxbU13NEZqM01Mc29BIn0.eyJhdWQiOiIvZGlzY292ZXIiLCJleHAiOjE3OTYwMDAwNzIsImlhdCI6MTc5NjAwMDAxMiwibmJmIjoxNzk1OTk5OTUyfQ.JVl8Zxtz0A6PZ7pSi7SBtY7X2eDQyJjtFxyPZ6A1GYOqEeeI7yMz5d4rMnLgH2v5fUnaU2F2Yc-J7Iz8tuHTDw";
    const RESTATE_INVOKE: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSIsImtpZCI6InB1YmxpY2tleXYxX0E2U2VKaFRjRkZhaVFTdjhYQUZEcUNCNnJMNDhYS2UxbU13NEZqM01Mc29BIn0.eyJhdWQiOiIvaW52b2tlL0dyZWV0ZXIvZ3JlZXQiLCJleHAiOjE3OTYwMDAwNzMsImlhdCI6MTc5NjAwMDAxMywibmJmIjoxNzk1OTk5OTUzfQ.EOmtjp8pz83cObTNG4jcbRZ7NpN4xrcJ8WodTS5eKx6Gv3r2Q804qf6O8lBiQtAwN7htUo5CjKG_Fdiz0NuZBA";
    const RESTATE_INVOKE_KEYED: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSIsImtpZCI6InB1YmxpY2tleXYxX0E2U2VKaFRjRkZhaVFTdjhYQUZEcUNCNnJMNDhYS2UxbU13NEZqM01Mc29BIn0.eyJhdWQiOiIvaW52b2tlL09iai9nZXQiLCJleHAiOjE3OTYwMDAwNzMsImlhdCI6MTc5NjAwMDAxMywibmJmIjoxNzk1OTk5OTUzLCJzdWIiOiJrLzEifQ.avsJXJkCj2gn1uxeA0We1skVjUMVhlbixnNUBRnpEe8Hr5Tf3EgeQD2JrVmjIiVKI3LOQHrnI0XLx1WC4XH5Aw";

    fn openssl_signer() -> RequestSigner {
        RequestSigner::from_pem(OPENSSL_PEM, "key.pem", VALIDITY_DEFAULT).unwrap()
    }

    fn b64(part: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(part).unwrap()
    }

    fn json(part: &str) -> serde_json::Value {
        serde_json::from_slice(&b64(part)).unwrap()
    }

    #[test]
    fn tokens_are_byte_for_byte_restates() {
        let s = openssl_signer();
        assert_eq!(s.key_id(), OPENSSL_KID);
        assert_eq!(s.token_at("/discover", None, 1_796_000_012), RESTATE_DISCOVER);
        assert_eq!(s.token_at("/invoke/Greeter/greet", None, 1_796_000_013), RESTATE_INVOKE);
        assert_eq!(s.token_at("/invoke/Obj/get", Some("k/1"), 1_796_000_013), RESTATE_INVOKE_KEYED);
    }

    #[test]
    fn token_structure_kid_signature_and_claims() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let public = key.verifying_key();
        let s = RequestSigner::new(key, Duration::from_secs(30));
        let now = 1_700_000_000;
        let token = s.token_at("/invoke/Counter/add", Some("a \"quoted\" key"), now);
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3, "{token}");
        assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));

        let header = json(parts[0]);
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header["alg"], "EdDSA");
        let kid = header["kid"].as_str().unwrap();
        assert_eq!(kid, s.key_id());
        let raw = bs58::decode(kid.strip_prefix(KEY_ID_PREFIX).unwrap()).into_vec().unwrap();
        assert_eq!(raw, public.as_bytes());

        let claims = json(parts[1]);
        assert_eq!(claims["aud"], "/invoke/Counter/add");
        assert_eq!(claims["iat"], now);
        assert_eq!(claims["nbf"], now - 30);
        assert_eq!(claims["exp"], now + 30);
        assert_eq!(claims["sub"], "a \"quoted\" key");
        assert_eq!(claims.as_object().unwrap().len(), 5);

        let signature = Signature::from_slice(&b64(parts[2])).unwrap();
        let signed = format!("{}.{}", parts[0], parts[1]);
        public.verify(signed.as_bytes(), &signature).unwrap();
        // Another key, or another payload, does not verify.
        let other = SigningKey::from_bytes(&[8u8; 32]).verifying_key();
        assert!(other.verify(signed.as_bytes(), &signature).is_err());
        let discover = s.token_at("/discover", None, now);
        let d: Vec<&str> = discover.split('.').collect();
        assert!(public
            .verify(
                format!("{}.{}", d[0], parts[1]).as_bytes(),
                &Signature::from_slice(&b64(d[2])).unwrap()
            )
            .is_err());
        let claims = json(d[1]);
        assert_eq!(claims["aud"], "/discover");
        assert!(claims.get("sub").is_none());
    }

    #[test]
    fn sign_sets_both_headers_and_replaces_others() {
        let s = openssl_signer();
        let mut headers = HeaderMap::new();
        headers.insert(JWT_HEADER, HeaderValue::from_static("forged"));
        s.sign(&mut headers, "/discover", None);
        assert_eq!(headers.get(SIGNATURE_SCHEME_HEADER).unwrap(), "v1");
        let token = headers.get(JWT_HEADER).unwrap().to_str().unwrap();
        assert_eq!(headers.get_all(JWT_HEADER).iter().count(), 1);
        let claims = json(token.split('.').nth(1).unwrap());
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let iat = claims["iat"].as_u64().unwrap();
        assert!(iat.abs_diff(now) <= 5, "iat {iat}, now {now}");
        assert_eq!(claims["exp"].as_u64().unwrap(), iat + 60);
    }

    #[test]
    fn validity_is_at_least_one_second() {
        let s = RequestSigner::new(SigningKey::from_bytes(&[1; 32]), Duration::from_millis(10));
        assert_eq!(s.validity(), VALIDITY_MIN);
        let claims = json(s.token_at("/discover", None, 100).split('.').nth(1).unwrap());
        assert_eq!((claims["nbf"].as_u64(), claims["exp"].as_u64()), (Some(99), Some(101)));
    }

    #[test]
    fn written_pem_round_trips() {
        let key = SigningKey::from_bytes(&[42; 32]);
        let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
        let s = RequestSigner::from_pem(&pem, "k.pem", VALIDITY_DEFAULT).unwrap();
        assert_eq!(s.key_id(), key_id(&key.verifying_key()));
        assert!(!format!("{s:?}").contains(&format!("{:?}", key.to_bytes())));
    }

    #[test]
    fn bad_key_files_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let load = |p: &Path| RequestSigner::from_pem_file(p, VALIDITY_DEFAULT).unwrap_err();

        let missing = dir.path().join("missing.pem");
        let e = load(&missing);
        assert!(matches!(e, KeyError::Read { .. }), "{e}");
        assert!(e.to_string().contains("missing.pem"), "{e}");

        let e = load(&write("garbage.pem", "not a key at all\n"));
        assert!(matches!(e, KeyError::NotPem { .. }), "{e}");
        assert!(e.to_string().contains("garbage.pem") && e.to_string().contains("openssl"), "{e}");

        let public = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAhx4Uy5/5iTpdMMw2stPqgVmDUKkV8Fva3qqrohZ0pXU=\n-----END PUBLIC KEY-----\n";
        let e = load(&write("public.pem", public));
        assert_eq!(
            e,
            KeyError::WrongLabel {
                path: dir.path().join("public.pem").display().to_string(),
                label: "PUBLIC KEY".into()
            }
        );

        // `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256` and `-algorithm
        // X25519`: PKCS#8 private keys, of other algorithms.
        let ec = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg2lJlxjiIeXAlKK6+
aPYMg8iwvyolg4cxybXCNUxzjH2hRANCAATdiqIw36obwS3ALg0xNSgUoklrM1hP
2IXS2lmX+/g3A0eM/q597nj4O5C289Yzf47zVcmqZ+mvWp0rSvsOPWhY
-----END PRIVATE KEY-----
";
        let e = load(&write("ec.pem", ec));
        assert!(
            matches!(e, KeyError::NotEd25519 { ref algorithm, .. } if algorithm.contains("ECDSA")),
            "{e}"
        );
        let x25519 = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VuBCIEIPA7WE1pCVDCyVwuJ/e7kbTJI2pMynTJtpvb5/wWSrxV
-----END PRIVATE KEY-----
";
        let e = load(&write("x.pem", x25519));
        assert!(e.to_string().contains("an X25519 private key, not an Ed25519 key"), "{e}");

        let truncated =
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIHYXQgQI\n-----END PRIVATE KEY-----\n";
        let e = load(&write("short.pem", truncated));
        assert!(matches!(e, KeyError::Malformed { .. }), "{e}");

        let binary = dir.path().join("binary.pem");
        std::fs::write(&binary, [0xff, 0xfe, 0]).unwrap();
        let e = load(&binary);
        assert!(
            matches!(e, KeyError::NotPem { .. }) && e.to_string().contains("binary.pem"),
            "{e}"
        );
    }
}
