//! The fleet command line: `haven login`, `status`, `group switch`, ...
//! Every command here is a client of a management server's REST API,
//! reached over HTTPS (trusting exactly the fleet CA the user accepted at
//! login) or over the server host's Unix socket (no password: the kernel
//! says who the caller is).
//!
//! The parts: [`config`] keeps the contexts (which server, its CA, the
//! session token) in the user's config directory, mode 0600; [`http`] is
//! the small HTTP/1.1 client (TLS or Unix socket, a timeout on every
//! request, Server-Sent Events); [`output`] draws tables and colours;
//! [`wait`] the spinner of `--wait`; the command families live in
//! [`login`], [`fleet`], [`ops`], [`admin`], [`alerts`] and [`reports`].
//!
//! Invariants: a session token is only ever sent to the server it was
//! issued by, over the trust stored with it, and never printed; every
//! failure ends the process with one of the documented exit codes
//! ([`Exit`]), and its message says what to do next.

mod admin;
mod alerts;
mod config;
mod fleet;
mod http;
mod login;
mod ops;
mod output;
mod peers;
mod reports;
mod servers;
mod tags;
mod term;
mod wait;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

/// Exit codes of the client commands, for `--help` and the man page.
pub const EXIT_CODES: &str = "\
Exit status (client commands):
  0  done (for --wait: the final state was reached)
  1  error: refused or failed operation, bad answer, conflict
  2  usage: bad arguments
  3  not logged in, session ended, or permission denied
  4  not found: unknown cluster, group, context or grant
  5  server unreachable
  6  timed out waiting for the final state (--wait)";

/// How a client command ended (the process exit status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Refused or failed operation, bad answer, conflict.
    Error = 1,
    /// Bad arguments (clap uses 2 for its own errors too).
    Usage = 2,
    /// Not logged in, session ended, permission denied.
    Auth = 3,
    /// Unknown cluster, object, context or grant.
    NotFound = 4,
    /// The server cannot be reached.
    Unreachable = 5,
    /// `--wait` gave up before the final state.
    TimedOut = 6,
}

/// A failed client command: its exit status and a message that says what
/// to do next.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Failure {
            exit,
            message: message.into(),
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Self::new(Exit::Error, message)
    }
}

pub type Result<T> = std::result::Result<T, Failure>;

/// Options every client command takes: where the server is, and how to
/// print.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Use this saved context (see `haven context list`) instead of the
    /// current one.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Talk to this server (https://HOST:PORT), with the login saved for it.
    #[arg(long, global = true, value_name = "URL", conflicts_with = "socket")]
    pub server: Option<String>,
    /// Talk to the server through its local socket (DATA_DIR/haven.sock on
    /// the server host): no login needed.
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Print the API's JSON answer (stable, for scripts) instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// Output format: `wide` adds columns, `json` is --json.
    #[arg(
        short = 'o',
        long = "output",
        global = true,
        value_enum,
        value_name = "FORMAT"
    )]
    pub output: Option<Format>,
}

impl Global {
    pub fn json(&self) -> bool {
        self.json || self.output == Some(Format::Json)
    }

    pub fn wide(&self) -> bool {
        self.output == Some(Format::Wide)
    }
}

/// `-o FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// More columns.
    Wide,
    /// The API's JSON.
    Json,
}

/// `CLUSTER/OBJECT`, as operations name their target.
#[derive(Debug, Clone)]
pub struct Target {
    pub cluster: String,
    pub object: String,
}

fn parse_target(text: &str) -> std::result::Result<Target, String> {
    match text.split_once('/') {
        Some((c, o)) if !c.is_empty() && !o.is_empty() && !o.contains('/') => Ok(Target {
            cluster: c.to_string(),
            object: o.to_string(),
        }),
        _ => Err(format!(
            "`{text}`: name the cluster and the object as CLUSTER/NAME (e.g. prod-db/web01)"
        )),
    }
}

/// A duration: `90s`, `5m`, `1h30m`, `2d`, or plain seconds.
pub fn parse_duration(text: &str) -> std::result::Result<std::time::Duration, String> {
    let t = text.trim();
    let bad = || format!("`{text}` is not a duration (e.g. 30s, 5m, 1h, 2d)");
    if t.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    let (mut total, mut digits) = (0u64, String::new());
    for c in t.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs(total))
}

/// `--wait [--timeout T]`.
#[derive(Args, Debug, Clone)]
pub struct WaitArgs {
    /// Wait until the final state is reached (a spinner on a terminal);
    /// exit status 0 only if it was.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this long (exit status 6).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "5m", requires = "wait")]
    pub timeout: std::time::Duration,
}

/// The client commands, flattened into `haven`'s own command list.
#[derive(Subcommand)]
pub enum ClientCommand {
    /// Log in to a management server (https://HOST:PORT, default
    /// https://127.0.0.1:8440) and save it as a context; or, on the server
    /// host, use its local socket (--socket DATA_DIR/haven.sock), which
    /// needs no password.
    #[command(after_long_help = EXIT_CODES)]
    Login(login::LoginArgs),
    /// End the session of the current (or --context) context and forget
    /// its token.
    #[command(after_long_help = EXIT_CODES)]
    Logout(login::LogoutArgs),
    /// List the saved contexts (servers you logged in to), or pick one.
    #[command(after_long_help = EXIT_CODES)]
    Context {
        #[command(flatten)]
        global: Global,
        #[command(subcommand)]
        command: login::ContextCommand,
    },
    /// Who the server thinks you are, and your fleet-wide role.
    #[command(after_long_help = EXIT_CODES)]
    Whoami {
        #[command(flatten)]
        global: Global,
    },
    /// List the clusters and the state of their links.
    #[command(after_long_help = EXIT_CODES)]
    Clusters {
        /// Only clusters tagged KEY=VALUE (the value may be a glob) or
        /// KEY; repeatable, all must match.
        #[arg(long, value_name = "KEY=VALUE")]
        tag: Vec<String>,
        #[command(flatten)]
        global: Global,
    },
    /// The fleet at a glance; with CLUSTER, its groups x systems (like
    /// `hastatus -sum`; resources too with -o wide).
    #[command(after_long_help = EXIT_CODES)]
    Status {
        /// A cluster (default: a summary of the whole fleet).
        #[arg(value_name = "CLUSTER")]
        cluster: Option<String>,
        /// Time travel: as recorded at this past instant (RFC 3339 like
        /// 2026-12-03T08:15:00Z, a date, or a time ago: 15m, 2h, 7d).
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        #[command(flatten)]
        global: Global,
    },
    /// Everything that needs attention: faults, frozen objects, broken links.
    #[command(after_long_help = EXIT_CODES)]
    Faults {
        /// At most this many.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        /// Only faults whose cluster, group or system carries KEY=VALUE
        /// (or KEY); repeatable, all must match.
        #[arg(long, value_name = "KEY=VALUE")]
        tag: Vec<String>,
        #[command(flatten)]
        global: Global,
    },
    /// Search every cluster, system, group and resource you may see:
    /// words match names, resource types, tags and attribute values
    /// (e.g. `haven find web env=prod state:faulted`); save a search
    /// (--save NAME) and run it again (--saved NAME).
    #[command(after_long_help = EXIT_CODES)]
    Find {
        #[command(flatten)]
        args: tags::FindArgs,
        #[command(flatten)]
        global: Global,
    },
    /// List your saved searches and the shared ones (or --delete one).
    #[command(after_long_help = EXIT_CODES)]
    Searches {
        /// Delete your saved search NAME.
        #[arg(long, value_name = "NAME")]
        delete: Option<String>,
        #[command(flatten)]
        global: Global,
    },
    /// Tag clusters, service groups and systems (KEY=VALUE), remove and
    /// list tags.
    #[command(after_long_help = EXIT_CODES)]
    Tag {
        #[command(flatten)]
        global: Global,
        #[command(subcommand)]
        command: tags::TagCommand,
    },
    /// Pair with management servers at other sites, list and remove them
    /// (their clusters are SITE:CLUSTER here).
    #[command(after_long_help = EXIT_CODES)]
    Peer {
        #[command(flatten)]
        global: Global,
        #[command(subcommand)]
        command: peers::PeerCommand,
    },
    /// Recorded state changes, oldest first (of OBJECT: a group, resource
    /// or system, or CLUSTER/OBJECT).
    #[command(after_long_help = EXIT_CODES)]
    History {
        #[arg(value_name = "OBJECT")]
        object: Option<String>,
        /// Only this cluster.
        #[arg(long, value_name = "CLUSTER")]
        cluster: Option<String>,
        /// Only changes in this last stretch of time (30m, 1h, 7d...).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        since: Option<std::time::Duration>,
        /// At most this many (the newest).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        global: Global,
    },
    /// Follow live events, one line each, until Ctrl-C.
    #[command(after_long_help = EXIT_CODES)]
    Watch {
        /// Only this cluster.
        #[arg(long, value_name = "CLUSTER")]
        cluster: Option<String>,
        /// Only events about this group, resource or system.
        #[arg(long, value_name = "OBJECT")]
        object: Option<String>,
        #[command(flatten)]
        global: Global,
    },
    /// Operate a service group: online, offline, switch, freeze, unfreeze,
    /// clear, flush, enable, disable.
    #[command(after_long_help = EXIT_CODES)]
    Group {
        #[command(flatten)]
        global: Global,
        #[command(subcommand)]
        command: ops::GroupCommand,
    },
    /// Operate a resource: online, offline, clear, probe.
    #[command(after_long_help = EXIT_CODES)]
    Resource {
        #[command(flatten)]
        global: Global,
        #[command(subcommand)]
        command: ops::ResourceCommand,
    },
    /// Freeze or unfreeze a system (node).
    #[command(after_long_help = EXIT_CODES)]
    System {
        #[command(flatten)]
        global: Global,
        #[command(subcommand)]
        command: ops::SystemCommand,
    },
    /// Add or remove a managed cluster; make a connector join token
    /// (Server Administrator).
    #[command(after_long_help = EXIT_CODES)]
    Cluster {
        #[command(flatten)]
        global: Global,
        #[command(subcommand)]
        command: admin::ClusterCommand,
    },
    /// Grant, revoke and list roles (Server Administrator).
    #[command(after_long_help = EXIT_CODES)]
    Role {
        #[command(flatten)]
        global: Global,
        #[command(subcommand)]
        command: admin::RoleCommand,
    },
    /// The audit log: operations and who asked (or, with --access, logins,
    /// refusals and administrators' changes).
    #[command(after_long_help = EXIT_CODES)]
    Audit(admin::AuditArgs),
    /// The alerts you may see: open ones (or, with --all, cleared ones
    /// too), newest raised first.
    #[command(after_long_help = EXIT_CODES)]
    Alerts(alerts::AlertsArgs),
    /// Acknowledge an alert, read the delivery log, send a test
    /// notification.
    #[command(after_long_help = EXIT_CODES)]
    Alert {
        #[command(flatten)]
        global: Global,
        #[command(subcommand)]
        command: alerts::AlertCommand,
    },
    /// Reports over recorded history: `haven report availability`.
    #[command(after_long_help = EXIT_CODES)]
    Report {
        #[command(subcommand)]
        command: reports::ReportCommand,
    },
    /// Back up the server's database now, through the API (Server
    /// Administrator; `haven db backup FILE` works on the server host).
    #[command(after_long_help = EXIT_CODES)]
    Backup {
        #[command(flatten)]
        global: Global,
    },
    /// List the server's backups (Server Administrator).
    #[command(after_long_help = EXIT_CODES)]
    Backups {
        #[command(flatten)]
        global: Global,
    },
    /// Print a shell completion script (e.g. `haven completions bash >
    /// /etc/bash_completion.d/haven`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff; `haven man | man -l -`), or write one
    /// page per command into --dir.
    Man {
        /// Write haven.1 and haven-COMMAND.1 pages into this directory.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// `haven server status`.
pub fn server_status(global: &Global) -> ExitCode {
    servers::run(global)
}

/// Runs a client command; `cli` builds the whole `haven` command (for
/// completions and the man page). Prints the error, if any, and gives the
/// exit status.
pub fn run(command: ClientCommand, cli: fn() -> clap::Command) -> ExitCode {
    // Output piped into `head` ends quietly, as with any Unix tool, rather
    // than with a panic on the broken pipe.
    // SAFETY: restoring a signal's default disposition, before any thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    match dispatch(command, cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("{}: {}", output::paint_error("error"), f.message);
            }
            ExitCode::from(f.exit as u8)
        }
    }
}

fn dispatch(command: ClientCommand, cli: fn() -> clap::Command) -> Result<()> {
    use ClientCommand as C;
    match command {
        C::Login(args) => login::login(args),
        C::Logout(args) => login::logout(args),
        C::Context { global, command } => login::context(&global, command),
        C::Whoami { global } => login::whoami(&global),
        C::Clusters { tag, global } => fleet::clusters(&global, tags::tag_param(&tag)),
        C::Status {
            cluster,
            at,
            global,
        } => match cluster {
            None => fleet::summary(&global, at.as_deref()),
            Some(c) => fleet::status(&global, &c, at.as_deref()),
        },
        C::Faults { limit, tag, global } => fleet::faults(&global, limit, tags::tag_param(&tag)),
        C::Find { args, global } => tags::find(&global, args),
        C::Searches { delete, global } => tags::searches(&global, delete),
        C::Tag { global, command } => tags::tag(&global, command),
        C::Peer { global, command } => peers::peer(&global, command),
        C::History {
            object,
            cluster,
            since,
            limit,
            global,
        } => fleet::history(&global, object, cluster, since, limit),
        C::Watch {
            cluster,
            object,
            global,
        } => fleet::watch(&global, cluster, object),
        C::Group { global, command } => ops::group(&global, command),
        C::Resource { global, command } => ops::resource(&global, command),
        C::System { global, command } => ops::system(&global, command),
        C::Cluster { global, command } => admin::cluster(&global, command),
        C::Role { global, command } => admin::role(&global, command),
        C::Audit(args) => admin::audit(args),
        C::Alerts(args) => alerts::list(args),
        C::Alert { global, command } => alerts::alert(&global, command),
        C::Report { command } => reports::report(command),
        C::Backup { global } => admin::backup(&global),
        C::Backups { global } => admin::backups(&global),
        C::Completions { shell } => {
            let mut cmd = cli();
            clap_complete::generate(shell, &mut cmd, "haven", &mut std::io::stdout());
            Ok(())
        }
        C::Man { dir } => man(cli(), dir),
    }
}

fn man(cmd: clap::Command, dir: Option<PathBuf>) -> Result<()> {
    match dir {
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .map_err(|e| Failure::error(format!("cannot render the man page: {e}")))?;
            use std::io::Write;
            std::io::stdout()
                .write_all(&out)
                .map_err(|e| Failure::error(format!("cannot write the man page: {e}")))
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .and_then(|()| clap_mangen::generate_to(cmd, &dir))
                .map_err(|e| {
                    Failure::error(format!(
                        "cannot write man pages into {}: {e}",
                        dir.display()
                    ))
                })?;
            println!("man pages written to {}", dir.display());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        let secs = |t: &str| parse_duration(t).map(|d| d.as_secs());
        assert_eq!(secs("90"), Ok(90));
        assert_eq!(secs("90s"), Ok(90));
        assert_eq!(secs("5m"), Ok(300));
        assert_eq!(secs("1h30m"), Ok(5400));
        assert_eq!(secs("2d"), Ok(172_800));
        assert!(secs("h").is_err());
        assert!(secs("5x").is_err());
        assert!(secs("5m3").is_err());
        assert!(secs("").is_err());
    }

    #[test]
    fn targets_name_a_cluster_and_an_object() {
        let t = parse_target("prod/web01").unwrap();
        assert_eq!((t.cluster.as_str(), t.object.as_str()), ("prod", "web01"));
        assert!(parse_target("web01").is_err());
        assert!(parse_target("/web01").is_err());
        assert!(parse_target("a/b/c").is_err());
    }
}
