//! Image references, normalized the way docker does it, which is also how
//! containerd (and so kubelet) names images: `app:1` is
//! `docker.io/library/app:1` on a node.
//!
//! Loading under any other spelling would leave a node with an image that
//! pods asking for `app:1` do not find.

use super::digest::Digest;
use std::fmt;

/// A normalized reference: registry domain, repository path, and a tag
/// and/or a digest (at least one of them).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageReference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input:?} is not a valid image reference: {reason}; write it as docker does, e.g. `app:1`, `registry.example.com:5000/team/app:1` or `app@sha256:<64 hex digits>`"
)]
pub struct ReferenceError {
    pub input: String,
    pub reason: String,
}

const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// Docker's limit on the length of a repository name (domain and path).
const MAX_NAME_LENGTH: usize = 255;

impl ImageReference {
    /// The repository with its domain, without tag or digest:
    /// `docker.io/library/app`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path within its registry: `library/app`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Every way docker accepts of writing this repository and tag, as a
    /// manifest may: `app:1`, `library/app:1`, `docker.io/app:1`,
    /// `docker.io/library/app:1` and the `index.docker.io` forms name one
    /// image. A `latest` tag may also be left out. A reference pinned by
    /// digest has no other spelling.
    pub fn spellings(&self) -> Vec<String> {
        let Some(tag) = self.tag.as_deref().filter(|_| self.digest.is_none()) else {
            return vec![self.to_string()];
        };
        let mut names = vec![self.name()];
        if self.domain == DEFAULT_DOMAIN {
            let short = self.path.strip_prefix("library/");
            names = short.into_iter().map(str::to_string).collect();
            names.push(self.path.clone());
            for domain in [DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN] {
                names.extend(short.map(|short| format!("{domain}/{short}")));
                names.push(format!("{domain}/{}", self.path));
            }
        }
        let mut spellings: Vec<String> = names.iter().map(|name| format!("{name}:{tag}")).collect();
        if tag == "latest" {
            spellings.extend(names);
        }
        spellings
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<Digest> {
        self.digest
    }
}

impl fmt::Display for ImageReference {
    /// The full normalized form, `docker.io/library/app:1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// [`normalize_reference`] of a name that has a tag: what a push needs to
/// put the image under.
pub fn tagged_reference(input: &str) -> Result<ImageReference, TagError> {
    let reference = normalize_reference(input)?;
    if reference.tag().is_none() {
        return Err(TagError::DigestOnly {
            input: input.chars().take(300).collect(),
        });
    }
    Ok(reference)
}

/// Why a name cannot be pushed under.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(
        "{input:?} names an image by digest only: a push needs a tag to put it under; name it by tag (`app:1`)"
    )]
    DigestOnly { input: String },
}

/// Normalizes a reference as docker does: no registry means `docker.io`, a
/// single path component on docker.io gets `library/`, no tag and no digest
/// means `:latest`. `localhost/x` and `host:5000/x` keep their registry.
pub fn normalize_reference(input: &str) -> Result<ImageReference, ReferenceError> {
    let fail = |reason: &str| ReferenceError {
        input: input.chars().take(300).collect(),
        reason: reason.to_string(),
    };
    if input.is_empty() {
        return Err(fail("it is empty"));
    }
    let (rest, digest) = match input.split_once('@') {
        Some((rest, digest)) => {
            let digest = digest
                .strip_prefix("sha256:")
                .and_then(|hex| Digest::from_hex(hex).ok())
                .ok_or_else(|| {
                    fail("the digest after '@' is not sha256:<64 lowercase hex digits>")
                })?;
            (rest, Some(digest))
        }
        None => (input, None),
    };
    // A ':' after the last '/' starts the tag; one before it is a registry port.
    let (name, tag) = match rest.rfind(':') {
        Some(colon) if !rest[colon + 1..].contains('/') => {
            (&rest[..colon], Some(&rest[colon + 1..]))
        }
        _ => (rest, None),
    };
    if let Some(tag) = tag {
        check_tag(tag).map_err(|reason| fail(&reason))?;
    }
    if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(fail(
            "a 64-digit hex string is an image ID, not a name; pass the image's name, or its ID to `docker save` yourself",
        ));
    }

    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (first, rest.to_string())
        }
        _ => (DEFAULT_DOMAIN, name.to_string()),
    };
    let domain = if domain == LEGACY_DEFAULT_DOMAIN {
        DEFAULT_DOMAIN
    } else {
        domain
    };
    let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    check_domain(domain).map_err(|reason| fail(&reason))?;
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(fail("the repository name must be lowercase"));
    }
    for component in path.split('/') {
        check_path_component(component).map_err(|reason| fail(&reason))?;
    }
    if domain.len() + 1 + path.len() > MAX_NAME_LENGTH {
        return Err(fail("the repository name is longer than 255 characters"));
    }
    let tag = match (tag, digest) {
        (None, None) => Some("latest".to_string()),
        (tag, _) => tag.map(str::to_string),
    };
    Ok(ImageReference {
        domain: domain.to_string(),
        path,
        tag,
        digest,
    })
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`
fn check_tag(tag: &str) -> Result<(), String> {
    let valid = !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with(['.', '-'])
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "the tag {tag:?} must be 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
        ))
    }
}

/// `host[:port]`, host made of dot-separated labels of letters, digits and
/// inner '-'.
fn check_domain(domain: &str) -> Result<(), String> {
    let (host, port) = match domain.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    };
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("the registry port in {domain:?} must be a number"));
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if host.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(format!("the registry {domain:?} is not a valid host name"))
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn check_path_component(component: &str) -> Result<(), String> {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut valid = !bytes.is_empty() && alnum(bytes[0]) && alnum(bytes[bytes.len() - 1]);
    let mut i = 0;
    while valid && i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        // A separator: '.', '_', '__' or a run of '-', between alphanumerics.
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        valid = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
    }
    if valid {
        Ok(())
    } else {
        Err(format!(
            "the path component {component:?} must be lowercase letters and digits, separated by '.', '_', '__' or dashes"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(input: &str) -> String {
        normalize_reference(input)
            .unwrap_or_else(|e| panic!("{input}: {e}"))
            .to_string()
    }

    #[test]
    fn every_spelling_normalizes_back_to_the_reference() {
        for (input, count) in [
            ("app:1", 6),
            ("team/app:1", 3),
            ("localhost/app:1", 1),
            ("registry.example.com:5000/a/b:2", 1),
            ("app", 12),
        ] {
            let reference = normalize_reference(input).unwrap();
            let spellings = reference.spellings();
            assert_eq!(spellings.len(), count, "{input}: {spellings:?}");
            assert!(
                spellings.iter().any(|s| s == input),
                "{input}: {spellings:?}"
            );
            for spelling in &spellings {
                assert_eq!(norm(spelling), reference.to_string(), "{spelling}");
            }
        }
        let pinned = normalize_reference(&format!("app@sha256:{}", "a".repeat(64))).unwrap();
        assert_eq!(pinned.spellings(), [pinned.to_string()]);
    }

    #[test]
    fn normalizes_like_docker() {
        assert_eq!(norm("app"), "docker.io/library/app:latest");
        assert_eq!(norm("app:1"), "docker.io/library/app:1");
        assert_eq!(norm("team/app:1"), "docker.io/team/app:1");
        assert_eq!(norm("docker.io/app:1"), "docker.io/library/app:1");
        assert_eq!(
            norm("index.docker.io/team/app"),
            "docker.io/team/app:latest"
        );
        assert_eq!(norm("localhost/app:1"), "localhost/app:1");
        assert_eq!(norm("localhost:5000/app"), "localhost:5000/app:latest");
        assert_eq!(
            norm("registry.example.com:5000/a/b/c:v1.2-rc_3"),
            "registry.example.com:5000/a/b/c:v1.2-rc_3"
        );
        assert_eq!(norm("a__b-c---d/e.f_g:x"), "docker.io/a__b-c---d/e.f_g:x");
        // A lone name with a port-like suffix is a tag, as in docker.
        assert_eq!(norm("localhost:5000"), "docker.io/library/localhost:5000");
    }

    #[test]
    fn keeps_digests_and_adds_no_latest_to_them() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let by_digest = normalize_reference(&format!("app@sha256:{hex}")).unwrap();
        assert_eq!(
            by_digest.to_string(),
            format!("docker.io/library/app@sha256:{hex}")
        );
        assert_eq!(by_digest.tag(), None);
        assert_eq!(by_digest.digest().unwrap().hex(), hex);
        assert_eq!(
            norm(&format!("host:5000/app:1@sha256:{hex}")),
            format!("host:5000/app:1@sha256:{hex}")
        );
    }

    #[test]
    fn exposes_parts() {
        let reference = normalize_reference("ghcr.io/org/app:2").unwrap();
        assert_eq!(reference.domain(), "ghcr.io");
        assert_eq!(reference.name(), "ghcr.io/org/app");
        assert_eq!(reference.tag(), Some("2"));
        assert_eq!(reference.digest(), None);
    }

    #[test]
    fn rejects_invalid_names_with_the_reason() {
        let cases = [
            ("", "empty"),
            ("App:1", "lowercase"),
            ("docker.io/Team/app", "lowercase"),
            ("app:", "tag"),
            ("app:-x", "tag"),
            ("app:a/b", "port"),
            ("app@sha256:abc", "digest"),
            ("app@md5:abc", "digest"),
            ("-app", "path component"),
            ("app-", "path component"),
            ("a..b", "path component"),
            ("a___b", "path component"),
            ("team//app", "path component"),
            ("bad_host.com/app", "host name"),
            ("host:port/app", "port"),
            (
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "image ID",
            ),
        ];
        for (input, reason) in cases {
            let err = normalize_reference(input).unwrap_err();
            assert!(err.to_string().contains(reason), "{input}: {err}");
            assert!(err.to_string().contains("e.g. `app:1`"), "{input}: {err}");
        }
        let long = format!("{}/app", "a".repeat(260));
        assert!(
            normalize_reference(&long)
                .unwrap_err()
                .to_string()
                .contains("255")
        );
    }
}
