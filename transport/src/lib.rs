//! ZooKeeper (jute) client protocol and peer framing.
