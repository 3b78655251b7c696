//! The Python interpreter and the cached virtualenv with the pinned kfp.
