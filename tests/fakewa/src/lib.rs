//! fakewa — a fake WhatsApp server that speaks the real protocol, for
//! wagate's tests and benchmarks. The real, unmodified `whatsapp-rust`
//! client (and Baileys) connect to it over `ws://127.0.0.1:PORT/ws/chat`.
//!
//! What it plays: the WhatsApp server (Noise XX / IK / XX-fallback, login,
//! start-up IQs, keepalive, stream errors), the phones of many accounts (QR
//! and pair-code linking, app-state key share) and any number of fake
//! contacts with real Signal identities (they decrypt what clients send and
//! send text to clients). Protocol reference:
//! `protocol/fake-whatsapp-server.md` beside DESIGN.md.
//!
//! Crate map:
//! - [`control`]: [`FakeServer`], the Rust API tests use, and the shared state;
//! - `transport`: accept loop, HTTP/WebSocket sniffing, one task per connection;
//! - `noise`: server side of the Noise handshakes and the frame cipher;
//! - `codec`: stanza encoding and reply builders;
//! - `router`: what the server answers to each stanza; login; IQs;
//! - `messaging`: contact messages to and from clients, queues, key share;
//! - `accounts`: accounts, devices, live connections, queues (the registry);
//! - `phone`: pairing crypto (ADV identities, pair codes), key share;
//! - `contacts`: server-held Signal peers (contacts and phones), incl. sender keys;
//! - `media`: the media host (`media_conn` IQ, upload/download over plain HTTP);
//! - `rich`: message kinds — what contacts record ([`SentMessage`]) and send ([`ContactContent`]);
//! - `read_receipts`: read / played receipts clients send for contacts' messages ([`ClientReceipt`]);
//! - `chat_states`: chat states ("typing…", recording, paused) and presence clients send ([`ChatState`], [`PresenceUpdate`]);
//! - `admin_http`: the admin HTTP API on the same port (binary `fakewa`).
//!
//! # Rust API (on [`FakeServer`])
//!
//! | call | what |
//! |---|---|
//! | `FakeServer::start(Config::default())` | bind `127.0.0.1:0`, serve WebSocket + admin HTTP |
//! | `ws_url()`, `addr()`, `http_url()` | `ws://127.0.0.1:PORT/ws/chat`, the socket address, the admin base URL |
//! | `scan_qr(&qr)` / `scan_qr_as(phone, &qr)` | the phone scans a client's QR: a fresh `1555000NNNN` account, or the given number; returns [`Linked`] once the client signed |
//! | `enter_pair_code(phone, code)` | the phone of `phone` enters the code the client shows |
//! | `contact_send_text(from, to, text)` | a fake contact (created on demand) sends text to a linked account (`pkmsg` first, `msg` once the client has answered); queued while the device is offline, redelivered until its receipt |
//! | `contact_send_undecryptable_text(from, to, text)` | same, but the first copy cannot be decrypted: exercises the client's retry receipt (the contact re-sends on a new session) |
//! | `sent_messages()`, `wait_for_sent_message(pred, t)` | what clients sent to contacts, decrypted; contacts answer with a delivery receipt |
//! | `contact_read(from, to, id)` | the contact sends a read receipt for a message the client sent |
//! | `inject_stream_error(target, kind)` | [`StreamErrorKind`]: 401 / device_removed (both mark the device removed) / replaced / 515 / 503 / outdated (`<failure reason="405">`); the socket is closed after it |
//! | `web_version()`, `set_web_revision(n)` | the version document (`GET /sw.js`): fetch count, versions announced at login; the revision served |
//! | `remove_device(target)` | the phone unlinks it: `device_removed` now, `<failure reason="401">` at every later login |
//! | `connections()`, `connection_count(t)`, `max_concurrent_connections(t)`, `wait_for_connection_count(t, n, timeout)` | live logged-in connections; the high-water mark proves "never two sockets" |
//! | `login_count(t)`, `is_removed(t)`, `linked_devices()`, `handshakes()` | logins (assert "no reconnect"), removal, devices, Noise patterns used |
//! | `stanzas()`, `wait_for_stanza(pred, t)` | transcript of every stanza both ways (waits also match stanzas recorded before the call) |
//! | `set_ping_replies(bool)`, `set_device_ping_replies(t, bool)` | stop answering keepalives (watchdog tests) |
//! | `redeliver(id)` | deliver a contact message again with the same id (deduplication tests) |
//! | `set_device_muted(t, bool)` | the socket stays open but nothing more is sent to it (zombie-session tests) |
//! | `contact_send(from, to, ContactContent)` → id | a contact sends any kind: `ContactContent::text/media(kind, bytes, mime)/reaction(target, emoji)/edit(target, text)/revoke(target)/location(lat, lon)/contact(vcard)`, `.quoting(id)`, `.from_lid()`; media is encrypted and stored on the media host first |
//! | `contact_receipt(from, to: Option, &ids, ReceiptKind)` | the contact sends a delivered / read / played receipt (`to: None` = the account that sent `ids[0]`) |
//! | `set_auto_receipts(contact: Option, bool)` | the automatic delivery receipt on decrypt, per contact or for all |
//! | `contact_lid(phone)` → `NNN@lid` | give a contact a LID: usync serves it, messages to it reach the contact |
//! | `set_not_on_whatsapp(phone, bool)`, `set_business(phone, bool)` | usync `contact type="out"` / `<business/>` (`is_on_whatsapp`'s `is_registered` / `is_business`) |
//! | `create_group(subject, &[phones])` → `…@g.us` | a group; every linked account asking for it is an admin member; client sends are decrypted by each participant (one [`SentMessage`] each, `group` set) |
//! | `media_host()`, `expire_media(sha256)` | the announced media host `127.0.0.1:PORT` (clients request `https://` there: map it to `http://`); expire a blob (hex SHA-256 of the file or of the encrypted blob) so downloads get 410 |
//! | `wait_for_sent_messages(pred, n, t)` | wait until `n` sent messages match (group fan-out) |
//! | `read_receipts()`, `wait_for_read_receipts(pred, n, t)` | [`ClientReceipt`]s: the `read` / `read-self` / `played` / `played-self` receipts clients sent for contacts' messages (`from` account, `to` contact or group, `ids`, `participant` in groups, `unknown_ids` the contact never sent) |
//! | `chat_states()`, `wait_for_chat_states(pred, n, t)` | [`ChatState`]s clients sent: `composing`, `recording` (`<composing media="audio"/>`), `paused` |
//! | `presences()`, `wait_for_presence(pred, t)` | [`PresenceUpdate`]s: a client's own `available` / `unavailable` |
//!
//! [`SentMessage`] has `from`, `to`, `id`, `text`, `kind` (`text`, `image`,
//! `video`, `audio`, `voice`, `document`, `sticker`, `location`, `contact`,
//! `reaction`, `edit`, `revoke`, …) and where they apply `media_sha256` (only
//! when the blob's hashes and MAC checked out, else `media_error`),
//! `mime_type`, `file_name`, `caption`, `quoted_id`, `reaction`, `edit_of`,
//! `revoke_of`, `latitude`/`longitude`, `vcards`, `group`.
//!
//! A `target` is a phone number (all its devices), a device JID
//! (`PHONE:DEV@s.whatsapp.net`) or a LID JID. A second login of a device
//! that is still connected gets the old connection `<conflict type="replaced"/>`,
//! like WhatsApp; the old connection stops counting as live when that is sent.
//!
//! Admin HTTP on the same port (binary `fakewa --listen 127.0.0.1:PORT`):
//! `POST /admin/mock-phone/scan-qr[?phone=…]` (body: the QR string) → [`Linked`],
//! `POST /admin/mock-phone/pair-code` `{"phone","code"}` → [`Linked`],
//! `POST /admin/contacts/{phone}/messages` `{"to","text"}` → `{"id"}`,
//! `GET /admin/messages` → `[{"from","to","id","text"}]`,
//! `POST /admin/devices/{jid}/stream-error` `{"kind"}` → 204,
//! `POST /admin/devices/{jid}/mute` `{"muted"}` → 204, `POST /admin/messages/{id}/redeliver` → 204,
//! `GET /admin/connections` → `[{"jid","connections"}]`, `GET /admin/devices` → `[Linked]`,
//! `POST /admin/contacts/{phone}/messages` with `kind` (media, reaction, edit, revoke,
//! location, contact; `quoted_id`, `as_lid`, `sender_pn`) → `{"id"}`,
//! `POST /admin/contacts/{phone}/receipts` `{"to"?,"message_ids","type"}` → 204,
//! `POST /admin/contacts/{phone}/auto-receipts` / `POST /admin/auto-receipts` `{"enabled"}` → 204,
//! `POST /admin/contacts/{phone}/lid` → `{"lid"}`, `POST /admin/contacts/{phone}/not-on-whatsapp` → 204,
//! `POST /admin/contacts/{phone}/business` → 204, `POST /admin/groups` `{"subject","participants"}` → `{"jid"}`,
//! `POST /admin/media/{sha256}/expire` → 204,
//! `GET /admin/receipts` → `[ClientReceipt]`, `GET /admin/chatstates` → `[ChatState]`,
//! `GET /admin/presences` → `[PresenceUpdate]`; media host: `POST /mms/{type}/{token}`,
//! `GET /v/fakewa/{hex}.enc`, `GET /mms/{type}/{token}`.
//! Errors: `{"error":{"code","message"}}` (`invalid_input` 400,
//! `no_pending_pairing`/`unknown_device`/`unknown_media` 404, `not_connected`/`pairing_failed` 409, `timeout` 504).
//! Every route with request/response shapes: `README.md` of this crate.
//!
//! Client-neutral: the real whatsapp-rust 0.7 client (tests/client.rs) and
//! Baileys 7.0.0-rc14 (`baileys/smoke.mjs`) both pair, send and receive.
//!
//! # Example
//! ```no_run
//! # async fn demo() -> Result<(), fakewa::FakeError> {
//! use std::time::Duration;
//! let srv = fakewa::FakeServer::start(fakewa::Config::default()).await?;
//! let url = srv.ws_url(); // give this to the client
//! # let qr_from_client = String::new();
//! let linked = srv.scan_qr(&qr_from_client).await?; // fresh 1555000NNNN account
//! srv.contact_send_text("15550002222", &linked.phone, "hi").await?;
//! let sent = srv
//!     .wait_for_sent_message(|m| m.text == "hello", Duration::from_secs(5))
//!     .await?;
//! srv.inject_stream_error(&linked.jid, fakewa::StreamErrorKind::Code503).await?;
//! assert!(srv.max_concurrent_connections(&linked.phone) <= 1);
//! # let _ = (url, sent); Ok(()) }
//! ```
//!
//! Client-side requirements (spec §0): `danger-skip-cert-chain-verify`
//! enabled from `[dev-dependencies]` only, `with_version(..)`, a push name.

mod accounts;
mod admin_http;
mod chat_states;
mod codec;
mod contacts;
pub mod control;
mod error;
mod media;
mod messaging;
mod noise;
mod phone;
mod read_receipts;
mod rich;
mod router;
mod transport;
mod web_version;

pub use chat_states::{ChatState, PresenceUpdate};
pub use control::{
    Config, Direction, FakeServer, Linked, Reaction, ReceiptKind, SentMessage, Stanza,
    StreamErrorKind,
};
pub use error::{FakeError, Result};
pub use noise::HandshakePattern;
pub use read_receipts::ClientReceipt;
pub use rich::ContactContent;
/// The stanza type recorded in [`Stanza`] (re-exported so tests need no direct dependency).
pub use wacore_binary::Node;
pub use web_version::{DEFAULT_REVISION, WebVersionReport};
