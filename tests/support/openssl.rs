//! Certificates and signatures for tests, made with the `openssl` CLI.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Makes an RSA key and a self-signed certificate for it (a CA) in `dir`.
pub fn self_signed(dir: &Path, name: &str, key: &str, certificate: &str) {
    let subject = format!("/CN={name}");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &subject,
            "-keyout",
            key,
            "-out",
            certificate,
        ],
    );
}

/// Runs openssl in `dir`; returns its stdout.
pub fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    openssl_with_input(dir, args, &[])
}

/// Runs openssl in `dir` with `input` on its stdin; returns its stdout.
pub fn openssl_with_input(dir: &Path, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let ran = child.wait_with_output().unwrap();
    assert!(
        ran.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&ran.stderr)
    );
    ran.stdout
}
