//! Where notifications go, one file per kind of channel.

pub mod webhook;
