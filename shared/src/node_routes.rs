//! node_routes (being written)
