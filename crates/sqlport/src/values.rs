//! Column types and values: what SQLite returns, as PostgreSQL clients
//! expect it.
//!
//! A result column's type comes from its declared type when it has one
//! (a view column that is a table or live-table column: `INTEGER` →
//! `int8`, `BOOLEAN` → `bool`...); an expression (`count(*)`, `sum(x)`)
//! has none, and gets the type of its values (all integers → `int8`,
//! numbers → `float8`, otherwise `text`). Values are then encoded for that
//! type, in text or binary as the client asked.

use std::sync::Arc;

use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo};
use pgwire::api::Type;
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;
use pgwire::types::format::FormatOptions;
use rusqlite::types::ValueRef;

/// The column types the port reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColType {
    Bool,
    Int8,
    Float8,
    Text,
    Bytea,
}

impl ColType {
    pub fn pg(self) -> Type {
        match self {
            ColType::Bool => Type::BOOL,
            ColType::Int8 => Type::INT8,
            ColType::Float8 => Type::FLOAT8,
            ColType::Text => Type::TEXT,
            ColType::Bytea => Type::BYTEA,
        }
    }

    /// PostgreSQL's name for it, as `format_type` and
    /// `information_schema.columns.data_type` say.
    pub fn sql_name(self) -> &'static str {
        match self {
            ColType::Bool => "boolean",
            ColType::Int8 => "bigint",
            ColType::Float8 => "double precision",
            ColType::Text => "text",
            ColType::Bytea => "bytea",
        }
    }

    /// The type a declared SQLite type means (`None`: no declaration, or
    /// one that says nothing, like `NUMERIC`).
    pub fn from_decl(decl: &str) -> Option<ColType> {
        let d = decl.to_ascii_uppercase();
        if d.starts_with("BOOL") {
            Some(ColType::Bool)
        } else if d.contains("INT") || d == "OID" {
            Some(ColType::Int8)
        } else if d.contains("REAL") || d.contains("FLOA") || d.contains("DOUB") {
            Some(ColType::Float8)
        } else if d.contains("CHAR") || d.contains("TEXT") || d.contains("CLOB") || d == "NAME" {
            Some(ColType::Text)
        } else if d.contains("BLOB") || d == "BYTEA" {
            Some(ColType::Bytea)
        } else {
            None
        }
    }

    /// The type the values of a column without a declared type have.
    pub fn infer<'a>(values: impl Iterator<Item = &'a Cell>) -> ColType {
        let mut seen: Option<ColType> = None;
        for v in values {
            let t = match v {
                Cell::Null => continue,
                Cell::Int(_) => ColType::Int8,
                Cell::Real(_) => ColType::Float8,
                Cell::Text(_) => return ColType::Text,
                Cell::Blob(_) => ColType::Bytea,
            };
            seen = Some(match (seen, t) {
                (None, t) => t,
                (Some(a), b) if a == b => a,
                (Some(ColType::Int8 | ColType::Float8), ColType::Int8 | ColType::Float8) => {
                    ColType::Float8
                }
                _ => return ColType::Text,
            });
        }
        seen.unwrap_or(ColType::Text)
    }
}

/// One value of a result, owned.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Cell {
    pub fn from_sqlite(v: ValueRef<'_>) -> Cell {
        match v {
            ValueRef::Null => Cell::Null,
            ValueRef::Integer(i) => Cell::Int(i),
            ValueRef::Real(f) => Cell::Real(f),
            ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => Cell::Blob(b.to_vec()),
        }
    }

    /// Roughly how many bytes it takes (for the result size limit).
    pub fn size(&self) -> usize {
        match self {
            Cell::Text(t) => t.len() + 16,
            Cell::Blob(b) => b.len() + 16,
            _ => 16,
        }
    }

    /// Its natural text form.
    fn text(&self) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Int(i) => i.to_string(),
            Cell::Real(f) => f.to_string(),
            Cell::Text(t) => t.clone(),
            Cell::Blob(b) => {
                let mut s = String::from("\\x");
                for byte in b {
                    s.push_str(&format!("{byte:02x}"));
                }
                s
            }
        }
    }

    fn int(&self) -> Option<i64> {
        match self {
            Cell::Int(i) => Some(*i),
            Cell::Real(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Some(*f as i64),
            Cell::Text(t) => t.trim().parse().ok(),
            _ => None,
        }
    }

    fn float(&self) -> Option<f64> {
        match self {
            Cell::Int(i) => Some(*i as f64),
            Cell::Real(f) => Some(*f),
            Cell::Text(t) => t.trim().parse().ok(),
            _ => None,
        }
    }

    fn boolean(&self) -> Option<bool> {
        match self {
            Cell::Int(i) => Some(*i != 0),
            Cell::Real(f) => Some(*f != 0.0),
            Cell::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
                "t" | "true" | "y" | "yes" | "on" | "1" => Some(true),
                "f" | "false" | "n" | "no" | "off" | "0" => Some(false),
                _ => None,
            },
            Cell::Blob(_) | Cell::Null => None,
        }
    }
}

/// The description of result columns: names, types, formats.
pub fn fields(
    names: &[String],
    types: &[ColType],
    format: &pgwire::api::portal::Format,
) -> Vec<FieldInfo> {
    names
        .iter()
        .zip(types)
        .enumerate()
        .map(|(i, (name, ty))| {
            FieldInfo::new(column_name(name), None, None, ty.pg(), format.format_for(i))
        })
        .collect()
}

/// The name PostgreSQL gives a column: SQLite names an expression
/// without an alias by its text (`count(*)`), PostgreSQL by its function
/// (`count`).
fn column_name(name: &str) -> String {
    match name.split_once('(') {
        Some((f, _))
            if name.ends_with(')')
                && !f.is_empty()
                && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
        {
            f.to_ascii_lowercase()
        }
        _ => name.to_string(),
    }
}

/// Encodes rows for `fields`.
pub fn encode(rows: Vec<Vec<Cell>>, fields: &Arc<Vec<FieldInfo>>) -> PgWireResult<Vec<DataRow>> {
    let mut encoder = DataRowEncoder::new(fields.clone());
    let options = FormatOptions::default();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        for (cell, field) in row.iter().zip(fields.iter()) {
            encode_cell(&mut encoder, cell, field, &options)?;
        }
        out.push(encoder.take_row());
    }
    Ok(out)
}

fn encode_cell(
    enc: &mut DataRowEncoder,
    cell: &Cell,
    field: &FieldInfo,
    options: &FormatOptions,
) -> PgWireResult<()> {
    let ty = field.datatype();
    let format = field.format();
    if *cell == Cell::Null {
        return enc.encode_field_with_type_and_format(&None::<i64>, ty, format, options);
    }
    let binary = format == FieldFormat::Binary;
    let mismatch = || {
        PgWireError::UserError(Box::new(ErrorInfo::new(
            "ERROR".into(),
            "22P02".into(),
            format!(
                "column {}: the value {:?} is not of its type {}",
                field.name(),
                cell.text(),
                ty.name()
            ),
        )))
    };
    // In text, a value that does not fit its column's type is sent as it
    // is (SQLite columns are loosely typed); in binary it cannot be.
    let as_text = |enc: &mut DataRowEncoder| {
        enc.encode_field_with_type_and_format(&cell.text(), ty, FieldFormat::Text, options)
    };
    match *ty {
        Type::INT8 => match cell.int() {
            Some(i) => enc.encode_field_with_type_and_format(&i, ty, format, options),
            None if !binary => as_text(enc),
            None => Err(mismatch()),
        },
        Type::FLOAT8 => match cell.float() {
            Some(f) => enc.encode_field_with_type_and_format(&f, ty, format, options),
            None if !binary => as_text(enc),
            None => Err(mismatch()),
        },
        Type::BOOL => match cell.boolean() {
            Some(b) => enc.encode_field_with_type_and_format(&b, ty, format, options),
            None if !binary => as_text(enc),
            None => Err(mismatch()),
        },
        Type::BYTEA => match cell {
            Cell::Blob(b) => {
                enc.encode_field_with_type_and_format(&b.as_slice(), ty, format, options)
            }
            other => {
                let t = other.text();
                enc.encode_field_with_type_and_format(&t.as_bytes(), ty, format, options)
            }
        },
        _ => enc.encode_field_with_type_and_format(&cell.text(), ty, format, options),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_map_to_postgresql_types() {
        assert_eq!(ColType::from_decl("INTEGER"), Some(ColType::Int8));
        assert_eq!(ColType::from_decl("int8"), Some(ColType::Int8));
        assert_eq!(ColType::from_decl("BOOLEAN"), Some(ColType::Bool));
        assert_eq!(ColType::from_decl("TEXT"), Some(ColType::Text));
        assert_eq!(
            ColType::from_decl("double precision"),
            Some(ColType::Float8)
        );
        assert_eq!(ColType::from_decl("NUMERIC"), None);
    }

    #[test]
    fn function_columns_are_named_by_their_function() {
        assert_eq!(column_name("count(*)"), "count");
        assert_eq!(column_name("MAX(seq)"), "max");
        assert_eq!(column_name("seq"), "seq");
        assert_eq!(column_name("Access privileges"), "Access privileges");
        assert_eq!(column_name("(1+2)"), "(1+2)");
    }

    #[test]
    fn expression_columns_take_the_type_of_their_values() {
        let infer = |cells: &[Cell]| ColType::infer(cells.iter());
        assert_eq!(
            infer(&[Cell::Int(1), Cell::Null, Cell::Int(3)]),
            ColType::Int8
        );
        assert_eq!(infer(&[Cell::Int(1), Cell::Real(2.5)]), ColType::Float8);
        assert_eq!(
            infer(&[Cell::Int(1), Cell::Text("x".into())]),
            ColType::Text
        );
        assert_eq!(infer(&[Cell::Null]), ColType::Text);
        assert_eq!(infer(&[]), ColType::Text);
    }

    #[test]
    fn values_are_encoded_in_text_and_binary() {
        let names = vec!["n".to_string(), "b".to_string(), "t".to_string()];
        let types = [ColType::Int8, ColType::Bool, ColType::Text];
        let rows = vec![vec![Cell::Int(42), Cell::Int(1), Cell::Text("hé".into())]];
        let text = Arc::new(fields(
            &names,
            &types,
            &pgwire::api::portal::Format::UnifiedText,
        ));
        let out = encode(rows.clone(), &text).unwrap();
        assert_eq!(
            &out[0].data[..],
            b"\0\0\0\x0242\0\0\0\x01t\0\0\0\x03h\xc3\xa9"
        );
        let binary = Arc::new(fields(
            &names,
            &types,
            &pgwire::api::portal::Format::UnifiedBinary,
        ));
        let out = encode(rows, &binary).unwrap();
        assert_eq!(&out[0].data[..8], b"\0\0\0\x08\0\0\0\0");
    }

    #[test]
    fn a_value_that_does_not_fit_is_text_in_text_and_an_error_in_binary() {
        let names = vec!["n".to_string()];
        let rows = vec![vec![Cell::Text("abc".into())]];
        let text = Arc::new(fields(
            &names,
            &[ColType::Int8],
            &pgwire::api::portal::Format::UnifiedText,
        ));
        assert!(encode(rows.clone(), &text).is_ok());
        let binary = Arc::new(fields(
            &names,
            &[ColType::Int8],
            &pgwire::api::portal::Format::UnifiedBinary,
        ));
        assert!(encode(rows, &binary).is_err());
    }
}
