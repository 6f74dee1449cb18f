//! Answering a registry's `401 Unauthorized`: the `WWW-Authenticate`
//! challenge says how. `Basic` gets the user's credentials on every request;
//! `Bearer realm=…,service=…` gets a token from the realm for the
//! repositories a request touches (`repository:ci/app:pull,push`), fetched
//! with the credentials when there are any (anonymous otherwise), and kept
//! per scope for the rest of the command. The credentials go to a realm
//! only over HTTPS or on the registry's own host ([`may_send_credentials`]):
//! a challenge must not be able to send a password in clear text to any
//! host it names.
//!
//! The headers built here are [`Secret`]s; the errors name the registry, the
//! file the credentials came from and the fix, never the credentials.

use super::PushError;
use super::client::Failure;
use super::credentials::{Lookup, Secret};
use super::retry::is_transient_status;
use std::collections::HashMap;

/// What a `WWW-Authenticate` header asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// Parses `Basic realm="x"` or `Bearer realm="https://…",service="…",scope="…"`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(params);
    let find = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.clone())
    };
    Some(Challenge::Bearer {
        realm: find("realm")?,
        service: find("service"),
    })
}

/// `key="value", key2=value2` pairs; quoted values may hold commas.
fn parse_params(text: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut rest = text.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim().trim_start_matches(',').trim().to_string();
        let after = after.trim_start();
        let (value, remaining) = match after.strip_prefix('"') {
            Some(quoted) => match quoted.find('"') {
                Some(end) => (quoted[..end].to_string(), &quoted[end + 1..]),
                None => (quoted.to_string(), ""),
            },
            None => match after.find(',') {
                Some(end) => (after[..end].trim().to_string(), &after[end..]),
                None => (after.trim().to_string(), ""),
            },
        };
        params.push((key, value));
        rest = remaining.trim_start().trim_start_matches(',');
    }
    params
}

/// How requests to one registry are authorized.
pub struct Auth {
    host: String,
    lookup: Lookup,
    /// The registry asked for Basic: every request carries the credentials.
    basic: bool,
    /// Bearer tokens by scope.
    tokens: HashMap<String, Secret>,
}

impl Auth {
    pub fn new(host: &str, lookup: Lookup) -> Auth {
        Auth {
            host: host.to_string(),
            lookup,
            basic: false,
            tokens: HashMap::new(),
        }
    }

    /// The `Authorization` header for a request in `scope`, if one is due.
    pub fn header(&self, scope: &str) -> Option<Secret> {
        if let Some(token) = self.tokens.get(scope) {
            return Some(token.clone());
        }
        if self.basic {
            return self.lookup.credentials.as_ref().map(|c| c.basic_header());
        }
        None
    }

    /// Gets what a 401's `challenge` asks for, so that the request can be
    /// sent again: the credentials (refused if they were sent already), or
    /// a token for `scope` (a new one when the one sent had expired).
    pub fn answer(
        &mut self,
        agent: &ureq::Agent,
        challenge: Option<&str>,
        scope: &str,
    ) -> Result<(), Failure> {
        match challenge.and_then(parse_challenge) {
            Some(Challenge::Basic) => {
                if self.basic || self.lookup.credentials.is_none() {
                    return Err(self.refused());
                }
                self.basic = true;
                Ok(())
            }
            Some(Challenge::Bearer { realm, service }) => {
                let token = self.fetch_token(agent, &realm, service.as_deref(), scope)?;
                self.tokens.insert(scope.to_string(), token);
                Ok(())
            }
            None => Err(Failure::Fatal(PushError::Unauthorized {
                registry: self.host.clone(),
                detail: format!(
                    "answered 401 with a challenge loadmaster does not know ({:?}); only Basic and Bearer token authentication are supported",
                    challenge.unwrap_or("none")
                ),
            })),
        }
    }

    fn fetch_token(
        &self,
        agent: &ureq::Agent,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<Secret, Failure> {
        let mut request = agent.get(realm);
        if let Some(service) = service {
            request = request.query("service", service);
        }
        for part in scope.split(' ') {
            request = request.query("scope", part);
        }
        let withheld = match &self.lookup.credentials {
            Some(credentials) if may_send_credentials(&self.host, realm) => {
                request = request.header("Authorization", credentials.basic_header().expose());
                false
            }
            Some(_) => true,
            None => false,
        };
        let mut response = request
            .call()
            .map_err(|error| Failure::from_transport(&self.host, error))?;
        let status = response.status().as_u16();
        if is_transient_status(status) {
            return Err(Failure::Transient(format!(
                "the token service {realm} answered {status}"
            )));
        }
        if (status == 401 || status == 403) && withheld {
            return Err(Failure::Fatal(PushError::Unauthorized {
                registry: self.host.clone(),
                detail: format!(
                    "sends clients for tokens to {realm}, plain HTTP on another host, so loadmaster did not send it the credentials for {} and it refused an anonymous token (HTTP {status}); the registry's token service must be on HTTPS (its `auth.token.realm`) or on the registry's own host",
                    self.host
                ),
            }));
        }
        if status == 401 || status == 403 {
            return Err(self.refused());
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .unwrap_or_default();
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            token: Option<String>,
            access_token: Option<String>,
        }
        let answer: Option<TokenAnswer> = serde_json::from_str(&body).ok();
        match answer.and_then(|a| a.token.or(a.access_token)) {
            Some(token) if status == 200 => Ok(Secret::new(format!("Bearer {token}"))),
            _ => Err(Failure::Fatal(PushError::Unauthorized {
                registry: self.host.clone(),
                detail: format!(
                    "gave no token for {scope} (the token service {realm} answered {status})"
                ),
            })),
        }
    }

    /// The error for credentials that are missing or were refused.
    pub fn refused(&self) -> Failure {
        let host = &self.host;
        let login = format!("`docker login {host}` (or `podman login {host}`)");
        let detail = match &self.lookup.credentials {
            Some(credentials) => format!(
                "refused the credentials for {host} from {} (HTTP 401): they are wrong or expired; log in again with {login}",
                credentials.file.display()
            ),
            None => {
                let searched: Vec<String> = self
                    .lookup
                    .searched
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                format!(
                    "asks for credentials (HTTP 401), and there are none for {host} in {}: log in with {login}",
                    if searched.is_empty() {
                        "any auth file (neither HOME nor DOCKER_CONFIG is set)".to_string()
                    } else {
                        searched.join(", ")
                    }
                )
            }
        };
        Failure::Fatal(PushError::Unauthorized {
            registry: host.clone(),
            detail,
        })
    }
}

/// Whether a token `realm` may get the Basic credentials of the registry
/// at `registry` (`host[:port]`): over HTTPS, or on the registry's own host
/// (any port: a token service beside a registry on loopback or a trusted
/// network, which the user already reaches in plain HTTP).
pub fn may_send_credentials(registry: &str, realm: &str) -> bool {
    let Ok(uri) = realm.parse::<ureq::http::Uri>() else {
        return false;
    };
    if uri
        .scheme_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("https"))
    {
        return true;
    }
    let registry_host = super::target::host_name(registry)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let realm_host = uri.host().unwrap_or("");
    let realm_host = realm_host.trim_start_matches('[').trim_end_matches(']');
    !realm_host.is_empty() && realm_host.eq_ignore_ascii_case(registry_host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_go_to_https_realms_and_to_the_registrys_own_host() {
        assert!(may_send_credentials(
            "reg.example.com",
            "https://auth.example.org/token"
        ));
        assert!(may_send_credentials(
            "127.0.0.1:5000",
            "http://127.0.0.1:5001/token"
        ));
        assert!(may_send_credentials(
            "Reg.Example.com:5000",
            "http://reg.example.com/t"
        ));
        assert!(may_send_credentials(
            "[::1]:5000",
            "http://[::1]:5001/token"
        ));
        assert!(!may_send_credentials(
            "reg.example.com",
            "http://auth.example.org/token"
        ));
        assert!(!may_send_credentials(
            "127.0.0.1:5000",
            "http://127.0.0.2:5000/token"
        ));
        assert!(!may_send_credentials("127.0.0.1:5000", "not a url"));
        assert!(!may_send_credentials("127.0.0.1:5000", "/token"));
    }

    #[test]
    fn reads_basic_and_bearer_challenges() {
        assert_eq!(
            parse_challenge(r#"Basic realm="basic-realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.example.com/token?x=1,2",service="registry.example.com",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example.com/token?x=1,2".into(),
                service: Some("registry.example.com".into()),
            })
        );
        assert_eq!(
            parse_challenge("bearer realm=https://t.example.com/token"),
            Some(Challenge::Bearer {
                realm: "https://t.example.com/token".into(),
                service: None,
            })
        );
        assert_eq!(parse_challenge("Bearer service=\"x\""), None);
        assert_eq!(parse_challenge("Negotiate abc"), None);
    }
}
