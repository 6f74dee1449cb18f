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
use super::target::{RegistryTarget, is_loopback};
use super::trust;
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

/// Whether absolute `url` has the scheme, host and port of `base`
/// (`http://host:port`), host names compared without case.
fn same_origin(url: &str, base: &str) -> bool {
    let origin = |url: &str| {
        let uri: ureq::http::Uri = url.parse().ok()?;
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        Some((scheme, uri.host()?.to_ascii_lowercase(), port))
    };
    matches!((origin(url), origin(base)), (Some(a), Some(b)) if a == b)
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
        let url = self.url(request.url);
        let mut builder = ureq::http::Request::builder()
            .method(request.method)
            .uri(&url);
        for (name, value) in request.headers {
            builder = builder.header(*name, *value);
        }
        // A `Location` may send an upload elsewhere (a storage service, a
        // mirror): the registry's credentials and tokens are its own, as
        // docker's and containers/image's clients keep them per host.
        if let Some(authorization) = authorization
            && same_origin(&url, &self.target.base_url())
        {
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

#[cfg(test)]
mod tests {
    //! A registry and the hosts it names, as small HTTP servers on loopback
    //! addresses of their own (127.0.0.1 for the registry, 127.0.0.2 for
    //! "another host"), each recording the `Authorization` it was sent.

    use super::*;
    use crate::push::credentials::{Credentials, Secret};
    use crate::push::progress::Silent;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    /// What a server was asked: the request line and its `Authorization`.
    type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

    /// Serves on `ip`, answering each request with `answer(request line,
    /// authorization)`: status and extra header lines.
    fn serve(
        ip: &str,
        answer: impl Fn(&str, Option<&str>) -> (u16, String) + Send + Sync + 'static,
    ) -> (u16, Seen) {
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen: Seen = Arc::default();
        let log = seen.clone();
        let answer = Arc::new(answer);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (log, answer) = (log.clone(), answer.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut writer = stream;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let (mut authorization, mut length) = (None, 0usize);
                        loop {
                            let mut header = String::new();
                            reader.read_line(&mut header).unwrap();
                            let header = header.trim_end();
                            if header.is_empty() {
                                break;
                            }
                            let (name, value) = header.split_once(':').unwrap();
                            match name.to_ascii_lowercase().as_str() {
                                "authorization" => authorization = Some(value.trim().to_string()),
                                "content-length" => length = value.trim().parse().unwrap(),
                                _ => {}
                            }
                        }
                        let mut body = vec![0; length];
                        reader.read_exact(&mut body).unwrap();
                        let line = line.trim_end().to_string();
                        let (status, headers) = answer(&line, authorization.as_deref());
                        log.lock().unwrap().push((line, authorization));
                        let body = if status == 200 {
                            r#"{"token":"t0k"}"#
                        } else {
                            ""
                        };
                        let reply = format!(
                            "HTTP/1.1 {status} X\r\n{headers}Content-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if writer.write_all(reply.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (port, seen)
    }

    fn client_for(port: u16) -> Client<'static> {
        let target = RegistryTarget::parse(&format!("127.0.0.1:{port}"), false).unwrap();
        let credentials = Lookup {
            credentials: Some(Credentials {
                username: "ci".into(),
                password: Secret::new("pw".into()),
                file: "/auth.json".into(),
            }),
            searched: Vec::new(),
        };
        Client::new(&target, credentials, RetryPolicy::default(), &Silent).unwrap()
    }

    fn post(url: &str) -> Request<'_> {
        Request {
            method: "POST",
            url,
            scope: "repository:ci/app:pull,push",
            headers: &[],
            body: b"x",
        }
    }

    const BASIC: &str = "Basic Y2k6cHc=";

    #[test]
    fn authorization_goes_only_to_the_registrys_own_locations() {
        let (elsewhere, elsewhere_seen) = serve("127.0.0.2", |_, _| (202, String::new()));
        let (port, seen) = serve(
            "127.0.0.1",
            move |line, authorization| match authorization {
                None => (401, "WWW-Authenticate: Basic realm=\"r\"\r\n".into()),
                Some(_) if line.starts_with("POST /v2/ci/app/blobs/uploads/ ") => (
                    202,
                    format!("Location: http://127.0.0.2:{elsewhere}/upload/1\r\n"),
                ),
                Some(_) => (202, String::new()),
            },
        );
        let mut client = client_for(port);
        let answer = client.send(&post("/v2/ci/app/blobs/uploads/")).unwrap();
        let location = answer.header("location").unwrap().to_string();
        client.send(&post(&location)).unwrap();
        let same_host = format!("http://127.0.0.1:{port}/v2/ci/app/blobs/uploads/2");
        client.send(&post(&same_host)).unwrap();

        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert_eq!(seen[1].1.as_deref(), Some(BASIC), "{seen:?}");
        assert_eq!(seen[2].1.as_deref(), Some(BASIC), "{seen:?}");
        let elsewhere_seen = elsewhere_seen.lock().unwrap();
        assert_eq!(elsewhere_seen.len(), 1, "{elsewhere_seen:?}");
        assert_eq!(elsewhere_seen[0].1, None, "sent to another host");
    }

    /// A registry whose Bearer challenge names `realm_ip`'s token server.
    fn bearer_registry(realm_ip: &str) -> (Client<'static>, Seen, Seen) {
        let (tokens, token_seen) = serve(realm_ip, |_, authorization| match authorization {
            Some(BASIC) => (200, String::new()),
            _ => (401, String::new()),
        });
        let realm = format!("http://{realm_ip}:{tokens}/token");
        let (port, seen) = serve("127.0.0.1", move |_, authorization| match authorization {
            Some("Bearer t0k") => (202, String::new()),
            _ => (
                401,
                format!("WWW-Authenticate: Bearer realm=\"{realm}\",service=\"s\"\r\n"),
            ),
        });
        (client_for(port), seen, token_seen)
    }

    #[test]
    fn basic_credentials_go_to_a_plain_http_realm_on_the_registrys_host() {
        let (mut client, seen, token_seen) = bearer_registry("127.0.0.1");
        client.send(&post("/v2/ci/app/blobs/uploads/")).unwrap();
        assert_eq!(token_seen.lock().unwrap()[0].1.as_deref(), Some(BASIC));
        assert_eq!(seen.lock().unwrap()[1].1.as_deref(), Some("Bearer t0k"));
    }

    #[test]
    fn basic_credentials_never_go_to_a_plain_http_realm_elsewhere() {
        let (mut client, _, token_seen) = bearer_registry("127.0.0.2");
        let error = match client.send(&post("/v2/ci/app/blobs/uploads/")) {
            Err(Failure::Fatal(error)) => error.to_string(),
            Err(Failure::Transient(error)) => panic!("transient: {error}"),
            Ok(answer) => panic!("answered {}", answer.status),
        };
        let token_seen = token_seen.lock().unwrap();
        assert_eq!(token_seen.len(), 1, "{token_seen:?}");
        assert_eq!(token_seen[0].1, None, "credentials sent in clear text");
        assert!(
            error.contains("plain HTTP on another host") && error.contains("auth.token.realm"),
            "{error}"
        );
        assert!(!error.contains("pw") && !error.contains(BASIC), "{error}");
    }
}
