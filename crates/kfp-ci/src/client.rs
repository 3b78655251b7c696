//! KFP HTTP client: auth, retries, errors that carry the server's body.
