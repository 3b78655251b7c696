//! `kfp-ci init`: workflow, NetworkPolicy and config templates.
