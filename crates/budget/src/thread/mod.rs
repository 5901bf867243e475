//! Thread budget (owned by the thread helper).
