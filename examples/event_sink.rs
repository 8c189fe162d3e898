//! Webhook receiver for `bench/events.sh`: answers every request `200` and
//! appends one line per request to OUTFILE:
//! `<webhook-id> <lag_ms> <received_unix_ms>`, where the lag runs from the
//! event's `time` (when the change was made, just before its commit) to its
//! receipt here. Client, server and receiver share one machine and clock.
//!
//! Usage: event_sink PORT OUTFILE

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a bench tool fails loudly
#![allow(clippy::disallowed_methods)] // it measures wall-clock lag against the events' times

use std::io::Write;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let listener = TcpListener::bind(("127.0.0.1", args[1].parse::<u16>().unwrap()))
        .await
        .unwrap();
    let out = Arc::new(Mutex::new(std::io::BufWriter::new(
        std::fs::File::create(&args[2]).unwrap(),
    )));
    let flusher = out.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            flusher.lock().unwrap().flush().unwrap();
        }
    });
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        tokio::spawn(connection(stream, out.clone()));
    }
}

async fn connection(mut stream: TcpStream, out: Arc<Mutex<std::io::BufWriter<std::fs::File>>>) {
    let mut buf = Vec::new();
    loop {
        let (id, start, length) = loop {
            let mut names = [httparse::EMPTY_HEADER; 32];
            let mut request = httparse::Request::new(&mut names);
            if let Ok(httparse::Status::Complete(n)) = request.parse(&buf) {
                let header = |name: &str| {
                    request
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| String::from_utf8_lossy(h.value).into_owned())
                        .unwrap_or_default()
                };
                let length: usize = header("content-length").parse().unwrap_or(0);
                break (header("webhook-id"), n, length);
            }
            let mut chunk = [0u8; 16384];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        while buf.len() < start + length {
            let mut chunk = [0u8; 16384];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let now = time::OffsetDateTime::now_utc();
        let body: serde_json::Value =
            serde_json::from_slice(&buf[start..start + length]).unwrap_or_default();
        buf.drain(..start + length);
        let at = body["time"]
            .as_str()
            .and_then(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .unwrap_or(now);
        let lag_ms = (now - at).as_seconds_f64() * 1000.0;
        let received_ms = now.unix_timestamp_nanos() / 1_000_000;
        writeln!(out.lock().unwrap(), "{id} {lag_ms:.3} {received_ms}").unwrap();
        if stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
    }
}
