//! ntfy notifications.
