//! Messages: sending every kind (`send`), the media input behind it
//! (`media`, `fetch`), actions on sent or received messages (`actions`),
//! and chat-level calls: read receipts, chat state, contact checks (`chats`).

pub mod actions;
pub mod chats;
mod fetch;
mod media;
pub mod options;
pub mod send;
