//! The OCI distribution requests a push is made of, each retried as a
//! unit: does the repository have a blob (`HEAD`), take it from another
//! repository (`POST ?mount=&from=`), upload it in one request (`POST`,
//! then `PUT ?digest=` with the bytes) or in chunks (`POST`, `PATCH`es,
//! then `PUT ?digest=`), and tag the manifest (`PUT /manifests/<tag>`).
//!
//! A chunk whose `PATCH` failed half-way is resumed where the registry's
//! upload status (`GET` of the upload, its `Range`) says it stopped, from
//! the chunk the caller still holds.

use super::PushError;
use super::client::{Answer, Client, Failure, Request};
use crate::archive::{Digest, ManifestBlob};

/// The token scope for pushing to `repository`.
pub fn push_scope(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

/// The size of `digest` in `repository`, or None when it is not there.
pub fn head(
    client: &mut Client<'_>,
    repository: &str,
    digest: &Digest,
) -> Result<Option<u64>, PushError> {
    let path = format!("/v2/{repository}/blobs/{digest}");
    let what = format!("HEAD {path}");
    let scope = push_scope(repository);
    client.retrying(&what, |client, _| {
        let answer = client.send(&request("HEAD", &path, &scope, &[], &[]))?;
        match answer.status {
            200 => Ok(Some(
                answer
                    .header("content-length")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0),
            )),
            404 => Ok(None),
            _ => Err(client.unexpected(&what, &answer)),
        }
    })
}

/// How a cross-repository mount went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mount {
    Mounted,
    /// The registry answered 202: it will not mount (it lacks the blob in
    /// `from`, or does not mount at all); the blob must be uploaded.
    Declined,
}

/// Asks the registry to link `digest` from repository `from` into
/// `repository`, without sending it.
pub fn mount(
    client: &mut Client<'_>,
    repository: &str,
    digest: &Digest,
    from: &str,
) -> Result<Mount, PushError> {
    let path = format!("/v2/{repository}/blobs/uploads/?mount={digest}&from={from}");
    let what = format!("POST {path}");
    let scope = format!("{} repository:{from}:pull", push_scope(repository));
    client.retrying(&what, |client, _| {
        let answer = client.send(&request("POST", &path, &scope, &[], &[]))?;
        match answer.status {
            201 => Ok(Mount::Mounted),
            202 => {
                // The upload it opened instead is not wanted: the blob's
                // bytes come later, through an upload of its own.
                if let Some(location) = answer.header("location") {
                    let _ = client.send(&request("DELETE", location, &scope, &[], &[]));
                }
                Ok(Mount::Declined)
            }
            _ => Err(client.unexpected(&what, &answer)),
        }
    })
}

/// An upload in progress: where to send the next bytes, and how many the
/// registry has.
#[derive(Debug)]
pub struct Session {
    location: String,
    received: u64,
}

/// Opens an upload in `repository`.
pub fn start(client: &mut Client<'_>, repository: &str) -> Result<Session, PushError> {
    let path = format!("/v2/{repository}/blobs/uploads/");
    let what = format!("POST {path}");
    let scope = push_scope(repository);
    client.retrying(&what, |client, _| {
        let answer = client.send(&request("POST", &path, &scope, &[], &[]))?;
        opened(client, &what, &answer)
    })
}

fn opened(client: &Client<'_>, what: &str, answer: &Answer) -> Result<Session, Failure> {
    match (answer.status, answer.header("location")) {
        (202, Some(location)) => Ok(Session {
            location: location.to_string(),
            received: 0,
        }),
        _ => Err(client.unexpected(what, answer)),
    }
}

/// Sends `chunk`, the blob's bytes from offset `session.received`, as one
/// `PATCH`. `blob` names the blob in messages.
pub fn patch(
    client: &mut Client<'_>,
    repository: &str,
    session: &mut Session,
    chunk: &[u8],
    blob: &str,
) -> Result<(), PushError> {
    let start = session.received;
    let end = start + chunk.len() as u64;
    let what = format!("PATCH /v2/{repository}/blobs/uploads/ ({blob}, bytes {start}..{end})");
    let scope = push_scope(repository);
    client.retrying(&what, |client, attempt| {
        if attempt > 1 {
            resume_point(client, &scope, session, &what)?;
        }
        let held = session.received;
        if held < start || held > end {
            return Err(Failure::Fatal(PushError::Registry {
                registry: client.registry().to_string(),
                request: what.clone(),
                detail: format!(
                    "the registry holds {held} bytes of the upload, outside the chunk being sent ({start}-{end}); push again"
                ),
            }));
        }
        let rest = &chunk[(held - start) as usize..];
        if rest.is_empty() {
            return Ok(());
        }
        let range = format!("{held}-{}", end - 1);
        let headers = [
            ("Content-Type", "application/octet-stream"),
            ("Content-Range", range.as_str()),
        ];
        let location = session.location.clone();
        let answer = client.send(&request("PATCH", &location, &scope, &headers, rest))?;
        match answer.status {
            202 => {
                if let Some(location) = answer.header("location") {
                    session.location = location.to_string();
                }
                session.received = end;
                Ok(())
            }
            // The registry's count and ours differ: ask it again.
            416 => Err(Failure::Transient(answer.explanation())),
            _ => Err(client.unexpected(&what, &answer)),
        }
    })
}

/// Asks the registry how much of the upload it holds (after a failed try).
fn resume_point(
    client: &mut Client<'_>,
    scope: &str,
    session: &mut Session,
    what: &str,
) -> Result<(), Failure> {
    let location = session.location.clone();
    let answer = client.send(&request("GET", &location, scope, &[], &[]))?;
    match answer.status {
        200 | 204 => {
            // `Range: 0-<last byte held>`; `0-0` also for nothing at all,
            // which the next PATCH sorts out (416) if it was wrong.
            session.received = answer
                .header("range")
                .and_then(|range| range.split_once('-'))
                .and_then(|(_, last)| last.parse::<i64>().ok())
                .map_or(0, |last| (last + 1).max(0) as u64);
            if let Some(location) = answer.header("location") {
                session.location = location.to_string();
            }
            Ok(())
        }
        404 => Err(Failure::Fatal(PushError::Registry {
            registry: client.registry().to_string(),
            request: what.to_string(),
            detail: "the registry no longer knows the upload (it restarted without a shared `http.secret`, or purged it): push again".into(),
        })),
        _ => Err(client.unexpected(what, &answer)),
    }
}

/// Ends a chunked upload: the registry checks the bytes against `digest`.
pub fn finish(
    client: &mut Client<'_>,
    repository: &str,
    session: Session,
    digest: &Digest,
) -> Result<(), PushError> {
    let what = format!("PUT /v2/{repository}/blobs/uploads/ (finishing {digest})");
    let scope = push_scope(repository);
    let url = with_digest(&session.location, digest);
    client.retrying(&what, |client, attempt| {
        // A try whose answer was lost may have finished the upload.
        if attempt > 1 && head_once(client, repository, &scope, digest)? {
            return Ok(());
        }
        let answer = client.send(&request("PUT", &url, &scope, &[], &[]))?;
        created(client, &what, &answer)
    })
}

/// Uploads a whole blob held in memory: `POST`, then `PUT ?digest=` with
/// the bytes, tried again together.
pub fn monolithic(
    client: &mut Client<'_>,
    repository: &str,
    digest: &Digest,
    bytes: &[u8],
) -> Result<(), PushError> {
    let path = format!("/v2/{repository}/blobs/uploads/");
    let what = format!("POST+PUT {path} ({digest})");
    let scope = push_scope(repository);
    let headers = [("Content-Type", "application/octet-stream")];
    client.retrying(&what, |client, _| {
        let answer = client.send(&request("POST", &path, &scope, &[], &[]))?;
        let session = opened(client, &what, &answer)?;
        let url = with_digest(&session.location, digest);
        let answer = client.send(&request("PUT", &url, &scope, &headers, bytes))?;
        created(client, &what, &answer)
    })
}

/// Tags `manifest` as `repository:tag`. The registry's own digest of what
/// it stored must be the manifest's.
pub fn put_manifest(
    client: &mut Client<'_>,
    repository: &str,
    tag: &str,
    manifest: &ManifestBlob,
) -> Result<(), PushError> {
    let path = format!("/v2/{repository}/manifests/{tag}");
    let what = format!("PUT {path}");
    let scope = push_scope(repository);
    let headers = [("Content-Type", manifest.media_type.as_str())];
    client.retrying(&what, |client, _| {
        let answer = client.send(&request("PUT", &path, &scope, &headers, &manifest.bytes))?;
        created(client, &what, &answer)?;
        let stored = answer.header("docker-content-digest");
        match stored.map(str::parse::<Digest>) {
            Some(Ok(stored)) if stored != manifest.digest => {
                Err(Failure::Fatal(PushError::Registry {
                    registry: client.registry().to_string(),
                    request: what.clone(),
                    detail: format!(
                        "the registry stored the manifest as {stored}, not {}: it rewrote it",
                        manifest.digest
                    ),
                }))
            }
            _ => Ok(()),
        }
    })
}

/// Whether a `PUT` stored what it carried (`201 Created`).
fn created(client: &Client<'_>, what: &str, answer: &Answer) -> Result<(), Failure> {
    match answer.status {
        201 => Ok(()),
        _ => Err(client.unexpected(what, answer)),
    }
}

/// One `HEAD` of a blob, inside another step's try.
fn head_once(
    client: &mut Client<'_>,
    repository: &str,
    scope: &str,
    digest: &Digest,
) -> Result<bool, Failure> {
    let path = format!("/v2/{repository}/blobs/{digest}");
    let answer = client.send(&request("HEAD", &path, scope, &[], &[]))?;
    Ok(answer.status == 200)
}

/// `location` with `digest=` added to its query.
fn with_digest(location: &str, digest: &Digest) -> String {
    let separator = if location.contains('?') { '&' } else { '?' };
    format!("{location}{separator}digest={digest}")
}

fn request<'a>(
    method: &'a str,
    url: &'a str,
    scope: &'a str,
    headers: &'a [(&'a str, &'a str)],
    body: &'a [u8],
) -> Request<'a> {
    Request {
        method,
        url,
        scope,
        headers,
        body,
    }
}
