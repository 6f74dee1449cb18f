//! Content digests: the sha256 names that image archives, registries and
//! containerd's content store all key blobs by.
//!
//! Only sha256 exists here: it is the only algorithm docker, podman and
//! containerd's importer produce, and accepting others would mean carrying
//! hashers nobody on the other side uses.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::str::FromStr;

/// A validated `sha256:<64 lowercase hex>` digest.
///
/// Stored as the 32 raw bytes, so it is `Copy` and orders exactly as its
/// string form does (lowercase hex preserves byte order).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

/// Why a string is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error(
        "{input:?} is not a sha256 digest: only `sha256:` followed by 64 lowercase hex digits is accepted"
    )]
    Invalid { input: String },
}

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }

    /// Parses 64 lowercase hex digits without the `sha256:` prefix, as blob
    /// file names carry them.
    pub fn from_hex(hex: &str) -> Result<Digest, DigestError> {
        let invalid = || DigestError::Invalid {
            input: hex.chars().take(100).collect(),
        };
        // Uppercase hex would decode to the same bytes but name a different
        // file: the OCI spec requires lowercase, and so do we.
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(invalid());
        }
        let mut bytes = [0; 32];
        hex::decode_to_slice(hex, &mut bytes).map_err(|_| invalid())?;
        Ok(Digest(bytes))
    }

    /// The 64 hex digits, without the `sha256:` prefix.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl From<Sha256> for Digest {
    fn from(hasher: Sha256) -> Digest {
        Digest(hasher.finalize().into())
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    /// Accepts `sha256:<hex>` and the bare hex.
    fn from_str(s: &str) -> Result<Digest, DigestError> {
        let hex = s.strip_prefix("sha256:").unwrap_or(s);
        Digest::from_hex(hex).map_err(|_| DigestError::Invalid {
            input: s.chars().take(100).collect(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Digest, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn digest_of_bytes_matches_sha256() {
        assert_eq!(Digest::of(b"").to_string(), format!("sha256:{EMPTY}"));
        assert_eq!(Digest::of(b"").hex(), EMPTY);
    }

    #[test]
    fn parses_prefixed_and_bare_hex() {
        let prefixed: Digest = format!("sha256:{EMPTY}").parse().unwrap();
        let bare: Digest = EMPTY.parse().unwrap();
        assert_eq!(prefixed, bare);
        assert_eq!(prefixed, Digest::of(b""));
    }

    #[test]
    fn rejects_everything_else() {
        let upper = EMPTY.to_uppercase();
        let cases = [
            "",
            "sha256:",
            &EMPTY[1..],
            &upper,
            "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555",
            "sha256:sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ];
        for case in cases {
            let err = case.parse::<Digest>().unwrap_err();
            assert!(
                err.to_string().contains("64 lowercase hex"),
                "{case}: {err}"
            );
        }
    }

    #[test]
    fn orders_like_its_string_form() {
        let mut digests: Vec<Digest> = (0u8..20).map(|i| Digest::of(&[i])).collect();
        digests.sort();
        let strings: Vec<String> = digests.iter().map(Digest::to_string).collect();
        let mut sorted = strings.clone();
        sorted.sort();
        assert_eq!(strings, sorted);
    }

    #[test]
    fn serializes_as_string() {
        let digest = Digest::of(b"");
        let json = serde_json::to_string(&digest).unwrap();
        assert_eq!(json, format!("\"sha256:{EMPTY}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), digest);
        let err = serde_json::from_str::<Digest>("\"sha256:abc\"").unwrap_err();
        assert!(err.to_string().contains("not a sha256 digest"), "{err}");
    }
}
