//! netlink (placeholder while being written)
