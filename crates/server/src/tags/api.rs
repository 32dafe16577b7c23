//! The API of tags and saved searches:
//!
//! - `GET /api/v1/tags?cluster=&kind=&key=`: the tags the caller sees;
//! - `PUT /api/v1/tags` `{cluster, group?|system?, tags: ["k=v", ...]}`:
//!   sets tags (all or, when one is bad, none);
//! - `DELETE /api/v1/tags?cluster=&group=|system=&key=`: removes one;
//! - `GET|POST /api/v1/searches`, `DELETE /api/v1/searches/{id}`: saved
//!   searches (a user's own and the shared ones).
//!
//! Setting or removing a group's tag needs Group Administrator (or
//! Cluster Administrator) on the group; a cluster's or a system's,
//! Cluster Administrator on the cluster. Changes are recorded in the
//! access log like the administrators' other changes.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use haven_auth::roles::{Right, Role};
use haven_store::{NewSavedSearch, SavedSearch, TagRecord};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{parse_tag, Kind, Object, TagSet, PER_OBJECT_MAX};
use crate::api::{admin_change, ApiError, ApiJson, ApiQuery};
use crate::auth::Caller;
use crate::fleet::Sight;
use crate::Server;

type AppState = Arc<Server>;

/// `?cluster=&kind=&key=`
#[derive(Debug, Deserialize, JsonSchema)]
pub struct TagListParams {
    pub cluster: Option<String>,
    /// `cluster`, `group` or `system`.
    pub kind: Option<String>,
    pub key: Option<String>,
}

/// `GET /api/v1/tags`: every tag the caller sees, by cluster, kind,
/// object and key, with who set it and when.
pub(crate) async fn list(
    State(s): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiQuery(q): ApiQuery<TagListParams>,
) -> Result<Json<Vec<TagRecord>>, ApiError> {
    let sight = s.sight(&caller);
    crate::api::visible_clusters(&s, sight.as_ref(), q.cluster.as_deref())?;
    let cluster = q.cluster.clone();
    let rows = s
        .read(move |store| store.tags(cluster.as_deref()))
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(
        rows.into_iter()
            .filter(|t| s.fleet.contains(&t.cluster))
            .filter(|t| q.kind.as_ref().is_none_or(|k| *k == t.kind))
            .filter(|t| {
                q.key
                    .as_ref()
                    .is_none_or(|k| k.eq_ignore_ascii_case(&t.key))
            })
            .filter(|t| {
                sight.as_ref().is_none_or(|l| match t.kind.as_str() {
                    "group" => l.group(&t.cluster, &t.object),
                    _ => l.cluster(&t.cluster),
                })
            })
            .collect(),
    ))
}

/// Tags to set on one object: the cluster, or one of its groups or
/// systems.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TagChange {
    pub cluster: String,
    /// A service group of the cluster (or give `system`, or neither).
    pub group: Option<String>,
    /// A system of the cluster.
    pub system: Option<String>,
    /// `key=value` each; a key set already takes the new value.
    pub tags: Vec<String>,
}

/// One object's tags after a change.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ObjectTags {
    pub cluster: String,
    /// `cluster`, `group` or `system`.
    pub kind: String,
    /// The group or system; empty for the cluster.
    pub object: String,
    pub tags: TagSet,
}

fn answer(o: &Object, tags: TagSet) -> Json<ObjectTags> {
    Json(ObjectTags {
        cluster: o.cluster.clone(),
        kind: o.kind.as_str().into(),
        object: o.name.clone(),
        tags,
    })
}

/// The object a change names, once the caller may see it and it exists,
/// and the caller's role there allows changing its tags.
fn object_for(
    s: &Server,
    caller: &Caller,
    cluster: &str,
    group: Option<&str>,
    system: Option<&str>,
) -> Result<Object, ApiError> {
    let sight = s.sight(caller);
    if sight.as_ref().is_some_and(|l| !l.cluster(cluster)) {
        return Err(ApiError::unknown_cluster(cluster).denied(cluster, "no role on this cluster"));
    }
    if !s.fleet.contains(cluster) {
        return Err(ApiError::unknown_cluster(cluster));
    }
    let not_found = |what: String| ApiError::new(StatusCode::NOT_FOUND, "not_found", what);
    let (kind, name) = match (group, system) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give `group` or `system`, not both: a tag is on one object",
            ))
        }
        (None, None) => (Kind::Cluster, String::new()),
        (Some(g), None) => {
            let exists = s
                .fleet
                .with_snapshot(cluster, |snap| snap.group(g).is_some())
                .ok_or_else(|| not_synced(cluster))?;
            if sight.as_ref().is_some_and(|l| !l.group(cluster, g)) {
                return Err(not_found(format!("cluster {cluster} has no group {g}"))
                    .denied(cluster, &format!("no role on group {g}")));
            }
            if !exists {
                return Err(not_found(format!("cluster {cluster} has no group {g}")));
            }
            (Kind::Group, g.to_string())
        }
        (None, Some(sys)) => {
            let exists = s
                .fleet
                .with_snapshot(cluster, |snap| snap.system(sys).is_some())
                .ok_or_else(|| not_synced(cluster))?;
            if !exists {
                return Err(not_found(format!("cluster {cluster} has no system {sys}")));
            }
            (Kind::System, sys.to_string())
        }
    };
    let object = Object {
        cluster: cluster.to_string(),
        kind,
        name,
    };
    may_tag(s, caller, &object)?;
    Ok(object)
}

fn not_synced(cluster: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "not_synced",
        format!("cluster {cluster} has not synchronised yet, so its groups and systems are not known; try again when its link is up"),
    )
}

/// The role a tag change needs: Group Administrator on a group (or
/// higher), Cluster Administrator for a cluster or a system.
pub(crate) fn may_tag(s: &Server, caller: &Caller, o: &Object) -> Result<(), ApiError> {
    let (Caller::User(who), Some(auth)) = (caller, &s.auth) else {
        return Ok(());
    };
    let (right, group) = match o.kind {
        Kind::Group => (Right::ConfigureGroup, Some(o.name.as_str())),
        _ => (Right::ConfigureCluster, None),
    };
    let had = auth.policy().role(who, &o.cluster, group);
    if had.is_some_and(|r| r.allows(right)) {
        return Ok(());
    }
    let needed = Role::ALL
        .into_iter()
        .find(|r| r.allows(right))
        .unwrap_or(Role::ClusterAdministrator);
    let message = format!(
        "{} may not change the tags of {}: that needs {needed} or higher there; they hold {}",
        who.user,
        o.describe(),
        had.map_or("no role".to_string(), |r| r.title().to_string())
    );
    Err(ApiError::permission_denied(message.clone()).denied(&o.cluster, &message))
}

/// `PUT /api/v1/tags`.
pub(crate) async fn set(
    State(s): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiJson(body): ApiJson<TagChange>,
) -> Result<Json<ObjectTags>, ApiError> {
    let object = object_for(
        &s,
        &caller,
        &body.cluster,
        body.group.as_deref(),
        body.system.as_deref(),
    )?;
    if body.tags.is_empty() {
        return Err(ApiError::bad_request(
            "`tags` is empty: give at least one key=value",
        ));
    }
    let mut set = TagSet::new();
    for text in &body.tags {
        let (key, value) = parse_tag(text.trim()).map_err(ApiError::bad_request)?;
        if set.insert(key.clone(), value).is_some() {
            return Err(ApiError::bad_request(format!(
                "tag key `{key}` is given twice; give each key once"
            )));
        }
    }
    let current = s
        .fleet
        .tags_of(&object.cluster)
        .of(object.kind, &object.name)
        .cloned()
        .unwrap_or_default();
    let count = current
        .keys()
        .chain(set.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    if count > PER_OBJECT_MAX {
        return Err(ApiError::bad_request(format!(
            "{} would have {count} tags; at most {PER_OBJECT_MAX} per object",
            object.describe()
        )));
    }
    let target = format!(
        "{} {}",
        object.path(),
        set.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let (tags, _) = s
        .change_tags(&object, set, Vec::new(), caller.name())
        .await
        .map_err(ApiError::internal)?;
    s.record_access(admin_change(
        &caller,
        "set_tags",
        &object.cluster,
        Some(target),
    ))
    .await;
    Ok(answer(&object, tags))
}

/// `?cluster=&group=|system=&key=`
#[derive(Debug, Deserialize, JsonSchema)]
pub struct TagRemoval {
    pub cluster: String,
    pub group: Option<String>,
    pub system: Option<String>,
    pub key: String,
}

/// `DELETE /api/v1/tags`: removes one key of one object.
pub(crate) async fn remove(
    State(s): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiQuery(q): ApiQuery<TagRemoval>,
) -> Result<Json<ObjectTags>, ApiError> {
    let object = object_for(
        &s,
        &caller,
        &q.cluster,
        q.group.as_deref(),
        q.system.as_deref(),
    )?;
    let (tags, removed) = s
        .change_tags(&object, TagSet::new(), vec![q.key.clone()], caller.name())
        .await
        .map_err(ApiError::internal)?;
    if removed == 0 {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "{} has no tag {}; GET /api/v1/tags lists them",
                object.describe(),
                q.key
            ),
        ));
    }
    s.record_access(admin_change(
        &caller,
        "remove_tag",
        &object.cluster,
        Some(format!("{} {}", object.path(), q.key)),
    ))
    .await;
    Ok(answer(&object, tags))
}

// Saved searches ------------------------------------------------------------

/// A search to save.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSearch {
    /// Unique among the caller's own searches.
    pub name: String,
    /// The query (see `GET /api/v1/search`).
    pub query: String,
    /// List it to every user (default: only the caller).
    #[serde(default)]
    pub shared: bool,
}

/// `GET /api/v1/searches`: the caller's saved searches and the shared
/// ones, by name.
pub(crate) async fn list_searches(
    State(s): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Result<Json<Vec<SavedSearch>>, ApiError> {
    let owner = caller.name().to_string();
    Ok(Json(
        s.read(move |store| store.saved_searches(&owner))
            .await
            .map_err(ApiError::internal)?,
    ))
}

/// `POST /api/v1/searches`.
pub(crate) async fn save_search(
    State(s): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiJson(body): ApiJson<NewSearch>,
) -> Result<(StatusCode, Json<SavedSearch>), ApiError> {
    let name = body.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "a saved search's name is 1 to 64 printable characters",
        ));
    }
    crate::search::Query::parse(&body.query)
        .map_err(|e| ApiError::bad_request(format!("the query: {e}")))?;
    let new = NewSavedSearch {
        owner: caller.name().to_string(),
        name: name.clone(),
        query: body.query.trim().to_string(),
        shared: body.shared,
        created_ms: crate::now_ms(),
    };
    let saved = new.clone();
    let id = s
        .write_store(move |store| store.insert_saved_search(&saved))
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("you have a saved search named {name} already; delete it first, or pick another name"),
            )
        })?;
    Ok((
        StatusCode::CREATED,
        Json(SavedSearch {
            id,
            owner: new.owner,
            name: new.name,
            query: new.query,
            shared: new.shared,
            created_ms: new.created_ms,
        }),
    ))
}

/// `DELETE /api/v1/searches/{id}`: its owner (or a Server Administrator)
/// deletes it; another user's private search is unknown to the caller.
pub(crate) async fn delete_search(
    State(s): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    let me = caller.name().to_string();
    let listed = s
        .read(move |store| store.saved_searches(&me))
        .await
        .map_err(ApiError::internal)?;
    let admin = crate::api::need_server_admin(&s, &caller).is_ok();
    let found = listed.into_iter().find(|x| x.id == id);
    match &found {
        None if !admin => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no saved search {id} of yours; GET /api/v1/searches lists them"),
            ))
        }
        Some(x) if x.owner != caller.name() && !admin => {
            return Err(ApiError::permission_denied(format!(
                "saved search {} is {}'s: only they (or a Server Administrator) may delete it",
                x.name, x.owner
            )))
        }
        _ => {}
    }
    s.write_store(move |store| store.delete_saved_search(id))
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no saved search {id}; GET /api/v1/searches lists them"),
            )
        })?;
    Ok(StatusCode::NO_CONTENT)
}
