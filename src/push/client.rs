//! Requests to one registry: URLs, authorization (a 401 is answered once,
//! then the request is sent again), and retries of transient failures with
//! backoff, each one told to the progress and recorded.
//!
//! Bodies are byte slices the caller holds (a chunk of a layer, at most
//! [`super::upload::CHUNK_BYTES`]), so any try can be sent again as it was.

use super::PushError;
use super::auth::Auth;
use super::credentials::Lookup;
use super::progress::PushProgress;
use super::retry::{Retry, RetryPolicy, is_transient_status};
use super::trust;
use crate::archive::{RegistryTarget, is_loopback};
use std::io::ErrorKind;
use std::time::Duration;

/// Why one try failed.
#[derive(Debug)]
pub enum Failure {
    /// Worth another try: the connection, a timeout, a 429 or a 5xx.
    Transient(String),
    Fatal(PushError),
}

impl From<PushError> for Failure {
    fn from(error: PushError) -> Failure {
        Failure::Fatal(error)
    }
}

impl Failure {
    /// A failure below HTTP (connecting, TLS, the connection dropping).
    pub fn from_transport(registry: &str, error: ureq::Error) -> Failure {
        match error {
            ureq::Error::Io(io) if is_transient_io(io.kind()) => Failure::Transient(io.to_string()),
            // rustls reports a certificate it cannot verify through the
            // connection's reads, as InvalidData.
            ureq::Error::Io(io) if io.kind() == ErrorKind::InvalidData => {
                tls_failure(registry, &io)
            }
            ureq::Error::Timeout(what) => Failure::Transient(format!("timed out ({what})")),
            ureq::Error::ConnectionFailed => Failure::Transient("the connection failed".into()),
            ureq::Error::Protocol(protocol) => {
                Failure::Transient(format!("the connection broke off ({protocol})"))
            }
            ureq::Error::HostNotFound => Failure::Fatal(PushError::Connection {
                registry: registry.to_string(),
                detail: "its host name does not resolve; check the name after --registry".into(),
            }),
            ureq::Error::Rustls(_) | ureq::Error::Tls(_) => tls_failure(registry, &error),
            other => Failure::Fatal(PushError::Connection {
                registry: registry.to_string(),
                detail: other.to_string(),
            }),
        }
    }
}

/// A TLS handshake that failed: most often a certificate from a CA of the
/// registry's own.
fn tls_failure(registry: &str, error: &dyn std::fmt::Display) -> Failure {
    Failure::Fatal(PushError::Connection {
        registry: registry.to_string(),
        detail: format!(
            "the TLS connection failed: {error}; a registry whose certificate comes from a CA of its own is trusted with that CA's file in /etc/docker/certs.d/{registry}/ca.crt (or /etc/containers/certs.d/…), or in a directory given with --cert-dir; if it speaks plain HTTP on a trusted network, pass --allow-http"
        ),
    })
}

fn is_transient_io(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
            | ErrorKind::UnexpectedEof
            | ErrorKind::TimedOut
            | ErrorKind::NotConnected
            | ErrorKind::Interrupted
    )
}

/// A registry's answer: status, headers and a small body.
pub struct Answer {
    pub status: u16,
    headers: ureq::http::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The registry's own explanation of an error (`{"errors":[…]}`).
    pub fn explanation(&self) -> String {
        #[derive(serde::Deserialize)]
        struct Errors {
            errors: Vec<ErrorEntry>,
        }
        #[derive(serde::Deserialize)]
        struct ErrorEntry {
            code: Option<String>,
            message: Option<String>,
        }
        let listed: Option<Vec<String>> =
            serde_json::from_str::<Errors>(&self.body).ok().map(|e| {
                e.errors
                    .into_iter()
                    .map(|entry| {
                        [entry.code, entry.message]
                            .into_iter()
                            .flatten()
                            .collect::<Vec<_>>()
                            .join(": ")
                    })
                    .collect()
            });
        match listed {
            Some(listed) if !listed.is_empty() => {
                format!("HTTP {} ({})", self.status, listed.join("; "))
            }
            _ => format!("HTTP {}", self.status),
        }
    }
}

/// Bytes of an error body kept: enough for the registry's explanation.
const BODY_LIMIT: u64 = 64 << 10;

/// One request's method, where it goes, and what it carries.
pub struct Request<'a> {
    pub method: &'a str,
    /// A path (`/v2/…`) or a registry-given location, absolute or not.
    pub url: &'a str,
    /// The token scope (`repository:ci/app:pull,push`).
    pub scope: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// The connection to one registry.
pub struct Client<'p> {
    agent: ureq::Agent,
    target: RegistryTarget,
    auth: Auth,
    policy: RetryPolicy,
    progress: &'p dyn PushProgress,
    retries: Vec<Retry>,
}

impl<'p> Client<'p> {
    pub fn new(
        target: &RegistryTarget,
        credentials: Lookup,
        policy: RetryPolicy,
        progress: &'p dyn PushProgress,
    ) -> Result<Client<'p>, PushError> {
        let mut config = ureq::Agent::config_builder().http_status_as_error(false);
        if !target.plain_http {
            let tls = trust::tls_config(&target.host, target.cert_dir.as_deref())?;
            config = config.tls_config(tls);
        }
        if is_loopback(&target.host) {
            // As Go's (docker's, podman's) clients do: a proxy from the
            // environment is never used for this machine.
            config = config.proxy(None);
        }
        let config = config
            .user_agent(concat!("loadmaster/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(Duration::from_secs(15)))
            // A registry checks a blob's digest before it answers the last
            // PUT: reading a GiB back may take a while.
            .timeout_recv_response(Some(Duration::from_secs(300)))
            .timeout_send_body(Some(Duration::from_secs(300)))
            .build();
        Ok(Client {
            agent: ureq::Agent::new_with_config(config),
            target: target.clone(),
            auth: Auth::new(&target.host, credentials),
            policy,
            progress,
            retries: Vec::new(),
        })
    }

    pub fn registry(&self) -> &str {
        &self.target.host
    }

    /// The retries since the last call.
    pub fn take_retries(&mut self) -> Vec<Retry> {
        std::mem::take(&mut self.retries)
    }

    /// An absolute URL for a path or a `Location` the registry gave.
    fn url(&self, url: &str) -> String {
        if url.starts_with("http://") || url.starts_with("https://") {
            url.to_string()
        } else {
            format!("{}{url}", self.target.base_url())
        }
    }

    /// Sends one request; a 401 is answered (credentials, a token) and the
    /// request sent once more. Transient statuses are failures; every
    /// other status is the caller's to read.
    pub fn send(&mut self, request: &Request<'_>) -> Result<Answer, Failure> {
        let mut answered_challenge = false;
        loop {
            let authorization = self.auth.header(request.scope);
            let answer = self.send_once(request, authorization.as_ref().map(|s| s.expose()))?;
            if answer.status == 401 {
                if answered_challenge {
                    // What the challenge asked for was refused too.
                    return Err(self.auth.refused());
                }
                let challenge = answer.header("www-authenticate");
                self.auth.answer(&self.agent, challenge, request.scope)?;
                answered_challenge = true;
                continue;
            }
            if is_transient_status(answer.status) {
                return Err(Failure::Transient(format!(
                    "{} answered {}",
                    self.target.host,
                    answer.explanation()
                )));
            }
            return Ok(answer);
        }
    }

    fn send_once(
        &self,
        request: &Request<'_>,
        authorization: Option<&str>,
    ) -> Result<Answer, Failure> {
        let mut builder = ureq::http::Request::builder()
            .method(request.method)
            .uri(self.url(request.url));
        for (name, value) in request.headers {
            builder = builder.header(*name, *value);
        }
        if let Some(authorization) = authorization {
            builder = builder.header("Authorization", authorization);
        }
        let built = builder.body(request.body).map_err(|e| {
            Failure::Fatal(PushError::Connection {
                registry: self.target.host.clone(),
                detail: format!("cannot make a request of {}: {e}", request.url),
            })
        })?;
        let mut response = self
            .agent
            .run(built)
            .map_err(|error| Failure::from_transport(&self.target.host, error))?;
        let status = response.status().as_u16();
        let body = if request.method == "HEAD" {
            String::new()
        } else {
            response
                .body_mut()
                .with_config()
                .limit(BODY_LIMIT)
                .read_to_string()
                .unwrap_or_default()
        };
        Ok(Answer {
            status,
            headers: response.headers().clone(),
            body,
        })
    }

    /// Runs `attempt` until it succeeds, fails for good, or the policy's
    /// tries are spent; `what` names it in the retry records and errors.
    /// `attempt` gets the try's number (1 for the first).
    pub fn retrying<T>(
        &mut self,
        what: &str,
        mut attempt: impl FnMut(&mut Client<'p>, u32) -> Result<T, Failure>,
    ) -> Result<T, PushError> {
        let attempts = self.policy.attempts.max(1);
        for number in 1.. {
            match attempt(self, number) {
                Ok(value) => return Ok(value),
                Err(Failure::Fatal(error)) => return Err(error),
                Err(Failure::Transient(error)) if number >= attempts => {
                    return Err(PushError::GaveUp {
                        registry: self.target.host.clone(),
                        url: self.target.base_url(),
                        request: what.to_string(),
                        attempts,
                        error,
                    });
                }
                Err(Failure::Transient(error)) => {
                    let wait = self.policy.wait_after(number);
                    let retry = Retry {
                        request: what.to_string(),
                        attempt: number,
                        attempts,
                        error,
                        wait_ms: wait.as_millis() as u64,
                    };
                    self.progress.retry(&retry);
                    self.retries.push(retry);
                    std::thread::sleep(wait);
                }
            }
        }
        unreachable!("the loop returns once the tries are spent")
    }

    /// An answer no step expected, as an error.
    pub fn unexpected(&self, what: &str, answer: &Answer) -> Failure {
        Failure::Fatal(PushError::Registry {
            registry: self.target.host.clone(),
            request: what.to_string(),
            detail: answer.explanation(),
        })
    }
}
