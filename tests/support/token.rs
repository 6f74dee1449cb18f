//! A token server for a [`super::registry::TestRegistry`] with `Bearer`
//! authentication, as Docker Hub, GHCR and Harbor ask for it: the registry
//! answers 401 with `WWW-Authenticate: Bearer realm=…,service=…,scope=…`,
//! the client fetches a token from the realm with its Basic credentials,
//! and the registry checks the token's signature against a certificate it
//! was given (`auth.token.rootcertbundle`).
//!
//! The tokens are real: JWTs signed RS256 with a key made by `openssl`,
//! carrying its certificate (`x5c`) and the access the client asked for.
//! Wrong or missing credentials get a 401 from the realm.

use super::openssl::{openssl, openssl_with_input, self_signed};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

pub const SERVICE: &str = "loadmaster-test-registry";
pub const ISSUER: &str = "loadmaster-test-tokens";

/// A running token server; stopped when dropped.
pub struct TokenServer {
    pub port: u16,
    /// The certificate the registry checks tokens against.
    pub certificate: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TokenServer {
    /// Makes a signing key and certificate in `dir` and serves tokens to
    /// `user` with `password` on a free 127.0.0.1 port.
    pub fn start(dir: &Path, user: &str, password: &str) -> TokenServer {
        let key = dir.join("token.key");
        let certificate = dir.join("token.crt");
        self_signed(dir, "loadmaster test tokens", "token.key", "token.crt");
        let der = openssl(dir, &["x509", "-in", "token.crt", "-outform", "DER"]);
        let header =
            serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [STANDARD.encode(der)]});
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let expected = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let signer = Signer {
            dir: dir.to_path_buf(),
            key,
            header: URL_SAFE_NO_PAD.encode(header.to_string()),
            subject: user.to_string(),
        };
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(stream) = stream {
                    answer(stream, &expected, &signer);
                }
            }
        });
        TokenServer {
            port,
            certificate,
            stop,
            thread: Some(thread),
        }
    }

    /// The realm, as the registry names it in its challenges.
    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Signer {
    dir: PathBuf,
    key: PathBuf,
    /// The JWT header, base64url.
    header: String,
    subject: String,
}

impl Signer {
    /// A token granting `scopes` (`repository:NAME:ACTIONS`).
    fn token(&self, scopes: &[String]) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let access: Vec<serde_json::Value> = scopes
            .iter()
            .filter_map(|scope| {
                let mut parts = scope.splitn(3, ':');
                let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
                Some(serde_json::json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
            })
            .collect();
        let claims = serde_json::json!({
            "iss": ISSUER, "sub": self.subject, "aud": SERVICE,
            "exp": now + 600, "nbf": now - 10, "iat": now,
            "jti": format!("{now}-{}", scopes.len()), "access": access,
        });
        let signed = format!(
            "{}.{}",
            self.header,
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let key = self.key.to_str().unwrap();
        let signature = openssl_with_input(
            &self.dir,
            &["dgst", "-sha256", "-sign", key],
            signed.as_bytes(),
        );
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// Answers one `GET /token?service=…&scope=…` request.
fn answer(stream: TcpStream, expected: &str, signer: &Signer) {
    let mut reader = BufReader::new(stream);
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    let mut authorized = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("authorization")
        {
            authorized = value.trim() == expected;
        }
    }
    let target = request.split_whitespace().nth(1).unwrap_or_default();
    let scopes: Vec<String> = target
        .split_once('?')
        .map(|(_, query)| query)
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.strip_prefix("scope="))
        .map(percent_decode)
        .collect();
    let (status, body) = if authorized {
        let token = signer.token(&scopes);
        (
            "200 OK",
            serde_json::json!({"token": token, "access_token": token, "expires_in": 600})
                .to_string(),
        )
    } else {
        (
            "401 Unauthorized",
            r#"{"details":"incorrect username or password"}"#.to_string(),
        )
    };
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
