//! Node helpers: decoding/encoding WA-binary stanzas and building the handful
//! of server replies every handler needs.
//!
//! Invariant: every reply an IQ handler sends is built here (`iq_result`,
//! `iq_error`), so the `from`/`id`/`type` attributes the client matches
//! replies by are set in exactly one place.

use std::time::{SystemTime, UNIX_EPOCH};

use rand::RngExt as _;
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Node, NodeContent, SERVER_JID};

use crate::error::{FakeError, Result};

/// Decodes one decrypted frame (`flag || WA-binary`) into an owned node.
pub(crate) fn decode_node(plaintext: &[u8]) -> Result<Node> {
    let unpacked = wacore_binary::util::unpack(plaintext).map_err(FakeError::protocol)?;
    let node = wacore_binary::marshal::unmarshal_ref(&unpacked).map_err(FakeError::protocol)?;
    Ok(node.to_owned())
}

/// Encodes a node as `flag(0) || WA-binary`, the plaintext of one frame.
pub(crate) fn encode_node(node: &Node) -> Result<Vec<u8>> {
    wacore_binary::marshal::marshal(node).map_err(FakeError::protocol)
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// A fresh message id in WhatsApp's `3EB0…` shape (22 hex digits).
pub(crate) fn new_message_id() -> String {
    let mut rng = rand::rng();
    let bytes: [u8; 9] = rng.random();
    let mut id = String::from("3EB0");
    for b in bytes {
        id.push_str(&format!("{b:02X}"));
    }
    id
}

/// A string attribute, or `""` when absent.
pub(crate) fn attr(node: &Node, key: &str) -> String {
    node.attrs
        .get(key)
        .map(|v| v.as_str().into_owned())
        .unwrap_or_default()
}

/// An optional string attribute.
pub(crate) fn opt_attr(node: &Node, key: &str) -> Option<String> {
    node.attrs.get(key).map(|v| v.as_str().into_owned())
}

/// The byte content of a node (string content is returned as its bytes).
pub(crate) fn content_bytes(node: &Node) -> Option<&[u8]> {
    match &node.content {
        Some(NodeContent::Bytes(b)) => Some(b),
        Some(NodeContent::String(s)) => Some(s.as_bytes()),
        _ => None,
    }
}

/// Byte content of the child `tag`.
pub(crate) fn child_bytes<'a>(node: &'a Node, tag: &str) -> Option<&'a [u8]> {
    node.get_optional_child(tag).and_then(content_bytes)
}

/// A big-endian unsigned integer of up to 4 bytes (prekey ids are 3 bytes).
pub(crate) fn be_u32(bytes: &[u8]) -> Option<u32> {
    if bytes.is_empty() || bytes.len() > 4 {
        return None;
    }
    Some(bytes.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
}

/// `<iq from="s.whatsapp.net" id=… type="result">children</iq>`.
pub(crate) fn iq_result(id: &str, children: Vec<Node>) -> Node {
    let b = NodeBuilder::new("iq").attrs([
        ("from", SERVER_JID.to_string()),
        ("id", id.to_string()),
        ("type", "result".to_string()),
    ]);
    if children.is_empty() {
        b.build()
    } else {
        b.children(children).build()
    }
}

/// `<iq from="s.whatsapp.net" id=… type="error"><error code=… text=…/></iq>`.
pub(crate) fn iq_error(id: &str, code: u16, text: &str) -> Node {
    NodeBuilder::new("iq")
        .attrs([
            ("from", SERVER_JID.to_string()),
            ("id", id.to_string()),
            ("type", "error".to_string()),
        ])
        .children([NodeBuilder::new("error")
            .attrs([("code", code.to_string()), ("text", text.to_string())])
            .build()])
        .build()
}

/// A `<stream:error>` stanza for the given code or conflict type.
pub(crate) fn stream_error(code: Option<&str>, conflict: Option<&str>) -> Node {
    let mut b = NodeBuilder::new("stream:error");
    if let Some(code) = code {
        b = b.attr("code", code.to_string());
    }
    if let Some(kind) = conflict {
        b = b.children([NodeBuilder::new("conflict")
            .attr("type", kind.to_string())
            .build()]);
    }
    b.build()
}

/// Renders a node as XML-ish text for debug logs (never logged at info level:
/// stanzas carry phone numbers).
pub(crate) fn display(node: &Node) -> String {
    wacore::xml::DisplayableNode(node).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_round_trips_through_the_codec() {
        let node = iq_error("abc", 501, "feature-not-implemented");
        let bytes = encode_node(&node).expect("encode");
        let back = decode_node(&bytes).expect("decode");
        assert_eq!(attr(&back, "id"), "abc");
        assert_eq!(attr(&back, "type"), "error");
        let err = back.get_optional_child("error").expect("error child");
        assert_eq!(attr(err, "code"), "501");
    }

    #[test]
    fn message_ids_have_whatsapps_shape() {
        let id = new_message_id();
        assert!(id.starts_with("3EB0"));
        assert_eq!(id.len(), 22);
        assert_ne!(id, new_message_id());
    }

    #[test]
    fn be_u32_reads_three_byte_ids() {
        assert_eq!(be_u32(&[0, 1, 2]), Some(258));
        assert_eq!(be_u32(&[]), None);
        assert_eq!(be_u32(&[1, 2, 3, 4, 5]), None);
    }
}
