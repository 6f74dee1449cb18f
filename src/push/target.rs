//! Where images are pushed: `HOST[:PORT][/PREFIX]` as the user wrote it,
//! checked before anything is read or sent, and the repository each image
//! gets there.
//!
//! Plain HTTP is a decision about the network, so it is never a silent
//! fallback: HTTPS unless the host is this machine (127.0.0.0/8, ::1,
//! `localhost`: what docker also treats as an insecure registry, and what
//! kind's local registry listens on) or the user said `--allow-http`.

use super::PushError;
use crate::archive::ImageReference;
use std::net::IpAddr;

/// A registry and the repository prefix images go under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryTarget {
    /// `host`, `host:port` or `[v6]:port`, as in image names.
    pub host: String,
    /// Path components every repository starts with (`team/ci`).
    pub prefix: Option<String>,
    /// Speak plain HTTP instead of HTTPS.
    pub plain_http: bool,
    /// Where the CA certificates of the registry's TLS are (`--cert-dir`);
    /// None for the engines' own places ([`super::trust`]).
    pub cert_dir: Option<std::path::PathBuf>,
}

impl RegistryTarget {
    /// Parses `[http://|https://]HOST[:PORT][/PREFIX]`. `http://`, or no
    /// scheme with `allow_http`, asks for plain HTTP, which is refused for
    /// a host that is not loopback unless `allow_http`.
    pub fn parse(spec: &str, allow_http: bool) -> Result<RegistryTarget, PushError> {
        let bad = |reason: String| {
            PushError::BadTarget(format!(
                "registry {spec:?}: {reason}; write it as HOST[:PORT][/PREFIX], e.g. `registry.example.com/team` or `127.0.0.1:5000`"
            ))
        };
        let (scheme, rest) = match spec.split_once("://") {
            Some((scheme @ ("http" | "https"), rest)) => (Some(scheme), rest),
            Some((other, _)) => return Err(bad(format!("unknown scheme {other:?}"))),
            None => (None, spec),
        };
        let (host, prefix) = match rest.split_once('/') {
            Some((host, prefix)) => (host, prefix.trim_matches('/')),
            None => (rest, ""),
        };
        check_host(host).map_err(bad)?;
        let prefix = (!prefix.is_empty()).then(|| prefix.to_string());
        if let Some(prefix) = &prefix {
            check_repository_path(prefix).map_err(|reason| bad(format!("the prefix {reason}")))?;
        }
        let loopback = is_loopback(host);
        let plain_http = match scheme {
            Some("https") => false,
            Some(_) => true,
            None => loopback || allow_http,
        };
        if plain_http && !loopback && !allow_http {
            return Err(PushError::BadTarget(format!(
                "registry {spec:?} asks for plain HTTP to {host}, which is not this machine: anything on the network could read or change the images; use HTTPS (drop `http://`), or allow plain HTTP if the network is trusted (`--allow-http`; in a plan, `allowHttp: true`)"
            )));
        }
        Ok(RegistryTarget {
            host: host.to_string(),
            prefix,
            plain_http,
            cert_dir: None,
        })
    }

    /// `http://host` or `https://host`.
    pub fn base_url(&self) -> String {
        let scheme = if self.plain_http { "http" } else { "https" };
        format!("{scheme}://{}", self.host)
    }

    /// The repository `image` goes to: the prefix, then the image's path
    /// without its registry (and without docker.io's `library/`, so that
    /// `app:1` becomes `PREFIX/app`, as it would with `docker tag`).
    pub fn repository(&self, image: &ImageReference) -> String {
        let path = match image.domain() {
            "docker.io" => image
                .path()
                .strip_prefix("library/")
                .unwrap_or(image.path()),
            _ => image.path(),
        };
        match &self.prefix {
            Some(prefix) => format!("{prefix}/{path}"),
            None => path.to_string(),
        }
    }

    /// `host/repository:tag`, the name to pull the pushed image by.
    pub fn reference(&self, repository: &str, tag: &str) -> String {
        format!("{}/{repository}:{tag}", self.host)
    }
}

/// Whether `host` (with or without a port) is this machine.
pub fn is_loopback(host: &str) -> bool {
    let name = host_name(host);
    name.eq_ignore_ascii_case("localhost")
        || name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The host without its port: `[::1]:5000` is `[::1]`, `a:5000` is `a`.
pub(super) fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(name, _)| &host[..=name.len()]);
    }
    host.split_once(':').map_or(host, |(name, _)| name)
}

fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("no host".to_string());
    }
    let name = host_name(host);
    let port = &host[name.len()..];
    if let Some(port) = port.strip_prefix(':') {
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!("{port:?} is not a port number"));
        }
    } else if !port.is_empty() {
        return Err(format!("{host:?} is not a host name"));
    }
    let valid = if let Some(v6) = name.strip_prefix('[') {
        v6.strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    };
    if valid {
        Ok(())
    } else {
        Err(format!("{name:?} is not a host name"))
    }
}

/// Repository path components as the distribution spec allows them:
/// lowercase alphanumerics separated by `.`, `_`, `__` or `-`s.
fn check_repository_path(path: &str) -> Result<(), String> {
    for component in path.split('/') {
        let separators_ok = !component.starts_with(['.', '_', '-'])
            && !component.ends_with(['.', '_', '-'])
            && !component.contains("..")
            && !component.contains("___");
        let chars_ok = component
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        if component.is_empty() || !separators_ok || !chars_ok {
            return Err(format!(
                "{path:?} is not a repository path (lowercase letters, digits and single `.`, `_` or `-` between them, `/` between components)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::normalize_reference;

    fn target(spec: &str, allow_http: bool) -> RegistryTarget {
        RegistryTarget::parse(spec, allow_http).unwrap()
    }

    #[test]
    fn https_unless_loopback_or_allowed() {
        let remote = target("registry.example.com/team/ci", false);
        assert_eq!(remote.host, "registry.example.com");
        assert_eq!(remote.prefix.as_deref(), Some("team/ci"));
        assert!(!remote.plain_http);
        assert_eq!(remote.base_url(), "https://registry.example.com");

        for local in [
            "127.0.0.1:5000",
            "127.3.2.1",
            "localhost:5001/x",
            "[::1]:5000",
        ] {
            assert!(target(local, false).plain_http, "{local}");
        }
        assert!(!target("https://127.0.0.1:5000", false).plain_http);
        assert!(target("registry.lan:5000", true).plain_http);
        assert!(target("http://registry.lan:5000", true).plain_http);
    }

    #[test]
    fn plain_http_elsewhere_is_refused_with_the_fix() {
        for spec in ["http://10.1.2.3:5000", "http://registry.lan/x"] {
            let error = RegistryTarget::parse(spec, false).unwrap_err();
            assert!(matches!(error, PushError::BadTarget(_)), "{spec}");
            assert!(error.to_string().contains("--allow-http"), "{error}");
        }
        // A name that merely starts like a loopback address is not one.
        let error = RegistryTarget::parse("http://127.0.0.1.example.com", false).unwrap_err();
        assert!(error.to_string().contains("--allow-http"), "{error}");
    }

    #[test]
    fn rejects_what_is_not_a_registry() {
        for spec in [
            "",
            "/team",
            "host:0",
            "host:99999",
            "host:port",
            "ftp://host",
            "host/Team",
            "host/a//b",
            "ho st",
            "[::1",
            "[zz]:5000",
        ] {
            let error = RegistryTarget::parse(spec, false).unwrap_err();
            assert!(
                error.to_string().contains("HOST[:PORT][/PREFIX]"),
                "{spec}: {error}"
            );
        }
    }

    #[test]
    fn repositories_drop_the_source_registry() {
        let with_prefix = target("127.0.0.1:5000/ci", false);
        let no_prefix = target("127.0.0.1:5000", false);
        let cases = [
            ("app:1", "ci/app", "app"),
            ("docker.io/library/app:1", "ci/app", "app"),
            ("team/app:1", "ci/team/app", "team/app"),
            ("localhost/app:1", "ci/app", "app"),
            ("ghcr.io/org/app:1", "ci/org/app", "org/app"),
        ];
        for (image, prefixed, plain) in cases {
            let image = normalize_reference(image).unwrap();
            assert_eq!(with_prefix.repository(&image), prefixed);
            assert_eq!(no_prefix.repository(&image), plain);
        }
        assert_eq!(
            with_prefix.reference("ci/app", "1"),
            "127.0.0.1:5000/ci/app:1"
        );
    }
}
