//! Which certificate authorities a registry's TLS certificate is checked
//! against.
//!
//! A registry with a certificate of its own CA (a company's, or one made
//! for a CI registry) is trusted the way docker and podman trust it: by the
//! CA files they read for that host, `*.crt` in `/etc/docker/certs.d/HOST/`
//! and `/etc/containers/certs.d/HOST/` (HOST with its port, as in image
//! names), or in the directory given with `--cert-dir` (podman's flag of
//! the same name). A host without such files is checked against the public
//! web PKI roots. Never a silent "skip verification": a registry that
//! cannot be verified is an error that says where its CA would go.

use super::PushError;
use std::path::{Path, PathBuf};
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

/// Where docker and podman look for a host's CA files.
const SYSTEM_CERT_DIRS: [&str; 2] = ["/etc/docker/certs.d", "/etc/containers/certs.d"];

/// The TLS settings for `host`: its CAs from `cert_dir` when given, else
/// from the engines' per-host directories, else the web PKI roots.
pub fn tls_config(host: &str, cert_dir: Option<&Path>) -> Result<TlsConfig, PushError> {
    let dirs: Vec<PathBuf> = match cert_dir {
        Some(dir) => vec![dir.to_path_buf()],
        None => SYSTEM_CERT_DIRS
            .iter()
            .map(|root| Path::new(root).join(host))
            .collect(),
    };
    let mut certificates = Vec::new();
    for dir in &dirs {
        certificates.extend(certificates_in(dir, cert_dir.is_some())?);
    }
    let roots = if certificates.is_empty() {
        if let Some(dir) = cert_dir {
            return Err(PushError::BadTarget(format!(
                "--cert-dir {}: no CA certificate (*.crt, PEM) in it",
                dir.display()
            )));
        }
        RootCerts::WebPki
    } else {
        RootCerts::new_with_certs(&certificates)
    };
    Ok(TlsConfig::builder().root_certs(roots).build())
}

/// The certificates in the `*.crt` files of `dir`, in name order (as the
/// engines read them; `*.cert` and `*.key` there are client credentials).
/// A missing directory holds none, unless the user named it.
fn certificates_in(dir: &Path, named: bool) -> Result<Vec<Certificate<'static>>, PushError> {
    let unreadable = |detail: String| PushError::BadTarget(format!("{}: {detail}", dir.display()));
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && !named => {
            return Ok(Vec::new());
        }
        Err(error) => return Err(unreadable(error.to_string())),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "crt"))
        .collect();
    files.sort();
    let mut certificates = Vec::new();
    for file in files {
        let pem =
            std::fs::read(&file).map_err(|e| unreadable(format!("{}: {e}", file.display())))?;
        for item in ureq::tls::parse_pem(&pem) {
            match item {
                Ok(PemItem::Certificate(certificate)) => certificates.push(certificate),
                Ok(_) => {}
                Err(error) => {
                    return Err(unreadable(format!("{}: not PEM: {error}", file.display())));
                }
            }
        }
    }
    Ok(certificates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_directory_without_certificates_is_an_error() {
        let scratch = tempfile::Builder::new()
            .prefix("lm-trust-empty-")
            .tempdir()
            .unwrap();
        let dir = scratch.path().to_path_buf();
        std::fs::write(dir.join("client.key"), "not a CA").unwrap();
        let error = tls_config("registry.example.com", Some(&dir)).unwrap_err();
        assert!(error.to_string().contains("no CA certificate"), "{error}");
    }

    #[test]
    fn a_host_without_ca_files_uses_the_web_roots() {
        let config = tls_config("registry.invalid:5000", None).unwrap();
        assert!(matches!(config.root_certs(), RootCerts::WebPki));
    }

    #[test]
    fn a_file_that_is_not_pem_is_named() {
        let scratch = tempfile::Builder::new()
            .prefix("lm-trust-bad-")
            .tempdir()
            .unwrap();
        let dir = scratch.path().to_path_buf();
        std::fs::write(dir.join("ca.crt"), "-----BEGIN CERTIFICATE-----\n!!!\n").unwrap();
        let error = tls_config("registry.example.com", Some(&dir)).unwrap_err();
        assert!(error.to_string().contains("ca.crt"), "{error}");
    }
}
