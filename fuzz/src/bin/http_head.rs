//! The request head of `run --listen` (`app::run::http::respond`): any head up to
//! `MAX_HEAD` bytes gets one well-formed HTTP/1.1 response whose Content-Length is its
//! body's length (none after HEAD), and never a panic.

use std::sync::Mutex;

use registrar::app::run::http::{respond, MAX_HEAD};
use registrar::app::run::telemetry::Telemetry;

fn main() {
    let telemetry = Mutex::new(Telemetry::new(None));
    afl::fuzz!(|data: &[u8]| {
        let head = &data[..data.len().min(MAX_HEAD)];
        let response = respond(head, &telemetry);
        let text = std::str::from_utf8(&response).expect("the response is UTF-8");
        let (status_and_headers, body) = text
            .split_once("\r\n\r\n")
            .expect("a blank line ends the response head");
        let mut lines = status_and_headers.split("\r\n");
        let status = lines.next().unwrap();
        assert!(
            [
                "200 OK",
                "404 Not Found",
                "405 Method Not Allowed",
                "503 Service Unavailable"
            ]
            .iter()
            .any(|known| status == format!("HTTP/1.1 {known}")),
            "status line {status:?}"
        );
        let length: usize = lines
            .find_map(|line| line.strip_prefix("Content-Length: "))
            .expect("a Content-Length")
            .parse()
            .expect("a number");
        assert!(
            body.is_empty() || body.len() == length,
            "body of {} bytes, Content-Length {length}",
            body.len()
        );
    });
}
