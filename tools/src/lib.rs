//! ckctl library.
