//! `haven login`, `logout`, `context`, `whoami`: sessions and the trust
//! they rest on.
//!
//! Trust is settled before any password leaves the machine: the server
//! must present a chain that holds the fleet CA the user named (`--ca
//! FILE`), whose fingerprint they gave (`--ca-fingerprint HEX`), or whose
//! fingerprint they were shown and accepted at the terminal (like ssh);
//! the CA's PEM is then saved with the context and is the only CA that
//! server is trusted by afterwards.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use clap::{Args, Subcommand};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::config::{Config, Context};
use super::http::{
    first_clause, Api, Endpoint, Response, ServerUrl, TransportError, DEFAULT_SERVER, TIMEOUT,
};
use super::output::{print_json, Table};
use super::{term, Exit, Failure, Global, Result};

#[derive(Args)]
pub struct LoginArgs {
    /// The server, https://HOST:PORT (default: the context's, else
    /// https://127.0.0.1:8440).
    #[arg(value_name = "SERVER", conflicts_with = "socket")]
    server: Option<String>,
    /// Use the server's local socket instead (DATA_DIR/haven.sock, on the
    /// server host): you are who the kernel says, no password.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Save the login under this name (default: the server's host, or
    /// `local` for a socket).
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
    /// The account: an OS user, or user@domain (default: $USER).
    #[arg(long, short = 'u', value_name = "USER")]
    user: Option<String>,
    /// Read the password from standard input (the first line) instead of
    /// asking on the terminal.
    #[arg(long)]
    password_stdin: bool,
    /// Trust the server by this CA certificate (the server's
    /// DATA_DIR/pki/ca.pem).
    #[arg(long, value_name = "FILE", conflicts_with = "ca_fingerprint")]
    ca: Option<PathBuf>,
    /// Trust the server by its CA's SHA-256 fingerprint (hex; the server
    /// logs it at start: "clients trust the fleet CA ... (SHA-256 HEX)").
    #[arg(long, value_name = "HEX")]
    ca_fingerprint: Option<String>,
}

#[derive(Args)]
pub struct LogoutArgs {
    /// The context to log out of (default: the current one).
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
}

#[derive(Subcommand)]
pub enum ContextCommand {
    /// List the saved contexts (* marks the current one).
    List,
    /// Make NAME the current context.
    Use {
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Forget the context NAME (log out first to end its session).
    Remove {
        #[arg(value_name = "NAME")]
        name: String,
    },
}

pub fn login(args: LoginArgs) -> Result<()> {
    let mut config = Config::load()?;
    if let Some(path) = &args.socket {
        return login_socket(&mut config, path, args.context.as_deref());
    }
    // Without SERVER: log in again where the named or current context points.
    let known = match &args.context {
        Some(name) => config.get(name),
        None => config.current(),
    };
    if args.server.is_none() {
        if let Some(path) = known.and_then(|c| c.socket.clone()) {
            let name = known.map(|c| c.name.clone());
            return login_socket(&mut config, &path, name.as_deref());
        }
    }
    let server = args
        .server
        .clone()
        .or_else(|| known.and_then(|c| c.server.clone()))
        .unwrap_or_else(|| DEFAULT_SERVER.to_string());
    let url = ServerUrl::parse(&server).map_err(|e| Failure::new(Exit::Usage, e))?;
    let key = url.to_string();
    let name = args
        .context
        .clone()
        .or_else(|| config.for_server(&key).map(|c| c.name.clone()))
        .unwrap_or_else(|| default_name(&url));
    let previous = config
        .get(&name)
        .filter(|c| c.server.as_deref() == Some(key.as_str()))
        .cloned();

    let mut trust = Trust::settle(&url, &args, previous.as_ref())?;
    // Unauthenticated whoami: proves the trust, and tells whether the
    // server wants a login at all.
    let (status, who) = trust.call(&url, "GET", "/api/v1/whoami", None)?;
    let user = args
        .user
        .clone()
        .or_else(|| previous.as_ref().and_then(|c| c.user.clone()))
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        // SAFETY: getuid has no preconditions.
        .or_else(|| haven_auth::pam::user_name(unsafe { libc::getuid() }))
        .ok_or_else(|| Failure::new(Exit::Usage, "who are you? give --user NAME"))?;
    let mut context = Context {
        name: name.clone(),
        server: Some(key.clone()),
        socket: None,
        ca_pem: trust.pem.clone(),
        user: Some(user.clone()),
        token: None,
    };
    match status {
        200 if who["authenticated"] == false => {
            context.user = who["user"].as_str().map(String::from).or(context.user);
            save(&mut config, context)?;
            println!(
                "logins are off on {key} (a development server): saved as context {name}, without a session"
            );
            return Ok(());
        }
        200 | 401 => {}
        other => return Err(api_of(&url, &trust).refusal(other, &who)),
    }
    let password = term::secret(
        &format!("Password for {user} at {key}: "),
        args.password_stdin,
    )?;
    if password.is_empty() {
        return Err(Failure::new(
            Exit::Usage,
            "an empty password; type it, or give it on standard input with --password-stdin",
        ));
    }
    let body = json!({ "user": user, "password": password });
    let (status, answer) = trust.call(&url, "POST", "/api/v1/login", Some(&body))?;
    match status {
        200 => {}
        401 => {
            return Err(Failure::new(
                Exit::Auth,
                format!(
                    "login to {key} as {user} failed: {}",
                    answer["error"]["message"].as_str().unwrap_or("rejected")
                ),
            ))
        }
        other => return Err(api_of(&url, &trust).refusal(other, &answer)),
    }
    let token = answer["token"].as_str().ok_or_else(|| {
        Failure::error(format!(
            "{key} answered the login without a token: {answer}"
        ))
    })?;
    context.token = Some(token.to_string());
    context.user = answer["user"].as_str().map(String::from).or(context.user);
    let idle = answer["idle_secs"].as_u64().unwrap_or(0);
    let who = context.user.clone().unwrap_or_default();
    save(&mut config, context)?;
    println!(
        "logged in to {key} as {who} (context {name}); the session ends after {} unused",
        super::output::span(idle)
    );
    Ok(())
}

/// A context's name when the user gave none: the host (and the port, if
/// not the default).
fn default_name(url: &ServerUrl) -> String {
    if url.port == super::http::DEFAULT_PORT {
        url.host.clone()
    } else {
        url.authority()
    }
}

fn save(config: &mut Config, context: Context) -> Result<()> {
    config.current = Some(context.name.clone());
    config.put(context);
    config.save()
}

fn api_of(url: &ServerUrl, trust: &Trust) -> Api {
    Api {
        endpoint: Endpoint::Tcp {
            url: url.clone(),
            tls: trust.config.clone(),
        },
        token: None,
        label: url.to_string(),
    }
}

fn login_socket(config: &mut Config, path: &std::path::Path, name: Option<&str>) -> Result<()> {
    let path = std::path::absolute(path)
        .map_err(|e| Failure::error(format!("{}: {e}", path.display())))?;
    let api = Api::socket(path.clone());
    let who = api.get("/api/v1/whoami")?;
    let user = who["user"].as_str().unwrap_or("?").to_string();
    let name = name.unwrap_or("local").to_string();
    save(
        config,
        Context {
            name: name.clone(),
            socket: Some(path.clone()),
            user: Some(user.clone()),
            ..Context::default()
        },
    )?;
    println!(
        "using the local socket {} as {user}, no password needed (context {name})",
        path.display()
    );
    Ok(())
}

/// How the server being logged in to is trusted.
struct Trust {
    config: Option<Arc<rustls::ClientConfig>>,
    /// Set when trusting by fingerprint: it learns the CA's PEM.
    pinned: Option<Arc<haven_pki::PinnedCa>>,
    /// The CA to save with the context.
    pem: Option<String>,
}

impl Trust {
    /// From --ca, --ca-fingerprint, the context's saved CA, or the user's
    /// word at the terminal.
    fn settle(url: &ServerUrl, args: &LoginArgs, previous: Option<&Context>) -> Result<Trust> {
        if !url.https {
            eprintln!("warning: {url} is plain HTTP (development only): the password and the session travel unencrypted");
            return Ok(Trust {
                config: None,
                pinned: None,
                pem: None,
            });
        }
        if let Some(file) = &args.ca {
            let pem = std::fs::read_to_string(file).map_err(|e| {
                Failure::error(format!("cannot read the CA file {}: {e}", file.display()))
            })?;
            return Trust::by_pem(pem, &format!("the CA file {}", file.display()));
        }
        if let Some(fp) = &args.ca_fingerprint {
            return Trust::by_fingerprint(fp);
        }
        if let Some(pem) = previous.and_then(|c| c.ca_pem.clone()) {
            return Trust::by_pem(pem, "the CA saved for this server");
        }
        if !term::interactive() {
            return Err(Failure::error(format!(
                "{url}'s certificate cannot be checked without a terminal: pass --ca FILE (the server's DATA_DIR/pki/ca.pem) or --ca-fingerprint HEX (in the server's start log: \"clients trust the fleet CA ... (SHA-256 HEX)\")"
            )));
        }
        let fp = probe_ca(url)?;
        eprintln!(
            "The server at {url} presents a certificate from a CA with the SHA-256 fingerprint\n  {fp}\nCompare it with the server's start log (\"clients trust the fleet CA ... (SHA-256 ...)\")\nor with: openssl x509 -in DATA_DIR/pki/ca.pem -noout -fingerprint -sha256"
        );
        if !term::confirm("Trust this CA for this server?")? {
            return Err(Failure::error(
                "not trusted; nothing was sent to the server",
            ));
        }
        Trust::by_fingerprint(&fp)
    }

    fn by_pem(pem: String, what: &str) -> Result<Trust> {
        let config = haven_pki::client_config_for_ca(&pem)
            .map_err(|e| Failure::error(format!("{what} is not usable: {e}")))?;
        Ok(Trust {
            config: Some(config),
            pinned: None,
            pem: Some(pem),
        })
    }

    fn by_fingerprint(fp: &str) -> Result<Trust> {
        let pinned = haven_pki::PinnedCa::new(fp)
            .map_err(|e| Failure::new(Exit::Usage, format!("--ca-fingerprint: {e}")))?;
        Ok(Trust {
            config: Some(haven_pki::client_config_pinned(pinned.clone())),
            pinned: Some(pinned),
            pem: None,
        })
    }

    /// A request during login; the CA's PEM is learned from the first
    /// handshake when trusting by fingerprint.
    fn call(
        &mut self,
        url: &ServerUrl,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value)> {
        let api = api_of(url, self);
        let answer = match api
            .endpoint
            .request(method, path, None, body, TIMEOUT)
            .and_then(Response::json)
        {
            Ok(answer) => answer,
            Err(TransportError::Tls(why)) if self.pinned.is_some() => {
                return Err(Failure::error(format!(
                    "{url} does not present the CA with the fingerprint given ({}); check the fingerprint (in the server's start log: \"clients trust the fleet CA ... (SHA-256 HEX)\") and the address",
                    first_clause(&why)
                )))
            }
            Err(e) => return Err(api.unreachable(e)),
        };
        if self.pem.is_none() {
            if let Some(pem) = self.pinned.as_ref().and_then(|p| p.learned_ca_pem()) {
                *self = Trust::by_pem(pem, "the CA the server presented")?;
            }
        }
        Ok(answer)
    }
}

/// Connects without trusting anything, to show the user the fingerprint
/// of the CA the server presents; the handshake is abandoned before
/// anything is sent.
fn probe_ca(url: &ServerUrl) -> Result<String> {
    let probe = Arc::new(Probe::default());
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Failure::error(format!("TLS: {e}")))?
    .dangerous()
    .with_custom_certificate_verifier(probe.clone())
    .with_no_client_auth();
    let endpoint = Endpoint::Tcp {
        url: url.clone(),
        tls: Some(Arc::new(config)),
    };
    let result = endpoint.request("GET", "/api/v1/health", None, None, TIMEOUT);
    let chain = probe
        .chain
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    match (result, chain.last()) {
        (_, Some(ca)) if chain.len() > 1 => Ok(Sha256::digest(ca.as_ref())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()),
        (Err(TransportError::Connect(e)), _) => Err(Failure::new(
            Exit::Unreachable,
            format!("cannot reach {url}: {e}; is it running?"),
        )),
        (Err(TransportError::Timeout(_)), _) => Err(Failure::new(
            Exit::Unreachable,
            format!("{url} did not answer; is it running?"),
        )),
        _ => Err(Failure::error(format!(
            "{url} does not present its CA with its certificate; log in with --ca FILE (the CA that signed the server's certificate)"
        ))),
    }
}

/// A verifier that only records the chain and refuses it.
#[derive(Debug, Default)]
struct Probe {
    chain: Mutex<Vec<CertificateDer<'static>>>,
}

impl ServerCertVerifier for Probe {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let mut chain = vec![end_entity.clone().into_owned()];
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        *self.chain.lock().unwrap_or_else(|e| e.into_inner()) = chain;
        Err(rustls::Error::General(
            "not trusted yet: the user is asked first".into(),
        ))
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("not trusted".into()))
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("not trusted".into()))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

pub fn logout(args: LogoutArgs) -> Result<()> {
    let mut config = Config::load()?;
    let name = match args.context.or_else(|| config.current.clone()) {
        Some(n) => n,
        None => {
            println!("not logged in anywhere");
            return Ok(());
        }
    };
    let mut context = config.named(&name)?.clone();
    if let Some(path) = &context.socket {
        println!(
            "context {name} uses the local socket {}: there is no session to end",
            path.display()
        );
        return Ok(());
    }
    let server = context.server.clone().unwrap_or_default();
    if context.token.is_none() {
        println!("not logged in to {server} (context {name})");
        return Ok(());
    }
    let ended = Api::for_context(&context)
        .and_then(|api| api.call("POST", "/api/v1/logout", None, TIMEOUT));
    // Forgotten here whatever the server says: it expires there anyway.
    context.token = None;
    config.put(context);
    config.save()?;
    match ended {
        Ok((status, _)) if status < 300 || status == 401 => {
            println!("logged out of {server} (context {name})")
        }
        Ok((status, body)) => eprintln!(
            "warning: {server} answered the logout with {status} ({body}); the token is forgotten here and the session expires on its own"
        ),
        Err(f) => eprintln!(
            "warning: {}; the token is forgotten here and the session expires on its own",
            f.message
        ),
    }
    Ok(())
}

pub fn context(global: &Global, command: ContextCommand) -> Result<()> {
    let mut config = Config::load()?;
    match command {
        ContextCommand::List => {
            let current = config.current.clone();
            let rows: Vec<Value> = config
                .contexts
                .iter()
                .map(|c| {
                    json!({
                        "name": c.name,
                        "server": c.server,
                        "socket": c.socket,
                        "user": c.user,
                        "current": current.as_deref() == Some(c.name.as_str()),
                        "session": c.token.is_some(),
                    })
                })
                .collect();
            if global.json() {
                print_json(&Value::Array(rows));
                return Ok(());
            }
            if rows.is_empty() {
                println!("no contexts; log in: haven login SERVER");
                return Ok(());
            }
            let mut table = Table::new(["CURRENT", "NAME", "SERVER", "USER", "SESSION"]);
            for (r, c) in rows.iter().zip(&config.contexts) {
                let place = match (&c.server, &c.socket) {
                    (Some(s), _) => s.clone(),
                    (_, Some(p)) => format!("socket {}", p.display()),
                    _ => "-".into(),
                };
                table.row([
                    if r["current"] == true { "*" } else { "" }.to_string(),
                    c.name.clone(),
                    place,
                    c.user.clone().unwrap_or_else(|| "-".into()),
                    match (&c.socket, &c.token) {
                        (Some(_), _) => "local".into(),
                        (_, Some(_)) => "yes".into(),
                        _ => "no".to_string(),
                    },
                ]);
            }
            table.print();
            Ok(())
        }
        ContextCommand::Use { name } => {
            config.named(&name)?;
            config.current = Some(name.clone());
            config.save()?;
            println!("now using context {name}");
            Ok(())
        }
        ContextCommand::Remove { name } => {
            config.named(&name)?;
            config.contexts.retain(|c| c.name != name);
            if config.current.as_deref() == Some(name.as_str()) {
                config.current = None;
            }
            config.save()?;
            println!("context {name} forgotten");
            Ok(())
        }
    }
}

pub fn whoami(global: &Global) -> Result<()> {
    let api = Api::from_global(global)?;
    let who = api.get("/api/v1/whoami")?;
    if global.json() {
        print_json(&who);
        return Ok(());
    }
    let groups: Vec<&str> = who["groups"]
        .as_array()
        .map(|g| g.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    println!(
        "{} at {}{}",
        who["user"].as_str().unwrap_or("?"),
        api.label,
        if who["authenticated"] == false {
            " (logins are off on this server)"
        } else {
            ""
        }
    );
    if !groups.is_empty() {
        println!("groups: {}", groups.join(", "));
    }
    println!(
        "fleet role: {}",
        who["fleet_role"]
            .as_str()
            .unwrap_or("none (per-cluster grants may apply)")
    );
    println!(
        "server administrator: {}",
        if who["server_admin"] == true {
            "yes"
        } else {
            "no"
        }
    );
    Ok(())
}
