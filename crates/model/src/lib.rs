//! Haven's vocabulary: the objects of a high-availability cluster, their
//! states, the events that change them and the operations that act on them.
//!
//! Every other crate (engine, server, connector, CLI) speaks in these types;
//! nothing re-declares them. The crate does no I/O: it is data plus the pure
//! functions that interpret it (defaults, look-ups, state folding).

pub mod clock;
pub mod config;
pub mod event;
pub mod operation;
pub mod state;

pub use config::*;
pub use event::*;
pub use operation::*;
pub use state::*;

/// An object name (cluster, system, group, resource, type).
///
/// Names are shared, immutable strings: the same name appears in the
/// configuration, in every state record and in every event, so it is cheap
/// to clone and compare.
pub type Name = std::sync::Arc<str>;

/// Makes a [`Name`] from anything string-like.
pub fn name(s: impl AsRef<str>) -> Name {
    Name::from(s.as_ref())
}
