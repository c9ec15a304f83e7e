//! Read receipts, chat states and presence that the real whatsapp-rust
//! client sends (`mark_as_read`, `mark_as_played`, `chatstate()`,
//! `presence()`): the fake records each as the contact would see it, and
//! serves them on the admin API.

use fakewa::{ClientReceipt, FakeServer};
use whatsapp_rust::features::ChatStateType;
use whatsapp_rust::prelude::*;

use test_support::WAIT;
use test_support::fake::{self, ClientOptions, TestClient, new_backend, start_fake};

const BOB: &str = "15550002222";
const CAROL: &str = "15550003333";

async fn paired(srv: &FakeServer) -> (TestClient, fakewa::Linked) {
    let mut c = TestClient::start(&srv.ws_url(), new_backend(), ClientOptions::default()).await;
    let qr = c.qr().await;
    let linked = srv.scan_qr(&qr).await.expect("QR scan links");
    c.connected(WAIT).await;
    (c, linked)
}

/// Contact `from` sends `text` to `to`; returns its id once the client has it.
async fn received(
    srv: &FakeServer,
    c: &mut TestClient,
    from: &str,
    to: &str,
    text: &str,
) -> String {
    let id = srv.contact_send_text(from, to, text).await.expect("queued");
    c.message_text(text, WAIT).await;
    id
}

/// The one receipt of `kind` the account sent into `chat`, once it arrived.
async fn one_receipt(srv: &FakeServer, chat: &str, kind: &str) -> ClientReceipt {
    let (chat, kind) = (chat.to_owned(), kind.to_owned());
    let mut got = srv
        .wait_for_read_receipts(|r| r.to == chat && r.kind == kind, 1, WAIT)
        .await
        .expect("the receipt reached the fake");
    assert_eq!(got.len(), 1, "one stanza: {got:?}");
    got.remove(0)
}

#[tokio::test]
async fn read_and_played_receipts_reach_the_contact_with_every_id() {
    let srv = start_fake().await;
    let (mut c, linked) = paired(&srv).await;
    let first = received(&srv, &mut c, BOB, &linked.phone, "first").await;
    let second = received(&srv, &mut c, BOB, &linked.phone, "second").await;

    c.client
        .mark_as_read(&Jid::pn(BOB), None, &[first.as_str(), second.as_str()])
        .await
        .expect("sent");
    let read = one_receipt(&srv, BOB, "read").await;
    assert_eq!(
        read,
        ClientReceipt {
            from: linked.phone.clone(),
            to: BOB.into(),
            ids: vec![first.clone(), second.clone()],
            kind: "read".into(),
            participant: None,
            unknown_ids: vec![],
        }
    );
    // Like the real server, the fake acknowledges the receipt.
    srv.wait_for_stanza(
        |s| {
            s.direction == fakewa::Direction::ToClient
                && s.node.tag == "ack"
                && s.node
                    .attrs
                    .get("class")
                    .is_some_and(|v| v.as_str() == "receipt")
                && s.node.attrs.get("id").is_some_and(|v| v.as_str() == first)
        },
        WAIT,
    )
    .await
    .expect("an ack class=receipt");

    c.client
        .mark_as_played(&Jid::pn(BOB), None, &[second.as_str()])
        .await
        .expect("sent");
    assert_eq!(
        one_receipt(&srv, BOB, "played").await.ids,
        [second.as_str()]
    );

    // An id Bob sent, read in Carol's chat: Carol cannot match it.
    c.client
        .mark_as_read(&Jid::pn(CAROL), None, &[first.as_str()])
        .await
        .expect("sent");
    let wrong_chat = one_receipt(&srv, CAROL, "read").await;
    assert_eq!(wrong_chat.unknown_ids, [first.as_str()]);

    // In a group the receipt names the sender as `participant`.
    let group = srv.create_group("Team", &[BOB, CAROL]).expect("a group");
    let gjid: Jid = group.parse().expect("group JID");
    c.client
        .mark_as_read(&gjid, Some(&Jid::pn(CAROL)), &["3EB0AAAAAAAAAAAAAAAA"])
        .await
        .expect("sent");
    let in_group = one_receipt(&srv, &group, "read").await;
    assert_eq!(in_group.participant.as_deref(), Some(CAROL));
    assert_eq!(in_group.ids, ["3EB0AAAAAAAAAAAAAAAA"]);

    // The admin API serves the same entries.
    let (status, body) = fake::http(&srv.addr().to_string(), "GET", "/admin/receipts", "")
        .await
        .expect("admin API answers");
    assert_eq!(status, 200, "{body}");
    let listed: Vec<ClientReceipt> = serde_json::from_str(&body).expect("json");
    assert_eq!(listed, srv.read_receipts());
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(json[0]["type"], "read", "{json}");
    assert_eq!(json[0]["ids"], serde_json::json!([first, second]));
    assert!(json[0].get("participant").is_none(), "{json}");
}

#[tokio::test]
async fn chat_states_and_presence_reach_the_fake() {
    let srv = start_fake().await;
    let (c, linked) = paired(&srv).await;
    let bob = Jid::pn(BOB);
    for state in [
        ChatStateType::Composing,
        ChatStateType::Recording,
        ChatStateType::Paused,
    ] {
        c.client.chatstate().send(&bob, state).await.expect("sent");
    }
    let states = srv
        .wait_for_chat_states(|s| s.to == BOB, 3, WAIT)
        .await
        .expect("three chat states");
    let seen: Vec<(&str, &str)> = states
        .iter()
        .map(|s| (s.from.as_str(), s.state.as_str()))
        .collect();
    let phone = linked.phone.as_str();
    assert_eq!(
        seen,
        [
            (phone, "composing"),
            (phone, "recording"),
            (phone, "paused")
        ]
    );

    c.client.presence().set_unavailable().await.expect("sent");
    let gone = srv
        .wait_for_presence(|p| p.kind == "unavailable", WAIT)
        .await
        .expect("presence recorded");
    assert_eq!(gone.from, linked.phone);
    assert_eq!(gone.name.as_deref(), Some("Test User"));

    let addr = srv.addr().to_string();
    let (status, body) = fake::http(&addr, "GET", "/admin/chatstates", "")
        .await
        .expect("admin API answers");
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        json[1],
        serde_json::json!({"from": linked.phone, "to": BOB, "state": "recording"})
    );
    let (status, body) = fake::http(&addr, "GET", "/admin/presences", "")
        .await
        .expect("admin API answers");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""type":"unavailable""#), "{body}");
}
