//! The syntax tree: a file as written, every piece with its position.
//!
//! The parser builds it and the checker ([`crate::check`]) turns it into a
//! [`haven_model::ClusterConfig`]. Nothing here is validated beyond the
//! grammar and the spelling of names: references between objects, value
//! types and dependencies are the checker's job, which is why positions are
//! kept on everything it may complain about.

use haven_model::{
    AttrDimension, AttrType, DependencyCategory, DependencyLocation, DependencyRigidity,
};

use crate::error::Pos;

/// A name as written (object, attribute or keyword-position word).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ident {
    pub text: String,
    pub pos: Pos,
}

/// One scalar as written: its text, and whether it was quoted (a bare
/// integer is an integer, a quoted one is text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawScalar {
    pub text: String,
    pub quoted: bool,
    pub pos: Pos,
}

/// The shape of a value as written. `{}` is an empty `List`; the checker
/// makes it an empty association where the attribute is declared as one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RawValueKind {
    Scalar(RawScalar),
    List(Vec<RawScalar>),
    Assoc(Vec<(RawScalar, RawScalar)>),
}

/// A value and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawValue {
    pub kind: RawValueKind,
    pub pos: Pos,
}

/// `Name = value` or `Name@system = value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawAttr {
    pub name: Ident,
    pub system: Option<Ident>,
    pub value: RawValue,
}

/// `cluster NAME ( ... )` or `system NAME ( ... )`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawBlock {
    pub name: Ident,
    pub attrs: Vec<RawAttr>,
}

/// One attribute declaration of a `type` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawDecl {
    pub name: Ident,
    pub attr_type: AttrType,
    pub dimension: AttrDimension,
    pub is_static: bool,
    pub is_temp: bool,
    pub default: Option<RawValue>,
}

/// `type NAME ( declarations )`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawType {
    pub name: Ident,
    pub decls: Vec<RawDecl>,
}

/// `TYPE NAME ( ... )` inside a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawResource {
    pub type_name: Ident,
    pub name: Ident,
    pub attrs: Vec<RawAttr>,
}

/// `PARENT requires CHILD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawResourceDep {
    pub parent: Ident,
    pub child: Ident,
}

/// `requires group CHILD CATEGORY LOCATION RIGIDITY`; `pos` is the
/// `requires` keyword.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawGroupDep {
    pub pos: Pos,
    pub child: Ident,
    pub category: DependencyCategory,
    pub location: DependencyLocation,
    pub rigidity: DependencyRigidity,
}

/// A group block and the lines that follow it up to the next top-level
/// statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawGroup {
    pub name: Ident,
    pub attrs: Vec<RawAttr>,
    pub resources: Vec<RawResource>,
    pub dependencies: Vec<RawResourceDep>,
    pub group_dependencies: Vec<RawGroupDep>,
}

/// `include "path"`; `pos` is the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawInclude {
    pub path: String,
    pub pos: Pos,
}

/// A whole file, statements sorted by kind, each kind in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RawFile {
    pub includes: Vec<RawInclude>,
    pub clusters: Vec<RawBlock>,
    pub systems: Vec<RawBlock>,
    pub types: Vec<RawType>,
    pub groups: Vec<RawGroup>,
    /// Just past the last character (where "missing ..." errors point).
    pub end: Pos,
}
