//! The console's tags and saved searches: the tags block of the cluster,
//! group and system pages (with a small form to add one and a button to
//! remove each, for whoever may change them), and the help, the save form
//! and the saved list of `/find`. Every change goes through the API (the
//! script's `form.api` / `button.api`), so the roles, the checks and the
//! access log are the API's.

use std::fmt::Write;

use super::html::{esc, seg, table};
use super::{cli, Viewer};
use crate::tags::{Kind, Object, TagSet};

/// The tags of `object`, with the form to add one and a button to remove
/// each when the viewer may change them (else a note naming the role).
pub(super) fn block(v: &Viewer, object: &Object) -> String {
    let tags: TagSet = v
        .server
        .fleet
        .tags_of(&object.cluster)
        .of(object.kind, &object.name)
        .cloned()
        .unwrap_or_default();
    let may = crate::tags::api::may_tag(&v.server, &v.caller, object).is_ok();
    let target = cli::word(&object.path());
    let system_flag = if object.kind == Kind::System {
        " --system"
    } else {
        ""
    };
    let mut out = String::from("<section class=\"tags\" id=\"tags\"><h2>Tags</h2>");
    if tags.is_empty() {
        out.push_str("<p class=\"muted\" id=\"notags\">No tags.</p>");
    } else {
        out.push_str("<ul class=\"taglist\">");
        for (k, val) in &tags {
            let _ = write!(
                out,
                "<li><span class=\"tag\" data-key=\"{}\">{}={}</span>",
                esc(k),
                esc(k),
                esc(val)
            );
            if may {
                let mut url = format!(
                    "/api/v1/tags?cluster={}&key={}",
                    seg(&object.cluster),
                    seg(k)
                );
                match object.kind {
                    Kind::Group => url.push_str(&format!("&group={}", seg(&object.name))),
                    Kind::System => url.push_str(&format!("&system={}", seg(&object.name))),
                    Kind::Cluster => {}
                }
                let _ = write!(
                    out,
                    " <button type=\"button\" class=\"api untag\" data-method=\"DELETE\" data-url=\"{}\" data-cli=\"{}\" aria-label=\"Remove tag {}\">✕</button>",
                    esc(&url),
                    esc(&format!("haven tag rm{system_flag} {target} {}", cli::word(k))),
                    esc(k)
                );
            }
            out.push_str("</li>");
        }
        out.push_str("</ul>");
    }
    if may {
        let object_field = match object.kind {
            Kind::Cluster => String::new(),
            k => format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                k.as_str(),
                esc(&object.name)
            ),
        };
        let _ = write!(
            out,
            "<form class=\"api filter tagform\" id=\"tagform\" data-method=\"PUT\" data-url=\"/api/v1/tags\" data-cli=\"{}\">\
<input type=\"hidden\" name=\"cluster\" value=\"{}\">{object_field}\
<input id=\"newtag\" name=\"tags\" data-list data-arg=\"\" placeholder=\"key=value\" aria-label=\"New tag (key=value)\" required pattern=\"[A-Za-z0-9][A-Za-z0-9_.\\-/]*=.+\">\
<button type=\"submit\">Add tag</button></form>",
            esc(&format!("haven tag set{system_flag} {target}")),
            esc(&object.cluster),
        );
    } else if v.server.auth.is_some() {
        let _ = write!(
            out,
            "<p class=\"muted tagnote\">Changing these tags needs {} or higher.</p>",
            match object.kind {
                Kind::Group => "Group Administrator",
                _ => "Cluster Administrator",
            }
        );
    }
    out.push_str("</section>");
    out
}

/// The query language, as the find page explains it.
pub(super) const HELP: &str = "<details class=\"help\" id=\"findhelp\"><summary>How to search</summary>\
<p>Every term must match; <code>-TERM</code> means not.</p><table class=\"help\"><tbody>\
<tr><td><code>web</code></td><td>a word in the name, a resource's type, the object's tags or a resource's attribute values (any case); <code>\"two words\"</code> with spaces</td></tr>\
<tr><td><code>env=prod</code>, <code>tag:env=prod*</code>, <code>tag:env</code></td><td>carries the tag (its own, or its cluster's; a resource its group's); the value may be a glob</td></tr>\
<tr><td><code>state:faulted</code></td><td>online, offline, faulted, partial, frozen, disabled, running, exited; a cluster's link: connected, disconnected, stale</td></tr>\
<tr><td><code>kind:group</code></td><td>cluster, system, group or resource</td></tr>\
<tr><td><code>cluster:prod-*</code>, <code>group:web</code>, <code>type:Mount</code></td><td>in a cluster, in (or being) a group, of a resource type (globs)</td></tr>\
</tbody></table></details>";

/// The form that saves the query `text` as a search.
pub(super) fn save_form(text: &str) -> String {
    format!(
        "<form class=\"api filter\" id=\"savesearch\" data-method=\"POST\" data-url=\"/api/v1/searches\" data-cli=\"haven find {}\">\
<input type=\"hidden\" name=\"query\" value=\"{}\">\
<input id=\"searchname\" name=\"name\" data-arg=\"--save\" placeholder=\"name\" aria-label=\"Save this search as\" required>\
<label><input type=\"checkbox\" id=\"searchshared\" name=\"shared\" data-arg=\"--shared\" data-bare> shared with everyone</label>\
<button type=\"submit\">Save search</button></form>",
        esc(&cli::word(text)),
        esc(text)
    )
}

/// The caller's saved searches and the shared ones, each a link that
/// runs it (and a delete button on their own).
pub(super) async fn saved_list(v: &Viewer) -> String {
    let owner = v.caller.name().to_string();
    let Ok(list) = v
        .server
        .read(move |store| store.saved_searches(&owner))
        .await
    else {
        return "<p class=\"error\">The saved searches cannot be read now.</p>".into();
    };
    if list.is_empty() {
        return "<h2>Saved searches</h2><p class=\"muted\">None yet: search, then save it under a name.</p>".into();
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            let mine = s.owner == v.caller.name();
            vec![
                format!(
                    "<a class=\"saved\" href=\"/find?q={}\">{}</a>",
                    seg(&s.query),
                    esc(&s.name)
                ),
                format!("<code>{}</code>", esc(&s.query)),
                esc(&s.owner) + if s.shared { " · shared" } else { "" },
                if mine {
                    format!(
                        "<button type=\"button\" class=\"api\" data-method=\"DELETE\" data-url=\"/api/v1/searches/{}\" data-confirm=\"Delete the saved search {}\" data-cli=\"haven searches --delete {}\">Delete</button>",
                        s.id,
                        esc(&s.name),
                        esc(&cli::word(&s.name))
                    )
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    format!(
        "<h2>Saved searches</h2>{}",
        table("saved", &["Name", "Query", "Owner", ""], &rows)
    )
}
