//! The configuration of one cluster, as `main.cf` and `types.cf` describe it.
//!
//! Attribute values keep the shape they have in `main.cf` (scalar, list or
//! association). The attributes the engine acts on (SystemList,
//! AutoStartList, Parallel, ...) are typed fields; every other attribute is
//! kept as written so that a configuration written back out loses nothing.
//!
//! Invariant (checked by `haven-maincf`, assumed here): names are unique in
//! their kind, every system a group names is a cluster system, every
//! resource type is defined, and dependencies form DAGs.

use serde::{Deserialize, Serialize};

use crate::Name;

/// One scalar value: a string or an integer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum Scalar {
    Int(i64),
    Str(String),
}

impl Scalar {
    /// The value as a string (integers in decimal).
    pub fn to_text(&self) -> String {
        match self {
            Scalar::Int(i) => i.to_string(),
            Scalar::Str(s) => s.clone(),
        }
    }

    /// The value as an integer, if it is one or a string holding one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Scalar::Int(i) => Some(*i),
            Scalar::Str(s) => s.trim().parse().ok(),
        }
    }
}

/// An attribute value in one of the three shapes of `main.cf`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum AttrValue {
    /// `Name = value`
    Scalar(Scalar),
    /// `Name = { a, b, c }` (vectors and keylists)
    List(Vec<Scalar>),
    /// `Name = { key = value, ... }`
    Assoc(Vec<(Scalar, Scalar)>),
}

impl AttrValue {
    pub fn str(s: impl Into<String>) -> Self {
        AttrValue::Scalar(Scalar::Str(s.into()))
    }

    pub fn int(i: i64) -> Self {
        AttrValue::Scalar(Scalar::Int(i))
    }

    /// The scalar, if this value is one.
    pub fn as_scalar(&self) -> Option<&Scalar> {
        match self {
            AttrValue::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an integer, if it is a scalar holding one.
    pub fn as_int(&self) -> Option<i64> {
        self.as_scalar().and_then(Scalar::as_int)
    }

    /// The value as text, if it is a scalar.
    pub fn as_text(&self) -> Option<String> {
        self.as_scalar().map(Scalar::to_text)
    }

    /// The items of a list value as text (a scalar is a list of one).
    pub fn as_text_list(&self) -> Vec<String> {
        match self {
            AttrValue::Scalar(s) => vec![s.to_text()],
            AttrValue::List(items) => items.iter().map(Scalar::to_text).collect(),
            AttrValue::Assoc(pairs) => pairs.iter().map(|(k, _)| k.to_text()).collect(),
        }
    }
}

/// One attribute assignment, optionally localised to one system
/// (`Address@sysA = "10.0.0.1"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Attr {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<Name>,
    pub value: AttrValue,
}

/// Attributes in the order they were written.
pub type Attrs = Vec<Attr>;

/// Looks an attribute up, preferring the value localised to `system`.
pub fn lookup<'a>(attrs: &'a [Attr], name: &str, system: Option<&str>) -> Option<&'a AttrValue> {
    let local = system.and_then(|sys| {
        attrs
            .iter()
            .find(|a| a.name == name && a.system.as_deref() == Some(sys))
    });
    local
        .or_else(|| attrs.iter().find(|a| a.name == name && a.system.is_none()))
        .map(|a| &a.value)
}

/// The whole configuration of one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ClusterConfig {
    pub name: Name,
    /// `include` lines, as written (for writing the file back out).
    #[serde(default)]
    pub includes: Vec<String>,
    /// Cluster attributes (UserNames, Administrators, ...), as written.
    #[serde(default)]
    pub attributes: Attrs,
    pub systems: Vec<SystemConfig>,
    /// Resource types: those of included files and of main.cf itself.
    #[serde(default)]
    pub types: Vec<TypeDef>,
    pub groups: Vec<GroupConfig>,
}

impl ClusterConfig {
    pub fn system(&self, name: &str) -> Option<&SystemConfig> {
        self.systems.iter().find(|s| &*s.name == name)
    }

    pub fn group(&self, name: &str) -> Option<&GroupConfig> {
        self.groups.iter().find(|g| &*g.name == name)
    }

    pub fn group_mut(&mut self, name: &str) -> Option<&mut GroupConfig> {
        self.groups.iter_mut().find(|g| &*g.name == name)
    }

    pub fn type_def(&self, name: &str) -> Option<&TypeDef> {
        self.types.iter().find(|t| &*t.name == name)
    }

    /// The group that owns the resource, and the resource.
    pub fn resource(&self, name: &str) -> Option<(&GroupConfig, &ResourceConfig)> {
        self.groups
            .iter()
            .find_map(|g| g.resource(name).map(|r| (g, r)))
    }

    /// Resolves a resource attribute: the resource's own value (localised
    /// to `system` first), else the type's default.
    pub fn resource_attr<'a>(
        &'a self,
        resource: &'a ResourceConfig,
        attr: &str,
        system: Option<&str>,
    ) -> Option<&'a AttrValue> {
        lookup(&resource.attributes, attr, system).or_else(|| {
            self.type_def(&resource.type_name)
                .and_then(|t| t.attr(attr))
                .and_then(|d| d.default.as_ref())
        })
    }

    /// Like [`Self::resource_attr`], as an integer with a fallback.
    pub fn resource_int(&self, resource: &ResourceConfig, attr: &str, fallback: i64) -> i64 {
        self.resource_attr(resource, attr, None)
            .and_then(AttrValue::as_int)
            .unwrap_or(fallback)
    }

    /// Whether a fault of this resource faults its group (`Critical`,
    /// default 1).
    pub fn is_critical(&self, resource: &ResourceConfig) -> bool {
        self.resource_int(resource, "Critical", 1) != 0
    }
}

/// A system (node) of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SystemConfig {
    pub name: Name,
    /// Capacity for the `Load` failover policy (default 100).
    #[serde(default = "default_capacity")]
    pub capacity: i64,
    /// Persistently frozen (`Frozen = 1`).
    #[serde(default)]
    pub frozen: bool,
    #[serde(default)]
    pub attributes: Attrs,
}

pub fn default_capacity() -> i64 {
    100
}

impl SystemConfig {
    pub fn new(name: impl AsRef<str>) -> Self {
        SystemConfig {
            name: crate::name(name),
            capacity: default_capacity(),
            frozen: false,
            attributes: Vec::new(),
        }
    }
}

/// How a failover group picks the system to fail over to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum FailoverPolicy {
    /// The eligible system with the lowest SystemList priority number.
    #[default]
    Priority,
    /// The eligible system running the fewest groups.
    RoundRobin,
    /// The eligible system with the most available capacity.
    Load,
}

impl FailoverPolicy {
    pub const ALL: [FailoverPolicy; 3] = [
        FailoverPolicy::Priority,
        FailoverPolicy::RoundRobin,
        FailoverPolicy::Load,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailoverPolicy::Priority => "Priority",
            FailoverPolicy::RoundRobin => "RoundRobin",
            FailoverPolicy::Load => "Load",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// A service group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct GroupConfig {
    pub name: Name,
    /// Systems the group may run on, with their priority (lower first).
    pub system_list: Vec<(Name, u32)>,
    /// Systems to start the group on at engine start, in order.
    #[serde(default)]
    pub auto_start_list: Vec<Name>,
    /// Online on every system at once (parallel) rather than on one
    /// (failover).
    #[serde(default)]
    pub parallel: bool,
    #[serde(default = "yes")]
    pub auto_fail_over: bool,
    #[serde(default = "yes")]
    pub auto_start: bool,
    #[serde(default)]
    pub failover_policy: FailoverPolicy,
    /// Persistently frozen (`Frozen = 1`).
    #[serde(default)]
    pub frozen: bool,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Load the group puts on a system (for the `Load` policy).
    #[serde(default)]
    pub load: i64,
    /// Every other group attribute, as written.
    #[serde(default)]
    pub attributes: Attrs,
    pub resources: Vec<ResourceConfig>,
    /// `parent requires child` links between resources of this group.
    #[serde(default)]
    pub dependencies: Vec<ResourceDependency>,
    /// `requires group CHILD online local firm` lines of this group.
    #[serde(default)]
    pub group_dependencies: Vec<GroupDependency>,
}

fn yes() -> bool {
    true
}

impl GroupConfig {
    pub fn new(name: impl AsRef<str>) -> Self {
        GroupConfig {
            name: crate::name(name),
            system_list: Vec::new(),
            auto_start_list: Vec::new(),
            parallel: false,
            auto_fail_over: true,
            auto_start: true,
            failover_policy: FailoverPolicy::Priority,
            frozen: false,
            enabled: true,
            load: 0,
            attributes: Vec::new(),
            resources: Vec::new(),
            dependencies: Vec::new(),
            group_dependencies: Vec::new(),
        }
    }

    pub fn resource(&self, name: &str) -> Option<&ResourceConfig> {
        self.resources.iter().find(|r| &*r.name == name)
    }

    /// The SystemList priority of `system`, if the group may run there.
    pub fn priority(&self, system: &str) -> Option<u32> {
        self.system_list
            .iter()
            .find(|(s, _)| &**s == system)
            .map(|(_, p)| *p)
    }
}

/// A resource of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ResourceConfig {
    pub name: Name,
    pub type_name: Name,
    /// Attribute assignments, as written (Critical, PathName, ...).
    #[serde(default)]
    pub attributes: Attrs,
}

/// `parent requires child`: the child must be online before the parent
/// goes online, and the parent offline before the child goes offline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ResourceDependency {
    pub parent: Name,
    pub child: Name,
}

/// Whether the parent needs the child online or offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum DependencyCategory {
    Online,
    Offline,
}

/// Where, relative to the parent, the child must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum DependencyLocation {
    /// On the same system.
    Local,
    /// On any system.
    Global,
    /// On another system.
    Remote,
}

/// What happens to the parent when the child faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum DependencyRigidity {
    /// The parent stays where it is.
    Soft,
    /// The parent is taken offline (and fails over with the child).
    Firm,
    /// Like firm; kept as a separate word for configurations that use it.
    Hard,
}

/// `requires group CHILD online local firm`, declared in the parent group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct GroupDependency {
    pub child: Name,
    pub category: DependencyCategory,
    pub location: DependencyLocation,
    pub rigidity: DependencyRigidity,
}

macro_rules! word_enum_text {
    ($ty:ty { $($variant:ident => $text:literal),* $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),* }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some(Self::$variant),)* _ => None }
            }
        }
    };
}

word_enum_text!(DependencyCategory { Online => "online", Offline => "offline" });
word_enum_text!(DependencyLocation { Local => "local", Global => "global", Remote => "remote" });
word_enum_text!(DependencyRigidity { Soft => "soft", Firm => "firm", Hard => "hard" });

/// The base type of an attribute declared in a type definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum AttrType {
    Str,
    Int,
    Boolean,
}

word_enum_text!(AttrType { Str => "str", Int => "int", Boolean => "boolean" });

/// The shape of an attribute declared in a type definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum AttrDimension {
    /// `str Name`
    Scalar,
    /// `str Name[]`
    Vector,
    /// `keylist Name`
    Keylist,
    /// `str Name{}`
    Association,
}

/// One attribute declaration in a `type` block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AttrDecl {
    pub name: String,
    pub attr_type: AttrType,
    pub dimension: AttrDimension,
    /// Declared `static`: one value for the type, not per resource.
    #[serde(default)]
    pub is_static: bool,
    /// Declared `temp`: not written back to main.cf.
    #[serde(default)]
    pub is_temp: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<AttrValue>,
}

/// A resource type (`type Process ( ... )`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TypeDef {
    pub name: Name,
    pub attrs: Vec<AttrDecl>,
    /// The file the type was defined in (`types.cf`, or `main.cf`), so the
    /// configuration is written back to the same files.
    #[serde(default)]
    pub source: String,
}

impl TypeDef {
    pub fn attr(&self, name: &str) -> Option<&AttrDecl> {
        self.attrs.iter().find(|a| a.name == name)
    }
}

/// Attributes every resource has, whatever its type, with their defaults.
pub const COMMON_RESOURCE_ATTRS: &[(&str, AttrType, i64)] = &[
    ("Critical", AttrType::Boolean, 1),
    ("Enabled", AttrType::Boolean, 1),
    ("MonitorInterval", AttrType::Int, 60),
    ("OfflineMonitorInterval", AttrType::Int, 300),
    ("OnlineTimeout", AttrType::Int, 300),
    ("OfflineTimeout", AttrType::Int, 300),
    ("CleanTimeout", AttrType::Int, 300),
    ("MonitorTimeout", AttrType::Int, 60),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localised_attribute_wins_over_global_one() {
        let attrs = vec![
            Attr {
                name: "Address".into(),
                system: None,
                value: AttrValue::str("10.0.0.9"),
            },
            Attr {
                name: "Address".into(),
                system: Some(crate::name("sysA")),
                value: AttrValue::str("10.0.0.1"),
            },
        ];
        assert_eq!(
            lookup(&attrs, "Address", Some("sysA")),
            Some(&AttrValue::str("10.0.0.1"))
        );
        assert_eq!(
            lookup(&attrs, "Address", Some("sysB")),
            Some(&AttrValue::str("10.0.0.9"))
        );
        assert_eq!(lookup(&attrs, "Device", None), None);
    }

    #[test]
    fn word_enums_round_trip_through_text() {
        for p in FailoverPolicy::ALL {
            assert_eq!(FailoverPolicy::parse(p.as_str()), Some(p));
        }
        assert_eq!(
            DependencyRigidity::parse("firm"),
            Some(DependencyRigidity::Firm)
        );
        assert_eq!(DependencyRigidity::parse("Firm"), None);
    }
}
