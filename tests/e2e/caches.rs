//! whatsapp-rust's per-session caches at their smallest (`--wa-*` cache
//! settings): a session whose LID↔phone cache holds one mapping still
//! identifies LID senders by their phone number and answers them, by phone
//! and by LID, after their mappings were evicted.

use reqwest::StatusCode;
use serde_json::Value;

use fakewa::ContactContent;
use test_support::fake::start_fake;
use test_support::gateway::{company, spawn_app_with};
use test_support::webhook::{Log, Receiver};

const OWN: &str = "15550001111";
const CONTACTS: [&str; 3] = ["15550002222", "15550003333", "15550004444"];

/// The `message.received` event whose text is `text`, once it arrived.
async fn received(receiver: &Receiver, text: &str) -> Value {
    let find = |log: &Log| {
        log.accepted
            .iter()
            .find(|h| h.body["type"] == "message.received" && h.body["data"]["text"] == text)
            .map(|h| h.body["data"].clone())
    };
    receiver.wait_for(text, |log| find(log).is_some()).await;
    receiver.with_log(find).expect("the event waited for")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lid_senders_are_identified_and_answered_with_a_lid_cache_of_one() {
    let app = spawn_app_with(start_fake().await, |config| {
        config.wa_cache.wa_lid_cache_capacity = 1;
        config.wa_cache.wa_chat_lanes = 1;
        config.wa_cache.wa_session_locks = 1;
    })
    .await;
    let receiver = Receiver::start().await;
    app.api.link_by_qr(&app.fake, "acme", OWN).await;
    receiver.subscribe(&app.api, "acme", None).await;

    // Each contact writes from its LID, naming its phone number: each new
    // mapping evicts the one before it from the cache (not from the store).
    let mut lids = Vec::new();
    for phone in CONTACTS {
        let text = format!("hello from the LID of {phone}");
        app.fake
            .contact_send(
                phone,
                OWN,
                ContactContent::text(&text).from_lid_with_phone(),
            )
            .await
            .expect("sent");
        let data = received(&receiver, &text).await;
        let lid = app.fake.contact_lid(phone).expect("a LID");
        assert_eq!(data["sender_lid"], lid.as_str(), "{data}");
        assert_eq!(data["sender_phone"], phone, "{data}");
        lids.push(lid);
    }
    let entries = app
        .pool
        .cache_entries(&company("acme"))
        .await
        .expect("a live client");
    assert!(
        entries.lid_pn <= 1 && entries.pn_lid <= 1,
        "the LID↔phone cache is bounded by the setting: {entries:?}"
    );

    // Every contact is answered, by phone and by LID, the first ones after
    // their mappings left the cache.
    for (phone, lid) in CONTACTS.iter().zip(&lids) {
        for (to, text) in [
            (format!("+{phone}"), format!("to {phone} by phone")),
            (lid.clone(), format!("to {phone} by LID")),
        ] {
            let (status, body) = app.api.send_text("acme", &to, &text, None).await;
            assert_eq!(status, StatusCode::CREATED, "{to}: {body}");
            let sent = app
                .fake
                .wait_for_sent_message(|m| m.text == text, test_support::WAIT)
                .await
                .expect("the contact decrypts the answer");
            assert_eq!(sent.to, *phone, "{text}");
        }
    }

    // And they are still identified when they write again.
    for phone in CONTACTS {
        let text = format!("again from {phone}");
        app.fake
            .contact_send(
                phone,
                OWN,
                ContactContent::text(&text).from_lid_with_phone(),
            )
            .await
            .expect("sent");
        assert_eq!(received(&receiver, &text).await["sender_phone"], phone);
    }
    app.stop().await;
}
