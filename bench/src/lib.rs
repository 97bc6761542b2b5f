//! ckbench library.
