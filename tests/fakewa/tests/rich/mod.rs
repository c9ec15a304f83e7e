//! Rich messaging against the real client: media through the fake media
//! host, reactions/edits/revokes/quotes/locations/contact cards, LIDs,
//! not-on-WhatsApp numbers, groups, contact-sent rich kinds and receipts.

use std::time::Duration;

use fakewa::{Config, ContactContent, FakeServer, ReceiptKind, SentMessage};
use sha2::{Digest as _, Sha256};
use whatsapp_rust::download::MediaType;
use whatsapp_rust::prelude::*;
use whatsapp_rust::upload::UploadOptions;
use whatsapp_rust::waproto::buffa::MessageField;
use whatsapp_rust::waproto::whatsapp as wa;

use crate::harness::{ClientOptions, TestClient, new_backend};

const T: Duration = Duration::from_secs(15);
const BOB: &str = "15550002222";
const CAROL: &str = "15550003333";
const DAVE: &str = "15550004444";

async fn server() -> FakeServer {
    FakeServer::start(Config::default())
        .await
        .expect("fake starts")
}

/// A client whose HTTP reaches the fake's media host, linked and Connected.
async fn paired(srv: &FakeServer) -> (TestClient, fakewa::Linked) {
    let options = ClientOptions {
        loopback_http: true,
        ..ClientOptions::default()
    };
    let mut c = TestClient::start(&srv.ws_url(), new_backend(), options).await;
    let qr = c.qr().await;
    let linked = srv.scan_qr(&qr).await.expect("QR scan links");
    c.connected(T).await;
    (c, linked)
}

fn sha_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

async fn recorded(srv: &FakeServer, id: &str) -> SentMessage {
    let id = id.to_string();
    srv.wait_for_sent_message(|m| m.id == id, T)
        .await
        .expect("the contact decrypted it")
}

async fn send(c: &TestClient, to: Jid, message: wa::Message) -> String {
    c.client
        .send_message(to, message)
        .await
        .expect("sent")
        .message_id
        .to_string()
}

/// The client uploads media of every kind and sends it; the contact fetches
/// each blob from the fake media host, checks it and records its SHA-256.
#[tokio::test]
async fn client_media_is_fetched_checked_and_decrypted_by_the_contact() {
    let srv = server().await;
    let (c, _linked) = paired(&srv).await;
    for kind in ["image", "video", "audio", "voice", "document", "sticker"] {
        let bytes = format!("fake {kind} bytes, not really a file").into_bytes();
        let media_type = match kind {
            "image" => MediaType::Image,
            "video" => MediaType::Video,
            "audio" | "voice" => MediaType::Audio,
            "document" => MediaType::Document,
            _ => MediaType::Sticker,
        };
        let up = c
            .client
            .upload(bytes.clone(), media_type, UploadOptions::default())
            .await
            .expect("uploaded to the fake media host");
        assert!(
            up.url
                .starts_with(&format!("https://{}/", srv.media_host()))
        );
        let mut m = wa::Message::default();
        let (key, enc, plain) = (
            Some(up.media_key.to_vec()),
            Some(up.file_enc_sha256.to_vec()),
            Some(up.file_sha256.to_vec()),
        );
        let url = Some(up.url.clone());
        let path = Some(up.direct_path.clone());
        let len = Some(up.file_length);
        match kind {
            "image" => {
                m.image_message = MessageField::some(wa::message::ImageMessage {
                    url,
                    direct_path: path,
                    media_key: key,
                    file_enc_sha256: enc,
                    file_sha256: plain,
                    file_length: len,
                    mimetype: Some("image/jpeg".into()),
                    caption: Some("a caption".into()),
                    ..Default::default()
                })
            }
            "video" => {
                m.video_message = MessageField::some(wa::message::VideoMessage {
                    url,
                    direct_path: path,
                    media_key: key,
                    file_enc_sha256: enc,
                    file_sha256: plain,
                    file_length: len,
                    mimetype: Some("video/mp4".into()),
                    ..Default::default()
                })
            }
            "audio" | "voice" => {
                m.audio_message = MessageField::some(wa::message::AudioMessage {
                    url,
                    direct_path: path,
                    media_key: key,
                    file_enc_sha256: enc,
                    file_sha256: plain,
                    file_length: len,
                    mimetype: Some("audio/ogg; codecs=opus".into()),
                    ptt: Some(kind == "voice"),
                    ..Default::default()
                })
            }
            "document" => {
                m.document_message = MessageField::some(wa::message::DocumentMessage {
                    url,
                    direct_path: path,
                    media_key: key,
                    file_enc_sha256: enc,
                    file_sha256: plain,
                    file_length: len,
                    mimetype: Some("application/pdf".into()),
                    file_name: Some("report.pdf".into()),
                    ..Default::default()
                })
            }
            _ => {
                m.sticker_message = MessageField::some(wa::message::StickerMessage {
                    url,
                    direct_path: path,
                    media_key: key,
                    file_enc_sha256: enc,
                    file_sha256: plain,
                    file_length: len,
                    mimetype: Some("image/webp".into()),
                    ..Default::default()
                })
            }
        }
        let id = send(&c, Jid::pn(BOB), m).await;
        let got = recorded(&srv, &id).await;
        assert_eq!(got.kind, kind);
        assert_eq!(got.media_error, None, "{kind}");
        assert_eq!(got.media_sha256.as_deref(), Some(sha_hex(&bytes).as_str()));
        assert_eq!(
            (got.from.as_str(), got.to.as_str()),
            (got.from.as_str(), BOB)
        );
        match kind {
            "image" => assert_eq!(got.caption.as_deref(), Some("a caption")),
            "document" => {
                assert_eq!(got.file_name.as_deref(), Some("report.pdf"));
                assert_eq!(got.mime_type.as_deref(), Some("application/pdf"));
            }
            _ => {}
        }
    }
}

/// A media message whose blob does not match its hashes is recorded with a
/// `media_error` and no `media_sha256`.
#[tokio::test]
async fn tampered_media_is_reported_not_hashed() {
    let srv = server().await;
    let (c, _) = paired(&srv).await;
    let up = c
        .client
        .upload(
            b"genuine".to_vec(),
            MediaType::Image,
            UploadOptions::default(),
        )
        .await
        .expect("uploaded");
    let mut wrong_key = up.media_key;
    wrong_key[0] ^= 1;
    let m = wa::Message {
        image_message: MessageField::some(wa::message::ImageMessage {
            direct_path: Some(up.direct_path),
            media_key: Some(wrong_key.to_vec()),
            file_enc_sha256: Some(up.file_enc_sha256.to_vec()),
            file_sha256: Some(up.file_sha256.to_vec()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = send(&c, Jid::pn(BOB), m).await;
    let got = recorded(&srv, &id).await;
    assert_eq!(got.kind, "image");
    assert_eq!(got.media_sha256, None);
    assert!(got.media_error.is_some());
}

/// Reactions, edits, revokes, quoted replies, locations and contact cards
/// the client sends are each recorded with their fields.
#[tokio::test]
async fn reactions_edits_revokes_quotes_locations_and_cards_are_recorded() {
    let srv = server().await;
    let (c, linked) = paired(&srv).await;
    let bob = Jid::pn(BOB);
    let original = c
        .client
        .send_text(bob.clone(), "original")
        .await
        .expect("sent")
        .message_id
        .to_string();
    recorded(&srv, &original).await;

    let key = wa::MessageKey {
        remote_jid: Some(bob.to_string()),
        from_me: Some(true),
        id: Some(original.clone()),
        participant: None,
    };
    let r = c
        .client
        .send_reaction(bob.clone(), key, "👍")
        .await
        .expect("reaction sent")
        .message_id
        .to_string();
    let got = recorded(&srv, &r).await;
    assert_eq!(got.kind, "reaction");
    let reaction = got.reaction.expect("reaction fields");
    assert_eq!(
        (reaction.emoji.as_str(), reaction.target_id.as_str()),
        ("👍", original.as_str())
    );

    // `edit_message` returns the original id; the edit has its own stanza id.
    c.client
        .edit_message(
            bob.clone(),
            original.clone(),
            wa::Message {
                conversation: Some("edited".into()),
                ..Default::default()
            },
        )
        .await
        .expect("edit sent");
    let got = srv
        .wait_for_sent_message(|m| m.kind == "edit", T)
        .await
        .expect("edit recorded");
    assert_eq!(got.kind, "edit");
    assert_eq!(got.edit_of.as_deref(), Some(original.as_str()));
    assert_eq!(got.text, "edited");

    let quote = wa::Message {
        extended_text_message: MessageField::some(wa::message::ExtendedTextMessage {
            text: Some("replying".into()),
            context_info: MessageField::some(wa::ContextInfo {
                stanza_id: Some(original.clone()),
                participant: Some(format!("{}@s.whatsapp.net", linked.phone)),
                quoted_message: MessageField::some(wa::Message {
                    conversation: Some("original".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let q = send(&c, bob.clone(), quote).await;
    let got = recorded(&srv, &q).await;
    assert_eq!((got.kind.as_str(), got.text.as_str()), ("text", "replying"));
    assert_eq!(got.quoted_id.as_deref(), Some(original.as_str()));

    let loc = wa::Message {
        location_message: MessageField::some(wa::message::LocationMessage {
            degrees_latitude: Some(52.52),
            degrees_longitude: Some(13.405),
            name: Some("Berlin".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let l = send(&c, bob.clone(), loc).await;
    let got = recorded(&srv, &l).await;
    assert_eq!(got.kind, "location");
    assert_eq!((got.latitude, got.longitude), (Some(52.52), Some(13.405)));

    let vcard = "BEGIN:VCARD\nVERSION:3.0\nFN:Eve\nTEL:+15550005555\nEND:VCARD";
    let card = wa::Message {
        contact_message: MessageField::some(wa::message::ContactMessage {
            display_name: Some("Eve".into()),
            vcard: Some(vcard.into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let k = send(&c, bob.clone(), card).await;
    let got = recorded(&srv, &k).await;
    assert_eq!(got.kind, "contact");
    assert_eq!(got.vcards, vec![vcard.to_string()]);

    c.client
        .revoke_message(bob.clone(), original.clone(), Default::default())
        .await
        .expect("revoke sent");
    let got = srv
        .wait_for_sent_message(|m| m.kind == "revoke", T)
        .await
        .expect("revoke recorded");
    assert_eq!(got.revoke_of.as_deref(), Some(original.as_str()));
}

/// `is_on_whatsapp` tells a normal contact, a LID contact and a number that
/// is not on WhatsApp apart; a business flag is reported too.
#[tokio::test]
async fn is_on_whatsapp_distinguishes_contacts() {
    let srv = FakeServer::start(Config {
        contact_lids: false,
        ..Config::default()
    })
    .await
    .expect("fake starts");
    let (c, _) = paired(&srv).await;
    let lid = srv.contact_lid(CAROL).expect("lid");
    srv.set_not_on_whatsapp(DAVE, true).expect("flagged");
    srv.set_business(CAROL, true).expect("flagged");
    let results = c
        .client
        .contacts()
        .is_on_whatsapp(&[Jid::pn(BOB), Jid::pn(CAROL), Jid::pn(DAVE)])
        .await
        .expect("usync answered");
    let find = |user: &str| {
        results
            .iter()
            .find(|r| r.jid.user == user)
            .unwrap_or_else(|| panic!("{user} in {results:?}"))
    };
    assert!(find(BOB).is_registered);
    assert_eq!(find(BOB).lid, None);
    assert!(!find(BOB).is_business);
    assert!(find(CAROL).is_registered);
    assert_eq!(find(CAROL).lid.as_ref().map(|j| j.to_string()), Some(lid));
    assert!(find(CAROL).is_business);
    assert!(!find(DAVE).is_registered);
}

/// A message the client addresses to a contact's `…@lid` reaches the
/// contact, which decrypts it.
#[tokio::test]
async fn a_message_to_a_lid_reaches_the_contact() {
    let srv = server().await;
    let (c, _) = paired(&srv).await;
    let lid = srv.contact_lid(CAROL).expect("lid");
    let lid_jid: Jid = lid.parse().expect("LID JID");
    c.client
        .send_text(lid_jid, "hello by lid")
        .await
        .expect("sent");
    let got = srv
        .wait_for_sent_message(|m| m.text == "hello by lid", T)
        .await
        .expect("decrypted by the LID contact");
    assert_eq!(got.to, CAROL);
}

/// A group send reaches every participant: one recorded entry each.
#[tokio::test]
async fn a_group_message_reaches_every_participant() {
    let srv = server().await;
    let (c, linked) = paired(&srv).await;
    let group = srv
        .create_group("Team", &[BOB, CAROL, DAVE])
        .expect("group created");
    let gjid: Jid = group.parse().expect("group JID");
    let first = c
        .client
        .send_text(gjid.clone(), "hello team")
        .await
        .expect("sent")
        .message_id
        .to_string();
    // A second send reuses the distributed sender key (skmsg only).
    let second = c
        .client
        .send_text(gjid, "again")
        .await
        .expect("sent")
        .message_id
        .to_string();
    for id in [&first, &second] {
        let got = srv
            .wait_for_sent_messages(|m| &m.id == id, 3, T)
            .await
            .expect("three participants decrypted it");
        let mut to: Vec<&str> = got.iter().map(|m| m.to.as_str()).collect();
        to.sort_unstable();
        assert_eq!(to, vec![BOB, CAROL, DAVE]);
        assert!(
            got.iter()
                .all(|m| m.group.as_deref() == Some(group.as_str()))
        );
        assert!(got.iter().all(|m| m.from == linked.phone));
    }
}
