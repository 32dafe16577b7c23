//! Parser: tokens into the syntax tree of [`crate::ast`].
//!
//! Top-level statements are `include`, `cluster`, `system`, `group` and
//! `type`. The resource lines and `requires` lines that follow a group
//! block belong to that group, up to the next top-level statement or the
//! end of the file. `cluster`, `system`, `group` and resource lines may omit
//! their `( ... )` block.
//!
//! Invariants: the parser checks the grammar and the spelling of names
//! (so every name it returns can be written back bare), nothing else; it
//! stops at the first error, which points at the offending token (or at the
//! end of the file when something is missing), and it never panics.

use haven_model::{
    AttrDimension, AttrType, DependencyCategory, DependencyLocation, DependencyRigidity,
};

use crate::ast::*;
use crate::error::{ConfigError, Pos};
use crate::lexer::{tokenize, Tok, Token};

/// Words that start a statement; no object may be named after one.
const KEYWORDS: &[&str] = &["include", "cluster", "system", "group", "type", "requires"];

/// Parses one file; `file` names it in errors.
pub(crate) fn parse(file: &str, text: &str) -> Result<RawFile> {
    let lexed = tokenize(file, text)?;
    Parser {
        file,
        tokens: lexed.tokens,
        at: 0,
        end: lexed.end,
    }
    .file()
}

/// Whether `text` can name an object or an attribute: letters, digits,
/// `_`, `-` and `.`, not starting with `-` or `.`. This is what keeps names
/// writable without quotes.
pub(crate) fn is_valid_name(text: &str) -> bool {
    let mut chars = text.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    first_ok && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Whether `text` is a statement keyword.
pub(crate) fn is_keyword(text: &str) -> bool {
    KEYWORDS.contains(&text)
}

struct Parser<'a> {
    file: &'a str,
    tokens: Vec<Token>,
    at: usize,
    end: Pos,
}

type Result<T> = std::result::Result<T, ConfigError>;

impl Parser<'_> {
    // ---- token access -------------------------------------------------

    fn peek(&self) -> Option<&Tok> {
        self.peek_at(0)
    }

    fn peek_at(&self, ahead: usize) -> Option<&Tok> {
        self.tokens.get(self.at + ahead).map(|t| &t.tok)
    }

    fn peek_word(&self) -> Option<&str> {
        match self.peek() {
            Some(Tok::Word(w)) => Some(w),
            _ => None,
        }
    }

    /// Where the next token is (the end of the file if there is none).
    fn here(&self) -> Pos {
        self.tokens.get(self.at).map_or(self.end, |t| t.pos)
    }

    /// The next token, described for an error message.
    fn found(&self) -> String {
        self.peek()
            .map_or_else(|| "the end of the file".to_string(), Tok::describe)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        if t.is_some() {
            self.at += 1;
        }
        t
    }

    fn error(&self, pos: Pos, message: impl Into<String>) -> ConfigError {
        ConfigError::at(self.file, pos, message)
    }

    /// An error at the next token: "expected X, found Y".
    fn unexpected(&self, expected: &str) -> ConfigError {
        self.error(
            self.here(),
            format!("expected {expected}, found {}", self.found()),
        )
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if self.peek() == Some(tok) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// A bare word, whatever it says.
    fn word(&mut self, expected: &str) -> Result<Ident> {
        match self.tokens.get(self.at) {
            Some(Token {
                tok: Tok::Word(w),
                pos,
            }) => {
                let ident = Ident {
                    text: w.clone(),
                    pos: *pos,
                };
                self.at += 1;
                Ok(ident)
            }
            _ => Err(self.unexpected(expected)),
        }
    }

    /// The name of a `kind` object (`system`, `group`, ...).
    fn name(&mut self, kind: &str) -> Result<Ident> {
        let ident = self.word(&format!("a {kind} name"))?;
        self.check_object_name(kind, &ident)?;
        Ok(ident)
    }

    fn check_object_name(&self, kind: &str, ident: &Ident) -> Result<()> {
        if is_keyword(&ident.text) {
            return Err(self.error(
                ident.pos,
                format!(
                    "`{}` is a keyword and cannot name a {kind}; choose another name",
                    ident.text
                ),
            ));
        }
        self.check_spelling(kind, ident)
    }

    fn check_spelling(&self, kind: &str, ident: &Ident) -> Result<()> {
        if is_valid_name(&ident.text) {
            Ok(())
        } else {
            Err(self.error(
                ident.pos,
                format!(
                    "`{}` is not a valid {kind} name: use letters, digits, `_`, `-` and `.`, \
                     starting with a letter, a digit or `_`",
                    ident.text
                ),
            ))
        }
    }

    // ---- statements ---------------------------------------------------

    fn file(mut self) -> Result<RawFile> {
        let mut file = RawFile {
            end: self.end,
            ..RawFile::default()
        };
        // The group whose resource and `requires` lines are being read.
        let mut group: Option<RawGroup> = None;
        while let Some(tok) = self.peek() {
            let Tok::Word(word) = tok else {
                return Err(self.unexpected(
                    "a statement (`include`, `cluster`, `system`, `group` or `type`)",
                ));
            };
            let word = word.clone();
            match word.as_str() {
                "include" | "cluster" | "system" | "group" | "type" => {
                    file.groups.extend(group.take());
                }
                _ => {}
            }
            match word.as_str() {
                "include" => file.includes.push(self.include()?),
                "cluster" => file.clusters.push(self.block("cluster")?),
                "system" => file.systems.push(self.block("system")?),
                "type" => file.types.push(self.type_def()?),
                "group" => group = Some(self.group()?),
                _ => match group.as_mut() {
                    Some(g) => self.group_line(g)?,
                    None => return Err(self.stray_word()),
                },
            }
        }
        file.groups.extend(group);
        Ok(file)
    }

    /// A word at the top level, before any group.
    fn stray_word(&self) -> ConfigError {
        let hint = if self.peek_word() == Some("requires") {
            "; `requires` lines go after the `group` block they belong to"
        } else if matches!(self.peek_at(1), Some(Tok::Eq | Tok::At)) {
            "; attributes go inside the `( ... )` block of their cluster, system or group"
        } else {
            "; resources go after the `group` block they belong to"
        };
        self.error(
            self.here(),
            format!(
                "expected a statement (`include`, `cluster`, `system`, `group` or `type`), found {}{hint}",
                self.found()
            ),
        )
    }

    fn include(&mut self) -> Result<RawInclude> {
        self.next();
        let pos = self.here();
        let path = match self.peek() {
            Some(Tok::Str(s) | Tok::Word(s)) if !s.is_empty() => s.clone(),
            _ => {
                return Err(self.unexpected("a file name after `include` (`include \"types.cf\"`)"))
            }
        };
        self.next();
        Ok(RawInclude { path, pos })
    }

    /// `cluster NAME [( attrs )]` or `system NAME [( attrs )]`.
    fn block(&mut self, kind: &str) -> Result<RawBlock> {
        self.next();
        let name = self.name(kind)?;
        let attrs = self.optional_attr_block(&format!("{kind} `{}`", name.text))?;
        Ok(RawBlock { name, attrs })
    }

    fn group(&mut self) -> Result<RawGroup> {
        self.next();
        let name = self.name("group")?;
        let attrs = self.optional_attr_block(&format!("group `{}`", name.text))?;
        Ok(RawGroup {
            name,
            attrs,
            resources: Vec::new(),
            dependencies: Vec::new(),
            group_dependencies: Vec::new(),
        })
    }

    /// A line after a group block: a resource, `a requires b`, or
    /// `requires group ...`.
    fn group_line(&mut self, group: &mut RawGroup) -> Result<()> {
        if self.peek_word() == Some("requires") {
            let dep = self.group_dependency(group)?;
            group.group_dependencies.push(dep);
            return Ok(());
        }
        let first = self.word("a resource")?;
        match self.peek() {
            Some(Tok::Word(w)) if w == "requires" => {
                self.check_object_name("resource", &first)?;
                self.next();
                let child = self.name("resource")?;
                group.dependencies.push(RawResourceDep {
                    parent: first,
                    child,
                });
            }
            Some(Tok::Word(_)) => {
                self.check_object_name("resource type", &first)?;
                let name = self.name("resource")?;
                let attrs = self.optional_attr_block(&format!("resource `{}`", name.text))?;
                group.resources.push(RawResource {
                    type_name: first,
                    name,
                    attrs,
                });
            }
            Some(Tok::Eq | Tok::At) => {
                return Err(self.error(
                    first.pos,
                    format!(
                        "`{}` looks like an attribute, but the block of group `{}` is closed; \
                         move it inside `group {} ( ... )`",
                        first.text, group.name.text, group.name.text
                    ),
                ))
            }
            _ => {
                return Err(self.error(
                    self.here(),
                    format!(
                        "expected a resource name after `{}` (`{} NAME ( ... )`) or `requires`, found {}",
                        first.text,
                        first.text,
                        self.found()
                    ),
                ))
            }
        }
        Ok(())
    }

    fn group_dependency(&mut self, group: &RawGroup) -> Result<RawGroupDep> {
        let pos = self.here();
        self.next();
        if self.peek_word() != Some("group") {
            return Err(self.error(
                self.here(),
                format!(
                    "expected `group` after `requires` in group `{}`, found {}: a group dependency is \
                     `requires group CHILD online local firm`, a resource dependency `PARENT requires CHILD`",
                    group.name.text,
                    self.found()
                ),
            ));
        }
        self.next();
        let child = self.name("group")?;
        let category = self.dependency_word(DependencyCategory::parse, "`online` or `offline`")?;
        let location =
            self.dependency_word(DependencyLocation::parse, "`local`, `global` or `remote`")?;
        let rigidity =
            self.dependency_word(DependencyRigidity::parse, "`soft`, `firm` or `hard`")?;
        Ok(RawGroupDep {
            pos,
            child,
            category,
            location,
            rigidity,
        })
    }

    fn dependency_word<T>(&mut self, parse: fn(&str) -> Option<T>, expected: &str) -> Result<T> {
        let word = self.peek_word().and_then(parse);
        match word {
            Some(value) => {
                self.next();
                Ok(value)
            }
            None => Err(self.unexpected(&format!(
                "{expected} (as in `requires group CHILD online local firm`)"
            ))),
        }
    }

    // ---- attribute blocks and values -----------------------------------

    fn optional_attr_block(&mut self, owner: &str) -> Result<Vec<RawAttr>> {
        if self.peek() == Some(&Tok::LParen) {
            self.attr_block(owner)
        } else {
            Ok(Vec::new())
        }
    }

    /// `( Name = value ... )`; the `(` is the next token.
    fn attr_block(&mut self, owner: &str) -> Result<Vec<RawAttr>> {
        let open = self.here();
        self.next();
        let mut attrs = Vec::new();
        loop {
            match self.peek() {
                Some(Tok::RParen) => {
                    self.next();
                    return Ok(attrs);
                }
                Some(Tok::Word(_)) => attrs.push(self.attr()?),
                None => return Err(self.unclosed(owner, "(", open, ")")),
                Some(_) => {
                    return Err(self.unexpected(&format!(
                        "an attribute name or `)` to close the block of {owner}"
                    )))
                }
            }
        }
    }

    fn unclosed(&self, owner: &str, open: &str, at: Pos, close: &str) -> ConfigError {
        self.error(
            self.end,
            format!(
                "the `{open}` of {owner} at line {} is never closed; add `{close}`",
                at.line
            ),
        )
    }

    fn attr(&mut self) -> Result<RawAttr> {
        let name = self.word("an attribute name")?;
        self.check_spelling("attribute", &name)?;
        let system = if self.eat(&Tok::At) {
            Some(self.name("system")?)
        } else {
            None
        };
        if !self.eat(&Tok::Eq) {
            return Err(self.unexpected(&format!(
                "`=` after attribute `{}` (`{} = value`)",
                name.text, name.text
            )));
        }
        let value = self.value(&name)?;
        Ok(RawAttr {
            name,
            system,
            value,
        })
    }

    fn value(&mut self, attr: &Ident) -> Result<RawValue> {
        let pos = self.here();
        let kind = match self.peek() {
            Some(Tok::LBrace) => self.list(attr)?,
            // `A = B = 1`: the value of A is missing, B is the next attribute.
            Some(Tok::Word(_)) if matches!(self.peek_at(1), Some(Tok::Eq | Tok::At)) => {
                return Err(self.missing_value(attr))
            }
            Some(Tok::Word(_) | Tok::Str(_)) => RawValueKind::Scalar(self.scalar()?),
            Some(Tok::RParen) | None => return Err(self.missing_value(attr)),
            Some(_) => return Err(self.unexpected(&format!("a value for `{}`", attr.text))),
        };
        Ok(RawValue { kind, pos })
    }

    fn missing_value(&self, attr: &Ident) -> ConfigError {
        self.error(
            attr.pos,
            format!(
                "attribute `{}` has no value; write `{} = value`",
                attr.text, attr.text
            ),
        )
    }

    fn scalar(&mut self) -> Result<RawScalar> {
        match self.tokens.get(self.at) {
            Some(Token { tok, pos }) => {
                let (text, quoted) = match tok {
                    Tok::Word(w) => (w.clone(), false),
                    Tok::Str(s) => (s.clone(), true),
                    _ => return Err(self.unexpected("a word or a quoted string")),
                };
                let pos = *pos;
                self.at += 1;
                Ok(RawScalar { text, quoted, pos })
            }
            None => Err(self.unexpected("a word or a quoted string")),
        }
    }

    /// `{ a, b }` or `{ k = v, ... }` (commas optional); `{` is next.
    fn list(&mut self, attr: &Ident) -> Result<RawValueKind> {
        let open = self.here();
        self.next();
        let mut items = Vec::new();
        let mut pairs = Vec::new();
        loop {
            match self.peek() {
                Some(Tok::Comma) => {
                    self.next();
                }
                Some(Tok::RBrace) => {
                    self.next();
                    break;
                }
                Some(Tok::Word(_) | Tok::Str(_)) => {
                    let key = self.scalar()?;
                    if self.eat(&Tok::Eq) {
                        if !items.is_empty() {
                            return Err(self.mixed(attr, key.pos));
                        }
                        let value = match self.peek() {
                            Some(Tok::Word(_) | Tok::Str(_)) => self.scalar()?,
                            _ => {
                                return Err(self.unexpected(&format!(
                                    "a value after `{} =` in `{}`",
                                    key.text, attr.text
                                )))
                            }
                        };
                        pairs.push((key, value));
                    } else {
                        if !pairs.is_empty() {
                            return Err(self.mixed(attr, key.pos));
                        }
                        items.push(key);
                    }
                }
                Some(Tok::LBrace) => {
                    return Err(self.error(
                        self.here(),
                        format!("lists cannot be nested (in `{}`)", attr.text),
                    ))
                }
                None => {
                    return Err(self.unclosed(
                        &format!("attribute `{}`", attr.text),
                        "{",
                        open,
                        "}",
                    ))
                }
                Some(_) => {
                    return Err(
                        self.unexpected(&format!("a list item, `,` or `}}` in `{}`", attr.text))
                    )
                }
            }
        }
        Ok(if pairs.is_empty() {
            RawValueKind::List(items)
        } else {
            RawValueKind::Assoc(pairs)
        })
    }

    fn mixed(&self, attr: &Ident, pos: Pos) -> ConfigError {
        self.error(
            pos,
            format!(
                "`{}` mixes list items and `key = value` pairs; use one form: \
                 `{{ a, b }}` or `{{ a = 1, b = 2 }}`",
                attr.text
            ),
        )
    }

    // ---- types --------------------------------------------------------

    fn type_def(&mut self) -> Result<RawType> {
        self.next();
        let name = self.name("type")?;
        let owner = format!("type `{}`", name.text);
        let open = self.here();
        if !self.eat(&Tok::LParen) {
            return Err(self.unexpected(&format!("`(` to start the declarations of {owner}")));
        }
        let mut decls = Vec::new();
        loop {
            match self.peek() {
                Some(Tok::RParen) => {
                    self.next();
                    return Ok(RawType { name, decls });
                }
                Some(Tok::Word(_)) => decls.push(self.decl(&owner)?),
                None => return Err(self.unclosed(&owner, "(", open, ")")),
                Some(_) => {
                    return Err(self.unexpected(&format!(
                        "an attribute declaration (`str Name`) or `)` to close {owner}"
                    )))
                }
            }
        }
    }

    /// `[static] [temp] TYPE Name[[]|{}] [= default]`.
    fn decl(&mut self, owner: &str) -> Result<RawDecl> {
        let mut is_static = false;
        let mut is_temp = false;
        loop {
            let flag = match self.peek_word() {
                Some("static") => &mut is_static,
                Some("temp") => &mut is_temp,
                _ => break,
            };
            if *flag {
                return Err(
                    self.unexpected("an attribute type (`str`, `int`, `boolean` or `keylist`)")
                );
            }
            *flag = true;
            self.next();
        }
        let base = self.peek_word().and_then(|w| match w {
            "str" | "i18nstr" => Some((AttrType::Str, AttrDimension::Scalar)),
            "int" => Some((AttrType::Int, AttrDimension::Scalar)),
            "boolean" => Some((AttrType::Boolean, AttrDimension::Scalar)),
            "keylist" => Some((AttrType::Str, AttrDimension::Keylist)),
            _ => None,
        });
        let Some((attr_type, mut dimension)) = base else {
            return Err(self.unexpected(&format!(
                "an attribute type (`str`, `int`, `boolean` or `keylist`) in {owner}"
            )));
        };
        self.next();
        let mut name = self.word("an attribute name")?;
        let mut marker = None;
        if let Some(stripped) = name.text.strip_suffix("[]") {
            name.text = stripped.to_string();
            marker = Some(AttrDimension::Vector);
        } else if self.peek_word() == Some("[]") {
            self.next();
            marker = Some(AttrDimension::Vector);
        } else if self.peek() == Some(&Tok::LBrace) && self.peek_at(1) == Some(&Tok::RBrace) {
            self.at += 2;
            marker = Some(AttrDimension::Association);
        }
        self.check_spelling("attribute", &name)?;
        if let Some(marker) = marker {
            if dimension == AttrDimension::Keylist {
                return Err(self.error(
                    name.pos,
                    format!(
                        "keylist `{}` is already a list; drop the `[]` or `{{}}`",
                        name.text
                    ),
                ));
            }
            dimension = marker;
        }
        let default = if self.eat(&Tok::Eq) {
            Some(self.value(&name)?)
        } else {
            None
        };
        Ok(RawDecl {
            name,
            attr_type,
            dimension,
            is_static,
            is_temp,
            default,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> RawFile {
        match parse("main.cf", text) {
            Ok(f) => f,
            Err(e) => panic!("{e}"),
        }
    }

    fn err(text: &str) -> ConfigError {
        match parse("main.cf", text) {
            Ok(f) => panic!("parsed: {f:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn names_allow_hostnames_and_reject_punctuation() {
        assert!(is_valid_name("sys-a.example.com"));
        assert!(is_valid_name("web_proc2"));
        assert!(is_valid_name("10node"));
        assert!(!is_valid_name("-a"));
        assert!(!is_valid_name("/bin"));
        assert!(!is_valid_name(""));
    }

    #[test]
    fn group_lines_belong_to_the_group_until_the_next_statement() {
        let f = ok("group a ( )\n P r1\n P r2 ( X = 1 )\n r1 requires r2\n\
                    requires group b online local firm\nsystem s\ngroup b");
        assert_eq!(f.groups.len(), 2);
        let a = &f.groups[0];
        assert_eq!(a.resources.len(), 2);
        assert_eq!(a.dependencies.len(), 1);
        assert_eq!(a.group_dependencies.len(), 1);
        assert!(f.groups[1].resources.is_empty());
        assert_eq!(f.systems.len(), 1);
    }

    #[test]
    fn lists_and_associations_take_optional_commas() {
        let f = ok("cluster c ( A = { x y, z } B = { k = 1 l = \"v\" } C = {} )");
        let kinds: Vec<&RawValueKind> = f.clusters[0].attrs.iter().map(|a| &a.value.kind).collect();
        assert!(matches!(kinds[0], RawValueKind::List(items) if items.len() == 3));
        assert!(matches!(kinds[1], RawValueKind::Assoc(pairs) if pairs.len() == 2));
        assert!(matches!(kinds[2], RawValueKind::List(items) if items.is_empty()));
    }

    #[test]
    fn type_declarations_read_modifiers_and_dimensions() {
        let f = ok(
            "type T (\n static str ArgList[] = { A, B }\n temp int X\n keylist K\n\
                    int W{}\n str E {} = { LANG = C }\n boolean F = 1\n)",
        );
        let d = &f.types[0].decls;
        assert_eq!(d.len(), 6);
        assert!(
            d[0].is_static
                && d[0].dimension == AttrDimension::Vector
                && d[0].name.text == "ArgList"
        );
        assert!(d[1].is_temp && d[1].attr_type == AttrType::Int);
        assert_eq!(d[2].dimension, AttrDimension::Keylist);
        assert_eq!(d[3].dimension, AttrDimension::Association);
        assert!(d[4].default.is_some() && d[4].dimension == AttrDimension::Association);
        assert_eq!(d[5].attr_type, AttrType::Boolean);
    }

    #[test]
    fn missing_value_points_at_the_attribute() {
        let e = err("cluster c (\n  A =\n  B = 1\n)");
        assert_eq!((e.line, e.column), (2, 3));
        assert!(e.message.contains("`A` has no value"), "{}", e.message);
    }

    #[test]
    fn unclosed_block_points_at_the_end_and_names_the_opening_line() {
        let e = err("cluster c\nsystem s (\n A = 1\n");
        assert_eq!((e.line, e.column), (4, 1));
        assert!(e.message.contains("system `s` at line 2"), "{}", e.message);
    }

    #[test]
    fn keywords_cannot_name_objects() {
        let e = err("system group");
        assert_eq!((e.line, e.column), (1, 8));
        assert!(e.message.contains("keyword"), "{}", e.message);
    }

    #[test]
    fn resource_before_any_group_is_an_error() {
        let e = err("cluster c\nProcess p ( )");
        assert_eq!((e.line, e.column), (2, 1));
        assert!(
            e.message.contains("after the `group` block"),
            "{}",
            e.message
        );
    }

    #[test]
    fn attribute_after_a_closed_group_block_says_so() {
        let e = err("group g ( )\n  Load = 3\n");
        assert_eq!((e.line, e.column), (2, 3));
        assert!(
            e.message.contains("block of group `g` is closed"),
            "{}",
            e.message
        );
    }

    #[test]
    fn bad_dependency_word_names_the_choices() {
        let e = err("group g\nrequires group h online nearby firm");
        assert_eq!((e.line, e.column), (2, 25));
        assert!(
            e.message.contains("`local`, `global` or `remote`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn mixed_list_and_pairs_is_an_error() {
        let e = err("cluster c ( A = { x, k = 1 } )");
        assert_eq!((e.line, e.column), (1, 22));
    }
}
