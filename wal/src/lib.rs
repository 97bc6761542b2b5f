//! Placeholder; filled by the wal issue.
