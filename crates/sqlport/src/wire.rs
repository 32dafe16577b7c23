//! The PostgreSQL protocol side: logins, simple and extended queries.
//!
//! Each connection gets its own [`Conn`] (pgwire asks for handlers per
//! socket), which holds the session once the login succeeded. SQLite work
//! runs on the blocking pool, never on the async threads.
//!
//! Types in the extended protocol: a statement's column types are fixed
//! ("pinned") the first time they are needed — when the client describes
//! the statement (declared types, `text` for expressions), or describes a
//! portal or executes (declared types, else the types of the values) — and
//! every later execution of the statement is encoded with them, so a
//! client that caches a statement's description is never surprised.

use std::fmt::Debug;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use futures_util::sink::{Sink, SinkExt};
use futures_util::stream;
use pgwire::api::auth::{
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata,
    DefaultServerParameterProvider, StartupHandler,
};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{
    DescribePortalResponse, DescribeStatementResponse, FieldInfo, QueryResponse, Response, Tag,
};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, PgWireConnectionState, PgWireServerHandlers, Type, METADATA_USER,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::{Authentication, SecretKey};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use rusqlite::types::Value;
use tokio::sync::OwnedSemaphorePermit;

use crate::rewrite::{self, Command};
use crate::session::{error_info, refusal_info, Prepared, Rows, Session};
use crate::values::{self, ColType};
use crate::Shared;

/// One client connection.
pub(crate) struct Conn {
    shared: Arc<Shared>,
    session: OnceLock<Arc<Session>>,
    /// Its place among the sessions the port allows.
    permit: Mutex<Option<OwnedSemaphorePermit>>,
    parser: Arc<Parser>,
}

/// pgwire's handlers of one connection.
pub(crate) struct Handlers(Arc<Conn>);

impl Handlers {
    pub(crate) fn new(shared: Arc<Shared>) -> Handlers {
        let conn = Arc::new_cyclic(|me: &std::sync::Weak<Conn>| Conn {
            shared,
            session: OnceLock::new(),
            permit: Mutex::new(None),
            parser: Arc::new(Parser(me.clone())),
        });
        Handlers(conn)
    }
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.0.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.0.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.0.clone()
    }
}

fn user_error(info: Box<ErrorInfo>) -> PgWireError {
    PgWireError::UserError(info)
}

fn fatal(code: &str, message: String) -> PgWireError {
    user_error(Box::new(ErrorInfo::new(
        "FATAL".into(),
        code.into(),
        message,
    )))
}

static NEXT_PID: AtomicI32 = AtomicI32::new(1000);

impl Conn {
    fn session(&self) -> PgWireResult<Arc<Session>> {
        self.session
            .get()
            .cloned()
            .ok_or(PgWireError::NotReadyForQuery)
    }

    /// Checks the login, opens the session and completes the startup.
    async fn login<C>(&self, client: &mut C, password: &str) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let user = client
            .metadata()
            .get(METADATA_USER)
            .cloned()
            .ok_or(PgWireError::UserNameRequired)?;
        let source = client.socket_addr().ip().to_string();
        let seen = self
            .shared
            .gate
            .login(&user, password, &source)
            .await
            .map_err(|m| fatal("28P01", m))?;
        let permit = self
            .shared
            .sessions
            .clone()
            .try_acquire_owned()
            .map_err(|_| {
                fatal(
                    "53300",
                    format!(
                        "too many SQL sessions (at most {}); try again later",
                        crate::MAX_SESSIONS
                    ),
                )
            })?;
        let pid = NEXT_PID.fetch_add(1, Ordering::Relaxed);
        let db = self.shared.db.clone();
        let session = tokio::task::spawn_blocking(move || Session::open(&db, seen, pid))
            .await
            .map_err(|e| fatal("58000", e.to_string()))?
            .map_err(|m| {
                tracing::error!("SQL port: {m}");
                fatal("58000", m)
            })?;
        let _ = self.session.set(Arc::new(session));
        *self.permit.lock().unwrap_or_else(|p| p.into_inner()) = Some(permit);
        tracing::info!(user, source, "SQL session opened");
        client.set_pid_and_secret_key(pid, SecretKey::I32(pid.wrapping_mul(0x5bd1_e995)));
        let mut params = DefaultServerParameterProvider::default();
        params.server_version = crate::catalog::SERVER_VERSION.into();
        params.is_superuser = false;
        params.default_transaction_read_only = true;
        finish_authentication(client, &params).await
    }
}

#[async_trait]
impl StartupHandler for Conn {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                // A password crosses the network only inside TLS.
                if self.shared.tls
                    && !client.is_secure()
                    && !client.socket_addr().ip().is_loopback()
                {
                    return Err(fatal(
                        "28000",
                        "connect with TLS (sslmode=require): this port takes passwords only over TLS beyond the local host".into(),
                    ));
                }
                if self.shared.gate.requires_password() {
                    client.set_state(PgWireConnectionState::AuthenticationInProgress);
                    client
                        .send(PgWireBackendMessage::Authentication(
                            Authentication::CleartextPassword,
                        ))
                        .await?;
                    Ok(())
                } else {
                    self.login(client, "").await
                }
            }
            PgWireFrontendMessage::PasswordMessageFamily(message) => {
                let password = message.into_password()?.password;
                self.login(client, &password).await
            }
            _ => Ok(()),
        }
    }
}

/// A statement of the extended protocol.
#[derive(Clone, Debug)]
pub(crate) struct Stmt {
    command: Command,
    prepared: Option<Prepared>,
    /// The column types, once fixed.
    pinned: Arc<OnceLock<Vec<ColType>>>,
}

/// Checks statements as they are parsed (Parse), so a refused one fails
/// there.
pub(crate) struct Parser(std::sync::Weak<Conn>);

#[async_trait]
impl QueryParser for Parser {
    type Statement = Stmt;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Stmt>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let conn = self.0.upgrade().ok_or(PgWireError::NotReadyForQuery)?;
        let statements = rewrite::split(sql);
        if statements.len() > 1 {
            return Err(user_error(error_info(
                "42601",
                "cannot insert multiple commands into a prepared statement".into(),
            )));
        }
        let Some(statement) = statements.first() else {
            return Ok(None);
        };
        let command = rewrite::classify(statement);
        let prepared = match &command {
            Command::Refused(r) => return Err(user_error(refusal_info(r))),
            Command::Query(sql) => Some(prepare(&conn.session()?, sql.clone()).await?),
            _ => None,
        };
        Ok(Some(Stmt {
            command,
            prepared,
            pinned: Arc::new(OnceLock::new()),
        }))
    }

    fn get_parameter_types(&self, stmt: &Stmt) -> PgWireResult<Vec<Type>> {
        Ok(vec![
            Type::TEXT;
            stmt.prepared.as_ref().map_or(0, |p| p.params)
        ])
    }

    fn get_result_schema(
        &self,
        stmt: &Stmt,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        Ok(statement_fields(
            stmt,
            format.unwrap_or(&Format::UnifiedText),
        ))
    }
}

/// The columns a statement returns, as far as they are known before it
/// runs (and pins them).
fn statement_fields(stmt: &Stmt, format: &Format) -> Vec<FieldInfo> {
    match (&stmt.command, &stmt.prepared) {
        (Command::Query(_), Some(p)) => {
            let types = stmt.pinned.get_or_init(|| {
                p.declared
                    .iter()
                    .map(|d| d.unwrap_or(ColType::Text))
                    .collect()
            });
            values::fields(&p.names, types, format)
        }
        (Command::Show(name), _) => values::fields(&show_names(name), &show_types(name), format),
        _ => Vec::new(),
    }
}

fn show_names(name: &str) -> Vec<String> {
    if name == "all" {
        vec!["name".into(), "setting".into(), "description".into()]
    } else {
        vec![name.to_string()]
    }
}

fn show_types(name: &str) -> Vec<ColType> {
    vec![ColType::Text; show_names(name).len()]
}

async fn prepare(session: &Arc<Session>, sql: String) -> PgWireResult<Prepared> {
    let s = session.clone();
    tokio::task::spawn_blocking(move || s.prepare(&sql))
        .await
        .map_err(|e| user_error(error_info("XX000", e.to_string())))?
        .map_err(user_error)
}

async fn run(
    session: &Arc<Session>,
    sql: String,
    params: Vec<Value>,
) -> Result<Rows, Box<ErrorInfo>> {
    let s = session.clone();
    tokio::task::spawn_blocking(move || s.query(&sql, &params))
        .await
        .map_err(|e| error_info("XX000", e.to_string()))?
}

/// A result as pgwire's response, encoded for `types` and `format`.
fn response(rows: Rows, types: &[ColType], format: &Format) -> PgWireResult<QueryResponse> {
    let fields = Arc::new(values::fields(&rows.names, types, format));
    let data = values::encode(rows.rows, &fields)?;
    Ok(QueryResponse::new(
        fields,
        stream::iter(data.into_iter().map(Ok)),
    ))
}

impl Conn {
    /// Answers a statement that is not SQL for SQLite.
    fn session_command<C>(
        &self,
        client: &mut C,
        session: &Session,
        command: &Command,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore,
        C::PortalStore: PortalStore,
    {
        let mut settings = session.settings.lock().unwrap_or_else(|p| p.into_inner());
        Ok(match command {
            Command::Query(_) => Response::EmptyQuery,
            Command::Set(assignment) => {
                if let Some((name, value)) = assignment {
                    settings.set(name, value);
                }
                Response::Execution(Tag::new("SET"))
            }
            Command::Reset(name) => {
                settings.reset(name, &session.user);
                Response::Execution(Tag::new("RESET"))
            }
            Command::Show(name) => {
                let rows: Vec<Vec<values::Cell>> = if name == "all" {
                    settings
                        .all()
                        .into_iter()
                        .map(|(k, v)| {
                            vec![
                                values::Cell::Text(k),
                                values::Cell::Text(v),
                                values::Cell::Null,
                            ]
                        })
                        .collect()
                } else {
                    let value = settings.get(name).ok_or_else(|| {
                        user_error(error_info(
                            "42704",
                            format!("unrecognized configuration parameter \"{name}\""),
                        ))
                    })?;
                    vec![vec![values::Cell::Text(value.to_string())]]
                };
                let rows = Rows {
                    names: show_names(name),
                    declared: vec![Some(ColType::Text); show_names(name).len()],
                    rows,
                };
                let mut r = response(rows, &show_types(name), &Format::UnifiedText)?;
                r.set_command_tag("SHOW");
                Response::Query(r)
            }
            Command::Begin => Response::TransactionStart(Tag::new("BEGIN")),
            Command::Commit => Response::TransactionEnd(Tag::new("COMMIT")),
            Command::Rollback => Response::TransactionEnd(Tag::new("ROLLBACK")),
            Command::Ignored(tag) => Response::Execution(Tag::new(tag)),
            Command::Deallocate(name) => {
                if let Some(name) = name {
                    client.portal_store().rm_statement(name);
                    Response::Execution(Tag::new("DEALLOCATE"))
                } else {
                    Response::Execution(Tag::new("DEALLOCATE ALL"))
                }
            }
            Command::Refused(r) => return Err(user_error(refusal_info(r))),
        })
    }
}

#[async_trait]
impl SimpleQueryHandler for Conn {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = self.session()?;
        let commands: Vec<Command> = rewrite::split(query)
            .iter()
            .map(|s| rewrite::classify(s))
            .collect();
        // Every statement is checked before any runs: a write smuggled
        // after a SELECT refuses the whole query string.
        for command in &commands {
            match command {
                Command::Refused(r) => return Err(user_error(refusal_info(r))),
                Command::Query(sql) => {
                    prepare(&session, sql.clone()).await?;
                }
                _ => {}
            }
        }
        let mut out = Vec::with_capacity(commands.len());
        for command in &commands {
            match command {
                Command::Query(sql) => match run(&session, sql.clone(), Vec::new()).await {
                    Ok(rows) => {
                        let types = rows.types();
                        out.push(Response::Query(response(
                            rows,
                            &types,
                            &Format::UnifiedText,
                        )?));
                    }
                    Err(e) => {
                        // What ran before is answered, then the error, as
                        // PostgreSQL does.
                        out.push(Response::Error(e));
                        break;
                    }
                },
                other => out.push(self.session_command(client, &session, other)?),
            }
        }
        Ok(out)
    }
}

/// The parameters of a portal as SQLite values.
fn parameters(portal: &Portal<Stmt>) -> PgWireResult<Vec<Value>> {
    let types = &portal.statement.parameter_types;
    (0..portal.parameter_len())
        .map(|i| {
            let ty = types.get(i).cloned().flatten().unwrap_or(Type::UNKNOWN);
            let Some(bytes) = portal.parameters[i].as_ref() else {
                return Ok(Value::Null);
            };
            let bad = |what: &str| {
                user_error(error_info(
                    "22P02",
                    format!("parameter ${}: {what} for type {}", i + 1, ty.name()),
                ))
            };
            if portal.parameter_format.is_binary(i) {
                binary_parameter(&ty, bytes).ok_or_else(|| bad("unsupported binary value"))
            } else {
                let text = std::str::from_utf8(bytes).map_err(|_| bad("invalid UTF-8"))?;
                text_parameter(&ty, text).ok_or_else(|| bad(&format!("invalid value {text:?}")))
            }
        })
        .collect()
}

fn binary_parameter(ty: &Type, b: &[u8]) -> Option<Value> {
    let int = |n: usize| -> Option<i64> {
        let a: [u8; 8] = match n {
            2 => {
                let v = i16::from_be_bytes(b.try_into().ok()?);
                return Some(i64::from(v));
            }
            4 => {
                let v = i32::from_be_bytes(b.try_into().ok()?);
                return Some(i64::from(v));
            }
            _ => b.try_into().ok()?,
        };
        Some(i64::from_be_bytes(a))
    };
    Some(match *ty {
        Type::INT2 => Value::Integer(int(2)?),
        Type::INT4 => Value::Integer(int(4)?),
        Type::INT8 => Value::Integer(int(8)?),
        Type::OID => Value::Integer(i64::from(u32::from_be_bytes(b.try_into().ok()?))),
        Type::FLOAT4 => Value::Real(f64::from(f32::from_be_bytes(b.try_into().ok()?))),
        Type::FLOAT8 => Value::Real(f64::from_be_bytes(b.try_into().ok()?)),
        Type::BOOL => Value::Integer(i64::from(*b.first()? != 0)),
        Type::BYTEA => Value::Blob(b.to_vec()),
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            // Microseconds since 2000-01-01.
            let micros = i64::from_be_bytes(b.try_into().ok()?);
            Value::Text(crate::catalog::timestamp_text(micros + 946_684_800_000_000))
        }
        Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR | Type::UNKNOWN | Type::JSON => {
            Value::Text(String::from_utf8(b.to_vec()).ok()?)
        }
        _ => return None,
    })
}

fn text_parameter(ty: &Type, t: &str) -> Option<Value> {
    Some(match *ty {
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => Value::Integer(t.trim().parse().ok()?),
        Type::FLOAT4 | Type::FLOAT8 | Type::NUMERIC => Value::Real(t.trim().parse().ok()?),
        Type::BOOL => Value::Integer(i64::from(matches!(
            t.trim().to_ascii_lowercase().as_str(),
            "t" | "true" | "y" | "yes" | "on" | "1"
        ))),
        Type::BYTEA => match t.strip_prefix("\\x") {
            Some(hex) => Value::Blob(
                (0..hex.len() / 2)
                    .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
                    .collect::<Option<Vec<u8>>>()?,
            ),
            None => Value::Blob(t.as_bytes().to_vec()),
        },
        // An untyped parameter that is plainly an integer is bound as one,
        // so it compares with numbers as PostgreSQL's inferred type would
        // (and with text columns, SQLite's affinity makes it text again).
        Type::UNKNOWN => match t.parse::<i64>() {
            Ok(i) if i.to_string() == t => Value::Integer(i),
            _ => Value::Text(t.to_string()),
        },
        _ => Value::Text(t.to_string()),
    })
}

#[async_trait]
impl ExtendedQueryHandler for Conn {
    type Statement = Stmt;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Stmt>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Stmt>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = self.session()?;
        let stmt = &portal.statement.statement;
        match (&stmt.command, &stmt.prepared) {
            (Command::Query(_), Some(p)) => {
                let rows = run(&session, p.sql.clone(), parameters(portal)?)
                    .await
                    .map_err(user_error)?;
                let types = stmt.pinned.get_or_init(|| rows.types()).clone();
                Ok(Response::Query(response(
                    rows,
                    &types,
                    &portal.result_column_format,
                )?))
            }
            (command, _) => self.session_command(client, &session, command),
        }
    }

    async fn do_describe_statement<C>(
        &self,
        _client: &mut C,
        target: &StoredStatement<Stmt>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Stmt>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let stmt = &target.statement;
        let count = stmt.prepared.as_ref().map_or(0, |p| p.params);
        let params = (0..count)
            .map(|i| {
                target
                    .parameter_types
                    .get(i)
                    .cloned()
                    .flatten()
                    .filter(|t| *t != Type::UNKNOWN)
                    .unwrap_or(Type::TEXT)
            })
            .collect();
        Ok(DescribeStatementResponse::new(
            params,
            statement_fields(stmt, &Format::UnifiedText),
        ))
    }

    async fn do_describe_portal<C>(
        &self,
        _client: &mut C,
        portal: &Portal<Stmt>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Stmt>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let stmt = &portal.statement.statement;
        let format = &portal.result_column_format;
        match (&stmt.command, &stmt.prepared) {
            (Command::Query(_), Some(p)) if stmt.pinned.get().is_none() => {
                // The types of expression columns come from their values:
                // run the query now and keep its result for Execute.
                let session = self.session()?;
                let rows = run(&session, p.sql.clone(), parameters(portal)?)
                    .await
                    .map_err(user_error)?;
                let types = stmt.pinned.get_or_init(|| rows.types()).clone();
                let result = response(rows, &types, format)?;
                let fields = result.row_schema().as_ref().clone();
                portal.start(result).await;
                Ok(DescribePortalResponse::new(fields))
            }
            _ => Ok(DescribePortalResponse::new(statement_fields(stmt, format))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untyped_text_parameters_that_are_integers_are_bound_as_integers() {
        assert_eq!(
            text_parameter(&Type::UNKNOWN, "42"),
            Some(Value::Integer(42))
        );
        assert_eq!(
            text_parameter(&Type::UNKNOWN, "007"),
            Some(Value::Text("007".into()))
        );
        assert_eq!(
            text_parameter(&Type::VARCHAR, "42"),
            Some(Value::Text("42".into()))
        );
        assert_eq!(text_parameter(&Type::INT8, "x"), None);
    }

    #[test]
    fn binary_parameters_are_decoded_by_type() {
        assert_eq!(
            binary_parameter(&Type::INT8, &7i64.to_be_bytes()),
            Some(Value::Integer(7))
        );
        assert_eq!(
            binary_parameter(&Type::INT4, &(-7i32).to_be_bytes()),
            Some(Value::Integer(-7))
        );
        assert_eq!(
            binary_parameter(&Type::FLOAT8, &1.5f64.to_be_bytes()),
            Some(Value::Real(1.5))
        );
        assert_eq!(binary_parameter(&Type::BOOL, &[1]), Some(Value::Integer(1)));
        assert_eq!(binary_parameter(&Type::INT8, &[1, 2]), None);
    }
}
