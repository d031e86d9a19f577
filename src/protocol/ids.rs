//! Identifiers that cross the protocol boundary: invocation ids (raw 24 bytes and the
//! `inv_1…` string), deployment ids (`dp_1…`), awakeable/signal ids (`sign_1…`), and the
//! per-invocation random seed.
//!
//! This module owns the byte and text layouts of these ids:
//! - raw invocation id: partition key (u64 BE) ‖ uuid (u128 BE), 24 bytes;
//! - text ids: `{prefix}_1` + fixed-width base62 numbers (u64 → 11 chars, u128 → 22 chars)
//!   over the alphabet `0-9a-zA-Z` (lower case before upper case). Each number is byte-swapped
//!   before encoding (`u64::from_le_bytes(n.to_be_bytes())`), reproducing the real server's
//!   ids on little-endian hosts on every host;
//! - awakeable ids: `sign_1` + unpadded base64url of raw invocation id ‖ u32 BE signal index.
//!
//! Invariants: `parse(format(x)) == x` for every id; parsing never panics and rejects anything
//! that is not exactly one well-formed id (wrong prefix, length, alphabet, overflow, non-zero
//! trailing base64 bits); [`random_seed`] is a pure function of the id and must never change,
//! since stored invocations rely on it across attempts.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

/// Length of a raw invocation id.
pub const INVOCATION_ID_RAW_BYTES: usize = 24;
/// Length of a raw awakeable id (raw invocation id ‖ u32 signal index).
pub const AWAKEABLE_ID_RAW_BYTES: usize = INVOCATION_ID_RAW_BYTES + 4;

const BASE62_ALPHABET: &[u8; 62] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const BASE62_U64_CHARS: usize = 11;
const BASE62_U128_CHARS: usize = 22;
const BASE64URL_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const ID_SCHEME_VERSION: u8 = b'1';

const INVOCATION_PREFIX: &str = "inv";
const DEPLOYMENT_PREFIX: &str = "dp";
const AWAKEABLE_PREFIX: &str = "sign";
const LEGACY_AWAKEABLE_PREFIX: &str = "prom";

// The fixed widths are exactly wide enough for the numbers they hold.
const _: () = assert!(62u128.pow(BASE62_U64_CHARS as u32) > u64::MAX as u128);
const _: () = assert!(62u128.pow(BASE62_U64_CHARS as u32 - 1) <= u64::MAX as u128);
const _: () = assert!(62u128.checked_pow(BASE62_U128_CHARS as u32).is_none());
const _: () = assert!(62u128.checked_pow(BASE62_U128_CHARS as u32 - 1).is_some());

/// Why a string or byte slice is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("expected an id starting with `{expected}_1`")]
    WrongPrefix { expected: &'static str },
    #[error("unsupported `{prefix}` id scheme version {version:?}; only version 1 exists")]
    UnsupportedVersion { prefix: &'static str, version: char },
    #[error("a `{prefix}` id is {expected_chars} characters long, this one has {actual_chars}")]
    WrongLength { prefix: &'static str, expected_chars: usize, actual_chars: usize },
    #[error("invalid character {character:?} at position {position} of the id")]
    InvalidCharacter { character: char, position: usize },
    #[error("the id encodes a number out of range")]
    Overflow,
    #[error("the id's base64 encoding is malformed (length, padding or trailing bits)")]
    MalformedBase64,
    #[error("a raw `{prefix}` id is {expected_bytes} bytes long, got {actual_bytes}")]
    WrongRawLength { prefix: &'static str, expected_bytes: usize, actual_bytes: usize },
    #[error(
        "`prom_1` awakeable ids belong to the legacy protocol (V1-V4) that this server does \
         not run; complete awakeables created by a current SDK (`sign_1…` ids)"
    )]
    LegacyAwakeable,
}

// ---------------------------------------------------------------------------------------------
// Invocation id.

/// An invocation: partition key and uuid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InvocationId {
    pub partition_key: u64,
    pub uuid: u128,
}

impl InvocationId {
    /// Length of the string form (`inv_1` + 11 + 22).
    pub const STRING_CHARS: usize =
        INVOCATION_PREFIX.len() + 2 + BASE62_U64_CHARS + BASE62_U128_CHARS;

    pub fn new(partition_key: u64, uuid: u128) -> Self {
        InvocationId { partition_key, uuid }
    }

    /// The 24-byte raw form (`StartMessage.id`).
    pub fn to_bytes(&self) -> [u8; INVOCATION_ID_RAW_BYTES] {
        let mut out = [0u8; INVOCATION_ID_RAW_BYTES];
        out[..8].copy_from_slice(&self.partition_key.to_be_bytes());
        out[8..].copy_from_slice(&self.uuid.to_be_bytes());
        out
    }

    /// Parses the 24-byte raw form.
    pub fn from_bytes(raw: &[u8]) -> Result<Self, IdError> {
        let raw: &[u8; INVOCATION_ID_RAW_BYTES] =
            raw.try_into().map_err(|_| IdError::WrongRawLength {
                prefix: INVOCATION_PREFIX,
                expected_bytes: INVOCATION_ID_RAW_BYTES,
                actual_bytes: raw.len(),
            })?;
        let (pk, uuid) = raw.split_at(8);
        // Infallible: split_at(8) of a 24-byte array gives 8 and 16 bytes.
        let pk: [u8; 8] = pk.try_into().unwrap_or_default();
        let uuid: [u8; 16] = uuid.try_into().unwrap_or_default();
        Ok(InvocationId { partition_key: u64::from_be_bytes(pk), uuid: u128::from_be_bytes(uuid) })
    }
}

impl fmt::Display for InvocationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(Self::STRING_CHARS);
        s.push_str(INVOCATION_PREFIX);
        s.push('_');
        s.push(ID_SCHEME_VERSION as char);
        push_base62(u128::from(self.partition_key.swap_bytes()), BASE62_U64_CHARS, &mut s);
        push_base62(self.uuid.swap_bytes(), BASE62_U128_CHARS, &mut s);
        debug_assert_eq!(s.len(), Self::STRING_CHARS);
        f.write_str(&s)
    }
}

impl FromStr for InvocationId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, IdError> {
        let body = strip_prefix(s, INVOCATION_PREFIX, BASE62_U64_CHARS + BASE62_U128_CHARS)?;
        let offset = s.len() - body.len();
        let (pk, uuid) = body.as_bytes().split_at(BASE62_U64_CHARS);
        let pk = parse_base62(pk, offset)?;
        let pk = u64::try_from(pk).map_err(|_| IdError::Overflow)?;
        let uuid = parse_base62(uuid, offset + BASE62_U64_CHARS)?;
        Ok(InvocationId { partition_key: pk.swap_bytes(), uuid: uuid.swap_bytes() })
    }
}

// ---------------------------------------------------------------------------------------------
// Deployment id.

/// A registered deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeploymentId(pub u128);

impl DeploymentId {
    /// Length of the string form (`dp_1` + 22).
    pub const STRING_CHARS: usize = DEPLOYMENT_PREFIX.len() + 2 + BASE62_U128_CHARS;
}

impl fmt::Display for DeploymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(Self::STRING_CHARS);
        s.push_str(DEPLOYMENT_PREFIX);
        s.push('_');
        s.push(ID_SCHEME_VERSION as char);
        push_base62(self.0.swap_bytes(), BASE62_U128_CHARS, &mut s);
        f.write_str(&s)
    }
}

impl FromStr for DeploymentId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, IdError> {
        let body = strip_prefix(s, DEPLOYMENT_PREFIX, BASE62_U128_CHARS)?;
        let n = parse_base62(body.as_bytes(), s.len() - body.len())?;
        Ok(DeploymentId(n.swap_bytes()))
    }
}

// ---------------------------------------------------------------------------------------------
// Awakeable / signal id.

/// An awakeable: the owner invocation and the signal index the SDK allocated (from 17).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AwakeableId {
    pub invocation_id: InvocationId,
    pub signal_index: u32,
}

impl AwakeableId {
    /// Length of the string form (`sign_1` + 38).
    pub const STRING_CHARS: usize = AWAKEABLE_PREFIX.len() + 2 + 38;

    /// The 28-byte raw form.
    pub fn to_bytes(&self) -> [u8; AWAKEABLE_ID_RAW_BYTES] {
        let mut out = [0u8; AWAKEABLE_ID_RAW_BYTES];
        out[..INVOCATION_ID_RAW_BYTES].copy_from_slice(&self.invocation_id.to_bytes());
        out[INVOCATION_ID_RAW_BYTES..].copy_from_slice(&self.signal_index.to_be_bytes());
        out
    }

    /// Parses the 28-byte raw form.
    pub fn from_bytes(raw: &[u8]) -> Result<Self, IdError> {
        if raw.len() != AWAKEABLE_ID_RAW_BYTES {
            return Err(IdError::WrongRawLength {
                prefix: AWAKEABLE_PREFIX,
                expected_bytes: AWAKEABLE_ID_RAW_BYTES,
                actual_bytes: raw.len(),
            });
        }
        let (id, index) = raw.split_at(INVOCATION_ID_RAW_BYTES);
        let index: [u8; 4] = index.try_into().unwrap_or_default();
        Ok(AwakeableId {
            invocation_id: InvocationId::from_bytes(id)?,
            signal_index: u32::from_be_bytes(index),
        })
    }
}

impl fmt::Display for AwakeableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(Self::STRING_CHARS);
        s.push_str(AWAKEABLE_PREFIX);
        s.push('_');
        s.push(ID_SCHEME_VERSION as char);
        push_base64url(&self.to_bytes(), &mut s);
        debug_assert_eq!(s.len(), Self::STRING_CHARS);
        f.write_str(&s)
    }
}

impl FromStr for AwakeableId {
    type Err = IdError;

    /// Accepts padded and unpadded base64url.
    fn from_str(s: &str) -> Result<Self, IdError> {
        if s.strip_prefix(LEGACY_AWAKEABLE_PREFIX).is_some_and(|r| r.starts_with('_')) {
            return Err(IdError::LegacyAwakeable);
        }
        let Some(rest) = s.strip_prefix(AWAKEABLE_PREFIX).and_then(|r| r.strip_prefix('_')) else {
            return Err(IdError::WrongPrefix { expected: AWAKEABLE_PREFIX });
        };
        let Some(body) = rest.strip_prefix(ID_SCHEME_VERSION as char) else {
            let version = rest.chars().next().unwrap_or('?');
            return Err(IdError::UnsupportedVersion { prefix: AWAKEABLE_PREFIX, version });
        };
        let raw = parse_base64url(body.as_bytes())?;
        AwakeableId::from_bytes(&raw)
    }
}

// ---------------------------------------------------------------------------------------------
// Random seed.

/// The `StartMessage.random_seed` of an invocation: a fixed mix of its id, identical on every
/// attempt. Golden-tested; changing it changes `ctx.rand` of in-flight invocations.
pub fn random_seed(id: &InvocationId) -> u64 {
    let hi = (id.uuid >> 64) as u64;
    let lo = id.uuid as u64;
    splitmix64(splitmix64(splitmix64(id.partition_key) ^ hi) ^ lo)
}

/// The splitmix64 finalizer (a well-mixing bijection on `u64`).
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

// ---------------------------------------------------------------------------------------------
// Encodings.

/// Checks `{prefix}_1` and the total length; returns the part after the version character.
fn strip_prefix<'a>(
    s: &'a str,
    prefix: &'static str,
    body_chars: usize,
) -> Result<&'a str, IdError> {
    let Some(rest) = s.strip_prefix(prefix).and_then(|r| r.strip_prefix('_')) else {
        return Err(IdError::WrongPrefix { expected: prefix });
    };
    let Some(body) = rest.strip_prefix(ID_SCHEME_VERSION as char) else {
        let version = rest.chars().next().unwrap_or('?');
        return Err(IdError::UnsupportedVersion { prefix, version });
    };
    let expected_chars = prefix.len() + 2 + body_chars;
    if body.len() != body_chars {
        return Err(IdError::WrongLength {
            prefix,
            expected_chars,
            actual_chars: s.chars().count(),
        });
    }
    Ok(body)
}

/// Appends `n` in base62, left-padded with `0` to `width` characters.
fn push_base62(mut n: u128, width: usize, out: &mut String) {
    let mut digits = [BASE62_ALPHABET[0]; BASE62_U128_CHARS];
    assert!(width <= digits.len());
    for slot in digits[..width].iter_mut().rev() {
        *slot = BASE62_ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    assert_eq!(n, 0, "number does not fit in {width} base62 digits");
    out.extend(digits[..width].iter().map(|&b| b as char));
}

fn base62_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'z' => Some(c - b'a' + 10),
        b'A'..=b'Z' => Some(c - b'A' + 36),
        _ => None,
    }
}

/// Parses base62 digits (`offset` = position of the first digit in the whole id, for errors).
fn parse_base62(digits: &[u8], offset: usize) -> Result<u128, IdError> {
    let mut n: u128 = 0;
    for (i, &c) in digits.iter().enumerate() {
        let Some(v) = base62_value(c) else {
            return Err(IdError::InvalidCharacter {
                character: char::from(c),
                position: offset + i,
            });
        };
        n = n
            .checked_mul(62)
            .and_then(|n| n.checked_add(u128::from(v)))
            .ok_or(IdError::Overflow)?;
    }
    Ok(n)
}

/// Appends the unpadded base64url encoding of `bytes`.
fn push_base64url(bytes: &[u8], out: &mut String) {
    let sym = |i: u32| BASE64URL_ALPHABET[(i & 0x3F) as usize] as char;
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(sym(n >> 18));
        out.push(sym(n >> 12));
        if chunk.len() > 1 {
            out.push(sym(n >> 6));
        }
        if chunk.len() > 2 {
            out.push(sym(n));
        }
    }
}

fn base64url_value(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        b'_' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Decodes base64url, padded or not; rejects non-zero trailing bits and bad padding.
fn parse_base64url(text: &[u8]) -> Result<Vec<u8>, IdError> {
    let pad = text.iter().rev().take_while(|&&c| c == b'=').count();
    let body = &text[..text.len() - pad];
    let rem = body.len() % 4;
    if rem == 1 {
        return Err(IdError::MalformedBase64);
    }
    if pad > 0 && (text.len() % 4 != 0 || pad != (4 - rem) % 4) {
        return Err(IdError::MalformedBase64);
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits: u32 = 0;
    for (position, &c) in body.iter().enumerate() {
        let Some(v) = base64url_value(c) else {
            return Err(IdError::InvalidCharacter { character: char::from(c), position });
        };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if acc != 0 {
        return Err(IdError::MalformedBase64);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invocation_id_vectors() {
        let id = InvocationId::new(1, 1);
        assert_eq!(id.to_string(), "inv_105k1wlNFHb201SZwviYzes2mjOamuMJWw");
        let id = InvocationId::new(0x0123456789abcdef, 0x0123456789abcdef0123456789abcdef);
        assert_eq!(id.to_string(), "inv_1kAt0t9pq7gB7iv9LWd4uZm5grdN3xFeQ9");
        assert_eq!("inv_1kAt0t9pq7gB7iv9LWd4uZm5grdN3xFeQ9".parse::<InvocationId>(), Ok(id));
    }

    #[test]
    fn awakeable_vector() {
        let id = InvocationId::new(0x0123456789abcdef, 0x0123456789abcdef0123456789abcdef);
        let a = AwakeableId { invocation_id: id, signal_index: 17 };
        assert_eq!(a.to_string(), "sign_1ASNFZ4mrze8BI0VniavN7wEjRWeJq83vAAAAEQ");
        assert_eq!("sign_1ASNFZ4mrze8BI0VniavN7wEjRWeJq83vAAAAEQ".parse(), Ok(a));
        assert_eq!("sign_1ASNFZ4mrze8BI0VniavN7wEjRWeJq83vAAAAEQ==".parse(), Ok(a));
    }

    #[test]
    fn extremes_round_trip() {
        for (pk, uuid) in [(0, 0), (u64::MAX, u128::MAX), (1 << 63, 1 << 127)] {
            let id = InvocationId::new(pk, uuid);
            let s = id.to_string();
            assert_eq!(s.len(), InvocationId::STRING_CHARS);
            assert_eq!(s.parse(), Ok(id));
            assert_eq!(InvocationId::from_bytes(&id.to_bytes()), Ok(id));
            let d = DeploymentId(uuid);
            assert_eq!(d.to_string().parse(), Ok(d));
        }
    }

    #[test]
    fn base64url_matches_rfc4648_vectors() {
        // RFC 4648 §10 vectors, unpadded.
        for (raw, text) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
        ] {
            let mut s = String::new();
            push_base64url(raw.as_bytes(), &mut s);
            assert_eq!(s, text);
            assert_eq!(parse_base64url(text.as_bytes()).unwrap(), raw.as_bytes());
        }
        assert_eq!(parse_base64url(b"Zg==").unwrap(), b"f");
        assert_eq!(parse_base64url(b"Zh"), Err(IdError::MalformedBase64)); // trailing bits
        assert_eq!(parse_base64url(b"Zg="), Err(IdError::MalformedBase64));
        assert_eq!(parse_base64url(b"Z"), Err(IdError::MalformedBase64));
    }
}

/// Fresh invocation uuids: time, a counter and per-process randomness (the state machine
/// never makes these; the ingress and the admin API do, outside it).
#[derive(Debug)]
pub struct IdSource {
    seed: u64,
    counter: AtomicU64,
    clock: crate::clock::SharedClock,
}

impl IdSource {
    pub fn new(clock: crate::clock::SharedClock) -> IdSource {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        IdSource { seed: h.finish(), counter: AtomicU64::new(0), clock }
    }
    /// A random partition key (for unkeyed targets) and a fresh uuid.
    pub fn next(&self) -> (u64, u128) {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let ms = self.clock.now_ms();
        let a = splitmix64(self.seed ^ n);
        let b = splitmix64(a ^ ms ^ 0x9E37_79B9_7F4A_7C15);
        // ULID-like: milliseconds first, so ids sort roughly by creation time.
        let uuid = (u128::from(ms) << 80) | (u128::from(a & 0xFFFF) << 64) | u128::from(b);
        (splitmix64(b ^ n), uuid)
    }
}
