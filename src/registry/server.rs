//! The registry's listener, routes and upload sessions.

use super::http::{Body, Connection, Head, Response};
use super::{BlobUpload, MANIFEST_LIMIT, Storage};
use crate::archive::Digest;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use std::collections::{HashMap, VecDeque};
use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

/// Requests kept in the log; older ones are dropped first. A push of an
/// image with a hundred layers makes a few hundred requests.
const LOG_LIMIT: usize = 4096;

/// Read buffer for blob bodies: memory per upload.
const BODY_BUFFER: usize = 256 << 10;

/// How many ports after the preferred one are tried before any free port.
const PORT_TRIES: u16 = 8;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "cannot listen on 127.0.0.1:{port} for the push endpoint: {source}; free the port or load with --path save"
    )]
    Bind {
        port: u16,
        #[source]
        source: io::Error,
    },
    #[error("cannot start the push endpoint's listener thread: {0}")]
    Thread(#[source] io::Error),
}

/// One request as the registry saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    pub method: String,
    /// The path, without the query.
    pub path: String,
    pub status: u16,
    /// Body bytes received.
    pub bytes: u64,
}

impl RequestRecord {
    /// Whether this request stored a blob (the end of an upload, or a
    /// monolithic one): a 201 to a `PUT` or `POST` under `/blobs/uploads/`
    /// that was not a mount.
    pub fn finished_upload(&self) -> bool {
        self.status == 201
            && (self.method == "PUT" || (self.method == "POST" && self.bytes > 0))
            && self.path.contains("/blobs/uploads/")
    }
}

/// A manifest pushed to the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Arc<[u8]>,
}

/// A running registry; stopped (listener closed, connections shut, threads
/// joined) when dropped.
pub struct Registry {
    address: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    storage: Arc<dyn Storage>,
    uploads: Mutex<HashMap<String, Upload>>,
    manifests: Mutex<HashMap<(String, String), Manifest>>,
    log: Mutex<VecDeque<RequestRecord>>,
    connections: Mutex<Vec<(TcpStream, JoinHandle<()>)>>,
    stopping: AtomicBool,
    next_upload: AtomicU64,
}

struct Upload {
    sink: Box<dyn BlobUpload>,
    hasher: Sha256,
    size: u64,
}

impl Registry {
    /// Listens on 127.0.0.1:`preferred`, or one of the next few ports when
    /// it is taken, or else any free port. A stable port matters to the
    /// engines: they remember which blobs they pushed per registry
    /// `host:port` and repository, and skip them only on the same name.
    pub fn start(preferred: u16, storage: Arc<dyn Storage>) -> Result<Registry, RegistryError> {
        let candidates = (0..PORT_TRIES)
            .filter_map(|n| preferred.checked_add(n))
            .chain([0]);
        let mut last = None;
        for port in candidates {
            match TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
                Ok(listener) => return Registry::serve(listener, storage),
                Err(source) => last = Some(RegistryError::Bind { port, source }),
            }
        }
        Err(last.expect("at least one port was tried"))
    }

    fn serve(listener: TcpListener, storage: Arc<dyn Storage>) -> Result<Registry, RegistryError> {
        let address = listener
            .local_addr()
            .map_err(|source| RegistryError::Bind { port: 0, source })?;
        let shared = Arc::new(Shared {
            storage,
            uploads: Mutex::default(),
            manifests: Mutex::default(),
            log: Mutex::default(),
            connections: Mutex::default(),
            stopping: AtomicBool::new(false),
            next_upload: AtomicU64::new(1),
        });
        let accepting = Arc::clone(&shared);
        let acceptor = thread::Builder::new()
            .name("registry accept".into())
            .spawn(move || accept(listener, accepting))
            .map_err(RegistryError::Thread)?;
        Ok(Registry {
            address,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// `127.0.0.1:PORT`: the registry part of an image name pushed here.
    pub fn host(&self) -> String {
        self.address.to_string()
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// The requests served so far (the last [`LOG_LIMIT`]), oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.log.lock().unwrap().iter().cloned().collect()
    }

    /// The manifest pushed as `name:reference` (a tag or a digest).
    pub fn manifest(&self, name: &str, reference: &str) -> Option<Manifest> {
        let manifests = self.shared.manifests.lock().unwrap();
        manifests
            .get(&(name.to_string(), reference.to_string()))
            .cloned()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wakes the blocking accept so that it sees `stopping`.
        let _ = TcpStream::connect(self.address);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let connections = std::mem::take(&mut *self.shared.connections.lock().unwrap());
        for (stream, handle) in connections {
            let _ = stream.shutdown(std::net::Shutdown::Both);
            let _ = handle.join();
        }
        // Unfinished uploads are discarded with their sinks.
        self.shared.uploads.lock().unwrap().clear();
    }
}

fn accept(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let Ok(handle_stream) = stream.try_clone() else {
            continue;
        };
        let serving = Arc::clone(&shared);
        let spawned = thread::Builder::new()
            .name("registry connection".into())
            .spawn(move || {
                if let Ok(mut connection) = Connection::new(handle_stream) {
                    let _ = connection.serve(|head, body| serving.handle(head, body));
                    // The listener keeps a clone of the socket (to shut it at
                    // Drop), so it closes only when told: a client waiting
                    // for our answer (docker's TLS attempt) learns at once.
                    connection.close();
                }
            });
        if let Ok(handle) = spawned {
            let mut connections = shared.connections.lock().unwrap();
            connections.retain(|(_, handle)| !handle.is_finished());
            connections.push((stream, handle));
        }
    }
}

/// What a request addresses, from its path.
enum Route<'p> {
    Base,
    Blob { digest: &'p str },
    Uploads { name: &'p str },
    Upload { name: &'p str, id: &'p str },
    Manifest { name: &'p str, reference: &'p str },
}

fn route(path: &str) -> Option<Route<'_>> {
    let rest = path
        .strip_prefix("/v2/")
        .or((path == "/v2").then_some(""))?;
    if rest.is_empty() {
        return Some(Route::Base);
    }
    let named = |marker: &str| {
        rest.rfind(marker)
            .map(|at| (&rest[..at], &rest[at + marker.len()..]))
            .filter(|(name, _)| valid_name(name))
    };
    if let Some((name, id)) = named("/blobs/uploads/") {
        return Some(if id.is_empty() {
            Route::Uploads { name }
        } else {
            Route::Upload { name, id }
        });
    }
    if let Some((name, "")) = named("/blobs/uploads") {
        return Some(Route::Uploads { name });
    }
    if let Some((_, digest)) = named("/blobs/") {
        return Some(Route::Blob { digest });
    }
    if let Some((name, reference)) = named("/manifests/") {
        return Some(Route::Manifest { name, reference });
    }
    None
}

/// A repository name as the distribution spec allows it (lowercase
/// components separated by `/`, `.`, `_`, `-`).
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('/').all(|component| {
            !component.is_empty()
                && component
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        })
}

/// A registry error response: `{"errors":[{"code":..,"message":..}]}`.
fn error(status: u16, code: &str, message: impl Into<String>) -> Response {
    let body = serde_json::json!({
        "errors": [{"code": code, "message": message.into(), "detail": null}]
    });
    Response::new(status).body("application/json", body.to_string().into_bytes())
}

fn parse_digest(text: &str) -> Result<Digest, Response> {
    text.parse::<Digest>()
        .map_err(|e| error(400, "DIGEST_INVALID", e.to_string()))
}

/// Counts the body bytes a handler reads, for the log.
struct Counted<'b, 'c> {
    body: &'b mut Body<'c>,
    bytes: u64,
}

impl Read for Counted<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.body.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

impl Shared {
    fn handle(&self, head: &Head, body: &mut Body<'_>) -> Response {
        let mut counted = Counted { body, bytes: 0 };
        let response = match route(&head.path) {
            Some(route) => self.dispatch(head, route, &mut counted),
            None => error(
                404,
                "NAME_UNKNOWN",
                format!("no such endpoint: {}", head.path),
            ),
        };
        let response = response.header("Docker-Distribution-API-Version", "registry/2.0");
        let mut log = self.log.lock().unwrap();
        if log.len() == LOG_LIMIT {
            log.pop_front();
        }
        log.push_back(RequestRecord {
            method: head.method.clone(),
            path: head.path.clone(),
            status: response.status,
            bytes: counted.bytes,
        });
        response
    }

    fn dispatch(&self, head: &Head, route: Route<'_>, body: &mut Counted<'_, '_>) -> Response {
        let method = head.method.as_str();
        let answer = match (method, route) {
            ("GET" | "HEAD", Route::Base) => {
                Ok(Response::new(200).body("application/json", b"{}".to_vec()))
            }
            ("GET" | "HEAD", Route::Blob { digest, .. }) => self.blob(method, digest),
            ("POST", Route::Uploads { name }) => self.start_upload(head, name, body),
            ("PATCH", Route::Upload { name, id }) => self.patch(head, name, id, body),
            ("PUT", Route::Upload { name, id }) => self.finish_upload(head, name, id, body),
            ("GET", Route::Upload { name, id }) => self.upload_status(name, id),
            ("DELETE", Route::Upload { id, .. }) => self.cancel_upload(id),
            ("GET" | "HEAD", Route::Manifest { name, reference }) => {
                self.get_manifest(name, reference)
            }
            ("PUT", Route::Manifest { name, reference }) => {
                self.put_manifest(head, name, reference, body)
            }
            _ => Err(error(
                405,
                "UNSUPPORTED",
                format!("{method} {} is not supported by this registry", head.path),
            )),
        };
        answer.unwrap_or_else(|response| response)
    }

    fn blob(&self, method: &str, digest: &str) -> Result<Response, Response> {
        let digest = parse_digest(digest)?;
        let Some(size) = self.storage.blob_size(&digest) else {
            return Err(error(
                404,
                "BLOB_UNKNOWN",
                format!("blob {digest} is not here"),
            ));
        };
        let found = Response::new(200)
            .header("Docker-Content-Digest", digest.to_string())
            .header("Content-Type", "application/octet-stream");
        if method == "HEAD" {
            return Ok(found.length_only(size));
        }
        match self.storage.blob_bytes(&digest) {
            Some(bytes) => Ok(Response {
                body: bytes.to_vec(),
                ..found
            }),
            None => Err(error(
                404,
                "BLOB_UNKNOWN",
                format!(
                    "blob {digest} is held by the nodes, and this registry only receives: it serves back small blobs of this session only"
                ),
            )),
        }
    }

    fn start_upload(
        &self,
        head: &Head,
        name: &str,
        body: &mut Counted<'_, '_>,
    ) -> Result<Response, Response> {
        if let Some(mount) = head.query("mount") {
            let digest = parse_digest(mount)?;
            if self.storage.blob_size(&digest).is_some() {
                return Ok(blob_created(name, &digest));
            }
            // Not here: the client falls back to the upload we open below.
        }
        let mut upload = Upload {
            sink: self
                .storage
                .upload()
                .map_err(|e| error(500, "BLOB_UPLOAD_INVALID", e))?,
            hasher: Sha256::new(),
            size: 0,
        };
        if let Some(expected) = head.query("digest") {
            // Monolithic: the whole blob is this request's body.
            let expected = parse_digest(expected)?;
            upload.receive(body)?;
            return self.commit(name, upload, expected);
        }
        let id = format!("lm{}", self.next_upload.fetch_add(1, Ordering::Relaxed));
        self.uploads.lock().unwrap().insert(id.clone(), upload);
        Ok(upload_accepted(name, &id, 0))
    }

    /// Takes an upload out of the table for the length of one request, so
    /// that no two requests write it at once.
    fn take(&self, id: &str) -> Result<Upload, Response> {
        self.uploads.lock().unwrap().remove(id).ok_or_else(|| {
            error(
                404,
                "BLOB_UPLOAD_UNKNOWN",
                format!("no upload {id} in progress: start a new one"),
            )
        })
    }

    fn patch(
        &self,
        head: &Head,
        name: &str,
        id: &str,
        body: &mut Counted<'_, '_>,
    ) -> Result<Response, Response> {
        let mut upload = self.take(id)?;
        if let Some(range) = head.header("content-range") {
            let start = range
                .trim_start_matches("bytes=")
                .split('-')
                .next()
                .and_then(|s| s.trim().parse::<u64>().ok());
            if start != Some(upload.size) {
                let response = error(
                    416,
                    "BLOB_UPLOAD_INVALID",
                    format!(
                        "Content-Range {range} does not continue the {} bytes received",
                        upload.size
                    ),
                )
                .header("Range", range_header(upload.size));
                self.uploads.lock().unwrap().insert(id.to_string(), upload);
                return Err(response);
            }
        }
        // A failed write leaves the upload unusable: it is dropped, which
        // discards it.
        upload.receive(body)?;
        let size = upload.size;
        self.uploads.lock().unwrap().insert(id.to_string(), upload);
        Ok(upload_accepted(name, id, size))
    }

    fn finish_upload(
        &self,
        head: &Head,
        name: &str,
        id: &str,
        body: &mut Counted<'_, '_>,
    ) -> Result<Response, Response> {
        let mut upload = self.take(id)?;
        let expected = head
            .query("digest")
            .ok_or_else(|| error(400, "DIGEST_INVALID", "PUT of an upload needs ?digest="))?;
        let expected = parse_digest(expected)?;
        upload.receive(body)?;
        self.commit(name, upload, expected)
    }

    fn commit(&self, name: &str, upload: Upload, expected: Digest) -> Result<Response, Response> {
        let actual = Digest::from(upload.hasher);
        if actual != expected {
            // Dropping the sink discards the blob.
            return Err(error(
                400,
                "DIGEST_INVALID",
                format!(
                    "the {} bytes received hash to {actual}, not {expected}: blob discarded",
                    upload.size
                ),
            ));
        }
        upload
            .sink
            .commit(actual)
            .map_err(|e| error(500, "BLOB_UPLOAD_INVALID", e))?;
        Ok(blob_created(name, &actual))
    }

    fn upload_status(&self, name: &str, id: &str) -> Result<Response, Response> {
        let uploads = self.uploads.lock().unwrap();
        let upload = uploads.get(id).ok_or_else(|| {
            error(
                404,
                "BLOB_UPLOAD_UNKNOWN",
                format!("no upload {id} in progress"),
            )
        })?;
        Ok(Response {
            status: 204,
            ..upload_accepted(name, id, upload.size)
        })
    }

    fn cancel_upload(&self, id: &str) -> Result<Response, Response> {
        self.take(id)?;
        Ok(Response::new(204))
    }

    fn get_manifest(&self, name: &str, reference: &str) -> Result<Response, Response> {
        let manifests = self.manifests.lock().unwrap();
        let manifest = manifests
            .get(&(name.to_string(), reference.to_string()))
            .ok_or_else(|| {
                error(
                    404,
                    "MANIFEST_UNKNOWN",
                    format!("no manifest {name}:{reference} was pushed in this session"),
                )
            })?;
        Ok(Response::new(200)
            .header("Docker-Content-Digest", manifest.digest.to_string())
            .body(&manifest.media_type, manifest.bytes.to_vec()))
    }

    fn put_manifest(
        &self,
        head: &Head,
        name: &str,
        reference: &str,
        body: &mut Counted<'_, '_>,
    ) -> Result<Response, Response> {
        let mut bytes = Vec::new();
        body.take(MANIFEST_LIMIT as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| {
                error(
                    400,
                    "MANIFEST_INVALID",
                    format!("reading the manifest failed: {e}"),
                )
            })?;
        if bytes.len() > MANIFEST_LIMIT {
            return Err(error(
                413,
                "SIZE_INVALID",
                format!("manifests are limited to {MANIFEST_LIMIT} bytes"),
            ));
        }
        let digest = Digest::of(&bytes);
        if reference.starts_with("sha256:") && parse_digest(reference)? != digest {
            return Err(error(
                400,
                "DIGEST_INVALID",
                format!("the manifest hashes to {digest}, not {reference}"),
            ));
        }
        if let Some(missing) = self.missing_reference(&bytes, name)? {
            return Err(error(
                400,
                "MANIFEST_BLOB_UNKNOWN",
                format!("the manifest refers to {missing}, which was not pushed"),
            ));
        }
        let manifest = Manifest {
            digest,
            media_type: head
                .header("content-type")
                .unwrap_or("application/vnd.oci.image.manifest.v1+json")
                .to_string(),
            bytes: Arc::from(bytes),
        };
        let mut manifests = self.manifests.lock().unwrap();
        manifests.insert((name.to_string(), digest.to_string()), manifest.clone());
        manifests.insert((name.to_string(), reference.to_string()), manifest);
        Ok(Response::new(201)
            .header("Location", format!("/v2/{name}/manifests/{digest}"))
            .header("Docker-Content-Digest", digest.to_string()))
    }

    /// The first blob (config, layer) or child manifest (of an index) that a
    /// manifest names and the registry does not have.
    fn missing_reference(&self, bytes: &[u8], name: &str) -> Result<Option<Digest>, Response> {
        let manifest: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
            error(
                400,
                "MANIFEST_INVALID",
                format!("the manifest is not JSON: {e}"),
            )
        })?;
        let digests = |value: &serde_json::Value| -> Result<Vec<Digest>, Response> {
            value
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| parse_digest(d["digest"].as_str().unwrap_or("")))
                .collect()
        };
        let mut blobs = digests(&manifest["layers"])?;
        if let Some(config) = manifest["config"]["digest"].as_str() {
            blobs.push(parse_digest(config)?);
        }
        if let Some(missing) = blobs
            .into_iter()
            .find(|d| self.storage.blob_size(d).is_none())
        {
            return Ok(Some(missing));
        }
        let manifests = self.manifests.lock().unwrap();
        Ok(digests(&manifest["manifests"])?
            .into_iter()
            .find(|d| !manifests.contains_key(&(name.to_string(), d.to_string()))))
    }
}

impl Upload {
    /// Streams a request body into the hasher and the sink.
    fn receive(&mut self, body: &mut Counted<'_, '_>) -> Result<(), Response> {
        let mut buffer = vec![0u8; BODY_BUFFER];
        loop {
            let n = body.read(&mut buffer).map_err(|e| {
                error(
                    400,
                    "BLOB_UPLOAD_INVALID",
                    format!("reading the upload failed: {e}"),
                )
            })?;
            if n == 0 {
                return Ok(());
            }
            self.hasher.update(&buffer[..n]);
            self.size += n as u64;
            self.sink.write(&buffer[..n]).map_err(|e| {
                error(
                    500,
                    "BLOB_UPLOAD_INVALID",
                    format!("storing the upload failed: {e}"),
                )
            })?;
        }
    }
}

fn blob_created(name: &str, digest: &Digest) -> Response {
    Response::new(201)
        .header("Location", format!("/v2/{name}/blobs/{digest}"))
        .header("Docker-Content-Digest", digest.to_string())
}

fn upload_accepted(name: &str, id: &str, size: u64) -> Response {
    Response::new(202)
        .header("Location", format!("/v2/{name}/blobs/uploads/{id}"))
        .header("Docker-Upload-UUID", id)
        .header("Range", range_header(size))
}

/// `0-<last byte>`; `0-0` before the first byte, as distribution writes it.
fn range_header(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_names_with_slashes() {
        assert!(matches!(route("/v2/"), Some(Route::Base)));
        assert!(matches!(
            route("/v2/a/b/blobs/sha256:x"),
            Some(Route::Blob { digest: "sha256:x" })
        ));
        assert!(matches!(
            route("/v2/a/b/blobs/uploads/"),
            Some(Route::Uploads { name: "a/b" })
        ));
        assert!(matches!(
            route("/v2/a/blobs/uploads/lm1"),
            Some(Route::Upload {
                name: "a",
                id: "lm1"
            })
        ));
        assert!(matches!(
            route("/v2/lib/app/manifests/1.0"),
            Some(Route::Manifest {
                name: "lib/app",
                reference: "1.0"
            })
        ));
        assert!(route("/v2/UPPER/manifests/1").is_none());
        assert!(route("/other").is_none());
    }
}
