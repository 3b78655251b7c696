//! The compile engine: Python workers that import kfp once and fork per file.
