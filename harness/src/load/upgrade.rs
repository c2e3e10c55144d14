//! Cleartext HTTP/2 by HTTP/1.1 Upgrade, client side: the first request goes out as
//! HTTP/1.1 with `Upgrade: h2c`; after `101`, its response arrives on stream 1 of the
//! HTTP/2 connection, which the load driver's client starts with stream 1 open.

use std::time::Instant;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::conn::{ConnCtx, End};
use super::h2::Inflight;
use super::source::Next;
use crate::h1wire::MAX_LINE_BYTES;
use crate::h2wire::client::Client;

/// Reads the response head to the upgrade request: `Ok(Ok(leftover))` on 101,
/// `Ok(Err(status))` when the server answered without switching.
async fn read_101(tcp: &mut TcpStream) -> Result<Result<BytesMut, u16>, String> {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        if buf.len() > MAX_LINE_BYTES {
            // A head that never ends would otherwise grow until the timeout; the limit
            // is the one the HTTP/1.1 reader puts on every head.
            return Err("protocol:head_too_large".into());
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&buf) {
            Ok(httparse::Status::Complete(n)) => {
                if resp.code == Some(101) {
                    buf.advance(n);
                    return Ok(Ok(buf));
                }
                return Ok(Err(resp.code.unwrap_or(0)));
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Err(format!("protocol:{}", e.to_string().replace(' ', "_"))),
        }
        buf.reserve(4096);
        match tcp.read_buf(&mut buf).await {
            Ok(0) => return Err("closed".into()),
            Ok(_) => {}
            Err(e) => return Err(super::conn::io_class(&e)),
        }
    }
}

/// Sends `GET path` with `Upgrade: h2c`; on 101, `Ok(Ok(bytes read past the 101))`.
pub async fn switch(
    tcp: &mut TcpStream,
    authority: &str,
    path: &str,
) -> Result<Result<BytesMut, u16>, String> {
    let head = format!(
        "GET {path} HTTP/1.1\r\nhost: {authority}\r\nconnection: Upgrade, HTTP2-Settings\r\nupgrade: h2c\r\nhttp2-settings: \r\n\r\n"
    );
    tcp.write_all(head.as_bytes())
        .await
        .map_err(|e| super::conn::io_class(&e))?;
    read_101(tcp).await
}

/// Upgrades `tcp` with the first request, then drives it as HTTP/2.
pub async fn drive(mut tcp: TcpStream, ctx: &ConnCtx) -> End {
    let mut held = super::room::Held::new(&ctx.room);
    held.freed(1, Instant::now());
    let ticket = loop {
        match ctx.source.next() {
            Next::Go(t) => break t,
            Next::Done => return End::Finished,
            Next::Wait => ctx.source.notified().await,
        }
    };
    let ready = held.take(ticket.intended);
    drop(held);
    let path = ctx.pick().path.clone();
    let sent = Instant::now();
    let fail = |class: &str| {
        ctx.recorder
            .borrow_mut()
            .error(class, ticket.intended, Instant::now(), ticket.warmup);
        End::Closed
    };
    let leftover = match tokio::time::timeout(
        ctx.timeout,
        switch(&mut tcp, &ctx.cfg.authority, &path),
    )
    .await
    {
        Ok(Ok(Ok(rest))) => rest,
        Ok(Ok(Err(_))) => return fail("h2c_upgrade_declined"),
        Ok(Err(class)) => return fail(&class),
        Err(_) => return fail("timeout"),
    };
    let first = Inflight {
        ticket,
        ready,
        sent,
        first_byte: None,
    };
    super::h2::drive(tcp, Client::upgraded(first), leftover.to_vec(), ctx).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server on loopback that reads the upgrade request and answers `reply`, then
    /// keeps the connection open until the client is done.
    async fn answer(reply: Vec<u8>) -> Result<Result<BytesMut, u16>, String> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = [0u8; 1024];
            let _ = s.read(&mut req).await;
            // The client stops reading at its limit: a failed write is expected then.
            let _ = s.write_all(&reply).await;
            s
        });
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        // Bounded: a client without a head limit would wait here for the rest.
        let r = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            switch(&mut tcp, "localhost", "/"),
        )
        .await
        .unwrap_or_else(|_| Err("no answer within 5 s".into()));
        drop(tcp);
        let _ = server.await;
        r
    }

    #[tokio::test]
    async fn a_101_hands_over_the_bytes_after_it() {
        let r = answer(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: h2c\r\n\r\nframes".to_vec());
        assert_eq!(r.await, Ok(Ok(BytesMut::from(&b"frames"[..]))));
    }

    #[tokio::test]
    async fn an_endless_answer_to_the_upgrade_is_refused_at_the_head_limit() {
        let mut reply = b"HTTP/1.1 101 Switching Protocols\r\nx-pad: ".to_vec();
        reply.resize(reply.len() + 4 * MAX_LINE_BYTES, b'a');
        assert_eq!(
            answer(reply).await,
            Err("protocol:head_too_large".to_string())
        );
    }
}
