//! Registry credentials from the files `docker login` and `podman login`
//! write, so that a push works wherever the user's engine already does.
//!
//! Files, first match wins: `REGISTRY_AUTH_FILE`, podman's
//! `${XDG_RUNTIME_DIR}/containers/auth.json` and
//! `~/.config/containers/auth.json`, then docker's
//! `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`). Each
//! maps a registry host to `{"auth": base64("user:password")}` under
//! `auths`. The password is a [`Secret`]: it has no `Display`, its `Debug`
//! is redacted, and nothing here puts it in an error.

use base64::Engine as _;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// A value that must never be printed, logged or serialized.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The value, for the one place that sends it (an HTTP header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A user name and password for one registry, and the file they came from.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
    pub file: PathBuf,
}

impl Credentials {
    /// `Basic base64(user:password)`.
    pub fn basic_header(&self) -> Secret {
        let pair = format!("{}:{}", self.username, self.password.expose());
        Secret(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        ))
    }
}

/// What a lookup found, and where it looked (for the error that says
/// where credentials were expected).
#[derive(Debug)]
pub struct Lookup {
    pub credentials: Option<Credentials>,
    pub searched: Vec<PathBuf>,
}

/// Credentials for `host`, from the auth files `env` points at.
pub fn lookup(host: &str, env: &dyn Fn(&str) -> Option<String>) -> Lookup {
    let mut searched = Vec::new();
    for file in auth_files(env) {
        // A missing or unreadable file is not an error: most users have
        // only one of them, and a registry may need no credentials.
        if let Ok(text) = std::fs::read_to_string(&file)
            && let Some(credentials) = entry_for(&text, host, &file)
        {
            return Lookup {
                credentials: Some(credentials),
                searched,
            };
        }
        searched.push(file);
    }
    Lookup {
        credentials: None,
        searched,
    }
}

fn auth_files(env: &dyn Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(file) = env("REGISTRY_AUTH_FILE") {
        files.push(PathBuf::from(file));
    }
    if let Some(runtime) = env("XDG_RUNTIME_DIR") {
        files.push(PathBuf::from(runtime).join("containers/auth.json"));
    }
    if let Some(home) = env("HOME") {
        files.push(PathBuf::from(home).join(".config/containers/auth.json"));
    }
    let docker_dir = env("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|home| PathBuf::from(home).join(".docker")));
    if let Some(dir) = docker_dir {
        files.push(dir.join("config.json"));
    }
    files
}

#[derive(serde::Deserialize)]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(serde::Deserialize)]
struct AuthEntry {
    auth: Option<String>,
}

/// The entry of an auth file's text for `host`. Keys may carry a scheme
/// and a path (`https://index.docker.io/v1/`), as older logins wrote them.
fn entry_for(text: &str, host: &str, file: &std::path::Path) -> Option<Credentials> {
    let parsed: AuthFile = serde_json::from_str(text).ok()?;
    let (_, entry) = parsed.auths.iter().find(|(key, _)| {
        let key = key
            .strip_prefix("https://")
            .or_else(|| key.strip_prefix("http://"))
            .unwrap_or(key);
        key.split('/').next() == Some(host)
    })?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(entry.auth.as_ref()?.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (username, password) = decoded.split_once(':')?;
    Some(Credentials {
        username: username.to_string(),
        password: Secret(password.to_string()),
        file: file.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(pair: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(pair)
    }

    #[test]
    fn finds_the_host_in_docker_and_podman_files() {
        let scratch = tempfile::Builder::new()
            .prefix("lm-creds-")
            .tempdir()
            .unwrap();
        let dir = scratch.path().to_path_buf();
        let podman = dir.join("run/containers");
        std::fs::create_dir_all(&podman).unwrap();
        std::fs::create_dir_all(dir.join("docker")).unwrap();
        let docker_file = dir.join("docker/config.json");
        std::fs::write(
            &docker_file,
            format!(
                r#"{{"auths":{{"https://reg.example.com/v1/":{{"auth":"{}"}},"127.0.0.1:5000":{{"auth":"{}"}}}}}}"#,
                encoded("alice:s3cr:et"),
                encoded("bob:pw")
            ),
        )
        .unwrap();
        std::fs::write(
            podman.join("auth.json"),
            format!(
                r#"{{"auths":{{"127.0.0.1:5000":{{"auth":"{}"}}}}}}"#,
                encoded("carol:pw2")
            ),
        )
        .unwrap();
        let vars = BTreeMap::from([
            ("DOCKER_CONFIG", dir.join("docker")),
            ("XDG_RUNTIME_DIR", dir.join("run")),
        ]);
        let env = |name: &str| vars.get(name).map(|p| p.display().to_string());

        let found = lookup("reg.example.com", &env).credentials.unwrap();
        assert_eq!(found.username, "alice");
        assert_eq!(found.password.expose(), "s3cr:et");
        assert_eq!(found.file, docker_file);
        // podman's file comes first.
        assert_eq!(
            lookup("127.0.0.1:5000", &env).credentials.unwrap().username,
            "carol"
        );

        let missing = lookup("other.example.com", &env);
        assert!(missing.credentials.is_none());
        assert_eq!(missing.searched.len(), 2);
    }

    #[test]
    fn secrets_do_not_show() {
        let credentials = Credentials {
            username: "u".into(),
            password: Secret::new("hunter2".into()),
            file: PathBuf::from("/x"),
        };
        assert!(!format!("{credentials:?}").contains("hunter2"));
        assert!(!format!("{:?}", credentials.basic_header()).contains("aHVudGVyMg"));
        assert_eq!(credentials.basic_header().expose(), "Basic dTpodW50ZXIy");
    }
}
