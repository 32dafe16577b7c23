//! Tags and search in the web console, in a real headless Chromium against
//! a real server and two simulated engines (logins off: the roles are
//! checked by `tags.rs`): set a tag on a cluster's page, filter the
//! cluster list by it, run a free-text search, save it, and run it again
//! from the saved list. Every `haven` command the pages showed is checked
//! against the real command line parser.

mod support;

#[path = "support/browser.rs"]
mod browser;

use browser::Browser;
use serde_json::json;
use support::*;

/// The body rows of a table, each as its non-empty cells' text joined by
/// spaces.
fn rows(b: &Browser, table: &str) -> Vec<String> {
    let found = b.script(
        "return [...document.querySelectorAll(arguments[0] + ' tbody tr')]\
           .map(r => [...r.cells].map(c => c.textContent.trim()).filter(t => t).join(' '));",
        json!([table]),
    );
    serde_json::from_value(found).unwrap_or_default()
}

fn commands(b: &Browser) -> Vec<String> {
    let found = b.script(
        "return [...document.querySelectorAll('button[data-cli]')].map(e => e.dataset.cli)\
           .concat(JSON.parse(sessionStorage.getItem('haven-cmdlog') || '[]').map(l => l.split('   # ')[0]));",
        json!([]),
    );
    serde_json::from_value(found).unwrap_or_default()
}

#[test]
fn a_tag_set_in_the_console_filters_the_clusters_and_a_search_is_saved_and_run_again() {
    let Some(b) = Browser::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let alpha = simulated_engine(dir.path(), "alpha", &["--sim-delay", "0"]);
    let beta = simulated_engine(dir.path(), "beta", &["--sim-delay", "0"]);
    let server = ServerProc::start(
        dir.path(),
        &format!(
            "[[cluster]]\nname = \"alpha\"\naddress = \"{}\"\n[[cluster]]\nname = \"beta\"\naddress = \"{}\"\n",
            alpha.addr, beta.addr
        ),
    );
    let base = format!("https://{}", server.addr);
    let mut seen = Vec::new();

    // A tag set on the cluster's page shows there at once.
    b.goto(&format!("{base}/c/alpha"));
    b.wait_text("#main", "Service groups (2)");
    b.wait_text("#tags", "No tags.");
    b.type_into("#newtag", "env=prod");
    b.click("#tagform button[type=submit]");
    b.wait_text("#opresult", "haven tag set alpha env=prod");
    b.wait_text("#tags .taglist", "env=prod");
    seen.extend(commands(&b));
    // And on a group's page, for the search below.
    b.goto(&format!("{base}/c/beta/g/web"));
    b.wait_text("#main", "State per system");
    b.type_into("#newtag", "owner=ann");
    b.click("#tagform button[type=submit]");
    b.wait_text("#tags .taglist", "owner=ann");
    seen.extend(commands(&b));

    // The cluster list, filtered by the tag: alpha alone.
    b.goto(&format!("{base}/clusters"));
    b.wait_text("#main", "Clusters (2)");
    b.type_into("#tagfilter", "env=prod");
    b.click("form.filter button");
    b.wait_text("#main h1", "Clusters (1)");
    let listed = rows(&b, "table.clusters");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(
        listed[0].starts_with("alpha ") && listed[0].ends_with("env=prod"),
        "{listed:?}"
    );
    assert!(b.url().contains("tag=env%3Dprod"), "{}", b.url());

    // A free-text search from the header's box: groups named web, and
    // the one tagged owner=ann by its tag.
    b.type_into("header .find input", "web kind:group\n");
    b.wait_text("#main h1", "(2 found)");
    let found = rows(&b, "table.hits");
    assert_eq!(
        found,
        ["group web alpha", "group web beta owner=ann"],
        "{found:?}"
    );
    b.goto(&format!("{base}/find?q=ann"));
    b.wait_text("#main h1", "(1 found)");
    assert_eq!(rows(&b, "table.hits"), ["group web beta owner=ann"]);
    // A bad query says why, and how to write one.
    b.goto(&format!("{base}/find?q=state%3Abroken"));
    b.wait_text("#queryerror", "no state `broken`");
    assert_eq!(b.count("#findhelp"), 1);

    // Save a search, then run it again from the saved list.
    b.goto(&format!("{base}/find?q=env%3Dprod+kind%3Agroup"));
    b.wait_text("#main h1", "(2 found)");
    b.type_into("#searchname", "prod groups");
    b.click("#searchshared");
    b.click("#savesearch button[type=submit]");
    b.wait_text(
        "#opresult",
        "haven find 'env=prod kind:group' --save 'prod groups' --shared",
    );
    b.wait_text("table.saved", "prod groups");
    seen.extend(commands(&b));
    b.goto(&format!("{base}/find"));
    b.wait_text("table.saved", "prod groups");
    b.click("a.saved");
    b.wait_text("#main h1", "(2 found)");
    // In the cluster's order: its groups as main.cf lists them.
    assert_eq!(
        rows(&b, "table.hits"),
        ["group web alpha", "group db alpha"]
    );
    seen.extend(commands(&b));
    let (status, saved) = server.get("/api/v1/searches");
    assert_eq!(status, 200);
    assert_eq!(saved[0]["query"], "env=prod kind:group");
    assert_eq!(saved[0]["shared"], true);

    // Every command shown (buttons) or logged (forms, with the values
    // typed) is one haven takes.
    seen.sort();
    seen.dedup();
    assert!(
        seen.iter().any(|c| c.starts_with("haven tag rm")),
        "{seen:?}"
    );
    let wrong: Vec<String> = seen.iter().filter_map(|c| haven_accepts(c).err()).collect();
    assert!(wrong.is_empty(), "commands haven refuses: {wrong:#?}");
    drop(server);
    drop((alpha, beta));
}
