//! Roles, grants and the decisions they imply.
//!
//! Rules (the same words an HA administrator reads in the docs):
//! - a **grant** gives one role to one OS user or OS group, at **fleet**
//!   scope (every cluster), **cluster** scope, or **group** scope (one
//!   service group of one cluster);
//! - the grants that apply to an object are those at fleet scope, at the
//!   object's cluster, and (for a group or its resources) at that group;
//! - if any of them names the **user**, the user's grants decide and their
//!   groups' grants are ignored (a grant to a user overrides one to their
//!   group); otherwise the **highest** of their groups' grants applies;
//! - cluster roles (Cluster Administrator, Cluster Operator) cannot be
//!   granted at group scope: a grant that could not mean anything is
//!   refused when it is made;
//! - the **Server Administrator** manages the server itself (clusters,
//!   tokens, roles, database, peers); it is not a cluster role, and gives
//!   no right to operate clusters unless granted one too.
//!
//! What each role may do:
//!
//! | role | read | group operations | group configuration | cluster operations | cluster configuration |
//! |---|---|---|---|---|---|
//! | Guest | ✓ | | | | |
//! | Group Operator | ✓ | ✓ | | | |
//! | Group Administrator | ✓ | ✓ | ✓ | | |
//! | Cluster Operator | ✓ | ✓ | | ✓ | |
//! | Cluster Administrator | ✓ | ✓ | ✓ | ✓ (and simulation) | ✓ |
//!
//! Group operations: online, offline, switch, temporary freeze / unfreeze,
//! clear, flush, and resource online / offline / clear / probe. Group
//! configuration: persistent freeze, enable, disable, the group's tags.
//! Cluster operations: system freeze (with evacuation) / unfreeze.
//! Cluster configuration: the cluster's and its systems' tags.

use std::fmt;

use haven_model::{Name, Operation};
use serde::{Deserialize, Serialize};

/// A role on clusters and groups, lowest first (the order is "highest
/// applies").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Guest,
    GroupOperator,
    GroupAdministrator,
    ClusterOperator,
    ClusterAdministrator,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Guest,
        Role::GroupOperator,
        Role::GroupAdministrator,
        Role::ClusterOperator,
        Role::ClusterAdministrator,
    ];

    /// The stored and wire name (`cluster_operator`), as serde writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Guest => "guest",
            Role::GroupOperator => "group_operator",
            Role::GroupAdministrator => "group_administrator",
            Role::ClusterOperator => "cluster_operator",
            Role::ClusterAdministrator => "cluster_administrator",
        }
    }

    /// The role of that stored name; the error lists the names.
    pub fn parse(name: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
                format!("role `{name}`: use {}", names.join(", "))
            })
    }

    /// The name administrators read ("Cluster Operator").
    pub fn title(self) -> &'static str {
        match self {
            Role::Guest => "Guest",
            Role::GroupOperator => "Group Operator",
            Role::GroupAdministrator => "Group Administrator",
            Role::ClusterOperator => "Cluster Operator",
            Role::ClusterAdministrator => "Cluster Administrator",
        }
    }

    fn is_cluster_role(self) -> bool {
        matches!(self, Role::ClusterOperator | Role::ClusterAdministrator)
    }

    /// Whether this role includes `right`.
    pub fn allows(self, right: Right) -> bool {
        match right {
            Right::Read => true,
            Right::OperateGroup => self != Role::Guest,
            Right::ConfigureGroup => {
                matches!(self, Role::GroupAdministrator | Role::ClusterAdministrator)
            }
            Right::OperateCluster => self.is_cluster_role(),
            Right::Simulate | Right::ConfigureCluster => self == Role::ClusterAdministrator,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.title())
    }
}

/// What an action needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Right {
    Read,
    OperateGroup,
    ConfigureGroup,
    OperateCluster,
    Simulate,
    /// Tags of the cluster and its systems.
    ConfigureCluster,
}

/// Who a grant is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Principal {
    User(String),
    Group(String),
}

/// Where a grant applies.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "scope", rename_all = "snake_case")]
pub enum Scope {
    Fleet,
    Cluster { cluster: String },
    Group { cluster: String, group: String },
}

impl Scope {
    /// Whether the scope covers `group` of `cluster` (or the cluster
    /// itself when `group` is None).
    fn covers(&self, cluster: &str, group: Option<&str>) -> bool {
        match self {
            Scope::Fleet => true,
            Scope::Cluster { cluster: c } => c == cluster,
            Scope::Group {
                cluster: c,
                group: g,
            } => c == cluster && group == Some(g.as_str()),
        }
    }
}

/// One grant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Grant {
    pub principal: Principal,
    pub role: Role,
    #[serde(flatten)]
    pub scope: Scope,
}

impl Grant {
    /// Refuses grants that cannot mean anything.
    pub fn validate(&self) -> Result<(), String> {
        let name = match &self.principal {
            Principal::User(n) | Principal::Group(n) => n,
        };
        if name.trim().is_empty() {
            return Err("a grant needs a user or group name".into());
        }
        if self.role.is_cluster_role() && matches!(self.scope, Scope::Group { .. }) {
            return Err(format!(
                "{} is a cluster role; grant it at cluster or fleet scope, or grant Group Administrator / Group Operator on the group",
                self.role
            ));
        }
        Ok(())
    }
}

/// Who is asking: an OS user and the OS groups it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

/// Why something was denied; the message says what would allow it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Denied {
    pub needed: Right,
    /// The role the user has there, if any.
    pub had: Option<Role>,
    pub message: String,
}

/// Every grant and server administrator of a server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub grants: Vec<Grant>,
    /// Users or groups that manage the server itself.
    pub server_admins: Vec<Principal>,
}

fn names(who: &Identity, p: &Principal) -> bool {
    match p {
        Principal::User(u) => *u == who.user,
        Principal::Group(g) => who.groups.iter().any(|x| x == g),
    }
}

/// The rule every decision uses, over the grants that apply: if any names
/// the user, the highest of those; otherwise the highest of their groups'.
fn decide<'a>(who: &Identity, applicable: impl Iterator<Item = &'a Grant>) -> Option<Role> {
    let (mut own, mut groups) = (None, None);
    for grant in applicable {
        match &grant.principal {
            Principal::User(u) if *u == who.user => own = own.max(Some(grant.role)),
            p @ Principal::Group(_) if names(who, p) => groups = groups.max(Some(grant.role)),
            _ => {}
        }
    }
    own.or(groups)
}

impl Policy {
    /// The role `who` has on `group` of `cluster` (or on the cluster).
    pub fn role(&self, who: &Identity, cluster: &str, group: Option<&str>) -> Option<Role> {
        decide(
            who,
            self.grants.iter().filter(|g| {
                g.scope.covers(cluster, group) || Self::cluster_wide(g, cluster, group)
            }),
        )
    }

    /// A cluster- or fleet-scope grant covers every group of its cluster.
    fn cluster_wide(grant: &Grant, cluster: &str, group: Option<&str>) -> bool {
        group.is_some()
            && match &grant.scope {
                Scope::Fleet => true,
                Scope::Cluster { cluster: c } => c == cluster,
                Scope::Group { .. } => false,
            }
    }

    /// Whether `who` may see `group` of `cluster` (or the cluster: any
    /// role anywhere in it lets a user see the cluster exists, with only
    /// the groups they may see).
    pub fn can_see(&self, who: &Identity, cluster: &str, group: Option<&str>) -> bool {
        match group {
            Some(_) => self.role(who, cluster, group).is_some(),
            None => {
                self.role(who, cluster, None).is_some()
                    || self.grants.iter().any(|g| {
                        matches!(&g.scope, Scope::Group { cluster: c, .. } if c == cluster)
                            && names(who, &g.principal)
                    })
            }
        }
    }

    /// The role `who` has on every cluster (from fleet-scope grants only).
    pub fn fleet_role(&self, who: &Identity) -> Option<Role> {
        decide(who, self.grants.iter().filter(|g| g.scope == Scope::Fleet))
    }

    /// Whether `who` manages the server itself.
    pub fn is_server_admin(&self, who: &Identity) -> bool {
        self.server_admins.iter().any(|p| names(who, p))
    }

    /// Decides an operation on `cluster`. `group_of` finds the group of a
    /// resource (resource operations are group operations).
    pub fn authorize(
        &self,
        who: &Identity,
        cluster: &str,
        op: &Operation,
        group_of: impl Fn(&str) -> Option<Name>,
    ) -> Result<(), Denied> {
        let (right, group) = requirement(op, group_of);
        let group = group.as_deref();
        let had = self.role(who, cluster, group);
        if had.is_some_and(|r| r.allows(right)) {
            return Ok(());
        }
        let what = match group {
            Some(g) => format!("group {g} of cluster {cluster}"),
            None => format!("cluster {cluster}"),
        };
        let needed_role = Role::ALL
            .into_iter()
            .find(|r| r.allows(right))
            .unwrap_or(Role::ClusterAdministrator);
        let message = match had {
            Some(role) => format!(
                "{} may not {} on {what}: they are {role} there; it needs {needed_role} or higher",
                who.user,
                op.verb().replace('_', " ")
            ),
            None => format!(
                "{} has no role on {what}; ask a Server Administrator for a grant ({needed_role} or higher)",
                who.user
            ),
        };
        Err(Denied {
            needed: right,
            had,
            message,
        })
    }
}

/// The right an operation needs, and the group it acts on (None for
/// cluster-level operations, or a resource whose group is unknown).
pub fn requirement(
    op: &Operation,
    group_of: impl Fn(&str) -> Option<Name>,
) -> (Right, Option<Name>) {
    match op {
        Operation::GroupOnline { group, .. }
        | Operation::GroupOffline { group, .. }
        | Operation::GroupSwitch { group, .. }
        | Operation::GroupUnfreeze { group }
        | Operation::GroupClear { group, .. }
        | Operation::GroupFlush { group, .. } => (Right::OperateGroup, Some(group.clone())),
        Operation::GroupFreeze { group, persistent } => (
            if *persistent {
                Right::ConfigureGroup
            } else {
                Right::OperateGroup
            },
            Some(group.clone()),
        ),
        Operation::GroupEnable { group } | Operation::GroupDisable { group } => {
            (Right::ConfigureGroup, Some(group.clone()))
        }
        Operation::ResourceOnline { resource, .. }
        | Operation::ResourceOffline { resource, .. }
        | Operation::ResourceClear { resource, .. }
        | Operation::ResourceProbe { resource, .. } => (Right::OperateGroup, group_of(resource)),
        Operation::SystemFreeze { .. } | Operation::SystemUnfreeze { .. } => {
            (Right::OperateCluster, None)
        }
        Operation::SimFaultResource { .. }
        | Operation::SimFaultSystem { .. }
        | Operation::SimRestoreSystem { .. } => (Right::Simulate, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use haven_model::name;

    fn user(u: &str, groups: &[&str]) -> Identity {
        Identity {
            user: u.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn grant(p: Principal, role: Role, scope: Scope) -> Grant {
        Grant {
            principal: p,
            role,
            scope,
        }
    }

    fn cluster(c: &str) -> Scope {
        Scope::Cluster { cluster: c.into() }
    }

    fn group(c: &str, g: &str) -> Scope {
        Scope::Group {
            cluster: c.into(),
            group: g.into(),
        }
    }

    /// One operation of each kind, with the group it touches.
    fn operations() -> Vec<(Operation, Right)> {
        let g = || name("web");
        let r = || name("web_ip");
        let s = || name("n1");
        vec![
            (
                Operation::GroupOnline {
                    group: g(),
                    system: None,
                },
                Right::OperateGroup,
            ),
            (
                Operation::GroupOffline {
                    group: g(),
                    system: None,
                },
                Right::OperateGroup,
            ),
            (
                Operation::GroupSwitch {
                    group: g(),
                    to: None,
                },
                Right::OperateGroup,
            ),
            (
                Operation::GroupFreeze {
                    group: g(),
                    persistent: false,
                },
                Right::OperateGroup,
            ),
            (
                Operation::GroupFreeze {
                    group: g(),
                    persistent: true,
                },
                Right::ConfigureGroup,
            ),
            (Operation::GroupUnfreeze { group: g() }, Right::OperateGroup),
            (
                Operation::GroupClear {
                    group: g(),
                    system: None,
                },
                Right::OperateGroup,
            ),
            (
                Operation::GroupFlush {
                    group: g(),
                    system: None,
                },
                Right::OperateGroup,
            ),
            (Operation::GroupEnable { group: g() }, Right::ConfigureGroup),
            (
                Operation::GroupDisable { group: g() },
                Right::ConfigureGroup,
            ),
            (
                Operation::ResourceOnline {
                    resource: r(),
                    system: s(),
                },
                Right::OperateGroup,
            ),
            (
                Operation::ResourceOffline {
                    resource: r(),
                    system: s(),
                },
                Right::OperateGroup,
            ),
            (
                Operation::ResourceClear {
                    resource: r(),
                    system: None,
                },
                Right::OperateGroup,
            ),
            (
                Operation::ResourceProbe {
                    resource: r(),
                    system: s(),
                },
                Right::OperateGroup,
            ),
            (
                Operation::SystemFreeze {
                    system: s(),
                    persistent: false,
                    evacuate: true,
                },
                Right::OperateCluster,
            ),
            (
                Operation::SystemUnfreeze { system: s() },
                Right::OperateCluster,
            ),
            (
                Operation::SimFaultResource {
                    resource: r(),
                    system: s(),
                },
                Right::Simulate,
            ),
            (Operation::SimFaultSystem { system: s() }, Right::Simulate),
            (Operation::SimRestoreSystem { system: s() }, Right::Simulate),
        ]
    }

    /// Every role at every scope against every operation: allowed exactly
    /// when the role includes the right and the scope covers the target.
    #[test]
    fn every_role_at_every_scope_against_every_operation() {
        let scopes = [
            (Scope::Fleet, true, true),
            (cluster("east"), true, true),
            (cluster("west"), false, false),
            (group("east", "web"), true, false),
            (group("east", "db"), false, false),
        ];
        let group_of = |r: &str| (r == "web_ip").then(|| name("web"));
        let mut checked = 0;
        for role in Role::ALL {
            for (scope, covers_group, covers_cluster) in &scopes {
                let g = grant(Principal::User("ann".into()), role, scope.clone());
                if g.validate().is_err() {
                    assert!(role.is_cluster_role() && matches!(scope, Scope::Group { .. }));
                    continue;
                }
                let policy = Policy {
                    grants: vec![g],
                    server_admins: vec![],
                };
                let ann = user("ann", &[]);
                for (op, right) in operations() {
                    let (needed, on_group) = requirement(&op, group_of);
                    assert_eq!(needed, right, "{op:?}");
                    let covered = if on_group.is_some() {
                        *covers_group
                    } else {
                        *covers_cluster
                    };
                    let expected = covered && role.allows(right);
                    let got = policy.authorize(&ann, "east", &op, group_of);
                    assert_eq!(
                        got.is_ok(),
                        expected,
                        "{role} at {scope:?} doing {op:?}: {got:?}"
                    );
                    if let Err(denied) = got {
                        assert!(denied.message.contains("ann"), "{}", denied.message);
                    }
                    checked += 1;
                }
                // Reads follow coverage alone.
                assert_eq!(policy.can_see(&ann, "east", Some("web")), *covers_group);
                assert_eq!(
                    policy.can_see(&ann, "north", Some("web")),
                    matches!(scope, Scope::Fleet),
                    "only a fleet grant reaches another cluster"
                );
            }
        }
        assert!(checked > 300);
    }

    #[test]
    fn a_user_grant_overrides_a_group_grant_and_otherwise_the_highest_applies() {
        let policy = Policy {
            grants: vec![
                grant(
                    Principal::Group("ops".into()),
                    Role::ClusterAdministrator,
                    cluster("east"),
                ),
                grant(
                    Principal::Group("dba".into()),
                    Role::GroupOperator,
                    Scope::Fleet,
                ),
                grant(Principal::User("bob".into()), Role::Guest, Scope::Fleet),
            ],
            server_admins: vec![Principal::Group("wheel".into())],
        };
        let bob = user("bob", &["ops"]);
        assert_eq!(
            policy.role(&bob, "east", Some("web")),
            Some(Role::Guest),
            "user grant wins"
        );
        let carol = user("carol", &["ops", "dba"]);
        assert_eq!(
            policy.role(&carol, "east", None),
            Some(Role::ClusterAdministrator),
            "highest of her groups"
        );
        assert_eq!(
            policy.role(&carol, "west", Some("web")),
            Some(Role::GroupOperator)
        );
        assert_eq!(policy.role(&user("dave", &[]), "east", None), None);
        assert!(policy.is_server_admin(&user("eve", &["wheel"])));
        assert!(!policy.is_server_admin(&carol));
    }

    #[test]
    fn a_group_scoped_user_sees_the_cluster_but_only_that_group() {
        let policy = Policy {
            grants: vec![grant(
                Principal::User("gus".into()),
                Role::GroupOperator,
                group("east", "web"),
            )],
            server_admins: vec![],
        };
        let gus = user("gus", &[]);
        assert!(policy.can_see(&gus, "east", None));
        assert!(policy.can_see(&gus, "east", Some("web")));
        assert!(!policy.can_see(&gus, "east", Some("db")));
        assert!(!policy.can_see(&gus, "west", None));
    }

    #[test]
    fn nonsense_grants_are_refused_with_a_fix() {
        let bad = grant(
            Principal::User("x".into()),
            Role::ClusterOperator,
            group("east", "web"),
        );
        assert!(bad.validate().unwrap_err().contains("cluster role"));
        let empty = grant(Principal::Group(" ".into()), Role::Guest, Scope::Fleet);
        assert!(empty.validate().is_err());
    }

    #[test]
    fn a_denial_says_what_role_was_had_and_what_is_needed() {
        let policy = Policy {
            grants: vec![grant(
                Principal::User("ann".into()),
                Role::Guest,
                cluster("east"),
            )],
            server_admins: vec![],
        };
        let err = policy
            .authorize(
                &user("ann", &[]),
                "east",
                &Operation::GroupSwitch {
                    group: name("web"),
                    to: None,
                },
                |_| None,
            )
            .unwrap_err();
        assert_eq!(err.had, Some(Role::Guest));
        assert!(
            err.message.contains("Guest") && err.message.contains("Group Operator"),
            "{}",
            err.message
        );
        let none = policy
            .authorize(
                &user("zed", &[]),
                "east",
                &Operation::SystemUnfreeze { system: name("n1") },
                |_| None,
            )
            .unwrap_err();
        assert!(none.message.contains("no role"), "{}", none.message);
    }

    #[test]
    fn grants_have_a_stable_json_form() {
        let g = grant(
            Principal::Group("ops".into()),
            Role::ClusterOperator,
            cluster("east"),
        );
        let text = serde_json::to_string(&g).unwrap();
        assert_eq!(
            text,
            r#"{"principal":{"kind":"group","name":"ops"},"role":"cluster_operator","scope":"cluster","cluster":"east"}"#
        );
        assert_eq!(serde_json::from_str::<Grant>(&text).unwrap(), g);
    }

    #[test]
    fn role_names_are_serdes_and_parse_back() {
        for role in Role::ALL {
            let json = serde_json::to_value(role).unwrap();
            assert_eq!(json.as_str(), Some(role.as_str()));
            assert_eq!(Role::parse(role.as_str()), Ok(role));
        }
        let err = Role::parse("overlord").unwrap_err();
        assert!(
            err.contains("overlord") && err.contains("cluster_administrator"),
            "{err}"
        );
    }
}
