//! Sockets: the accept loop, HTTP-vs-WebSocket sniffing on the shared port,
//! and one task per WebSocket connection (handshake, frame decryption,
//! routing, outbound queue).
//!
//! Invariants:
//! - a connection's failure (bad frame, bad handshake, unknown stanza) is
//!   logged once and closes that connection only;
//! - after a `<stream:error>` (or `<failure>`) the socket is closed ~50 ms
//!   later: clients do not close it themselves for most codes (spec §9);
//! - per-connection state is one task, one unbounded channel, the frame
//!   decoder and the two cipher counters: an idle connection costs a few KiB.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_websockets::{CloseCode, Message, WebSocketStream};
use wacore::framing::FrameDecoder;
use wacore_binary::Node;
use wacore_binary::consts::WA_CONN_HEADER;

use crate::accounts::{ConnEntry, Outbound};
use crate::codec;
use crate::control::{Direction, Shared};
use crate::error::{FakeError, Result};
use crate::noise::{self, HelloOutcome, NoiseTransport};
use crate::router::{self, ConnCtx};

/// Time a client gets for each handshake message and for its HTTP request line.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);
/// Frames larger than this make the connection drop its decoder buffer afterwards.
const IDLE_DECODER_CAPACITY: usize = 4 * 1024;
/// Pause between a fatal stanza and the close frame, so the client reads it.
const CLOSE_AFTER_FATAL: Duration = Duration::from_millis(50);

/// Accepts connections until `shutdown` flips to true.
pub(crate) async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    let admin = crate::admin_http::router(shared.clone());
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve_socket(
                        shared.clone(),
                        stream,
                        admin.clone(),
                        shutdown.clone(),
                    ));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}

/// Is this TCP stream a WebSocket upgrade for `/ws/…`? Peeks the request line.
async fn is_websocket(stream: &TcpStream) -> std::io::Result<bool> {
    let mut buf = [0u8; 512];
    let sniff = async {
        loop {
            let n = stream.peek(&mut buf).await?;
            if n == 0 {
                return Ok(false);
            }
            let seen = &buf[..n];
            if seen.windows(2).any(|w| w == b"\r\n") || n == buf.len() {
                return Ok(seen.starts_with(b"GET /ws"));
            }
            // Partial request line: wait for more bytes.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, sniff)
        .await
        .unwrap_or(Ok(false))
}

async fn serve_socket(
    shared: Arc<Shared>,
    stream: TcpStream,
    admin: axum::Router,
    shutdown: watch::Receiver<bool>,
) {
    match is_websocket(&stream).await {
        Ok(true) => serve_ws(shared, stream, shutdown).await,
        Ok(false) => {
            let service = TowerToHyperService::new(admin);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "admin HTTP connection ended with an error");
            }
        }
        Err(e) => tracing::debug!(error = %e, "connection closed before its request line"),
    }
}

async fn serve_ws(shared: Arc<Shared>, stream: TcpStream, shutdown: watch::Receiver<bool>) {
    let mut ws = match tokio_websockets::ServerBuilder::new().accept(stream).await {
        Ok((_request, ws)) => ws,
        Err(e) => {
            tracing::warn!(error = %e, "WebSocket upgrade failed");
            return;
        }
    };
    let id = shared.next_conn_id();
    let (tx, rx) = mpsc::unbounded_channel();
    shared.reg.lock().conns.insert(
        id,
        ConnEntry {
            tx: tx.clone(),
            device: None,
            ready: false,
        },
    );
    let mut ctx = ConnCtx {
        id,
        tx,
        device: None,
    };
    let result = run_connection(&shared, &mut ctx, &mut ws, rx, shutdown).await;
    shared.reg.lock().detach(id);
    shared.notify();
    match result {
        Ok(()) => tracing::debug!(conn.id = id, "connection closed"),
        Err(e) => tracing::error!(conn.id = id, error = %e, "connection closed after an error"),
    }
    let _ = ws.close().await;
}

/// Reads WebSocket messages into the frame decoder until one frame is complete.
/// `header` is `Some` until the 4-byte connection header was consumed.
async fn next_frame(
    ws: &mut WebSocketStream<TcpStream>,
    decoder: &mut FrameDecoder,
    header: &mut Option<Vec<u8>>,
) -> Result<Option<Vec<u8>>> {
    loop {
        if header.is_none()
            && let Some(frame) = decoder.decode_frame()
        {
            return Ok(Some(frame.to_vec()));
        }
        let msg = match tokio::time::timeout(HANDSHAKE_TIMEOUT, ws.next()).await {
            Err(_) => return Err(FakeError::Protocol("handshake timed out".into())),
            Ok(None) => return Ok(None),
            Ok(Some(Err(e))) => return Err(FakeError::protocol(e)),
            Ok(Some(Ok(m))) => m,
        };
        if msg.is_close() {
            return Ok(None);
        }
        if !msg.is_binary() {
            continue;
        }
        feed(decoder, header, msg.as_payload())?;
    }
}

/// Feeds bytes to the decoder, stripping the connection header first.
fn feed(decoder: &mut FrameDecoder, header: &mut Option<Vec<u8>>, data: &[u8]) -> Result<()> {
    match header {
        Some(pending) => {
            pending.extend_from_slice(data);
            if pending.len() >= WA_CONN_HEADER.len() {
                if pending[..WA_CONN_HEADER.len()] != WA_CONN_HEADER {
                    return Err(FakeError::Protocol(
                        "connection does not start with the WA header".into(),
                    ));
                }
                decoder.feed(&pending[WA_CONN_HEADER.len()..]);
                *header = None;
            }
        }
        None => decoder.feed(data),
    }
    Ok(())
}

async fn send_frame(ws: &mut WebSocketStream<TcpStream>, payload: &[u8]) -> Result<()> {
    let framed = wacore::framing::encode_frame(payload, None).map_err(FakeError::protocol)?;
    ws.send(Message::binary(framed))
        .await
        .map_err(FakeError::protocol)
}

async fn send_node(
    shared: &Shared,
    ctx: &ConnCtx,
    ws: &mut WebSocketStream<TcpStream>,
    cipher: &mut NoiseTransport,
    node: &Node,
) -> Result<()> {
    shared.record(ctx.id, ctx.device.as_ref(), Direction::ToClient, node);
    tracing::trace!(conn.id = ctx.id, stanza = %codec::display(node), "-> client");
    let plaintext = codec::encode_node(node)?;
    let ciphertext = cipher.encrypt(&plaintext)?;
    send_frame(ws, &ciphertext).await
}

async fn run_connection(
    shared: &Arc<Shared>,
    ctx: &mut ConnCtx,
    ws: &mut WebSocketStream<TcpStream>,
    mut rx: mpsc::UnboundedReceiver<Outbound>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let mut decoder = FrameDecoder::new();
    let mut header = Some(Vec::with_capacity(4));
    let Some(hello) = next_frame(ws, &mut decoder, &mut header).await? else {
        return Ok(());
    };
    let (mut cipher, payload, client_static) = match noise::accept_hello(&shared.keys, &hello)? {
        HelloOutcome::Done {
            server_hello,
            transport,
            client_payload,
            client_static,
        } => {
            send_frame(ws, &server_hello).await?;
            shared.record_handshake(noise::HandshakePattern::Ik);
            tracing::debug!(conn.id = ctx.id, pattern = ?noise::HandshakePattern::Ik, "handshake done");
            (transport, client_payload, client_static)
        }
        HelloOutcome::AwaitFinish {
            server_hello,
            pending,
        } => {
            send_frame(ws, &server_hello).await?;
            let pattern = pending.pattern;
            let Some(finish) = next_frame(ws, &mut decoder, &mut header).await? else {
                return Ok(());
            };
            let (transport, payload, client_static) = pending.finish(&finish)?;
            shared.record_handshake(pattern);
            tracing::debug!(conn.id = ctx.id, ?pattern, "handshake done");
            (transport, payload, client_static)
        }
    };
    router::on_login(shared, ctx, &payload, &client_static)?;

    loop {
        tokio::select! {
            biased;
            out = rx.recv() => match out {
                Some(Outbound::Node(node)) => {
                    // A muted device's socket swallows everything: the
                    // "connected but nothing arrives" zombie.
                    if !router::is_muted(shared, ctx) {
                        Box::pin(send_node(shared, ctx, ws, &mut cipher, &node)).await?
                    }
                }
                Some(Outbound::Fatal(node)) => {
                    Box::pin(send_node(shared, ctx, ws, &mut cipher, &node)).await?;
                    // The stream is over for the protocol now: stop counting
                    // it, so a client reconnecting at once (515) is not seen
                    // as a second simultaneous connection during the close delay.
                    shared.reg.lock().detach(ctx.id);
                    shared.notify();
                    tokio::time::sleep(CLOSE_AFTER_FATAL).await;
                    let _ = ws.send(Message::close(Some(CloseCode::NORMAL_CLOSURE), "")).await;
                    return Ok(());
                }
                Some(Outbound::Close) | None => {
                    let _ = ws.send(Message::close(Some(CloseCode::NORMAL_CLOSURE), "")).await;
                    return Ok(());
                }
            },
            msg = ws.next() => {
                let msg = match msg {
                    None => return Ok(()),
                    Some(Err(e)) => return Err(FakeError::protocol(e)),
                    Some(Ok(m)) => m,
                };
                if msg.is_close() {
                    return Ok(());
                }
                if !msg.is_binary() {
                    continue;
                }
                decoder.feed(msg.as_payload());
                let mut largest = 0;
                while let Some(frame) = decoder.decode_frame() {
                    largest = largest.max(frame.len());
                    let mut frame = frame.to_vec();
                    cipher.decrypt(&mut frame)?;
                    let node = codec::decode_node(&frame)?;
                    tracing::trace!(conn.id = ctx.id, stanza = %codec::display(&node), "<- client");
                    shared.record(ctx.id, ctx.device.as_ref(), Direction::FromClient, &node);
                    // Boxed: the router's futures are large and would otherwise
                    // be part of every idle connection's task.
                    Box::pin(router::handle(shared, ctx, node)).await?;
                }
                // The decoder keeps the capacity of its largest frame (the
                // prekey upload is ~40 KiB); an idle connection should not.
                if largest > IDLE_DECODER_CAPACITY && decoder.buffered_len() == 0 {
                    decoder = FrameDecoder::new();
                }
            },
            _ = shutdown.changed() => return Ok(()),
        }
    }
}
