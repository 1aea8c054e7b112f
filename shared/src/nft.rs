//! nft (being written)
