//! Discovery: find the pipeline files.
