//! End-to-end tests: the real whatsapp-rust client against the fake server.
//! The client and the fake's start-up are in the test support crate
//! (`tests/support`, [`test_support::fake`]).

mod read_state;
mod rich;

use std::time::Duration;

use fakewa::{Config, FakeServer, HandshakePattern, StreamErrorKind};
use test_support::WAIT;
use test_support::fake::{self, ClientOptions, TestClient, new_backend, start_fake as server};
use whatsapp_rust::NodeBuilder;
use whatsapp_rust::prelude::*;

/// Starts a fresh client and links it by QR; returns it once Connected.
async fn paired(srv: &FakeServer) -> (TestClient, fakewa::Linked) {
    let mut c = TestClient::start(&srv.ws_url(), new_backend(), ClientOptions::default()).await;
    let qr = c.qr().await;
    let linked = srv.scan_qr(&qr).await.expect("QR scan links");
    c.connected(WAIT).await;
    (c, linked)
}

#[tokio::test]
async fn qr_pairing_reaches_connected() {
    // How fast is measured by the benchmarks (create → QR, the capacity
    // ladder), not asserted here: a loaded CI machine is no measure.
    let srv = server().await;
    let mut c = TestClient::start(&srv.ws_url(), new_backend(), ClientOptions::default()).await;
    let qr = c.qr().await;
    let linked = srv.scan_qr(&qr).await.expect("QR scan links");
    c.connected(WAIT).await;
    assert!(linked.phone.starts_with("1555000"));
    assert_eq!(
        c.client.pn().map(|j| j.to_string()),
        Some(linked.jid.clone()),
        "client stored the JID the phone linked"
    );
    assert_eq!(srv.connection_count(&linked.phone), 1);
    assert_eq!(srv.max_concurrent_connections(&linked.phone), 1);
}

/// Contact `from` sends `text` to `to`; returns the sender once the client got it.
async fn receive(srv: &FakeServer, c: &mut TestClient, from: &str, to: &str, text: &str) -> Jid {
    srv.contact_send_text(from, to, text).await.expect("queued");
    c.message_text(text, WAIT).await
}

/// Waits for `LoggedOut`; returns its `on_connect` flag.
async fn logged_out(c: &mut TestClient) -> bool {
    c.wait_for("LoggedOut", WAIT, |e| match e {
        Event::LoggedOut(l) => Some(l.on_connect),
        _ => None,
    })
    .await
}

/// Gives a client that should stay down time to (wrongly) reconnect.
///
/// A deliberate fixed wait: the point is that nothing happens (no login, no
/// connection), and there is no event for "did not reconnect". 2 s is about
/// twice whatsapp-rust's first reconnect delay (1 s ± 10 %).
async fn settle() {
    tokio::time::sleep(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn stream_error_503_reconnects_with_ik() {
    let srv = server().await;
    let (mut c, linked) = paired(&srv).await;
    assert_eq!(srv.login_count(&linked.phone), 1);
    c.clear_events();
    srv.inject_stream_error(&linked.jid, StreamErrorKind::Code503)
        .await
        .expect("injected");
    c.connected(WAIT).await;
    assert_eq!(srv.login_count(&linked.phone), 2);
    assert_eq!(srv.handshakes().last(), Some(&HandshakePattern::Ik));
    assert_eq!(srv.connection_count(&linked.phone), 1);
    assert_eq!(srv.max_concurrent_connections(&linked.phone), 1);
}

#[tokio::test]
async fn restarted_client_logs_in_with_stored_credentials() {
    let srv = server().await;
    let (c, linked) = paired(&srv).await;
    let backend = c.stop().await;
    srv.wait_for_connection_count(&linked.phone, 0, WAIT)
        .await
        .expect("old connection closed");
    let mut c = TestClient::start(&srv.ws_url(), backend, ClientOptions::default()).await;
    c.connected(WAIT).await;
    assert_eq!(
        c.count(|e| matches!(e, Event::PairingQrCode(_))),
        0,
        "no pairing"
    );
    assert_eq!(srv.login_count(&linked.phone), 2);
    assert_eq!(srv.handshakes().last(), Some(&HandshakePattern::Ik));
    assert_eq!(srv.linked_devices().len(), 1);
}

#[tokio::test]
async fn replaced_stops_the_client_without_reconnecting() {
    let srv = server().await;
    let (mut c, linked) = paired(&srv).await;
    srv.inject_stream_error(&linked.phone, StreamErrorKind::Replaced)
        .await
        .expect("injected");
    c.wait_for("StreamReplaced", WAIT, |e| {
        matches!(e, Event::StreamReplaced(_)).then_some(())
    })
    .await;
    settle().await;
    assert_eq!(
        srv.login_count(&linked.phone),
        1,
        "no reconnect after replaced"
    );
    assert_eq!(srv.connection_count(&linked.phone), 0);
    assert!(
        !srv.is_removed(&linked.phone),
        "replaced keeps the device linked"
    );
}

#[tokio::test]
async fn stream_error_401_logs_out_and_blocks_the_next_login() {
    let srv = server().await;
    let (mut c, linked) = paired(&srv).await;
    srv.inject_stream_error(&linked.jid, StreamErrorKind::Code401)
        .await
        .expect("injected");
    assert!(!logged_out(&mut c).await, "401 arrives on a live stream");
    assert!(srv.is_removed(&linked.jid));
    settle().await;
    assert_eq!(srv.login_count(&linked.phone), 1, "no reconnect after 401");
    // The stored credentials are refused from now on.
    let backend = c.stop().await;
    let mut c = TestClient::start(&srv.ws_url(), backend, ClientOptions::default()).await;
    assert!(
        logged_out(&mut c).await,
        "next login fails with <failure 401>"
    );
}

#[tokio::test]
async fn device_removed_logs_out() {
    let srv = server().await;
    let (mut c, linked) = paired(&srv).await;
    srv.remove_device(&linked.phone).await.expect("removed");
    assert!(!logged_out(&mut c).await);
    assert!(srv.is_removed(&linked.phone));
    settle().await;
    assert_eq!(srv.login_count(&linked.phone), 1);
}

#[tokio::test]
async fn logout_unlinks_and_the_next_login_fails_with_401() {
    let srv = server().await;
    let (mut c, linked) = paired(&srv).await;
    c.client.logout().await;
    logged_out(&mut c).await;
    srv.wait_for_connection_count(&linked.phone, 0, WAIT)
        .await
        .expect("connection closed after logout");
    assert!(srv.is_removed(&linked.jid));
    let backend = c.stop().await;
    let mut c = TestClient::start(&srv.ws_url(), backend, ClientOptions::default()).await;
    assert!(logged_out(&mut c).await, "<failure reason=401> on connect");
    assert_eq!(srv.login_count(&linked.phone), 1);
}

#[tokio::test]
async fn stream_error_515_reconnects_at_once() {
    let srv = server().await;
    let (mut c, linked) = paired(&srv).await;
    c.clear_events();
    srv.inject_stream_error(&linked.jid, StreamErrorKind::Code515)
        .await
        .expect("injected");
    c.connected(WAIT).await;
    assert_eq!(srv.login_count(&linked.phone), 2);
    assert_eq!(srv.max_concurrent_connections(&linked.phone), 1);
}

/// `<enc type>` of the messages the fake sent from `from` (in order).
fn enc_types_from(srv: &FakeServer, from: &str) -> Vec<String> {
    srv.stanzas()
        .iter()
        .filter(|s| s.direction == fakewa::Direction::ToClient && s.node.tag == "message")
        .filter(|s| {
            s.node
                .attrs
                .get("from")
                .is_some_and(|v| v.as_str().starts_with(from))
        })
        .filter_map(|s| s.node.get_optional_child("enc"))
        .filter_map(|enc| enc.attrs.get("type").map(|v| v.as_str().into_owned()))
        .collect()
}

#[tokio::test]
async fn sent_text_is_decrypted_by_the_contact() {
    let srv = server().await;
    let (c, linked) = paired(&srv).await;
    let sent = c
        .client
        .send_text(Jid::pn("15550002222"), "hello bob from client")
        .await
        .expect("sent");
    let got = srv
        .wait_for_sent_message(|m| m.text == "hello bob from client", WAIT)
        .await
        .expect("contact decrypted it");
    assert_eq!(got.from, linked.phone);
    assert_eq!(got.to, "15550002222");
    assert_eq!(got.id, sent.message_id.to_string());
    // A second message rides the established session.
    c.send_and_decrypt(&srv, "15550002222", "second", WAIT)
        .await;
}

#[tokio::test]
async fn inbound_pkmsg_and_msg_reach_the_client() {
    let srv = server().await;
    let (mut c, linked) = paired(&srv).await;
    let sender = receive(&srv, &mut c, "15550003333", &linked.phone, "hi from carol").await;
    assert_eq!(sender.user.as_str(), "15550003333");
    // Until the client answers, the contact keeps sending prekey messages
    // (Signal semantics); after a reply it switches to plain `msg`.
    c.send_and_decrypt(&srv, "15550003333", "hi carol", WAIT)
        .await;
    receive(&srv, &mut c, "15550003333", &linked.phone, "carol again").await;
    assert_eq!(enc_types_from(&srv, "15550003333"), ["pkmsg", "msg"]);
    // The contact also answers on a session the client started.
    c.send_and_decrypt(&srv, "15550004444", "hello dave", WAIT)
        .await;
    receive(&srv, &mut c, "15550004444", &linked.jid, "dave replies").await;
    assert_eq!(enc_types_from(&srv, "15550004444"), ["msg"]);
}

#[tokio::test]
async fn each_contact_gets_its_own_one_time_prekey() {
    let srv = server().await;
    let (mut c, linked) = paired(&srv).await;
    let contacts = ["15550005001", "15550005002", "15550005003", "15550005004"];
    for (i, from) in contacts.iter().enumerate() {
        srv.contact_send_text(from, &linked.phone, &format!("otk test {i}"))
            .await
            .expect("queued");
    }
    for i in 0..contacts.len() {
        c.message_text(&format!("otk test {i}"), WAIT).await;
    }
    assert_eq!(
        c.count(|e| matches!(e, Event::UndecryptableMessage(_))),
        0,
        "a reused one-time prekey would make a pkmsg undecryptable"
    );
}

#[tokio::test]
async fn messages_to_an_offline_device_arrive_at_its_next_login() {
    let srv = server().await;
    let (c, linked) = paired(&srv).await;
    let backend = c.stop().await;
    srv.wait_for_connection_count(&linked.phone, 0, WAIT)
        .await
        .expect("offline");
    srv.contact_send_text("15550006666", &linked.phone, "while you were away")
        .await
        .expect("queued for the offline device");
    let mut c = TestClient::start(&srv.ws_url(), backend, ClientOptions::default()).await;
    c.message_text("while you were away", WAIT).await;
    // The client's receipt empties the queue: the next login gets nothing again.
    srv.wait_for_stanza(
        |s| {
            s.node.tag == "receipt"
                && s.node
                    .attrs
                    .get("to")
                    .is_some_and(|v| v.as_str().starts_with("15550006666"))
        },
        WAIT,
    )
    .await
    .expect("delivery receipt");
    let backend = c.stop().await;
    let mut c = TestClient::start(&srv.ws_url(), backend, ClientOptions::default()).await;
    c.connected(WAIT).await;
    assert_eq!(c.count(|e| matches!(e, Event::Messages(_))), 0);
}

#[tokio::test]
async fn unknown_recipients_are_an_error() {
    let srv = server().await;
    let err = srv
        .contact_send_text("15550002222", "15559990000", "nobody")
        .await
        .expect_err("no such account");
    assert!(matches!(err, fakewa::FakeError::UnknownDevice(_)));
}

#[tokio::test]
async fn pair_code_links_the_named_number() {
    let srv = server().await;
    let options = ClientOptions {
        pair_code: Some(("15550007777".into(), "ABCD1234".into())),
        ..ClientOptions::default()
    };
    let mut c = TestClient::start(&srv.ws_url(), new_backend(), options).await;
    let code = c
        .wait_for("PairingCode", WAIT, |e| match e {
            Event::PairingCode(p) => Some(p.code.clone()),
            _ => None,
        })
        .await;
    assert_eq!(code, "ABCD1234");
    let linked = srv
        .enter_pair_code("15550007777", &code)
        .await
        .expect("pair code links");
    assert_eq!(linked.phone, "15550007777");
    c.connected(WAIT).await;
    assert_eq!(
        c.client.pn().map(|j| j.user.to_string()),
        Some("15550007777".into())
    );
}

#[tokio::test]
async fn a_wrong_pair_code_does_not_link() {
    let srv = FakeServer::start(Config {
        pairing_timeout: Duration::from_secs(5),
        ..Config::default()
    })
    .await
    .expect("fake starts");
    let options = ClientOptions {
        pair_code: Some(("15550007778".into(), "ABCD1234".into())),
        ..ClientOptions::default()
    };
    let mut c = TestClient::start(&srv.ws_url(), new_backend(), options).await;
    c.wait_for("PairingCode", WAIT, |e| {
        matches!(e, Event::PairingCode(_)).then_some(())
    })
    .await;
    let err = srv.enter_pair_code("15550007778", "WXYZ9876").await;
    assert!(err.is_err(), "a wrong code must not link: {err:?}");
    assert!(srv.linked_devices().is_empty());
    assert!(c.client.pn().is_none());
}

#[tokio::test]
async fn many_accounts_link_and_message_independently() {
    let srv = server().await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(paired(&srv).await);
    }
    let mut phones: Vec<String> = clients.iter().map(|(_, l)| l.phone.clone()).collect();
    phones.sort();
    phones.dedup();
    assert_eq!(phones.len(), 3, "each scan links its own fresh account");
    // One contact writes to every account; each client gets only its own.
    for (_, linked) in &clients {
        srv.contact_send_text(
            "15550008888",
            &linked.phone,
            &format!("hi {}", linked.phone),
        )
        .await
        .expect("queued");
    }
    for (c, linked) in &mut clients {
        c.message_text(&format!("hi {}", linked.phone), WAIT).await;
        let texts = c.count(|e| match e {
            Event::Messages(b) => b.messages.iter().any(|m| m.message.conversation.is_some()),
            _ => false,
        });
        assert_eq!(texts, 1, "only its own message");
    }
    // A client writing to another linked account: recorded and forwarded.
    let (first, second) = clients.split_at_mut(1);
    let (a, a_linked) = &first[0];
    let (b, b_linked) = &mut second[0];
    a.client
        .send_text(Jid::pn(b_linked.phone.as_str()), "account to account")
        .await
        .expect("sent");
    let got = srv
        .wait_for_sent_message(|m| m.text == "account to account", WAIT)
        .await
        .expect("recorded");
    assert_eq!(
        (got.from.as_str(), got.to.as_str()),
        (a_linked.phone.as_str(), b_linked.phone.as_str())
    );
    b.message_text("account to account", WAIT).await;
    for (_, linked) in &clients {
        assert_eq!(srv.max_concurrent_connections(&linked.phone), 1);
    }
    assert_eq!(srv.connections().len(), 3);
}

#[tokio::test]
async fn scan_as_links_a_chosen_number() {
    let srv = server().await;
    let mut c = TestClient::start(&srv.ws_url(), new_backend(), ClientOptions::default()).await;
    let qr = c.qr().await;
    let linked = srv.scan_qr_as("15550001111", &qr).await.expect("linked");
    assert_eq!(linked.phone, "15550001111");
    assert!(linked.jid.starts_with("15550001111:"));
    c.connected(WAIT).await;
    assert!(
        srv.scan_qr(&qr).await.is_err(),
        "a used QR cannot link twice"
    );
}

/// Opens a raw WebSocket to the fake (no Noise), for misbehaving clients.
async fn raw_ws(
    srv: &FakeServer,
) -> tokio_websockets::WebSocketStream<tokio_websockets::MaybeTlsStream<tokio::net::TcpStream>> {
    let (ws, _) = tokio_websockets::ClientBuilder::new()
        .uri(&srv.ws_url())
        .expect("uri")
        .connect()
        .await
        .expect("ws connects");
    ws
}

/// Sends `bytes` and expects the server to close the connection.
async fn expect_closed_after(srv: &FakeServer, bytes: Vec<u8>) {
    use futures_util::{SinkExt as _, StreamExt as _};
    let mut ws = raw_ws(srv).await;
    ws.send(tokio_websockets::Message::binary(bytes))
        .await
        .expect("sent");
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(m)) if m.is_close() => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "server kept a misbehaving connection open");
}

#[tokio::test]
async fn a_misbehaving_client_is_closed_and_the_others_keep_working() {
    let srv = server().await;
    let (good, good_linked) = paired(&srv).await;
    let (mut bad, bad_linked) = paired(&srv).await;

    // Not the WA connection header.
    expect_closed_after(&srv, b"GARBAGE!".to_vec()).await;
    // Right header, undecodable handshake message.
    let mut hello = vec![b'W', b'A', 6, 3, 0, 0, 5];
    hello.extend_from_slice(&[0xff; 5]);
    expect_closed_after(&srv, hello).await;
    // Right header, ClientHello with a short ephemeral key.
    let mut hello = vec![b'W', b'A', 6, 3, 0, 0, 4];
    hello.extend_from_slice(&[0x12, 0x02, 0x0a, 0x00]);
    expect_closed_after(&srv, hello).await;

    // A linked client sending an unknown stanza, then an undecodable frame.
    bad.clear_events();
    bad.client
        .send_node(NodeBuilder::new("bogus").build())
        .await
        .expect("sent");
    bad.wait_for("Disconnected", WAIT, |e| {
        matches!(e, Event::Disconnected(_)).then_some(())
    })
    .await;
    bad.connected(WAIT).await;
    bad.clear_events();
    bad.client
        .send_raw_bytes(vec![0x00, 0xf8, 0xff, 0xff, 0xff])
        .await
        .expect("sent");
    bad.wait_for("Disconnected", WAIT, |e| {
        matches!(e, Event::Disconnected(_)).then_some(())
    })
    .await;
    assert!(srv.login_count(&bad_linked.phone) >= 2);

    // The well-behaved client never noticed.
    assert_eq!(srv.login_count(&good_linked.phone), 1);
    assert_eq!(srv.connection_count(&good_linked.phone), 1);
    good.send_and_decrypt(&srv, "15550009999", "still here", WAIT)
        .await;
}

/// An admin API request to `srv`: `(status, body)`.
async fn http(srv: &FakeServer, method: &str, path: &str, body: &str) -> (u16, String) {
    fake::http(&srv.addr().to_string(), method, path, body)
        .await
        .expect("admin API answers")
}

#[tokio::test]
async fn admin_http_api_drives_the_fake() {
    let srv = server().await;
    assert_eq!(
        http(&srv, "GET", "/admin/connections", "").await,
        (200, "[]".into())
    );
    let mut c = TestClient::start(&srv.ws_url(), new_backend(), ClientOptions::default()).await;
    let qr = c.qr().await;
    let (status, body) = http(&srv, "POST", "/admin/mock-phone/scan-qr", &qr).await;
    assert_eq!(status, 200, "{body}");
    let linked: fakewa::Linked = serde_json::from_str(&body).expect("Linked JSON");
    c.connected(WAIT).await;

    let (status, body) = http(&srv, "GET", "/admin/connections", "").await;
    assert_eq!(status, 200);
    let conns: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        conns,
        serde_json::json!([{"jid": linked.jid, "connections": 1}])
    );

    let (status, body) = http(
        &srv,
        "POST",
        "/admin/contacts/15550002222/messages",
        &serde_json::json!({"to": linked.phone, "text": "via admin"}).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    c.message_text("via admin", WAIT).await;
    let id = serde_json::from_str::<serde_json::Value>(&body).expect("json")["id"]
        .as_str()
        .expect("a message id")
        .to_string();
    let (status, _) = http(&srv, "POST", &format!("/admin/messages/{id}/redeliver"), "").await;
    assert_eq!(status, 204);
    wait_for_copies(&mut c, &id, 2).await;
    let (status, _) = http(&srv, "POST", "/admin/messages/nope/redeliver", "").await;
    assert_eq!(status, 400);
    let mute = format!("/admin/devices/{}/mute", linked.jid);
    let (status, _) = http(&srv, "POST", &mute, r#"{"muted":true}"#).await;
    assert_eq!(status, 204);
    let (status, _) = http(&srv, "POST", &mute, r#"{"muted":false}"#).await;
    assert_eq!(status, 204);

    c.send_and_decrypt(&srv, "15550002222", "to the admin log", WAIT)
        .await;
    let (_, body) = http(&srv, "GET", "/admin/messages", "").await;
    let messages: Vec<fakewa::SentMessage> = serde_json::from_str(&body).expect("json");
    assert!(
        messages
            .iter()
            .any(|m| m.text == "to the admin log" && m.from == linked.phone)
    );

    let path = format!("/admin/devices/{}/stream-error", linked.jid);
    let (status, body) = http(&srv, "POST", &path, r#"{"kind":"bogus"}"#).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid_input"));
    let (status, _) = http(&srv, "POST", &path, r#"{"kind":"replaced"}"#).await;
    assert_eq!(status, 204);
    c.wait_for("StreamReplaced", WAIT, |e| {
        matches!(e, Event::StreamReplaced(_)).then_some(())
    })
    .await;

    let (status, body) = http(&srv, "POST", "/admin/mock-phone/scan-qr", &qr).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no_pending_pairing"));
    let (status, _) = http(
        &srv,
        "POST",
        "/admin/mock-phone/pair-code",
        r#"{"phone":"15550003333","code":"ABCD1234"}"#,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_binary_serves_the_admin_api() {
    use tokio::io::AsyncBufReadExt as _;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_fakewa"))
        .args(["--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("fakewa starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("prints its address")
        .expect("reads")
        .expect("a line");
    let addr = line.rsplit(' ').next().expect("address").to_string();
    let (status, body) = fake::http(&addr, "GET", "/admin/connections", "")
        .await
        .expect("admin API answers");
    assert_eq!((status, body.as_str()), (200, "[]"));
    child.kill().await.expect("killed");
}

#[tokio::test]
async fn a_message_sent_right_after_pairing_waits_for_the_devices_keys() {
    let srv = server().await;
    let mut c = TestClient::start(&srv.ws_url(), new_backend(), ClientOptions::default()).await;
    let qr = c.qr().await;
    let linked = srv.scan_qr(&qr).await.expect("linked");
    // The device has not logged in (nor uploaded prekeys) yet.
    receive(&srv, &mut c, "15550002222", &linked.phone, "welcome").await;
}

#[tokio::test]
async fn a_restarted_fake_resumes_ik_or_falls_back_to_xx() {
    let first = server().await;
    let (c, _) = paired(&first).await;
    let backend = c.stop().await;
    drop(first);

    // Same seed: the client's cached server key still fits, IK succeeds (the
    // new fake does not know the device, so the login itself is refused).
    let same = server().await;
    let mut c = TestClient::start(&same.ws_url(), backend.clone(), ClientOptions::default()).await;
    assert!(logged_out(&mut c).await);
    assert_eq!(same.handshakes(), [HandshakePattern::Ik]);
    drop(c);

    // Another seed: the IK hello cannot be decrypted; XX-fallback completes.
    let other = FakeServer::start(Config {
        noise_seed: b"another seed".to_vec(),
        ..Config::default()
    })
    .await
    .expect("fake starts");
    let mut c = TestClient::start(&other.ws_url(), backend, ClientOptions::default()).await;
    assert!(logged_out(&mut c).await);
    assert_eq!(other.handshakes(), [HandshakePattern::XxFallback]);
}

/// The fake's reply to the IQ with this id, if any arrives within `timeout`.
async fn reply_to(srv: &FakeServer, id: &str, timeout: Duration) -> Option<fakewa::Node> {
    srv.wait_for_stanza(
        |s| {
            s.direction == fakewa::Direction::ToClient
                && s.node.tag == "iq"
                && s.node.attrs.get("id").is_some_and(|v| v.as_str() == id)
        },
        timeout,
    )
    .await
    .ok()
    .map(|s| s.node)
}

fn iq(id: &str, xmlns: &str) -> whatsapp_rust::wacore_binary::Node {
    NodeBuilder::new("iq")
        .attrs([
            ("id", id.to_string()),
            ("xmlns", xmlns.to_string()),
            ("type", "get".to_string()),
            ("to", "s.whatsapp.net".to_string()),
        ])
        .build()
}

#[tokio::test]
async fn keepalives_and_unknown_iqs_are_answered() {
    let srv = server().await;
    let (c, linked) = paired(&srv).await;
    c.client.send_node(iq("ka-1", "w:p")).await.expect("sent");
    let reply = reply_to(&srv, "ka-1", WAIT).await.expect("ping answered");
    assert_eq!(
        reply.attrs.get("type").map(|v| v.as_str().into_owned()),
        Some("result".into())
    );

    c.client
        .send_node(iq("odd-1", "w:no-such-namespace"))
        .await
        .expect("sent");
    let reply = reply_to(&srv, "odd-1", WAIT)
        .await
        .expect("unknown IQ answered");
    let code = reply
        .get_optional_child("error")
        .and_then(|e| e.attrs.get("code"))
        .map(|v| v.as_str().into_owned());
    assert_eq!(code.as_deref(), Some("501"));

    srv.set_device_ping_replies(&linked.phone, false)
        .expect("known device");
    c.client.send_node(iq("ka-2", "w:p")).await.expect("sent");
    assert!(
        reply_to(&srv, "ka-2", Duration::from_millis(500))
            .await
            .is_none(),
        "pings go unanswered when disabled"
    );
    srv.set_device_ping_replies(&linked.phone, true)
        .expect("known device");
    c.client.send_node(iq("ka-3", "w:p")).await.expect("sent");
    assert!(reply_to(&srv, "ka-3", WAIT).await.is_some());
}

#[tokio::test]
async fn a_retry_receipt_makes_the_contact_resend_on_a_new_session() {
    let srv = server().await;
    let (mut c, linked) = paired(&srv).await;
    let id = srv
        .contact_send_undecryptable_text("15550004321", &linked.phone, "second try")
        .await
        .expect("queued");
    srv.wait_for_stanza(
        |s| {
            s.node.tag == "receipt"
                && s.node
                    .attrs
                    .get("type")
                    .is_some_and(|v| v.as_str() == "retry")
                && s.node.attrs.get("id").is_some_and(|v| v.as_str() == id)
        },
        WAIT,
    )
    .await
    .expect("the client asks for a retry");
    c.message_text("second try", WAIT).await;
    assert_eq!(enc_types_from(&srv, "15550004321"), ["msg", "pkmsg"]);
}

#[tokio::test]
async fn contacts_acknowledge_delivery_and_reading() {
    let srv = server().await;
    let (mut c, linked) = paired(&srv).await;
    let sent = c
        .send_and_decrypt(&srv, "15550002222", "read me", WAIT)
        .await;
    let receipt_type = |e: &Event| match e {
        Event::Receipt(r) if r.message_ids.iter().any(|id| id.as_str() == sent.id) => {
            Some(format!("{:?}", r.r#type))
        }
        _ => None,
    };
    let first = c.wait_for("a delivery receipt", WAIT, receipt_type).await;
    assert_eq!(first, "Delivered");
    srv.contact_read("15550002222", &linked.phone, &sent.id)
        .expect("sent");
    c.wait_for("a read receipt", WAIT, |e| {
        receipt_type(e).filter(|t| t == "Read")
    })
    .await;
}

#[tokio::test]
async fn a_redelivered_message_arrives_again_with_the_same_id() {
    let srv = server().await;
    let (mut c, linked) = paired(&srv).await;
    let id = srv
        .contact_send_text("15550004545", &linked.phone, "say it twice")
        .await
        .expect("queued");
    c.message_text("say it twice", WAIT).await;
    srv.redeliver(&id).await.expect("a known message id");
    wait_for_copies(&mut c, &id, 2).await;
    assert!(srv.redeliver("no-such-id").await.is_err());
}

/// Waits until the client has received `n` copies of message `id`.
async fn wait_for_copies(c: &mut TestClient, id: &str, n: usize) {
    let has_copy = |e: &Event| match e {
        Event::Messages(batch) => batch.messages.iter().any(|m| m.info.id == id),
        _ => false,
    };
    c.wait_for_count("copies of the message", WAIT, n, has_copy)
        .await;
}

#[tokio::test]
async fn a_muted_device_keeps_its_socket_but_receives_nothing() {
    let srv = server().await;
    let (c, linked) = paired(&srv).await;
    srv.set_device_muted(&linked.phone, true)
        .expect("known device");
    c.client.send_node(iq("mute-1", "w:p")).await.expect("sent");
    assert!(
        reply_to(&srv, "mute-1", Duration::from_millis(500))
            .await
            .is_none(),
        "a muted device gets no replies"
    );
    assert_eq!(
        srv.connection_count(&linked.phone),
        1,
        "the socket stays open"
    );
    srv.set_device_muted(&linked.phone, false)
        .expect("known device");
    c.client.send_node(iq("mute-2", "w:p")).await.expect("sent");
    assert!(reply_to(&srv, "mute-2", WAIT).await.is_some());
}
