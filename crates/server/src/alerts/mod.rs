//! Alerts: conditions of the fleet that need someone (a fault, a failover,
//! a concurrency violation, a lost link, an object left frozen), raised
//! with a severity, acknowledged by people, cleared when the condition
//! ends, and routed by policies to channels (mail, webhook, syslog).
//!
//! Built so far: the rule engine ([`rules`], pure and tested) and the
//! `[alerts]` settings with their checks ([`settings`]). Not yet wired into
//! the running server: no task feeds the rules from the fleet, nothing is
//! stored or delivered yet (the store's `AlertStore` is ready for it).

pub mod channels;
pub mod rules;
pub mod settings;

pub use settings::AlertsSection;
