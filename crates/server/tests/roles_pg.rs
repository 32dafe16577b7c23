//! The role table tests of `roles.rs`, with the server's database on a
//! throw-away PostgreSQL (one per test process, `crates/store/tests/
//! common/pg.rs`; with `CI=true` a missing PostgreSQL fails them, elsewhere
//! they run on SQLite with a note).

#[path = "roles.rs"]
mod roles;
