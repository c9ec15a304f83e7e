//! Rich messaging against the real client: media through the fake media
//! host, reactions/edits/revokes/quotes/locations/contact cards, LIDs,
//! not-on-WhatsApp numbers, groups, contact-sent rich kinds and receipts.

use std::time::Duration;

use fakewa::{Config, ContactContent, FakeServer, ReceiptKind, SentMessage};
use sha2::{Digest as _, Sha256};
use whatsapp_rust::download::MediaType;
use whatsapp_rust::prelude::*;
use whatsapp_rust::upload::UploadOptions;
use whatsapp_rust::wacore::types::presence::ReceiptType;
use whatsapp_rust::waproto::buffa::MessageField;
use whatsapp_rust::waproto::whatsapp as wa;

use test_support::fake::{ClientOptions, TestClient, new_backend};

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

/// The first inbound message (from any sender) matching `pick`.
async fn inbound<T>(
    c: &mut TestClient,
    what: &str,
    mut pick: impl FnMut(&wa::Message, &Jid) -> Option<T>,
) -> T {
    c.wait_for(what, T, |e| match e {
        Event::Messages(batch) => batch
            .messages
            .iter()
            .find_map(|m| pick(&m.message, &m.info.source.sender)),
        _ => None,
    })
    .await
}

/// A contact's image arrives as an image message the client downloads from
/// the fake media host byte for byte; once expired, the download fails.
#[tokio::test]
async fn contact_media_downloads_and_expires() {
    let srv = server().await;
    let (mut c, linked) = paired(&srv).await;
    let bytes = b"\x89PNG fake image content".to_vec();
    let content = ContactContent {
        caption: Some("look".into()),
        ..ContactContent::media("image", &bytes, "image/png")
    };
    srv.contact_send(BOB, &linked.phone, content)
        .await
        .expect("sent");
    let img = inbound(&mut c, "an image", |m, _| {
        m.image_message.as_option().cloned()
    })
    .await;
    assert_eq!(img.caption.as_deref(), Some("look"));
    assert_eq!(img.mimetype.as_deref(), Some("image/png"));
    let downloaded = c.client.download(&img).await.expect("downloaded");
    assert_eq!(downloaded, bytes);

    srv.expire_media(&sha_hex(&bytes)).expect("expired");
    let err = c.client.download(&img).await.expect_err("expired media");
    assert!(format!("{err:#}").contains("410"), "{err:#}");

    // Voice notes and documents carry their kind-specific fields.
    let voice = ContactContent::media("voice", b"opus", "audio/ogg; codecs=opus");
    srv.contact_send(BOB, &linked.phone, voice)
        .await
        .expect("sent");
    let audio = inbound(&mut c, "a voice note", |m, _| {
        m.audio_message.as_option().cloned()
    })
    .await;
    assert_eq!(audio.ptt, Some(true));
    assert_eq!(
        c.client.download(&audio).await.expect("downloaded"),
        b"opus"
    );
    let doc = ContactContent {
        file_name: Some("a.pdf".into()),
        ..ContactContent::media("document", b"%PDF", "application/pdf")
    };
    srv.contact_send(BOB, &linked.phone, doc)
        .await
        .expect("sent");
    let d = inbound(&mut c, "a document", |m, _| {
        m.document_message.as_option().cloned()
    })
    .await;
    assert_eq!(d.file_name.as_deref(), Some("a.pdf"));
    assert_eq!(c.client.download(&d).await.expect("downloaded"), b"%PDF");
}

/// Reactions, edits, revokes, locations, contact cards, quotes and a
/// LID-only sender reach the client as the matching protobufs.
#[tokio::test]
async fn contact_rich_kinds_reach_the_client() {
    let srv = server().await;
    let (mut c, linked) = paired(&srv).await;
    let to = linked.phone.as_str();
    let first = srv.contact_send_text(BOB, to, "first").await.expect("sent");
    c.message_text("first", T).await;

    srv.contact_send(BOB, to, ContactContent::reaction(&first, "❤️"))
        .await
        .expect("sent");
    let r = inbound(&mut c, "a reaction", |m, _| {
        m.reaction_message.as_option().cloned()
    })
    .await;
    assert_eq!(r.text.as_deref(), Some("❤️"));
    assert_eq!(
        r.key.as_option().and_then(|k| k.id.clone()),
        Some(first.clone())
    );

    srv.contact_send(BOB, to, ContactContent::edit(&first, "first, edited"))
        .await
        .expect("sent");
    let p = inbound(&mut c, "an edit", |m, _| {
        let p = m.protocol_message.as_option()?;
        p.edited_message.as_option().map(|_| p.clone())
    })
    .await;
    assert_eq!(
        p.key.as_option().and_then(|k| k.id.clone()),
        Some(first.clone())
    );
    assert_eq!(
        p.edited_message
            .as_option()
            .and_then(|e| e.conversation.clone()),
        Some("first, edited".into())
    );

    srv.contact_send(BOB, to, ContactContent::location(48.85, 2.35))
        .await
        .expect("sent");
    let l = inbound(&mut c, "a location", |m, _| {
        m.location_message.as_option().cloned()
    })
    .await;
    assert_eq!(
        (l.degrees_latitude, l.degrees_longitude),
        (Some(48.85), Some(2.35))
    );

    let vcard = "BEGIN:VCARD\nVERSION:3.0\nFN:Frank\nEND:VCARD";
    srv.contact_send(BOB, to, ContactContent::contact(vcard).quoting(&first))
        .await
        .expect("sent");
    let k = inbound(&mut c, "a contact card", |m, _| {
        m.contact_message.as_option().cloned()
    })
    .await;
    assert_eq!(k.vcard.as_deref(), Some(vcard));
    assert_eq!(k.display_name.as_deref(), Some("Frank"));
    assert_eq!(
        k.context_info.as_option().and_then(|c| c.stanza_id.clone()),
        Some(first.clone())
    );

    srv.contact_send(BOB, to, ContactContent::text("quoted").quoting(&first))
        .await
        .expect("sent");
    let q = inbound(&mut c, "a quoted reply", |m, _| {
        m.extended_text_message.as_option().cloned()
    })
    .await;
    assert_eq!(q.text.as_deref(), Some("quoted"));
    assert_eq!(
        q.context_info.as_option().and_then(|c| c.stanza_id.clone()),
        Some(first.clone())
    );

    srv.contact_send(BOB, to, ContactContent::revoke(&first))
        .await
        .expect("sent");
    inbound(&mut c, "a revoke", |m, _| {
        m.protocol_message
            .as_option()
            .filter(|p| p.r#type == Some(wa::message::protocol_message::Type::REVOKE))
            .map(|_| ())
    })
    .await;

    let lid = srv.contact_lid(CAROL).expect("lid");
    srv.contact_send(CAROL, to, ContactContent::text("from my lid").from_lid())
        .await
        .expect("sent");
    let sender = inbound(&mut c, "a LID-only sender", |m, sender| {
        (m.conversation.as_deref() == Some("from my lid")).then(|| sender.clone())
    })
    .await;
    assert_eq!(sender.to_non_ad().to_string(), lid);
}

/// Contacts send delivered/read/played receipts on request; the automatic
/// delivery receipt can be switched off so tests control the order.
#[tokio::test]
async fn contact_receipts_of_each_type_reach_the_client() {
    let srv = server().await;
    let (mut c, _) = paired(&srv).await;
    srv.set_auto_receipts(Some(BOB), false)
        .expect("switched off");
    let a = c
        .client
        .send_text(Jid::pn(BOB), "a")
        .await
        .expect("sent")
        .message_id
        .to_string();
    let b = c
        .client
        .send_text(Jid::pn(BOB), "b")
        .await
        .expect("sent")
        .message_id
        .to_string();
    srv.wait_for_sent_messages(|m| m.id == a || m.id == b, 2, T)
        .await
        .expect("decrypted");
    let receipt = |kind: ReceiptType, id: String| {
        move |e: &Event| match e {
            Event::Receipt(r) if r.r#type == kind && r.message_ids.contains(&id) => Some(()),
            _ => None,
        }
    };
    assert_eq!(
        c.count(|e| matches!(e, Event::Receipt(r) if r.r#type == ReceiptType::Delivered)),
        0,
        "no automatic delivery receipt"
    );
    let ids = vec![a.clone(), b.clone()];
    srv.contact_receipt(BOB, None, &ids, ReceiptKind::Delivered)
        .expect("delivered");
    c.wait_for("delivered a", T, receipt(ReceiptType::Delivered, a.clone()))
        .await;
    c.wait_for("delivered b", T, receipt(ReceiptType::Delivered, b.clone()))
        .await;
    srv.contact_receipt(BOB, None, &ids[..1], ReceiptKind::Read)
        .expect("read");
    c.wait_for("read", T, receipt(ReceiptType::Read, a.clone()))
        .await;
    srv.contact_receipt(BOB, None, &ids[1..], ReceiptKind::Played)
        .expect("played");
    c.wait_for("played", T, receipt(ReceiptType::Played, b.clone()))
        .await;
}

/// The new admin routes drive the same features over HTTP.
#[tokio::test]
async fn admin_routes_for_rich_messaging() {
    let srv = server().await;
    let (mut c, linked) = paired(&srv).await;
    let addr = srv.addr().to_string();
    let http = |method: &'static str, path: String, body: String| {
        let addr = addr.clone();
        async move {
            test_support::fake::http(&addr, method, &path, &body)
                .await
                .expect("admin HTTP")
        }
    };

    let (status, body) = http(
        "POST",
        format!("/admin/contacts/{CAROL}/lid"),
        String::new(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let lid: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert!(lid["lid"].as_str().is_some_and(|l| l.ends_with("@lid")));

    let (status, _) = http(
        "POST",
        format!("/admin/contacts/{DAVE}/not-on-whatsapp"),
        String::new(),
    )
    .await;
    assert_eq!(status, 204);
    let r = c
        .client
        .contacts()
        .is_on_whatsapp(&[Jid::pn(DAVE)])
        .await
        .expect("answered");
    assert!(!r[0].is_registered);

    let group_body = format!(r#"{{"subject":"Ops","participants":["{BOB}","{CAROL}"]}}"#);
    let (status, body) = http("POST", "/admin/groups".into(), group_body).await;
    assert_eq!(status, 200, "{body}");
    let group: serde_json::Value = serde_json::from_str(&body).expect("json");
    let gjid = group["jid"].as_str().expect("jid").to_string();
    let id = c
        .client
        .send_text(gjid.parse::<Jid>().expect("jid"), "to ops")
        .await
        .expect("sent")
        .message_id
        .to_string();
    srv.wait_for_sent_messages(|m| m.id == id, 2, T)
        .await
        .expect("both participants");
    let (_, body) = http("GET", "/admin/messages".into(), String::new()).await;
    let all: Vec<serde_json::Value> = serde_json::from_str(&body).expect("json");
    let entry = all.iter().find(|m| m["id"] == id.as_str()).expect("listed");
    assert_eq!(entry["group"], gjid.as_str());
    assert_eq!(entry["kind"], "text");

    let png = [1u8, 2, 3, 4];
    let b64 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(png)
    };
    let body = format!(
        r#"{{"to":"{}","kind":"sticker","base64":"{b64}","mime_type":"image/webp"}}"#,
        linked.phone
    );
    let (status, body) = http("POST", format!("/admin/contacts/{BOB}/messages"), body).await;
    assert_eq!(status, 200, "{body}");
    let sticker = inbound(&mut c, "a sticker", |m, _| {
        m.sticker_message.as_option().cloned()
    })
    .await;
    assert_eq!(c.client.download(&sticker).await.expect("downloaded"), png);
    let (status, _) = http(
        "POST",
        format!("/admin/media/{}/expire", sha_hex(&png)),
        String::new(),
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = http(
        "POST",
        format!("/admin/media/{}/expire", "00".repeat(32)),
        String::new(),
    )
    .await;
    assert_eq!(status, 404);

    let (status, _) = http(
        "POST",
        format!("/admin/contacts/{BOB}/auto-receipts"),
        r#"{"enabled":false}"#.into(),
    )
    .await;
    assert_eq!(status, 204);
    let id = c
        .client
        .send_text(Jid::pn(BOB), "ack me")
        .await
        .expect("sent")
        .message_id
        .to_string();
    recorded(&srv, &id).await;
    let body = format!(r#"{{"message_ids":["{id}"],"type":"read"}}"#);
    let (status, b) = http("POST", format!("/admin/contacts/{BOB}/receipts"), body).await;
    assert_eq!(status, 204, "{b}");
    c.wait_for("read receipt", T, |e| match e {
        Event::Receipt(r) if r.r#type == ReceiptType::Read && r.message_ids.contains(&id) => {
            Some(())
        }
        _ => None,
    })
    .await;
    let body = r#"{"message_ids":["nope"],"type":"read"}"#.to_string();
    let (status, _) = http("POST", format!("/admin/contacts/{BOB}/receipts"), body).await;
    assert_eq!(status, 400);
}
