//! Claims SECURITY.md makes about the running server, checked on the wire.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use fenpay_tests::TestApp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The h2 crate comes with actix-http and has open advisories (RUSTSEC-2026-0258), which
/// SECURITY.md answers with "the listener speaks HTTP/1.1 only". A client that opens with
/// the HTTP/2 connection preface (prior knowledge, h2c) must get an HTTP/1.1 answer or a
/// closed connection, never an HTTP/2 SETTINGS frame.
#[tokio::test]
async fn the_listener_never_speaks_http2() {
    let app = TestApp::sqlite(&[]).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    // An empty SETTINGS frame: length 0, type 4, flags 0, stream 0.
    hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    conn.write_all(&hello).await.unwrap();
    let mut answer = Vec::new();
    // Whatever came back before the server closed (or before we stopped waiting): an
    // HTTP/2 server sends its SETTINGS frame first, which starts with a length, not text.
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        conn.read_to_end(&mut answer),
    )
    .await;
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 "),
        "the server answered the HTTP/2 preface with {:?}",
        String::from_utf8_lossy(&answer[..answer.len().min(64)])
    );
    // The server is unharmed.
    let (status, body) = app.get("/healthz", None).await;
    assert_eq!(status, 200, "{body}");
}
