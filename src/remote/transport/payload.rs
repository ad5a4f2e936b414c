//! Requests with bytes beside them: a large blob crosses the connection as
//! raw bytes right after its request line (or after its answer line),
//! outside git's pack protocol, whose every pass over it (compressing,
//! hashing, indexing) costs about a second per 100 MiB.

use std::io::{Read, Write};

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::connection::Connection;
use super::liveness::Lost;
use crate::error::{Error, Result};
use crate::progress::{Counted, Step};
use crate::remote::protocol::{self, Request};

impl Connection {
    /// Show the payloads of the next sends, `total` bytes in all, as one send.
    pub fn one_send(&mut self, total: u64) {
        self.send_span = (total > 0).then(|| {
            crate::progress::report(Step::Send, 0, total);
            (0, total)
        });
    }

    /// Send request `op` followed by exactly `size` bytes of `payload`, and
    /// wait for its answer. A payload that ends early breaks the connection.
    pub fn call_sending<T: DeserializeOwned>(
        &mut self,
        op: &str,
        params: Value,
        payload: &mut dyn Read,
        size: u64,
    ) -> Result<T> {
        let request = Request { op: op.to_owned(), params };
        self.op = op.to_owned();
        let span = self.send_span.take();
        let sent = (|| {
            let mut input = self.input_timed();
            protocol::write_json(&mut input, &request)?;
            // What the link took counts, not what was read for it.
            let mut input = match span {
                Some((done, total)) => Counted::starting_at(input, Step::Send, done, total),
                None => Counted::new(input, Step::Send, size),
            };
            let copied = std::io::copy(&mut payload.take(size), &mut input)?;
            input.flush()?;
            self.moved.sent += copied;
            self.send_span = match span {
                Some((done, total)) if done + copied < total => Some((done + copied, total)),
                _ => None,
            };
            if copied != size {
                return Err(Error::failed("payload_short", format!("only {copied} of {size} bytes could be sent")));
            }
            Ok(())
        })();
        if let Err(e) = sent {
            if matches!(self.lost, Some(Lost::Silent(_))) {
                return Err(self.failure(op));
            }
            // The helper waits for the rest: end the session instead. A
            // helper that refused the bytes unread said why before it ended
            // (a link gone silent was left above: this read ends).
            self.link.close_input();
            let said = protocol::read_line(self.link.output()).ok().flatten();
            let refusal = said.and_then(|line| serde_json::from_slice::<protocol::Response>(&line).ok());
            return match refusal.and_then(|r| r.error) {
                Some(error) => Err(error.into_error(&self.host.name)),
                None if self.lost.is_some() => Err(self.failure(op)),
                None => Err(e),
            };
        }
        self.answer(op, Ok(()), None)
    }

    /// Send request `op` whose answer (`T`) is followed by `size_of(answer)`
    /// raw bytes, which `receive` reads. Bytes it leaves unread are skipped,
    /// so the next answer follows in order.
    pub fn call_receiving<T: DeserializeOwned>(
        &mut self,
        op: &str,
        params: Value,
        size_of: impl Fn(&T) -> u64,
        receive: impl FnOnce(&T, &mut dyn Read) -> Result<()>,
    ) -> Result<T> {
        let answer: T = self.call(op, params)?;
        let size = size_of(&answer);
        let mut bytes = Counted::new(self.output_timed(false), Step::Receive, size).take(size);
        let received = receive(&answer, &mut bytes);
        if received.as_ref().is_err_and(|e| e.code == "too_large") {
            // More than this side takes was announced: neither kept nor read.
            self.link.kill();
            return received.map(|()| answer);
        }
        // Bytes it left unread are skipped, unless the link stopped carrying them.
        let drained = match bytes.get_ref().inner.lost.is_some() {
            true => Ok(0),
            false => std::io::copy(&mut bytes, &mut std::io::sink()),
        };
        let short = bytes.limit() != 0;
        if self.lost.is_some() || short {
            // The answer's bytes ended early: the link or the helper went.
            return Err(self.failure(op));
        }
        drained?;
        self.moved.received += size;
        received.map(|()| answer)
    }
}
