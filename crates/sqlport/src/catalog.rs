//! Enough of PostgreSQL's catalog for clients to find the views.
//!
//! Drivers and tools look things up when they connect and browse: psql's
//! `\dv` and `\d history` read `pg_class`, `pg_namespace`, `pg_attribute`
//! and `pg_type`; psqlODBC reads `pg_type` at connect; BI tools read
//! `information_schema.tables` and `.columns`. Each session gets two
//! in-memory databases attached as `pg_catalog` and `information_schema`,
//! filled from the view registry (so the catalog always says what the
//! views are), plus the few catalog functions those queries call
//! (`pg_table_is_visible`, `format_type`, `version()`...).
//!
//! Only the columns clients were seen to use are there; a query naming
//! another one gets "no such column", never a wrong answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rusqlite::functions::FunctionFlags;
use rusqlite::{params, Connection};

use crate::values::ColType;
use crate::views::VIEWS;

/// Namespace oids.
const PG_CATALOG: i64 = 11;
const PUBLIC: i64 = 2200;
const INFORMATION_SCHEMA: i64 = 13_000;
/// The first oid of the views (PostgreSQL's first user oid is 16384).
const FIRST_VIEW_OID: i64 = 16_400;
/// The first oid of the catalog's own tables.
const FIRST_CATALOG_OID: i64 = 17_000;
/// The name the port gives its database.
pub const DATABASE: &str = "haven";
/// The owner every object has.
const OWNER: &str = "haven";

/// PostgreSQL types the catalog lists: (oid, name, SQL name, length,
/// category).
const TYPES: &[(i64, &str, &str, i64, &str)] = &[
    (16, "bool", "boolean", 1, "B"),
    (17, "bytea", "bytea", -1, "U"),
    (18, "char", "\"char\"", 1, "Z"),
    (19, "name", "name", 64, "S"),
    (20, "int8", "bigint", 8, "N"),
    (21, "int2", "smallint", 2, "N"),
    (23, "int4", "integer", 4, "N"),
    (25, "text", "text", -1, "S"),
    (26, "oid", "oid", 4, "N"),
    (114, "json", "json", -1, "U"),
    (700, "float4", "real", 4, "N"),
    (701, "float8", "double precision", 8, "N"),
    (705, "unknown", "unknown", -2, "X"),
    (1043, "varchar", "character varying", -1, "S"),
    (1082, "date", "date", 4, "D"),
    (1114, "timestamp", "timestamp without time zone", 8, "D"),
    (1184, "timestamptz", "timestamp with time zone", 8, "D"),
    (1700, "numeric", "numeric", -1, "N"),
];

fn type_oid(ty: ColType) -> i64 {
    ty.pg().oid() as i64
}

/// The catalog tables, created in `pg_catalog` (empty ones are there so
/// that the joins clients write find nothing rather than fail).
const PG_CATALOG_TABLES: &str = "
CREATE TABLE pg_catalog.pg_namespace(oid INTEGER, nspname TEXT, nspowner INTEGER, nspacl TEXT);
CREATE TABLE pg_catalog.pg_class(oid INTEGER, relname TEXT, relnamespace INTEGER, reltype INTEGER,
  reloftype INTEGER, relowner INTEGER, relam INTEGER, relfilenode INTEGER, reltablespace INTEGER,
  relpages INTEGER, reltuples REAL, relallvisible INTEGER, reltoastrelid INTEGER,
  relhasindex BOOLEAN, relisshared BOOLEAN, relpersistence TEXT, relkind TEXT, relnatts INTEGER,
  relchecks INTEGER, relhasrules BOOLEAN, relhastriggers BOOLEAN, relhassubclass BOOLEAN,
  relrowsecurity BOOLEAN, relforcerowsecurity BOOLEAN, relispopulated BOOLEAN, relreplident TEXT,
  relispartition BOOLEAN, relrewrite INTEGER, relfrozenxid INTEGER, relminmxid INTEGER,
  relacl TEXT, reloptions TEXT, relpartbound TEXT);
CREATE TABLE pg_catalog.pg_attribute(attrelid INTEGER, attname TEXT, atttypid INTEGER,
  attstattarget INTEGER, attlen INTEGER, attnum INTEGER, attndims INTEGER, attcacheoff INTEGER,
  atttypmod INTEGER, attbyval BOOLEAN, attalign TEXT, attstorage TEXT, attcompression TEXT,
  attnotnull BOOLEAN, atthasdef BOOLEAN, atthasmissing BOOLEAN, attidentity TEXT,
  attgenerated TEXT, attisdropped BOOLEAN, attislocal BOOLEAN, attinhcount INTEGER,
  attcollation INTEGER, attacl TEXT, attoptions TEXT, attfdwoptions TEXT, attmissingval TEXT);
CREATE TABLE pg_catalog.pg_type(oid INTEGER, typname TEXT, typnamespace INTEGER, typowner INTEGER,
  typlen INTEGER, typbyval BOOLEAN, typtype TEXT, typcategory TEXT, typispreferred BOOLEAN,
  typisdefined BOOLEAN, typdelim TEXT, typrelid INTEGER, typsubscript TEXT, typelem INTEGER,
  typarray INTEGER, typinput TEXT, typoutput TEXT, typreceive TEXT, typsend TEXT,
  typmodin TEXT, typmodout TEXT, typanalyze TEXT, typalign TEXT, typstorage TEXT,
  typnotnull BOOLEAN, typbasetype INTEGER, typtypmod INTEGER, typndims INTEGER,
  typcollation INTEGER, typdefaultbin TEXT, typdefault TEXT, typacl TEXT);
CREATE TABLE pg_catalog.pg_am(oid INTEGER, amname TEXT, amhandler TEXT, amtype TEXT);
CREATE TABLE pg_catalog.pg_attrdef(oid INTEGER, adrelid INTEGER, adnum INTEGER, adbin TEXT);
CREATE TABLE pg_catalog.pg_collation(oid INTEGER, collname TEXT, collnamespace INTEGER,
  collowner INTEGER, collprovider TEXT, collisdeterministic BOOLEAN, collencoding INTEGER,
  collcollate TEXT, collctype TEXT);
CREATE TABLE pg_catalog.pg_description(objoid INTEGER, classoid INTEGER, objsubid INTEGER,
  description TEXT);
CREATE TABLE pg_catalog.pg_index(indexrelid INTEGER, indrelid INTEGER, indnatts INTEGER,
  indnkeyatts INTEGER, indisunique BOOLEAN, indisprimary BOOLEAN, indisexclusion BOOLEAN,
  indimmediate BOOLEAN, indisclustered BOOLEAN, indisvalid BOOLEAN, indisready BOOLEAN,
  indislive BOOLEAN, indisreplident BOOLEAN, indkey TEXT, indcollation TEXT, indclass TEXT,
  indoption TEXT, indexprs TEXT, indpred TEXT);
CREATE TABLE pg_catalog.pg_constraint(oid INTEGER, conname TEXT, connamespace INTEGER,
  contype TEXT, condeferrable BOOLEAN, condeferred BOOLEAN, convalidated BOOLEAN,
  conrelid INTEGER, contypid INTEGER, conindid INTEGER, conparentid INTEGER,
  confrelid INTEGER, confupdtype TEXT, confdeltype TEXT, confmatchtype TEXT,
  conislocal BOOLEAN, coninhcount INTEGER, connoinherit BOOLEAN, conkey TEXT, confkey TEXT,
  conbin TEXT);
CREATE TABLE pg_catalog.pg_inherits(inhrelid INTEGER, inhparent INTEGER, inhseqno INTEGER,
  inhdetachpending BOOLEAN);
CREATE TABLE pg_catalog.pg_rewrite(oid INTEGER, rulename TEXT, ev_class INTEGER, ev_type TEXT,
  ev_enabled TEXT, is_instead BOOLEAN, ev_qual TEXT, ev_action TEXT);
CREATE TABLE pg_catalog.pg_trigger(oid INTEGER, tgrelid INTEGER, tgparentid INTEGER,
  tgname TEXT, tgfoid INTEGER, tgtype INTEGER, tgenabled TEXT, tgisinternal BOOLEAN);
CREATE TABLE pg_catalog.pg_policy(oid INTEGER, polname TEXT, polrelid INTEGER, polcmd TEXT,
  polpermissive BOOLEAN, polroles TEXT, polqual TEXT, polwithcheck TEXT);
CREATE TABLE pg_catalog.pg_statistic_ext(oid INTEGER, stxrelid INTEGER, stxname TEXT,
  stxnamespace INTEGER, stxowner INTEGER, stxstattarget INTEGER, stxkeys TEXT, stxkind TEXT);
CREATE TABLE pg_catalog.pg_publication(oid INTEGER, pubname TEXT, pubowner INTEGER,
  puballtables BOOLEAN, pubinsert BOOLEAN, pubupdate BOOLEAN, pubdelete BOOLEAN,
  pubtruncate BOOLEAN, pubviaroot BOOLEAN);
CREATE TABLE pg_catalog.pg_publication_rel(oid INTEGER, prpubid INTEGER, prrelid INTEGER);
CREATE TABLE pg_catalog.pg_proc(oid INTEGER, proname TEXT, pronamespace INTEGER,
  proowner INTEGER, prokind TEXT, prorettype INTEGER, proargtypes TEXT, proretset BOOLEAN);
CREATE TABLE pg_catalog.pg_extension(oid INTEGER, extname TEXT, extowner INTEGER,
  extnamespace INTEGER, extrelocatable BOOLEAN, extversion TEXT);
CREATE TABLE pg_catalog.pg_database(oid INTEGER, datname TEXT, datdba INTEGER,
  encoding INTEGER, datcollate TEXT, datctype TEXT, datistemplate BOOLEAN,
  datallowconn BOOLEAN, datconnlimit INTEGER, dattablespace INTEGER, datacl TEXT,
  datlocprovider TEXT, daticulocale TEXT, datlocale TEXT, daticurules TEXT,
  datcollversion TEXT);
CREATE TABLE pg_catalog.pg_roles(oid INTEGER, rolname TEXT, rolsuper BOOLEAN,
  rolinherit BOOLEAN, rolcreaterole BOOLEAN, rolcreatedb BOOLEAN, rolcanlogin BOOLEAN,
  rolreplication BOOLEAN, rolconnlimit INTEGER, rolvaliduntil TEXT, rolbypassrls BOOLEAN,
  rolconfig TEXT);
CREATE TABLE pg_catalog.pg_user(usename TEXT, usesysid INTEGER, usecreatedb BOOLEAN,
  usesuper BOOLEAN, userepl BOOLEAN, usebypassrls BOOLEAN, valuntil TEXT, useconfig TEXT);
CREATE TABLE pg_catalog.pg_settings(name TEXT, setting TEXT, unit TEXT, category TEXT,
  short_desc TEXT, context TEXT, vartype TEXT, source TEXT);
CREATE TABLE pg_catalog.pg_tables(schemaname TEXT, tablename TEXT, tableowner TEXT,
  tablespace TEXT, hasindexes BOOLEAN, hasrules BOOLEAN, hastriggers BOOLEAN,
  rowsecurity BOOLEAN);
CREATE TABLE pg_catalog.pg_views(schemaname TEXT, viewname TEXT, viewowner TEXT,
  definition TEXT);
CREATE TABLE pg_catalog.pg_matviews(schemaname TEXT, matviewname TEXT, matviewowner TEXT,
  definition TEXT);
CREATE TABLE pg_catalog.pg_indexes(schemaname TEXT, tablename TEXT, indexname TEXT,
  tablespace TEXT, indexdef TEXT);
CREATE TABLE pg_catalog.pg_sequence(seqrelid INTEGER, seqtypid INTEGER);
CREATE TABLE pg_catalog.pg_enum(oid INTEGER, enumtypid INTEGER, enumsortorder REAL,
  enumlabel TEXT);
CREATE TABLE pg_catalog.pg_range(rngtypid INTEGER, rngsubtype INTEGER);
CREATE TABLE pg_catalog.pg_tablespace(oid INTEGER, spcname TEXT, spcowner INTEGER);
";

const INFORMATION_SCHEMA_TABLES: &str = "
CREATE TABLE information_schema.schemata(catalog_name TEXT, schema_name TEXT,
  schema_owner TEXT, default_character_set_catalog TEXT, default_character_set_schema TEXT,
  default_character_set_name TEXT, sql_path TEXT);
CREATE TABLE information_schema.tables(table_catalog TEXT, table_schema TEXT, table_name TEXT,
  table_type TEXT, self_referencing_column_name TEXT, reference_generation TEXT,
  user_defined_type_catalog TEXT, user_defined_type_schema TEXT, user_defined_type_name TEXT,
  is_insertable_into TEXT, is_typed TEXT, commit_action TEXT);
CREATE TABLE information_schema.views(table_catalog TEXT, table_schema TEXT, table_name TEXT,
  view_definition TEXT, check_option TEXT, is_updatable TEXT, is_insertable_into TEXT,
  is_trigger_updatable TEXT, is_trigger_deletable TEXT, is_trigger_insertable_into TEXT);
CREATE TABLE information_schema.columns(table_catalog TEXT, table_schema TEXT,
  table_name TEXT, column_name TEXT, ordinal_position INTEGER, column_default TEXT,
  is_nullable TEXT, data_type TEXT, character_maximum_length INTEGER,
  character_octet_length INTEGER, numeric_precision INTEGER, numeric_precision_radix INTEGER,
  numeric_scale INTEGER, datetime_precision INTEGER, interval_type TEXT,
  interval_precision INTEGER, character_set_catalog TEXT, character_set_schema TEXT,
  character_set_name TEXT, collation_catalog TEXT, collation_schema TEXT, collation_name TEXT,
  domain_catalog TEXT, domain_schema TEXT, domain_name TEXT, udt_catalog TEXT,
  udt_schema TEXT, udt_name TEXT, scope_catalog TEXT, scope_schema TEXT, scope_name TEXT,
  maximum_cardinality INTEGER, dtd_identifier TEXT, is_self_referencing TEXT,
  is_identity TEXT, identity_generation TEXT, identity_start TEXT, identity_increment TEXT,
  identity_maximum TEXT, identity_minimum TEXT, identity_cycle TEXT, is_generated TEXT,
  generation_expression TEXT, is_updatable TEXT);
CREATE TABLE information_schema.table_constraints(constraint_catalog TEXT,
  constraint_schema TEXT, constraint_name TEXT, table_catalog TEXT, table_schema TEXT,
  table_name TEXT, constraint_type TEXT, is_deferrable TEXT, initially_deferred TEXT,
  enforced TEXT);
CREATE TABLE information_schema.key_column_usage(constraint_catalog TEXT,
  constraint_schema TEXT, constraint_name TEXT, table_catalog TEXT, table_schema TEXT,
  table_name TEXT, column_name TEXT, ordinal_position INTEGER,
  position_in_unique_constraint INTEGER);
CREATE TABLE information_schema.routines(specific_catalog TEXT, specific_schema TEXT,
  specific_name TEXT, routine_catalog TEXT, routine_schema TEXT, routine_name TEXT,
  routine_type TEXT, data_type TEXT);
";

/// What the catalog functions need to know about the objects.
#[derive(Default)]
pub struct Objects {
    /// Relation name (views, and catalog tables as `schema.name`) → oid.
    by_name: HashMap<String, i64>,
    /// View oid → (its SQL, its documentation, its columns' documentation).
    views: HashMap<i64, (String, &'static str, Vec<&'static str>)>,
}

impl Objects {
    fn regclass(&self, name: &str) -> Option<i64> {
        let unquote = |s: &str| s.trim().trim_matches('"').to_string();
        let (schema, rel) = match name.rsplit_once('.') {
            Some((s, r)) => (Some(unquote(s)), unquote(r)),
            None => (None, unquote(name)),
        };
        match schema.as_deref() {
            None | Some("public") => self
                .by_name
                .get(&rel.to_ascii_lowercase())
                .or_else(|| self.by_name.get(&format!("pg_catalog.{rel}"))),
            Some(s) => self.by_name.get(&format!("{s}.{rel}")),
        }
        .copied()
    }
}

/// Creates and fills the catalog of one session (before its lock-down).
pub fn create(conn: &Connection, user: &str) -> rusqlite::Result<Objects> {
    conn.execute_batch(
        "ATTACH ':memory:' AS pg_catalog; ATTACH ':memory:' AS information_schema;",
    )?;
    conn.execute_batch(PG_CATALOG_TABLES)?;
    conn.execute_batch(INFORMATION_SCHEMA_TABLES)?;
    let mut objects = Objects::default();

    let ns = "INSERT INTO pg_catalog.pg_namespace VALUES (?1, ?2, 10, NULL)";
    for (oid, name) in [
        (PG_CATALOG, "pg_catalog"),
        (PUBLIC, "public"),
        (INFORMATION_SCHEMA, "information_schema"),
    ] {
        conn.execute(ns, params![oid, name])?;
        conn.execute(
            "INSERT INTO information_schema.schemata VALUES (?1, ?2, ?3, NULL, NULL, NULL, NULL)",
            params![DATABASE, name, OWNER],
        )?;
    }
    for &(oid, name, _, len, category) in TYPES {
        conn.execute(
            "INSERT INTO pg_catalog.pg_type VALUES (?1, ?2, 11, 10, ?3, ?4, 'b', ?5, 0, 1, ',', 0,
               NULL, 0, 0, ?2 || 'in', ?2 || 'out', ?2 || 'recv', ?2 || 'send', '-', '-', '-',
               'i', 'p', 0, 0, -1, 0, ?6, NULL, NULL, NULL)",
            params![
                oid,
                name,
                len,
                (1..=8).contains(&len),
                category,
                if category == "S" { 100 } else { 0 }
            ],
        )?;
    }
    conn.execute(
        "INSERT INTO pg_catalog.pg_am VALUES (2, 'heap', 'heap_tableam_handler', 't')",
        [],
    )?;
    conn.execute(
        "INSERT INTO pg_catalog.pg_collation VALUES (100, 'default', 11, 10, 'd', 1, -1, NULL, NULL)",
        [],
    )?;
    conn.execute(
        "INSERT INTO pg_catalog.pg_database VALUES (1, ?1, 10, 6, 'C', 'C', 0, 1, -1, 1663, NULL,
           'c', NULL, NULL, NULL, NULL)",
        params![DATABASE],
    )?;
    conn.execute(
        "INSERT INTO pg_catalog.pg_roles VALUES (10, ?1, 0, 1, 0, 0, 1, 0, -1, NULL, 0, NULL)",
        params![user],
    )?;
    conn.execute(
        "INSERT INTO pg_catalog.pg_user VALUES (?1, 10, 0, 0, 0, 0, NULL, NULL)",
        params![user],
    )?;
    conn.execute(
        "INSERT INTO pg_catalog.pg_tablespace VALUES (1663, 'pg_default', 10)",
        [],
    )?;

    let relation = |oid: i64, name: &str, ns: i64, kind: &str, natts: usize| {
        conn.execute(
            "INSERT INTO pg_catalog.pg_class VALUES (?1, ?2, ?3, 0, 0, 10, 0, 0, 0, 0, -1, 0, 0,
               0, 0, 'p', ?4, ?5, 0, ?6, 0, 0, 0, 0, 1, 'n', 0, 0, 0, 0, NULL, NULL, NULL)",
            params![oid, name, ns, kind, natts as i64, kind == "v"],
        )
    };
    let attribute = |rel: i64, name: &str, num: usize, ty: ColType| {
        let oid = type_oid(ty);
        let len = TYPES.iter().find(|t| t.0 == oid).map_or(-1, |t| t.3);
        conn.execute(
            "INSERT INTO pg_catalog.pg_attribute VALUES (?1, ?2, ?3, -1, ?4, ?5, 0, -1, -1, ?6,
               'i', 'p', '', 0, 0, 0, '', '', 0, 1, 0, ?7, NULL, NULL, NULL, NULL)",
            params![
                rel,
                name,
                oid,
                len,
                num as i64,
                (1..=8).contains(&len),
                if ty == ColType::Text { 100 } else { 0 }
            ],
        )
    };
    for (i, view) in VIEWS.iter().enumerate() {
        let oid = FIRST_VIEW_OID + i as i64;
        objects.by_name.insert(view.name.to_string(), oid);
        let definition = format!(
            " SELECT {}\n   FROM {};",
            view.columns
                .iter()
                .map(|c| c.name)
                .collect::<Vec<_>>()
                .join(",\n    "),
            view.name
        );
        objects.views.insert(
            oid,
            (
                definition.clone(),
                view.doc,
                view.columns.iter().map(|c| c.doc).collect(),
            ),
        );
        relation(oid, view.name, PUBLIC, "v", view.columns.len())?;
        conn.execute(
            "INSERT INTO pg_catalog.pg_description VALUES (?1, 1259, 0, ?2)",
            params![oid, view.doc],
        )?;
        conn.execute(
            "INSERT INTO pg_catalog.pg_views VALUES ('public', ?1, ?2, ?3)",
            params![view.name, OWNER, definition],
        )?;
        conn.execute(
            "INSERT INTO information_schema.tables VALUES (?1, 'public', ?2, 'VIEW', NULL, NULL,
               NULL, NULL, NULL, 'NO', 'NO', NULL)",
            params![DATABASE, view.name],
        )?;
        conn.execute(
            "INSERT INTO information_schema.views VALUES (?1, 'public', ?2, ?3, 'NONE', 'NO', 'NO',
               'NO', 'NO', 'NO')",
            params![DATABASE, view.name, definition],
        )?;
        for (n, c) in view.columns.iter().enumerate() {
            attribute(oid, c.name, n + 1, c.ty)?;
            conn.execute(
                "INSERT INTO pg_catalog.pg_description VALUES (?1, 1259, ?2, ?3)",
                params![oid, (n + 1) as i64, c.doc],
            )?;
            let (precision, radix) = match c.ty {
                ColType::Int8 => (Some(64), Some(2)),
                ColType::Float8 => (Some(53), Some(2)),
                _ => (None, None),
            };
            conn.execute(
                "INSERT INTO information_schema.columns (table_catalog, table_schema, table_name,
                   column_name, ordinal_position, is_nullable, data_type, numeric_precision,
                   numeric_precision_radix, udt_catalog, udt_schema, udt_name, dtd_identifier,
                   is_self_referencing, is_identity, is_generated, is_updatable)
                 VALUES (?1, 'public', ?2, ?3, ?4, 'YES', ?5, ?6, ?7, ?1, 'pg_catalog', ?8, ?4,
                   'NO', 'NO', 'NEVER', 'NO')",
                params![
                    DATABASE,
                    view.name,
                    c.name,
                    (n + 1) as i64,
                    c.ty.sql_name(),
                    precision,
                    radix,
                    c.ty.pg().name()
                ],
            )?;
        }
    }
    // The catalog's own tables, so that `\d pg_class` and tools that list
    // system tables see them too.
    let mut next = FIRST_CATALOG_OID;
    for (schema, ns) in [
        ("pg_catalog", PG_CATALOG),
        ("information_schema", INFORMATION_SCHEMA),
    ] {
        let tables: Vec<String> = conn
            .prepare(&format!(
                "SELECT name FROM {schema}.sqlite_master WHERE type = 'table' ORDER BY name"
            ))?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for table in tables {
            let columns: Vec<(String, String)> = conn
                .prepare(&format!(
                    "SELECT name, type FROM pragma_table_info('{table}', '{schema}')"
                ))?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            relation(
                next,
                &table,
                ns,
                if ns == PG_CATALOG { "r" } else { "v" },
                columns.len(),
            )?;
            for (n, (name, decl)) in columns.iter().enumerate() {
                attribute(
                    next,
                    name,
                    n + 1,
                    ColType::from_decl(decl).unwrap_or(ColType::Text),
                )?;
            }
            objects.by_name.insert(format!("{schema}.{table}"), next);
            next += 1;
        }
    }
    Ok(objects)
}

/// The session's settings: what `SHOW` and `current_setting` answer, and
/// what `SET` changes (nothing else reads them, but clients read them
/// back).
#[derive(Clone)]
pub struct Settings(HashMap<String, String>);

/// The PostgreSQL version the port says it is (for clients that check).
pub const SERVER_VERSION: &str = "16.0";

impl Settings {
    pub fn new(user: &str) -> Settings {
        let mut m = HashMap::new();
        for (k, v) in [
            ("server_version", SERVER_VERSION),
            ("server_version_num", "160000"),
            ("server_encoding", "UTF8"),
            ("client_encoding", "UTF8"),
            ("datestyle", "ISO, MDY"),
            ("intervalstyle", "postgres"),
            ("timezone", "UTC"),
            ("integer_datetimes", "on"),
            ("standard_conforming_strings", "on"),
            ("transaction_isolation", "read committed"),
            ("default_transaction_isolation", "read committed"),
            ("transaction_read_only", "on"),
            ("default_transaction_read_only", "on"),
            ("search_path", "public"),
            ("application_name", ""),
            ("extra_float_digits", "1"),
            ("max_identifier_length", "63"),
            ("lc_collate", "C"),
            ("lc_ctype", "C"),
            ("is_superuser", "off"),
            ("statement_timeout", "0"),
            ("block_size", "8192"),
            ("max_index_keys", "32"),
        ] {
            m.insert(k.to_string(), v.to_string());
        }
        m.insert("session_authorization".into(), user.to_string());
        Settings(m)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    pub fn set(&mut self, name: &str, value: &str) {
        self.0.insert(name.to_ascii_lowercase(), value.to_string());
    }

    /// Back to the default (`all`: every one).
    pub fn reset(&mut self, name: &str, user: &str) {
        let defaults = Settings::new(user);
        if name.eq_ignore_ascii_case("all") {
            *self = defaults;
        } else if let Some(v) = defaults.get(name) {
            let v = v.to_string();
            self.set(name, &v);
        } else {
            self.0.remove(&name.to_ascii_lowercase());
        }
    }

    /// Every setting, sorted (for `SHOW ALL`).
    pub fn all(&self) -> Vec<(String, String)> {
        let mut all: Vec<_> = self.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        all.sort();
        all
    }
}

/// The SQL functions the catalog queries call, registered on a session.
pub fn register_functions(
    conn: &Connection,
    objects: Arc<Objects>,
    settings: Arc<Mutex<Settings>>,
    user: &str,
    pid: i32,
) -> rusqlite::Result<()> {
    let pure = FunctionFlags::SQLITE_UTF8
        | FunctionFlags::SQLITE_DETERMINISTIC
        | FunctionFlags::SQLITE_INNOCUOUS;
    let fixed = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_INNOCUOUS;
    let text = |conn: &Connection, name: &str, n: i32, value: String| {
        conn.create_scalar_function(name, n, pure, move |_| Ok(value.clone()))
    };
    let version = format!(
        "PostgreSQL {SERVER_VERSION} (Haven read-only SQL port on SQLite {})",
        rusqlite::version()
    );
    text(conn, "version", 0, version)?;
    text(conn, "current_schema", 0, "public".into())?;
    text(conn, "current_schemas", 1, "{pg_catalog,public}".into())?;
    text(conn, "current_database", 0, DATABASE.into())?;
    text(conn, "current_user", 0, user.into())?;
    text(conn, "session_user", 0, user.into())?;
    text(conn, "pg_client_encoding", 0, "UTF8".into())?;
    text(conn, "pg_encoding_to_char", 1, "UTF8".into())?;
    text(conn, "pg_get_userbyid", 1, OWNER.into())?;
    conn.create_scalar_function("pg_backend_pid", 0, pure, move |_| Ok(i64::from(pid)))?;
    for name in [
        "pg_table_is_visible",
        "pg_type_is_visible",
        "pg_function_is_visible",
    ] {
        conn.create_scalar_function(name, 1, pure, |_| Ok(true))?;
    }
    for name in [
        "has_table_privilege",
        "has_schema_privilege",
        "has_database_privilege",
        "has_column_privilege",
        "has_any_column_privilege",
    ] {
        conn.create_scalar_function(name, -1, pure, |_| Ok(true))?;
    }
    conn.create_scalar_function("pg_is_in_recovery", 0, pure, |_| Ok(false))?;
    for name in [
        "pg_get_expr",
        "pg_get_constraintdef",
        "pg_get_indexdef",
        "pg_get_triggerdef",
        "pg_get_ruledef",
        "shobj_description",
        "pg_get_partkeydef",
        "pg_get_statisticsobjdef_columns",
        "pg_get_function_result",
        "pg_get_function_arguments",
        "pg_get_function_identity_arguments",
    ] {
        conn.create_scalar_function(name, -1, pure, |_| Ok(None::<String>))?;
    }
    for name in [
        "pg_relation_size",
        "pg_total_relation_size",
        "pg_table_size",
        "pg_indexes_size",
    ] {
        conn.create_scalar_function(name, -1, pure, |_| Ok(0_i64))?;
    }
    text(conn, "pg_size_pretty", 1, "0 bytes".into())?;
    conn.create_scalar_function("array_to_string", -1, pure, |ctx| {
        ctx.get::<Option<String>>(0)
    })?;
    conn.create_scalar_function("quote_ident", 1, pure, |ctx| {
        let s: String = ctx.get(0)?;
        let plain = s
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        Ok(if plain {
            s
        } else {
            format!("\"{}\"", s.replace('"', "\"\""))
        })
    })?;
    conn.create_scalar_function("format_type", -1, pure, |ctx| {
        let oid: Option<i64> = ctx.get(0)?;
        Ok(oid.map(|oid| {
            TYPES
                .iter()
                .find(|t| t.0 == oid)
                .map_or_else(|| "???".to_string(), |t| t.2.to_string())
        }))
    })?;
    conn.create_scalar_function("haven_regtype", 1, pure, |ctx| {
        let oid: Option<i64> = ctx.get(0)?;
        Ok(oid.map(|oid| match oid {
            0 => "-".to_string(),
            _ => TYPES
                .iter()
                .find(|t| t.0 == oid)
                .map_or_else(|| oid.to_string(), |t| t.2.to_string()),
        }))
    })?;
    conn.create_scalar_function("haven_bool", 1, pure, |ctx| {
        Ok(match ctx.get_raw(0) {
            rusqlite::types::ValueRef::Null => None,
            rusqlite::types::ValueRef::Integer(i) => Some(i != 0),
            rusqlite::types::ValueRef::Real(f) => Some(f != 0.0),
            v => {
                let t = v.as_str().unwrap_or_default().trim().to_ascii_lowercase();
                Some(matches!(
                    t.as_str(),
                    "t" | "true" | "y" | "yes" | "on" | "1"
                ))
            }
        })
    })?;
    let o = objects.clone();
    conn.create_scalar_function("haven_regclass", 1, pure, move |ctx| match ctx.get_raw(0) {
        rusqlite::types::ValueRef::Null => Ok(None),
        rusqlite::types::ValueRef::Integer(i) => Ok(Some(i)),
        v => {
            let name = v
                .as_str()
                .map_err(|e| rusqlite::Error::UserFunctionError(e.into()))?;
            match name.trim().parse::<i64>() {
                Ok(oid) => Ok(Some(oid)),
                Err(_) => o.regclass(name).map(Some).ok_or_else(|| {
                    rusqlite::Error::UserFunctionError(
                        format!("relation \"{name}\" does not exist").into(),
                    )
                }),
            }
        }
    })?;
    let o = objects.clone();
    conn.create_scalar_function("obj_description", -1, pure, move |ctx| {
        let oid: Option<i64> = ctx.get(0)?;
        Ok(oid
            .and_then(|oid| o.views.get(&oid))
            .map(|v| v.1.to_string()))
    })?;
    let o = objects.clone();
    conn.create_scalar_function("col_description", 2, pure, move |ctx| {
        let oid: Option<i64> = ctx.get(0)?;
        let n: Option<i64> = ctx.get(1)?;
        Ok(match (oid.and_then(|oid| o.views.get(&oid)), n) {
            (Some(v), Some(n)) if n >= 1 => v.2.get(n as usize - 1).map(|d| d.to_string()),
            _ => None,
        })
    })?;
    let o = objects;
    conn.create_scalar_function("pg_get_viewdef", -1, pure, move |ctx| {
        let oid: Option<i64> = ctx.get(0)?;
        Ok(oid.and_then(|oid| o.views.get(&oid)).map(|v| v.0.clone()))
    })?;
    conn.create_scalar_function("current_setting", -1, fixed, move |ctx| {
        let name: String = ctx.get(0)?;
        let missing_ok = ctx.len() > 1 && ctx.get::<bool>(1).unwrap_or(false);
        let value = settings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&name)
            .map(str::to_string);
        match value {
            Some(v) => Ok(Some(v)),
            None if missing_ok => Ok(None),
            None => Err(rusqlite::Error::UserFunctionError(
                format!("unrecognized configuration parameter \"{name}\"").into(),
            )),
        }
    })?;
    for name in [
        "now",
        "transaction_timestamp",
        "statement_timestamp",
        "clock_timestamp",
    ] {
        conn.create_scalar_function(name, 0, fixed, |_| Ok(timestamp_text(crate::now_micros())))?;
    }
    // `a ~ b` and `a ~* b` (see the rewriter).
    for (name, prefix) in [("regexp", ""), ("match", "(?i)")] {
        conn.create_scalar_function(name, 2, pure, move |ctx| {
            let re = ctx.get_or_create_aux(
                0,
                |v| -> Result<regex_lite::Regex, Box<dyn std::error::Error + Send + Sync>> {
                    Ok(regex_lite::Regex::new(&format!("{prefix}{}", v.as_str()?))?)
                },
            )?;
            let text: Option<String> = ctx.get(1)?;
            Ok(text.map(|t| re.is_match(&t)))
        })?;
    }
    Ok(())
}

/// Functions a query may call: SQLite's own (less those that reach
/// outside the query, like `load_extension`) and the port's.
pub const ALLOWED_FUNCTIONS: &[&str] = &[
    // core
    "abs",
    "char",
    "coalesce",
    "concat",
    "concat_ws",
    "format",
    "glob",
    "hex",
    "ifnull",
    "iif",
    "if",
    "instr",
    "length",
    "like",
    "likelihood",
    "likely",
    "lower",
    "ltrim",
    "max",
    "min",
    "nullif",
    "octet_length",
    "printf",
    "quote",
    "random",
    "randomblob",
    "replace",
    "round",
    "rtrim",
    "sign",
    "soundex",
    "sqlite_version",
    "substr",
    "substring",
    "trim",
    "typeof",
    "unhex",
    "unicode",
    "unlikely",
    "upper",
    "zeroblob",
    // aggregates
    "avg",
    "count",
    "group_concat",
    "string_agg",
    "sum",
    "total",
    "median",
    "percentile",
    "percentile_cont",
    "percentile_disc",
    // dates
    "date",
    "time",
    "datetime",
    "julianday",
    "unixepoch",
    "strftime",
    "timediff",
    // math
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atan2",
    "atanh",
    "ceil",
    "ceiling",
    "cos",
    "cosh",
    "degrees",
    "exp",
    "floor",
    "ln",
    "log",
    "log10",
    "log2",
    "mod",
    "pi",
    "pow",
    "power",
    "radians",
    "sin",
    "sinh",
    "sqrt",
    "tan",
    "tanh",
    "trunc",
    // JSON
    "json",
    "jsonb",
    "json_array",
    "jsonb_array",
    "json_array_length",
    "json_extract",
    "jsonb_extract",
    "json_insert",
    "jsonb_insert",
    "json_object",
    "jsonb_object",
    "json_patch",
    "jsonb_patch",
    "json_pretty",
    "json_remove",
    "jsonb_remove",
    "json_replace",
    "jsonb_replace",
    "json_set",
    "jsonb_set",
    "json_type",
    "json_valid",
    "json_quote",
    "json_error_position",
    "json_group_array",
    "jsonb_group_array",
    "json_group_object",
    "jsonb_group_object",
    "json_each",
    "json_tree",
    "jsonb_each",
    "jsonb_tree",
    "->",
    "->>",
    // windows
    "row_number",
    "rank",
    "dense_rank",
    "percent_rank",
    "cume_dist",
    "ntile",
    "lag",
    "lead",
    "first_value",
    "last_value",
    "nth_value",
    // the port's
    "haven_sees_cluster",
    "haven_sees_group",
    "haven_regclass",
    "haven_regtype",
    "haven_bool",
    "regexp",
    "match",
    "version",
    "current_schema",
    "current_schemas",
    "current_database",
    "current_user",
    "session_user",
    "pg_client_encoding",
    "pg_encoding_to_char",
    "pg_get_userbyid",
    "pg_backend_pid",
    "pg_table_is_visible",
    "pg_type_is_visible",
    "pg_function_is_visible",
    "has_table_privilege",
    "has_schema_privilege",
    "has_database_privilege",
    "has_column_privilege",
    "has_any_column_privilege",
    "pg_is_in_recovery",
    "pg_get_expr",
    "pg_get_constraintdef",
    "pg_get_indexdef",
    "pg_get_triggerdef",
    "pg_get_ruledef",
    "shobj_description",
    "pg_get_partkeydef",
    "pg_get_statisticsobjdef_columns",
    "pg_get_function_result",
    "pg_get_function_arguments",
    "pg_get_function_identity_arguments",
    "pg_relation_size",
    "pg_total_relation_size",
    "pg_table_size",
    "pg_indexes_size",
    "pg_size_pretty",
    "array_to_string",
    "quote_ident",
    "format_type",
    "obj_description",
    "col_description",
    "pg_get_viewdef",
    "current_setting",
    "now",
    "transaction_timestamp",
    "statement_timestamp",
    "clock_timestamp",
];

/// Microseconds since the Unix epoch as PostgreSQL's `timestamptz` text.
pub fn timestamp_text(micros: i64) -> String {
    let c = haven_model::clock::civil(micros.div_euclid(1000));
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+00",
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        micros.rem_euclid(1_000_000)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_written_like_postgresql() {
        assert_eq!(timestamp_text(0), "1970-01-01 00:00:00.000000+00");
        assert_eq!(
            timestamp_text(1_700_000_000_123_456),
            "2023-11-14 22:13:20.123456+00"
        );
        assert_eq!(
            timestamp_text(951_782_400_000_000),
            "2000-02-29 00:00:00.000000+00"
        );
    }

    #[test]
    fn relations_are_found_by_name_as_regclass_does() {
        let conn = Connection::open_in_memory().unwrap();
        let objects = create(&conn, "alice").unwrap();
        let history = objects.regclass("history").unwrap();
        assert_eq!(objects.regclass("public.history"), Some(history));
        assert_eq!(objects.regclass("\"history\""), Some(history));
        assert!(objects.regclass("pg_catalog.pg_class").is_some());
        assert!(objects.regclass("pg_class").is_some());
        assert_eq!(objects.regclass("nope"), None);
    }
}
