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
use crate::h2wire::client::Client;

/// Reads the response head to the upgrade request: `Ok(Ok(leftover))` on 101,
/// `Ok(Err(status))` when the server answered without switching.
async fn read_101(tcp: &mut TcpStream) -> Result<Result<BytesMut, u16>, String> {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
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
