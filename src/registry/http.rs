//! Just enough HTTP/1.1 for the clients that push to us (docker's and
//! podman's Go `net/http`): a request head, a body read as a stream
//! (`Content-Length` or chunked), and a response.
//!
//! Bodies are never buffered whole: [`Body`] reads from the connection as
//! the caller asks, so a multi-GiB layer passes through one buffer. What a
//! handler leaves unread is drained before the next request on a kept-alive
//! connection.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// Longest request line or header line accepted.
const LINE_LIMIT: usize = 16 << 10;
/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;
/// What a TLS client that tried us first reads (Go's net/http answer).
const PLAIN_HTTP_TO_TLS_CLIENT: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTPS request to an HTTP server.\n";

/// Most header lines accepted in one request.
const HEADER_LIMIT: usize = 100;

/// A request's method, target and headers.
#[derive(Debug)]
pub struct Head {
    pub method: String,
    /// The path, percent-decoded.
    pub path: String,
    /// Query parameters, percent-decoded, in order.
    pub query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
}

impl Head {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn wants_close(&self) -> bool {
        self.header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"))
    }
}

/// How the body of a request is delimited.
#[derive(Debug)]
enum Framing {
    Length {
        remaining: u64,
    },
    /// Chunked: bytes left in the current chunk; `done` after the last.
    Chunked {
        in_chunk: u64,
        done: bool,
    },
}

/// A request body, read from the connection as the handler asks.
pub struct Body<'c> {
    reader: &'c mut BufReader<TcpStream>,
    framing: Framing,
}

impl Body<'_> {
    /// Whether the whole body was read.
    fn is_done(&self) -> bool {
        matches!(
            self.framing,
            Framing::Length { remaining: 0 } | Framing::Chunked { done: true, .. }
        )
    }
}

impl Read for Body<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.framing {
            Framing::Length { remaining } => {
                if *remaining == 0 || buf.is_empty() {
                    return Ok(0);
                }
                let want = buf
                    .len()
                    .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                let n = self.reader.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the client closed the connection before the end of the body",
                    ));
                }
                *remaining -= n as u64;
                Ok(n)
            }
            Framing::Chunked { in_chunk, done } => {
                if *done || buf.is_empty() {
                    return Ok(0);
                }
                if *in_chunk == 0 {
                    let line = read_line(self.reader)?;
                    let size = line.split(';').next().unwrap_or("").trim();
                    let size = u64::from_str_radix(size, 16).map_err(|_| {
                        bad(format!("invalid chunk size {line:?} in a chunked body"))
                    })?;
                    if size == 0 {
                        // Trailers, then the empty line that ends the body.
                        while !read_line(self.reader)?.is_empty() {}
                        *done = true;
                        return Ok(0);
                    }
                    *in_chunk = size;
                }
                let want = buf
                    .len()
                    .min(usize::try_from(*in_chunk).unwrap_or(usize::MAX));
                let n = self.reader.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the client closed the connection inside a chunk",
                    ));
                }
                *in_chunk -= n as u64;
                if *in_chunk == 0 && !read_line(self.reader)?.is_empty() {
                    return Err(bad("a chunk was longer than its declared size".into()));
                }
                Ok(n)
            }
        }
    }
}

/// A response: status, headers and a small body (errors, manifests).
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// For HEAD: the length the body would have had.
    pub length: Option<u64>,
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            length: None,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    pub fn body(mut self, content_type: &str, body: Vec<u8>) -> Response {
        self.headers
            .push(("Content-Type", content_type.to_string()));
        self.body = body;
        self
    }

    /// The Content-Length to send; the body is left out (HEAD).
    pub fn length_only(mut self, length: u64) -> Response {
        self.length = Some(length);
        self.body.clear();
        self
    }
}

/// One kept-alive connection: requests in order, each answered before the next.
pub struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Connection {
    pub fn new(stream: TcpStream) -> io::Result<Connection> {
        let writer = stream.try_clone()?;
        Ok(Connection {
            reader: BufReader::with_capacity(256 << 10, stream),
            writer,
        })
    }

    /// Closes the connection in both directions.
    pub fn close(&self) {
        let _ = self.writer.shutdown(std::net::Shutdown::Both);
    }

    /// Answers a TLS client in plain HTTP and waits briefly for it to
    /// close. Closing with its ClientHello unread would send a reset, which
    /// can destroy the answer before the client reads it; so our side is
    /// shut for writing and the rest of the hello read and dropped, for at
    /// most a second.
    fn refuse_tls(&mut self) {
        if self.writer.write_all(PLAIN_HTTP_TO_TLS_CLIENT).is_err() {
            return;
        }
        let _ = self.writer.shutdown(std::net::Shutdown::Write);
        let _ = self
            .reader
            .get_ref()
            .set_read_timeout(Some(std::time::Duration::from_secs(1)));
        let _ = io::copy(&mut self.reader, &mut io::sink());
    }

    /// Serves requests until the client closes the connection or sends one
    /// we cannot frame. `handle` gets the head and the body stream and
    /// returns the response.
    pub fn serve(
        &mut self,
        mut handle: impl FnMut(&Head, &mut Body<'_>) -> Response,
    ) -> io::Result<()> {
        loop {
            // docker tries TLS first on an insecure registry and falls back
            // to plain HTTP when the handshake fails. A ClientHello (record
            // type 0x16) is answered at once, not by waiting for a request
            // line that never comes (docker would wait 10 s), and answered
            // in plain HTTP, as a plain registry is heard to answer:
            // containerd's resolver (Docker 28+ with the containerd store)
            // falls back to http only when its TLS client reads a record
            // header of "HTTP/"; a bare close reads as EOF and fails the push.
            match self.reader.fill_buf()?.first() {
                None => return Ok(()),
                Some(&TLS_HANDSHAKE) => {
                    self.refuse_tls();
                    return Ok(());
                }
                Some(_) => {}
            }
            let head = match read_head(&mut self.reader)? {
                Some(head) => head,
                None => return Ok(()),
            };
            let framing = framing(&head)?;
            let mut body = Body {
                reader: &mut self.reader,
                framing,
            };
            let response = handle(&head, &mut body);
            // What the handler did not read (a rejected upload) is drained
            // so that the next request starts where it should; a body that
            // cannot be drained ends the connection after the answer.
            let drained = io::copy(&mut body, &mut io::sink()).is_ok() && body.is_done();
            let close = head.wants_close() || !drained;
            write_response(&mut self.writer, &head, &response, close)?;
            if close {
                return Ok(());
            }
        }
    }
}

fn write_response(
    out: &mut TcpStream,
    head: &Head,
    response: &Response,
    close: bool,
) -> io::Result<()> {
    let mut text = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason(response.status)
    );
    for (name, value) in &response.headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    let length = response.length.unwrap_or(response.body.len() as u64);
    text.push_str(&format!("Content-Length: {length}\r\n"));
    if close {
        text.push_str("Connection: close\r\n");
    }
    text.push_str("\r\n");
    let mut bytes = text.into_bytes();
    if head.method != "HEAD" {
        bytes.extend_from_slice(&response.body);
    }
    out.write_all(&bytes)?;
    out.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        416 => "Range Not Satisfiable",
        500 => "Internal Server Error",
        _ => "Status",
    }
}

/// The next request head, or None when the client closed the connection
/// between requests.
fn read_head(reader: &mut BufReader<TcpStream>) -> io::Result<Option<Head>> {
    let request_line = match read_line(reader) {
        Ok(line) => line,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(_version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad(format!("not an HTTP request line: {request_line:?}")));
    };
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader)?;
        if line.is_empty() {
            break;
        }
        if headers.len() >= HEADER_LIMIT {
            return Err(bad("more than 100 header lines".into()));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad(format!("not a header line: {line:?}")));
        };
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect();
    Ok(Some(Head {
        method: method.to_string(),
        path: percent_decode(path),
        query,
        headers,
    }))
}

fn framing(head: &Head) -> io::Result<Framing> {
    if head
        .header("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
    {
        return Ok(Framing::Chunked {
            in_chunk: 0,
            done: false,
        });
    }
    let remaining = match head.header("content-length") {
        Some(length) => length
            .parse()
            .map_err(|_| bad(format!("invalid Content-Length {length:?}")))?,
        None => 0,
    };
    Ok(Framing::Length { remaining })
}

/// One CRLF-terminated line without its terminator, at most [`LINE_LIMIT`].
fn read_line(reader: &mut BufReader<TcpStream>) -> io::Result<String> {
    let mut line = Vec::new();
    let n = reader
        .by_ref()
        .take(LINE_LIMIT as u64 + 2)
        .read_until(b'\n', &mut line)?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    if line.last() != Some(&b'\n') {
        return Err(bad(format!("a line longer than {LINE_LIMIT} bytes")));
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| bad("a request line that is not UTF-8".into()))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn bad(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// containerd's resolver falls back from https to http only when its
    /// TLS client reads "HTTP/" where a record header should be.
    #[test]
    fn answers_a_tls_client_hello_in_plain_http_and_closes() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut connection = Connection::new(stream).unwrap();
            connection.serve(|_, _| panic!("a ClientHello is not a request"))
        });
        let mut client = TcpStream::connect(address).unwrap();
        client
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        // A TLS 1.0 record header, handshake type 1 (ClientHello).
        client
            .write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 0x01])
            .unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).unwrap();
        drop(client);
        server.join().unwrap().unwrap();
        assert!(answer.starts_with(b"HTTP/"), "{answer:?}");
    }

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(percent_decode("sha256%3Aabc"), "sha256:abc");
        assert_eq!(percent_decode("a%2Fb+c"), "a/b c");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
