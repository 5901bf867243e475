//! Memory budget (owned by the memory helper).
