//! main.cf reader and writer (being written).
