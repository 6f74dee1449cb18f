//! A real registry for tests: Debian's `docker-registry` (distribution
//! 2.8, `apt-get install docker-registry`) serving a temporary directory on
//! a free 127.0.0.1 port, not the package's own service. Its access log is
//! kept, so that tests count what a client really asked, not what the
//! client says it did. Killed and its storage removed when dropped, also
//! when the test panics.

use super::openssl;
use super::token::{self, TokenServer};
use super::{TempDir, unique_name};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PROGRAM: &str = "docker-registry";

/// One request as the registry's access log has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    /// The path and query as sent.
    pub target: String,
    pub status: u16,
}

impl LoggedRequest {
    /// Whether this request sent blob bytes or finished a blob upload (a
    /// mount does neither).
    pub fn uploads_blob(&self) -> bool {
        self.target.contains("/blobs/uploads/") && matches!(self.method.as_str(), "PATCH" | "PUT")
    }

    /// The blob a finished upload stored (`PUT …?digest=`).
    pub fn finished_upload(&self) -> Option<String> {
        if self.method != "PUT" || !self.target.contains("/blobs/uploads/") || self.status != 201 {
            return None;
        }
        let query = self.target.split_once('?')?.1;
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix("digest="))
            .map(|digest| digest.replace("%3A", ":").replace("%3a", ":"))
    }
}

/// A registry process and its storage.
pub struct TestRegistry {
    pub port: u16,
    dir: TempDir,
    child: Option<Child>,
    /// The realm of a registry with Bearer authentication.
    _tokens: Option<TokenServer>,
}

/// Who may push.
enum Access<'a> {
    Anyone,
    /// Basic authentication against an htpasswd file.
    Basic(&'a str, &'a str),
    /// Bearer tokens from a [`TokenServer`] that checks these credentials.
    Token(&'a str, &'a str),
}

impl TestRegistry {
    /// A registry without authentication.
    pub fn start() -> TestRegistry {
        TestRegistry::start_with(Access::Anyone, false)
    }

    /// A registry that asks for Bearer tokens, from a token server of its
    /// own that hands them to `user` with `password` (as Docker Hub and
    /// most hosted registries do).
    pub fn with_token_auth(user: &str, password: &str) -> TestRegistry {
        TestRegistry::start_with(Access::Token(user, password), false)
    }

    /// A registry that speaks HTTPS only, with a certificate for
    /// 127.0.0.1 from a CA made for it ([`TestRegistry::ca_dir`] holds
    /// the CA's `ca.crt`), made with `openssl`.
    pub fn with_tls() -> TestRegistry {
        TestRegistry::start_with(Access::Anyone, true)
    }

    /// The directory with the CA certificate of a [`TestRegistry::with_tls`].
    pub fn ca_dir(&self) -> std::path::PathBuf {
        self.dir.path.join("ca")
    }

    /// A registry that asks for Basic credentials, checked against an
    /// htpasswd file with a bcrypt hash (`htpasswd -Bbn`).
    pub fn with_user(user: &str, password: &str) -> TestRegistry {
        TestRegistry::start_with(Access::Basic(user, password), false)
    }

    fn start_with(access: Access, tls: bool) -> TestRegistry {
        let dir = TempDir::new("lmt-registry");
        let tls = if tls {
            tls_config(&dir.path)
        } else {
            String::new()
        };
        let mut tokens = None;
        let auth = match access {
            Access::Anyone => String::new(),
            Access::Token(user, password) => {
                let server = TokenServer::start(&dir.path, user, password);
                let config = format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    server.realm(),
                    token::SERVICE,
                    token::ISSUER,
                    server.certificate.display()
                );
                tokens = Some(server);
                config
            }
            Access::Basic(user, password) => {
                let htpasswd = Command::new("htpasswd")
                    .args(["-Bbn", user, password])
                    .output()
                    .expect("run htpasswd (apt-get install apache2-utils)");
                assert!(htpasswd.status.success(), "htpasswd failed");
                let file = dir.path.join("htpasswd");
                std::fs::write(&file, htpasswd.stdout).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: loadmaster-test\n    path: {}\n",
                    file.display()
                )
            }
        };
        // The port is free when chosen; another process taking it before
        // the registry binds it shows as a registry that does not start.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // A fixed http.secret signs upload locations, so that a restarted
        // registry still knows the uploads it had; `delete` lets a test
        // take a blob out of a repository.
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\nstorage:\n  delete:\n    enabled: true\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: {}\n{tls}{auth}",
            dir.path.join("storage").display(),
            unique_name("secret"),
        );
        std::fs::write(dir.path.join("config.yml"), config).unwrap();
        let mut registry = TestRegistry {
            port,
            dir,
            child: None,
            _tokens: tokens,
        };
        registry.run();
        registry
    }

    /// Starts the process and waits until it accepts connections.
    fn run(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new(PROGRAM)
            .arg("serve")
            .arg(self.dir.path.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {PROGRAM} (apt-get install docker-registry): {e}")
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let exited = self.child.as_mut().unwrap().try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "{PROGRAM} did not start on port {}: {}",
                self.port,
                std::fs::read_to_string(self.log_path()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log_path(&self) -> std::path::PathBuf {
        self.dir.path.join("registry.log")
    }

    /// Every request the registry answered so far, in order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        log.lines().filter_map(access_line).collect()
    }

    /// Sends a request without a body (the test's own HTTP client, not
    /// loadmaster's) and returns the whole answer as text.
    pub fn request(&self, method: &str, path: &str, headers: &str) -> String {
        use std::io::{Read, Write};
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{headers}Connection: close\r\n\r\n",
            self.host()
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }

    /// Waits until the registry has answered a `PATCH` (a chunk of an upload).
    pub fn wait_for_a_chunk(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self
            .requests()
            .iter()
            .any(|r| r.method == "PATCH" && r.status == 202)
        {
            assert!(Instant::now() < deadline, "no upload chunk arrived");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the registry at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the registry again on the same port and storage.
    pub fn restart(&mut self) {
        self.kill();
        self.run();
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Makes a CA (`dir/ca/ca.crt`) and a certificate for 127.0.0.1 signed by
/// it, and returns the registry config's `http.tls` lines for them.
fn tls_config(dir: &std::path::Path) -> String {
    std::fs::create_dir_all(dir.join("ca")).unwrap();
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl::self_signed(dir, "loadmaster test CA", "ca.key", "ca/ca.crt");
    let steps: [&[&str]; 2] = [
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca/ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        ],
    ];
    for args in steps {
        openssl::openssl(dir, args);
    }
    format!(
        "  tls:\n    certificate: {}\n    key: {}\n",
        dir.join("server.crt").display(),
        dir.join("server.key").display()
    )
}

/// `127.0.0.1 - - [date] "PUT /v2/x/blobs/uploads/… HTTP/1.1" 201 0 "" "agent"`
fn access_line(line: &str) -> Option<LoggedRequest> {
    let (_, quoted) = line.split_once('"')?;
    let (request, after) = quoted.split_once('"')?;
    let mut words = request.split(' ');
    let (method, target) = (words.next()?, words.next()?);
    if !words.next()?.starts_with("HTTP/") {
        return None;
    }
    let status = after.split_whitespace().next()?.parse().ok()?;
    Some(LoggedRequest {
        method: method.to_string(),
        target: target.to_string(),
        status,
    })
}
