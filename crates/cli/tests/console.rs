//! The web console in a real headless Chromium, against a real server and
//! real (simulated) engines, with real OS users logging in through PAM.
//! One fleet, one server and one browser serve every check, in the order
//! an operator would meet them: log in; run group operations through the
//! real confirmation dialog (a dismissed one sends nothing); the summary's
//! counts against the API and the engines; a fault appearing live; the
//! resource and system pages and their operations; administration (server
//! settings, roles, database) and the audit log; dark and light themes
//! and the keyboard at a laptop width; a stopped engine shown as
//! disconnected without a reload; a Guest offered no operation (told which
//! role would allow them) and refused a forged one and the access log;
//! the Server Administrator reading the Guest's failed login and refusals
//! there. Every `haven` command the console showed is checked against the
//! real command line parser.
//! Screenshots of the main pages are kept in
//! `target/tmp/console-screenshots/`.

mod support;

#[path = "support/browser.rs"]
mod browser;
#[path = "support/os_users.rs"]
mod os_users;

use std::time::Duration;

use browser::Browser;
use os_users::OsUsers;
use serde_json::{json, Value};
use support::*;

const MAIN_CF: &str = "include \"types.cf\"\ncluster kappa ( )\nsystem n1 ( )\nsystem n2 ( )\n\
group web (\n SystemList = { n1 = 0, n2 = 1 }\n AutoStartList = { n1 }\n )\n\
 IP web_ip ( Address = \"192.0.2.40\" )\n Application web_app ( StartProgram = \"/bin/true\" )\n\
 web_app requires web_ip\n\
group db (\n SystemList = { n2 = 0, n1 = 1 }\n AutoStartList = { n2 }\n )\n IP db_ip ( Address = \"192.0.2.41\" )\n";

/// The engine of cluster `kappa` ([`MAIN_CF`]), simulated, in `dir/kappa`.
fn kappa_engine(dir: &std::path::Path, delay_ms: &str) -> Engine {
    let cdir = dir.join("kappa");
    std::fs::create_dir_all(&cdir).unwrap();
    std::fs::write(cdir.join("main.cf"), MAIN_CF).unwrap();
    Engine::start(&cdir, &["--simulate", "--sim-delay", delay_ms])
}

fn shots() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Logs in as `user` from the login page, asking for `to`.
fn first_log_in(b: &Browser, base: &str, user: &str, to: &str) {
    b.goto(&format!("{base}{to}"));
    b.wait_for("the login page, with where to go next", || {
        b.url().contains("/login?next=").then_some(())
    });
    b.type_into("#user", user);
    b.type_into("#password", &OsUsers::password(user));
    b.click("#login button[type=submit]");
    b.wait_for(&format!("{to} after login"), || {
        b.url().ends_with(to).then_some(())
    });
}

/// Logs out and in again as `user`, asking for `to`: the login page
/// sends them on there.
fn log_in(b: &Browser, base: &str, user: &str, to: &str) {
    b.click("#logout");
    b.wait_for("the login page", || {
        b.url().contains("/login").then_some(())
    });
    first_log_in(b, base, user, to);
}

/// The text of the row of `system` in the page's state table.
fn state_on(b: &Browser, system: &str) -> String {
    b.script(
        "return [...document.querySelectorAll('table.states tr')]\
           .map(r => r.innerText).find(t => t.trim().startsWith(arguments[0])) || '';",
        json!([system]),
    )
    .as_str()
    .unwrap_or_default()
    .to_string()
}

fn wait_state(b: &Browser, system: &str, state: &str) {
    b.wait_for(&format!("{state} on {system}"), || {
        state_on(b, system).contains(state).then_some(())
    });
}

/// Where the operation button `label` is (in the state table's row of
/// `system`, if given), as XPath.
fn op_button(label: &str, system: Option<&str>) -> String {
    let row = system
        .map(|s| format!("//table[contains(@class,'states')]//tr[td[1][normalize-space()='{s}']]"))
        .unwrap_or_default();
    format!("{row}//button[contains(@class,'op') and normalize-space()='{label}']")
}

/// Clicks an operation button, answers its confirmation (if `confirm`,
/// checking that the dialog shows `cli`) and waits until the result says
/// `cli` completed.
fn run_op(b: &Browser, label: &str, system: Option<&str>, confirm: bool, cli: &str) {
    clear_result(b);
    b.click_xpath(&op_button(label, system));
    if confirm {
        b.wait_for("the confirmation dialog", || dialog_open(b).then_some(()));
        assert_eq!(
            text_of(b, "#confirmcli"),
            cli,
            "the dialog shows the command"
        );
        b.click("#confirmyes");
    }
    let result = b.wait_text("#opresult", "— completed");
    assert!(result.contains(&format!("{cli} — completed")), "{result}");
}

/// The text of `css` now, read in one step (a live refresh may replace
/// the element between a find and a read).
fn text_of(b: &Browser, css: &str) -> String {
    b.script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';",
        json!([css]),
    )
    .as_str()
    .unwrap_or_default()
    .to_string()
}

/// Takes the last operation's result off the page.
fn clear_result(b: &Browser) {
    b.script(
        "const r = document.getElementById('opresult'); if (r) r.remove();",
        json!([]),
    );
}

/// The rows of a table, each as its cells' texts joined by one blank.
fn rows(b: &Browser, table: &str) -> Vec<String> {
    let found = b.script(
        "return [...document.querySelectorAll(arguments[0] + ' tr')]\
           .map(r => [...r.cells].map(c => c.textContent.trim()).join(' '));",
        json!([table]),
    );
    serde_json::from_value(found).unwrap_or_default()
}

fn has_row(b: &Browser, table: &str, needle: &str) -> bool {
    rows(b, table).iter().any(|r| r.contains(needle))
}

fn dialog_open(b: &Browser) -> bool {
    b.script("return document.getElementById('confirm').open;", json!([])) == json!(true)
}

/// How many operations the audit shows the logged-in user (through the
/// API, with the page's session).
fn audited(b: &Browser) -> usize {
    b.script(
        "return fetch('/api/v1/operations?limit=10000').then(r => r.json()).then(j => j.length);",
        json!([]),
    )
    .as_u64()
    .expect("a count") as usize
}

/// The `haven` commands the page's buttons would log.
fn hints(b: &Browser) -> Vec<String> {
    let found = b.script(
        "return [...document.querySelectorAll('button[data-cli]')].map(e => e.dataset.cli);",
        json!([]),
    );
    serde_json::from_value(found).unwrap_or_default()
}

/// Counts by state, as `{kind: {state: n}}`.
type Counts = std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>>;

/// The summary page's cards.
fn console_counts(b: &Browser) -> Counts {
    let found = b.script(
        "const out = {};\
         for (const card of document.querySelectorAll('.card[data-kind]')) {\
           const kind = card.dataset.kind; out[kind] = {};\
           for (const c of card.querySelectorAll('[data-state]'))\
             out[kind][c.dataset.state] = Number(c.querySelector('.n').textContent);\
         }\
         return out;",
        json!([]),
    );
    serde_json::from_value(found).unwrap()
}

/// The same counts from the API's summary.
fn api_counts(b: &Browser) -> Counts {
    let summary = b.script(
        "return fetch('/api/v1/summary').then(r => r.json());",
        json!([]),
    );
    let map = |v: &Value| serde_json::from_value(v.clone()).unwrap();
    [
        ("clusters", map(&summary["links"])),
        ("systems", map(&summary["systems"])),
        ("groups", map(&summary["group_states"])),
        ("resources", map(&summary["resource_states"])),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The same counts from the engines themselves (all connected).
fn engine_counts(engines: &[&Engine]) -> Counts {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut counts = Counts::new();
    let mut add = |kind: &str, state: String| {
        *counts
            .entry(kind.into())
            .or_default()
            .entry(state)
            .or_default() += 1;
    };
    for engine in engines {
        let snap = rt.block_on(async { engine.client().await.snapshot().await.unwrap() });
        add("clusters", "connected".into());
        for s in &snap.systems {
            add("systems", s.state.to_string());
        }
        for g in &snap.groups {
            for (_, st) in &g.states {
                add("groups", st.to_string());
            }
            for r in &g.resources {
                for (_, st) in &r.states {
                    add("resources", st.to_string());
                }
            }
        }
    }
    counts
}

fn sim_fault(engine: &Engine, resource: &str, system: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut client = engine.client().await;
        let result = client
            .command(haven_model::Operation::SimFaultResource {
                resource: resource.into(),
                system: system.into(),
            })
            .await
            .unwrap();
        assert!(result.is_accepted(), "{result:?}");
    });
}

fn background(b: &Browser) -> String {
    b.script(
        "return getComputedStyle(document.body).backgroundColor;",
        json!([]),
    )
    .as_str()
    .unwrap_or_default()
    .to_string()
}

fn focused_text(b: &Browser) -> String {
    b.script(
        "const e = document.activeElement; return e ? e.textContent.trim() : '';",
        json!([]),
    )
    .as_str()
    .unwrap_or_default()
    .to_string()
}

/// One browser on one server, shared by every check; the `haven`
/// commands the pages offered, checked at the end.
struct Console {
    b: Browser,
    base: String,
    shots: std::path::PathBuf,
    hints: std::cell::RefCell<Vec<String>>,
}

impl Console {
    /// Opens `path` and waits until `#main` shows `text`.
    fn open(&self, path: &str, text: &str) {
        self.b.goto(&format!("{}{path}", self.base));
        self.b.wait_text("#main", text);
    }

    fn screenshot(&self, name: &str) {
        self.b.screenshot_to(&self.shots.join(name));
    }

    /// Remembers the commands the page's buttons would log.
    fn note_hints(&self) {
        self.hints.borrow_mut().extend(hints(&self.b));
    }
}

#[test]
fn the_console_shows_the_fleet_live_runs_operations_and_offers_guests_nothing() {
    let Some(users) = OsUsers::create(&["hcop", "hcgu"]) else {
        return;
    };
    let Some(b) = Browser::start() else { return };
    let (op, guest) = (users.names[0].clone(), users.names[1].clone());
    let dir = tempfile::tempdir().unwrap();
    let kappa = kappa_engine(dir.path(), "300");
    let mut lambda = simulated_engine(dir.path(), "lambda", &["--sim-delay", "300"]);
    // The Guest sees kappa only: their audit log leaves lambda out.
    let server = ServerProc::start(
        dir.path(),
        &format!(
            "[auth]\nenabled = true\npam_service = \"{}\"\nserver_admins = [\"{op}\"]\n\
             [[auth.grant]]\nuser = \"{op}\"\nrole = \"cluster_administrator\"\n\
             [[auth.grant]]\nuser = \"{guest}\"\nrole = \"guest\"\ncluster = \"kappa\"\n\
             [[cluster]]\nname = \"kappa\"\naddress = \"{}\"\n\
             [[cluster]]\nname = \"lambda\"\naddress = \"{}\"\n",
            users.service, kappa.addr, lambda.addr
        ),
    );
    let c = Console {
        b,
        base: format!("https://{}", server.addr),
        shots: shots(),
        hints: Default::default(),
    };

    an_operator_logs_in_and_lands_where_they_were_going(&c, &op, &guest);
    group_operations_run_through_the_real_confirmation(&c);
    the_summary_counts_the_fleet_and_shows_a_fault_live(&c, &kappa, &lambda);
    resource_and_system_pages_run_their_operations(&c);
    administration_shows_the_settings_and_logs_each_command(&c, &users, dir.path());
    the_audit_log_shows_who_what_when_and_outcome_by_pages(&c, &op);
    themes_switch_and_the_keyboard_runs_an_operation_at_laptop_width(&c);
    a_stopped_engine_shows_as_disconnected_without_a_reload(&c, &mut lambda);
    every_command_shown_is_one_haven_takes(&c);
    a_guest_is_offered_nothing_told_why_and_refused(&c, &guest);
    the_access_log_shows_the_guests_failed_login_and_refusals(&c, &op, &guest);
    drop(server);
}

fn an_operator_logs_in_and_lands_where_they_were_going(c: &Console, op: &str, guest: &str) {
    let b = &c.b;
    b.goto(&format!("{}/c/kappa", c.base));
    b.wait_for("the login page", || {
        b.url().contains("/login?next=").then_some(())
    });
    // A wrong password (tried on the Guest's account: the access log
    // shows it at the end) is refused on the page, with the reason.
    b.type_into("#user", guest);
    b.type_into("#password", "wrong");
    b.click("#login button[type=submit]");
    b.wait_text("#loginerror", "wrong user name or password");
    b.script("document.getElementById('user').value = '';", json!([]));
    b.type_into("#user", op);
    b.type_into("#password", &OsUsers::password(op));
    b.click("#login button[type=submit]");
    b.wait_for("the cluster page", || {
        b.url().ends_with("/c/kappa").then_some(())
    });
    b.wait_text("#main", "Service groups (2)");
    c.screenshot("cluster.png");
    c.note_hints();
}

/// Switch (to a picked system), freeze and unfreeze, offline everywhere
/// (dismissed: nothing sent; accepted: done), online on one system.
fn group_operations_run_through_the_real_confirmation(c: &Console) {
    let b = &c.b;
    c.open("/c/kappa/g/web", "State per system");
    wait_state(b, "n1", "ONLINE");
    c.note_hints();
    b.script(
        "document.getElementById('switchto').value = 'n2';",
        json!([]),
    );
    b.click("button.op[data-pick=switchto]");
    b.wait_for("the confirmation dialog", || dialog_open(b).then_some(()));
    assert_eq!(text_of(b, "#confirmtext"), "Switch web (to n2)?");
    assert_eq!(
        text_of(b, "#confirmcli"),
        "haven group switch kappa/web --wait --to n2"
    );
    b.click("#confirmyes");
    let result = b.wait_text("#opresult", "completed");
    assert!(
        result.contains("haven group switch kappa/web --wait --to n2"),
        "{result}"
    );
    // The command log teaches the CLI.
    b.wait_text("#cmdlog", "haven group switch kappa/web --wait --to n2");
    wait_state(b, "n2", "ONLINE");
    c.screenshot("group.png");

    // Freeze and unfreeze (not disruptive: no question asked).
    run_op(
        b,
        "Freeze",
        None,
        false,
        "haven group freeze kappa/web --wait",
    );
    b.wait_text("#main", "frozen (temporary)");
    run_op(
        b,
        "Unfreeze",
        None,
        false,
        "haven group unfreeze kappa/web --wait",
    );
    b.wait_for("web unfrozen, live", || {
        (!text_of(b, "#main").contains("frozen")).then_some(())
    });

    // Offline everywhere is asked first: dismissed, nothing is sent and
    // nothing changes; accepted, it runs.
    let before = audited(b);
    clear_result(b);
    b.click_xpath(&op_button("Offline everywhere", None));
    b.wait_for("the confirmation dialog", || dialog_open(b).then_some(()));
    assert_eq!(
        text_of(b, "#confirmtext"),
        "Take web offline on every system?"
    );
    b.click("#confirmno");
    b.wait_for("the dialog closed", || (!dialog_open(b)).then_some(()));
    // A sent operation would be audited at once; give it time to show.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(audited(b), before, "a dismissed operation sends nothing");
    assert_eq!(b.count("#opresult"), 0, "nothing ran");
    assert!(state_on(b, "n2").contains("ONLINE"), "web still online");
    run_op(
        b,
        "Offline everywhere",
        None,
        true,
        "haven group offline kappa/web --wait",
    );
    assert_eq!(audited(b), before + 1);
    wait_state(b, "n1", "OFFLINE");
    wait_state(b, "n2", "OFFLINE");
    // Online on one system, from its row.
    run_op(
        b,
        "Online here",
        Some("n2"),
        false,
        "haven group online kappa/web --system n2 --wait",
    );
    wait_state(b, "n2", "ONLINE");
    c.note_hints();
}

/// The cards' per-state counts equal the API's and the engines' own;
/// a fault appears without a reload.
fn the_summary_counts_the_fleet_and_shows_a_fault_live(
    c: &Console,
    kappa: &Engine,
    lambda: &Engine,
) {
    let b = &c.b;
    c.open("/", "Needs attention (0)");
    b.wait_text("#livestate", "live");
    b.wait_for(
        "the summary's counts to match the API and the engines",
        || {
            let shown = console_counts(b);
            (shown == api_counts(b) && shown == engine_counts(&[kappa, lambda])).then_some(())
        },
    );
    let shown = console_counts(b);
    assert_eq!(shown["clusters"]["connected"], 2, "{shown:?}");
    assert_eq!(shown["systems"]["RUNNING"], 4, "{shown:?}");
    // 2 groups x 2 systems in each cluster: one of each online.
    assert_eq!(shown["groups"]["ONLINE"], 4, "{shown:?}");
    assert_eq!(shown["groups"]["OFFLINE"], 4, "{shown:?}");

    b.script("window.__still_here = true;", json!([]));
    sim_fault(kappa, "web_ip", "n2");
    b.wait_text("#main", "FAULTED RESOURCE");
    assert_eq!(
        b.script("return window.__still_here === true;", json!([])),
        json!(true),
        "the page updated in place, not by reloading"
    );
    c.screenshot("summary.png");
}

/// The resource page probes and clears the fault; the system page (of
/// the other cluster) freezes, asking first, and unfreezes.
fn resource_and_system_pages_run_their_operations(c: &Console) {
    let b = &c.b;
    c.open("/c/kappa/r/web_ip", "Resource web_ip");
    wait_state(b, "n2", "FAULTED");
    c.screenshot("resource.png");
    c.note_hints();
    run_op(
        b,
        "Probe",
        Some("n1"),
        false,
        "haven resource probe kappa/web_ip --system n1 --wait",
    );
    run_op(
        b,
        "Clear",
        Some("n2"),
        false,
        "haven resource clear kappa/web_ip --system n2 --wait",
    );
    b.wait_for("web_ip cleared on n2, live", || {
        (!state_on(b, "n2").contains("FAULTED")).then_some(())
    });

    c.open("/c/lambda/s/n1", "Groups on n1");
    c.screenshot("system.png");
    c.note_hints();
    run_op(
        b,
        "Freeze",
        None,
        true,
        "haven system freeze lambda/n1 --wait",
    );
    b.wait_text("#main", "frozen");
    run_op(
        b,
        "Unfreeze",
        None,
        false,
        "haven system unfreeze lambda/n1 --wait",
    );
    b.wait_for("n1 unfrozen, live", || {
        (!text_of(b, "#main").contains("frozen")).then_some(())
    });
}

/// The effective settings (no secret among them); clusters, roles and
/// the database managed through the page, each logging its command.
fn administration_shows_the_settings_and_logs_each_command(
    c: &Console,
    users: &OsUsers,
    dir: &std::path::Path,
) {
    let b = &c.b;
    c.open("/admin", "Server settings");
    for expected in [
        format!("Data directory {}", dir.join("data").display()),
        format!(
            "Database the SQLite file {}",
            dir.join("data/haven.db").display()
        ),
        format!(
            "Logins on: local accounts through the PAM service {}",
            users.service
        ),
        format!("Server administrators {}", users.names[0]),
        "Backups every 24 hours".into(),
        "Console and API https://127.0.0.1:0".into(),
    ] {
        assert!(
            has_row(b, "table.settings", &expected),
            "{expected:?} in {:#?}",
            rows(b, "table.settings")
        );
    }
    c.screenshot("admin.png");
    c.note_hints();

    // A grant made and revoked.
    b.script(
        "const f = document.querySelector('form[data-url=\"/api/v1/grants\"]');\
         f.role.value = 'group_operator'; f.user.value = 'hcnobody'; f.cluster.value = 'lambda';",
        json!([]),
    );
    b.click_xpath("//form[@data-url='/api/v1/grants']//button");
    b.wait_text(
        "#cmdlog",
        "haven role grant group_operator --user hcnobody --cluster lambda # ok",
    );
    b.wait_for("the new grant, live", || {
        has_row(b, "table.grants", "user hcnobody Group Operator").then_some(())
    });
    b.click_xpath("//table[contains(@class,'grants')]//tr[td[1]='user hcnobody']//button");
    b.wait_for("the confirmation dialog", || dialog_open(b).then_some(()));
    b.click("#confirmyes");
    b.wait_text("#cmdlog", "haven role revoke");
    b.wait_for("the grant revoked, live", || {
        (!text_of(b, "table.grants").contains("hcnobody")).then_some(())
    });

    // A join token; a direct connection added (its engine password goes
    // to the API, never into the page or the log), then removed.
    b.script(
        "document.querySelector('form[data-url=\"/api/v1/tokens\"]').cluster.value = 'lambda';",
        json!([]),
    );
    b.click_xpath("//form[@data-url='/api/v1/tokens']//button");
    b.wait_text("#cmdlog", "haven cluster token --cluster lambda # ok");
    b.script(
        "const f = document.querySelector('form[data-url=\"/api/v1/clusters\"]');\
         f.name.value = 'mu'; f.address.value = '127.0.0.1:9'; f.user.value = 'admin'; f.password.value = 'enginesecret';",
        json!([]),
    );
    b.click_xpath("//form[@data-url='/api/v1/clusters']//button");
    b.wait_text(
        "#cmdlog",
        "haven cluster add mu 127.0.0.1:9 --user admin --password-stdin # ok",
    );
    assert!(
        !text_of(b, "body").contains("enginesecret"),
        "no engine password on the page"
    );
    b.wait_for("the new cluster, live", || {
        has_row(b, "table.admin-clusters", "mu").then_some(())
    });
    b.click_xpath("//table[contains(@class,'admin-clusters')]//tr[td[1]='mu']//button");
    b.wait_for("the confirmation dialog", || dialog_open(b).then_some(()));
    b.click("#confirmyes");
    b.wait_text("#cmdlog", "haven cluster remove mu # ok");

    // A backup, and a prune (asked first).
    b.click_xpath("//button[@data-url='/api/v1/db/backups']");
    b.wait_text("#cmdlog", "haven backup # ok");
    b.click_xpath("//form[@data-url='/api/v1/db/prune']//button");
    b.wait_for("the confirmation dialog", || dialog_open(b).then_some(()));
    assert_eq!(text_of(b, "#confirmcli"), "haven db prune --older-than 90d");
    b.click("#confirmyes");
    b.wait_text("#cmdlog", "haven db prune --older-than 90d # ok");
}

fn the_audit_log_shows_who_what_when_and_outcome_by_pages(c: &Console, op: &str) {
    let b = &c.b;
    c.open("/audit", "Audit log");
    for expected in [
        format!("{op} haven group switch kappa/web --to n2 kappa COMPLETED"),
        format!("{op} haven system freeze lambda/n1 lambda COMPLETED"),
    ] {
        assert!(
            has_row(b, "table.audit", &expected),
            "{expected:?} in {:#?}",
            rows(b, "table.audit")
        );
    }
    c.screenshot("audit.png");
    // Newest first, two a page: the system page's two operations, then
    // the resource page's two.
    c.open("/audit?per=2", "Page 1.");
    assert_eq!(b.count("table.audit tbody tr"), 2);
    assert!(has_row(b, "table.audit", "haven system unfreeze lambda/n1"));
    assert!(has_row(b, "table.audit", "haven system freeze lambda/n1"));
    b.click("a[rel=next]");
    b.wait_text("#main", "Page 2.");
    assert_eq!(b.count("table.audit tbody tr"), 2);
    assert!(has_row(
        b,
        "table.audit",
        "haven resource clear kappa/web_ip --system n2"
    ));
    assert!(has_row(
        b,
        "table.audit",
        "haven resource probe kappa/web_ip --system n1"
    ));
}

/// At 1366x768: the theme toggle changes the computed background and is
/// kept over a reload; nothing scrolls sideways; from the top of the
/// page, Tab reaches an operation, Enter asks, Escape cancels (nothing
/// sent), Enter again, Tab to "Go ahead", Enter runs it.
fn themes_switch_and_the_keyboard_runs_an_operation_at_laptop_width(c: &Console) {
    let b = &c.b;
    b.set_window(1366, 768);
    c.open("/c/kappa/g/web", "State per system");
    let light = background(b);
    b.click("#theme");
    let dark = background(b);
    assert_ne!(light, dark, "the theme toggle changes the background");
    c.open("/c/kappa/g/web", "State per system");
    assert_eq!(background(b), dark, "the choice stays after a reload");
    c.screenshot("group-dark.png");
    b.click("#theme");
    assert_eq!(background(b), light);
    assert_eq!(
        b.script(
            "return document.documentElement.scrollWidth <= window.innerWidth;",
            json!([])
        ),
        json!(true),
        "no sideways scrolling at 1366 pixels"
    );

    b.script("document.activeElement.blur();", json!([]));
    let mut tabs = 0;
    while focused_text(b) != "Flush" {
        tabs += 1;
        assert!(tabs < 60, "Tab never reached the Flush button");
        b.press(&[Browser::TAB]);
    }
    let before = audited(b);
    b.press(&[Browser::ENTER]);
    b.wait_for("the confirmation dialog", || dialog_open(b).then_some(()));
    assert_eq!(focused_text(b), "Cancel", "a question starts on Cancel");
    b.press(&[Browser::ESCAPE]);
    b.wait_for("the dialog closed", || (!dialog_open(b)).then_some(()));
    assert_eq!(focused_text(b), "Flush", "the focus goes back");
    assert_eq!(audited(b), before, "Escape sends nothing");
    b.press(&[Browser::ENTER]);
    b.wait_for("the confirmation dialog", || dialog_open(b).then_some(()));
    b.press(&[Browser::TAB]);
    assert_eq!(focused_text(b), "Go ahead");
    b.press(&[Browser::ENTER]);
    b.wait_text(
        "#opresult",
        "haven group flush kappa/web --wait — completed",
    );
    assert_eq!(audited(b), before + 1);
}

/// The engine stopped by pid while its cluster page is open: banner,
/// "disconnected", greyed "last known" states and no operations, all
/// without a reload; the summary and the cluster list say so too.
fn a_stopped_engine_shows_as_disconnected_without_a_reload(c: &Console, lambda: &mut Engine) {
    let b = &c.b;
    c.open("/c/lambda", "Service groups (2)");
    b.wait_text("#livestate", "live");
    b.script("window.__still_here = true;", json!([]));
    lambda.proc.stop(Duration::from_secs(10));
    b.wait_text("#main", "This cluster is disconnected");
    b.wait_text("#main", "Service groups (2) — last known, not live");
    assert!(
        text_of(b, "p.link").contains("Link disconnected"),
        "{}",
        text_of(b, "p.link")
    );
    assert_eq!(b.count("table.matrix.stale"), 1, "its states are greyed");
    b.wait_text("#main", "No operations while the cluster is disconnected");
    assert_eq!(
        b.count("button.op"),
        0,
        "nothing offered that would be refused"
    );
    assert_eq!(
        b.script("return window.__still_here === true;", json!([])),
        json!(true),
        "the page updated in place, not by reloading"
    );
    c.screenshot("cluster-disconnected.png");
    c.open("/", "DISCONNECTED CLUSTER");
    b.wait_text("#main", "1 of 2 clusters not connected");
    c.open("/clusters", "Clusters (2)");
    assert!(
        has_row(b, "table.clusters", "lambda disconnected direct"),
        "{:#?}",
        rows(b, "table.clusters")
    );
}

/// Every command the pages offered or the command log recorded is one
/// the real `haven` argument parser takes.
fn every_command_shown_is_one_haven_takes(c: &Console) {
    let logged = c.b.script(
        "return JSON.parse(sessionStorage.getItem('haven-cmdlog') || '[]');",
        json!([]),
    );
    let logged: Vec<String> = serde_json::from_value(logged).unwrap();
    assert!(logged.len() >= 12, "{logged:?}");
    let mut all = c.hints.borrow().clone();
    all.extend(
        logged
            .iter()
            .map(|l| l.split("   # ").next().unwrap_or_default().to_string()),
    );
    all.sort();
    all.dedup();
    let wrong: Vec<String> = all.iter().filter_map(|h| haven_accepts(h).err()).collect();
    assert!(wrong.is_empty(), "commands haven refuses: {wrong:#?}");
}

/// A Guest (on kappa only): no operation buttons but a note naming the
/// roles that would allow them; a forged request refused; an audit log
/// with kappa's operations (their refused one included), none of
/// lambda's; no administration, and the access log refused with the
/// API's own answer.
fn a_guest_is_offered_nothing_told_why_and_refused(c: &Console, guest: &str) {
    let b = &c.b;
    log_in(b, &c.base, guest, "/c/kappa/g/web");
    b.wait_text("#main", "State per system");
    assert_eq!(b.count("button.op"), 0, "no operation buttons for a Guest");
    let note = text_of(b, "#main .withheld");
    for expected in [
        "Not offered to you:",
        "Switch, Offline everywhere, Freeze, Clear faults, Flush",
        "need Group Operator or higher",
        "Freeze persistently, Disable need Group Administrator or higher",
    ] {
        assert!(note.contains(expected), "{expected:?} in {note}");
    }
    c.open(
        "/c/kappa",
        "Freeze, Freeze and evacuate need Cluster Operator or higher",
    );
    // WebDriver waits for a returned promise.
    let status = b.script(
        "return fetch('/api/v1/clusters/kappa/operations', {method: 'POST', \
           headers: {'content-type': 'application/json', 'x-haven-csrf': '1'}, \
           body: JSON.stringify({op: 'group_offline', group: 'web'})}) \
         .then(r => r.json().then(j => [r.status, j.code || '']));",
        json!([]),
    );
    assert_eq!(status, json!([403, "permission_denied"]));
    c.open("/audit", "haven group switch kappa/web --to n2");
    let audit = rows(b, "table.audit");
    assert!(!audit.iter().any(|r| r.contains("lambda")), "{audit:#?}");
    assert!(
        audit.iter().any(|r| r.contains(&format!(
            "{guest} haven group offline kappa/web kappa REFUSED"
        ))),
        "their own refused request is audited: {audit:#?}"
    );
    c.open("/admin", "Only a Server Administrator");
    c.open("/access", "is not a Server Administrator");
    // One after the other, so the access log has them in this order.
    let refused = b.script(
        "return fetch('/access').then(r => r.status).then(page => \
           fetch('/api/v1/access-log').then(r => r.json().then(j => [page, [r.status, j.error.message]])));",
        json!([]),
    );
    assert_eq!(refused[0], json!(403), "the page is refused: {refused}");
    assert_eq!(refused[1][0], json!(403), "as the API is: {refused}");
    assert_eq!(
        json!(text_of(b, "#main p.error")),
        refused[1][1],
        "with the API's words"
    );
}

/// The Server Administrator, from the Administration page, reads the
/// access log; filtered to the Guest's refusals (through the page's
/// form), it has their failed login and the refused access pages (the
/// console's and the API's alike), newest first, and by pages.
fn the_access_log_shows_the_guests_failed_login_and_refusals(c: &Console, op: &str, guest: &str) {
    let b = &c.b;
    log_in(b, &c.base, op, "/admin");
    b.click("a[href='/access']");
    b.wait_text("#main", "Logins, logouts, refusals");
    assert!(
        has_row(b, "table.access", &format!("{op} 127.0.0.1 login")),
        "{:#?}",
        rows(b, "table.access")
    );
    c.screenshot("access.png");

    b.script(
        "const f = document.querySelector('form.filter'); f.user.value = arguments[0]; f.outcome.value = 'denied';",
        json!([guest]),
    );
    b.click("form.filter button");
    b.wait_text("#main", "--outcome denied");
    let command = text_of(b, "#main code.shell");
    assert_eq!(
        command,
        format!("haven audit --access --user {guest} --outcome denied")
    );
    haven_accepts(&command).unwrap();
    let denied = rows(b, "table.access tbody");
    assert!(
        denied
            .iter()
            .all(|r| r.contains(&format!(" {guest} ")) && r.contains("DENIED")),
        "only the Guest's refusals: {denied:#?}"
    );
    assert!(
        denied[0].contains(&format!(
            "{guest} 127.0.0.1 read GET /api/v1/access-log DENIED {guest} is not a Server Administrator"
        )),
        "newest first: {denied:#?}"
    );
    assert!(
        denied
            .iter()
            .any(|r| r.contains(&format!("{guest} 127.0.0.1 read GET /access DENIED"))),
        "the console's refusal too: {denied:#?}"
    );
    assert!(
        denied
            .last()
            .is_some_and(|r| r.contains(&format!("{guest} 127.0.0.1 login"))),
        "their failed login, the oldest: {denied:#?}"
    );
    // One a page: the second page is the second newest.
    c.open(
        &format!("/access?user={guest}&outcome=denied&per=1&page=1"),
        "Page 2.",
    );
    assert_eq!(rows(b, "table.access tbody"), denied[1..2]);
    assert_eq!(b.count("a[rel=prev]") + b.count("a[rel=next]"), 2);
}

/// A fault raises alerts; an operator sees them on `/alerts` (the menu
/// counts them), acknowledges one through the real confirmation and
/// sees who did; the cluster's page lists them; the Server
/// Administrator's delivery log is there. A Guest sees the alerts but no
/// Acknowledge button (told which role would allow it), and a forged
/// acknowledgement is refused. Every command shown is one `haven` takes.
#[test]
fn alerts_are_listed_acknowledged_in_the_console_and_refused_to_a_guest() {
    let Some(users) = OsUsers::create(&["hcaop", "hcagu"]) else {
        return;
    };
    let Some(b) = Browser::start() else { return };
    let (op, guest) = (users.names[0].clone(), users.names[1].clone());
    let dir = tempfile::tempdir().unwrap();
    let kappa = kappa_engine(dir.path(), "100");
    let server = ServerProc::start(
        dir.path(),
        &format!(
            "[auth]\nenabled = true\npam_service = \"{}\"\nserver_admins = [\"{op}\"]\n\
             [[auth.grant]]\nuser = \"{op}\"\nrole = \"cluster_operator\"\n\
             [[auth.grant]]\nuser = \"{guest}\"\nrole = \"guest\"\ncluster = \"kappa\"\n\
             [alerts]\nflap_changes = 0\n\
             [[alerts.channel]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/nowhere\"\n\
             secret = \"0123456789abcdef-console\"\nretry_backoff_ms = 100\n\
             [[alerts.policy]]\nname = \"all\"\nchannels = [\"hook\"]\n\
             [[cluster]]\nname = \"kappa\"\naddress = \"{}\"\n",
            users.service, kappa.addr
        ),
    );
    let c = Console {
        b,
        base: format!("https://{}", server.addr),
        shots: shots(),
        hints: Default::default(),
    };
    let b = &c.b;
    first_log_in(b, &c.base, &op, "/c/kappa/g/web");
    b.wait_text("#main", "State per system");
    wait_state(b, "n1", "ONLINE");
    // Nothing to see yet, and the menu counts nothing.
    c.open("/alerts", "No open alert matches.");
    assert_eq!(b.count("#navalerts .count"), 0);

    sim_fault(&kappa, "web_ip", "n1");
    c.open("/alerts", "group web faulted on n1");
    let alert = |kind: &str| {
        let all = b.script(
            "return fetch('/api/v1/alerts?open=true').then(r => r.json());",
            json!([]),
        );
        all.as_array()
            .unwrap()
            .iter()
            .find(|a| a["kind"] == kind)
            .cloned()
            .unwrap_or_else(|| panic!("an open {kind} alert in {all}"))
    };
    let group_alert = alert("faulted_group");
    let resource_alert = alert("faulted_resource");
    let id = group_alert["id"].as_i64().unwrap();
    let row_of = |id: i64| {
        rows(b, "table.alerts tbody")
            .into_iter()
            .find(|r| r.starts_with(&format!("{id} ")))
            .unwrap_or_default()
    };
    let row = row_of(id);
    assert!(
        row.starts_with(&format!(
            "{id} CRITICAL kappa web on n1 group web faulted on n1 "
        )),
        "{row}"
    );
    assert!(
        row.contains("OPEN") && row.ends_with("Acknowledge"),
        "{row}"
    );
    // The menu's count is the open alerts nobody acknowledged.
    let open_now = b
        .script(
            "return fetch('/api/v1/alerts?open=true').then(r => r.json()).then(j => j.filter(a => !a.acknowledged_by).length);",
            json!([]),
        )
        .as_u64()
        .unwrap();
    c.open("/alerts", "group web faulted on n1");
    assert_eq!(text_of(b, "#navalerts .count"), open_now.to_string());
    c.screenshot("alerts.png");
    c.note_hints();
    assert_eq!(text_of(b, "#main code.shell"), "haven alerts");

    // Acknowledge, through the real confirmation (which shows the command).
    clear_result(b);
    b.click_xpath(&format!(
        "//table[contains(@class,'alerts')]//tr[td[1][normalize-space()='{id}']]//button[contains(@class,'ack')]"
    ));
    b.wait_for("the confirmation dialog", || dialog_open(b).then_some(()));
    assert_eq!(text_of(b, "#confirmcli"), format!("haven alert ack {id}"));
    b.click("#confirmyes");
    b.wait_text("#opresult", "✔ haven alert ack");
    b.wait_for("who acknowledged, on the page", || {
        row_of(id).contains(&format!("by {op}")).then_some(())
    });
    assert!(!row_of(id).contains("Acknowledge"), "{}", row_of(id));
    let stored = alert("faulted_group");
    assert_eq!(stored["acknowledged_by"], json!(op));

    // Filters: all alerts, critical only, with the command they stand for.
    c.open(
        "/alerts?show=all&severity=critical&cluster=kappa",
        "Open alerts first",
    );
    assert_eq!(
        text_of(b, "#main code.shell"),
        "haven alerts --all --cluster kappa --severity critical"
    );
    assert!(
        !rows(b, "table.alerts tbody")
            .iter()
            .any(|r| r.contains("WARNING") || r.contains("INFO")),
        "{:#?}",
        rows(b, "table.alerts tbody")
    );
    c.note_hints();

    // The delivery log, and a test notification from the form.
    b.wait_for("the webhook's failed attempts in the delivery log", || {
        c.open("/alerts", "Delivery log");
        has_row(b, "table.deliveries", &format!("{id} hook raised")).then_some(())
    });
    clear_result(b);
    b.click("form.api[data-url='/api/v1/alerts/test'] button");
    let result = b.wait_for("the test notification's answer", || {
        let r = text_of(b, "#opresult");
        (!r.starts_with('⟳') && !r.is_empty()).then_some(r)
    });
    assert!(result.starts_with("✔ haven alert test hook"), "{result}");
    c.note_hints();

    // The cluster's page lists its open alerts.
    c.open("/c/kappa", "Open alerts (");
    assert!(
        has_row(
            b,
            "table.alerts",
            "resource web_ip of group web faulted on n1"
        ),
        "{:#?}",
        rows(b, "table.alerts")
    );

    // A Guest: the alerts, but no button, a note, and a forged ack refused.
    log_in(b, &c.base, &guest, "/alerts");
    b.wait_text("#main", "group web faulted on n1");
    assert_eq!(b.count("button.ack"), 0, "no Acknowledge for a Guest");
    assert!(
        text_of(b, "#main .withheld").contains("Acknowledge needs Group Operator or higher"),
        "{}",
        text_of(b, "#main")
    );
    assert!(row_of(id).contains(&format!("by {op}")), "{}", row_of(id));
    assert_eq!(b.count("#deliveries"), 0, "the delivery log is the admins'");
    let other = resource_alert["id"].as_i64().unwrap();
    let refused = b.script(
        "return fetch('/api/v1/alerts/' + arguments[0] + '/ack', {method: 'POST', headers: {'x-haven-csrf': '1'}}) \
         .then(r => r.json().then(j => [r.status, j.error ? j.error.code : '']));",
        json!([other]),
    );
    assert_eq!(refused, json!([403, "permission_denied"]));
    assert!(alert("faulted_resource")["acknowledged_by"].is_null());
    // Without the CSRF header, not even that far.
    let no_csrf = b.script(
        "return fetch('/api/v1/alerts/' + arguments[0] + '/ack', {method: 'POST'}).then(r => r.status);",
        json!([other]),
    );
    assert_ne!(no_csrf, json!(200));

    let wrong: Vec<String> = {
        let mut all = c.hints.borrow().clone();
        all.sort();
        all.dedup();
        assert!(
            all.iter().any(|h| h.starts_with("haven alert ack")),
            "{all:#?}"
        );
        all.iter().filter_map(|h| haven_accepts(h).err()).collect()
    };
    assert!(wrong.is_empty(), "commands haven refuses: {wrong:#?}");
    for shell in [
        "haven alerts",
        "haven alerts --all --cluster kappa --severity critical",
        "haven alert deliveries",
        "haven alert test hook",
    ] {
        haven_accepts(shell).unwrap();
    }
    drop(server);
}

/// The reports page in the browser: a period picked in its form, the
/// fleet's figures, a bar per cluster and a timeline per group (inline
/// SVG), the table, the CSV link (the API's own CSV for that period), the
/// `haven` command, and a bad period refused with the reason. (Logins
/// off: the page is the same for everyone who may see the groups.)
#[test]
fn the_reports_page_draws_the_availability_chart_and_table_for_a_period() {
    let Some(b) = Browser::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let kappa = kappa_engine(dir.path(), "100");
    let server = ServerProc::start(
        dir.path(),
        &format!(
            "[[cluster]]\nname = \"kappa\"\naddress = \"{}\"\n",
            kappa.addr
        ),
    );
    server.wait_web_online("kappa");
    sim_fault(&kappa, "web_ip", "n1");
    wait_until("the failover in the report", || {
        let (_, r) = server.get("/api/v1/reports/availability?from=1h");
        (r["overall"]["failovers"] == 1).then_some(())
    });
    let base = format!("https://{}", server.addr);
    b.goto(&format!("{base}/reports?from=1h"));
    b.wait_text("#main", "By group");
    assert_eq!(b.count("svg.chart.bars"), 1);
    assert_eq!(b.count("svg.chart.bars g.bar[data-cluster=kappa]"), 1);
    let groups = rows(&b, "table.availability tbody");
    assert_eq!(groups.len(), 2, "{groups:#?}");
    assert!(
        groups.iter().any(|r| r.starts_with("kappa web "))
            && groups.iter().any(|r| r.starts_with("kappa db ")),
        "{groups:#?}"
    );
    assert_eq!(b.count("table.availability svg.chart.timeline"), 2);
    let failovers = b.script(
        "return [...document.querySelectorAll('table.availability tbody tr')]\
           .filter(r => r.cells[1].textContent.trim() === 'web').map(r => r.cells[7].textContent.trim());",
        json!([]),
    );
    assert_eq!(failovers, json!(["1"]));
    assert!(
        text_of(&b, "#overall").ends_with('%'),
        "{}",
        text_of(&b, "#overall")
    );
    let shell = text_of(&b, "#main code.shell");
    assert_eq!(shell, "haven report availability --from 1h");
    haven_accepts(&shell).unwrap();
    b.screenshot_to(&shots().join("reports.png"));

    // The CSV link is the API's CSV of the period shown.
    let link = b.script(
        "return document.getElementById('csv').getAttribute('href');",
        json!([]),
    );
    let link = link.as_str().unwrap().to_string();
    assert!(link.contains("format=csv"), "{link}");
    let downloaded = b.script(
        "return fetch(document.getElementById('csv').href).then(r => r.text());",
        json!([]),
    );
    let (status, api_csv) = server.get(&link);
    assert_eq!(status, 200);
    assert_eq!(downloaded, api_csv);
    assert!(downloaded
        .as_str()
        .unwrap()
        .starts_with("scope,cluster,group"));

    // Another period through the form; a bad one is refused with why.
    b.script(
        "const f = document.getElementById('period'); f.from.value = '2h'; f.cluster.value = 'kappa';",
        json!([]),
    );
    b.click("#period button");
    b.wait_for("the two-hour report", || {
        (b.url().contains("from=2h") && text_of(&b, "#main code.shell").contains("--cluster kappa"))
            .then_some(())
    });
    assert_eq!(rows(&b, "table.availability tbody").len(), 2);
    b.goto(&format!("{base}/reports?from=banana"));
    b.wait_text("#main p.error", "from:");
    drop(server);
}
