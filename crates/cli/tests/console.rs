//! The web console in a real headless Chromium, against a real server and
//! engine, with real OS users logging in through PAM: a fault appears live
//! on the summary, a switch runs to its end, a Guest is offered no
//! operation and a forged one is refused. Screenshots of the main pages
//! are kept in `target/tmp/console-screenshots/`.

mod support;

#[path = "support/browser.rs"]
mod browser;
#[path = "support/os_users.rs"]
mod os_users;

use browser::Browser;
use os_users::OsUsers;
use support::*;

const MAIN_CF: &str = "include \"types.cf\"\ncluster kappa ( )\nsystem n1 ( )\nsystem n2 ( )\n\
group web (\n SystemList = { n1 = 0, n2 = 1 }\n AutoStartList = { n1 }\n )\n\
 IP web_ip ( Address = \"192.0.2.40\" )\n Application web_app ( StartProgram = \"/bin/true\" )\n\
 web_app requires web_ip\n\
group db (\n SystemList = { n2 = 0, n1 = 1 }\n AutoStartList = { n2 }\n )\n IP db_ip ( Address = \"192.0.2.41\" )\n";

fn shots() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn log_in(b: &Browser, base: &str, user: &str) {
    b.goto(&format!("{base}/"));
    b.click("#logout");
    b.wait_for("the login page", || {
        b.url().contains("/login").then_some(())
    });
    b.type_into("#user", user);
    b.type_into("#password", &OsUsers::password(user));
    b.click("#login button[type=submit]");
    b.wait_for("the summary after login", || {
        (!b.url().contains("/login")).then_some(())
    });
}

/// The text of the row of `system` in the page's state table.
fn state_on(b: &Browser, system: &str) -> String {
    b.script(
        "return [...document.querySelectorAll('table.states tr')]\
           .map(r => r.innerText).find(t => t.trim().startsWith(arguments[0])) || '';",
        serde_json::json!([system]),
    )
    .as_str()
    .unwrap_or_default()
    .to_string()
}

#[test]
fn the_console_shows_faults_live_runs_operations_and_offers_guests_nothing() {
    let Some(users) = OsUsers::create(&["hcop", "hcgu"]) else {
        return;
    };
    let Some(b) = Browser::start() else { return };
    let (op, guest) = (users.names[0].clone(), users.names[1].clone());
    let dir = tempfile::tempdir().unwrap();
    let cdir = dir.path().join("kappa");
    std::fs::create_dir_all(&cdir).unwrap();
    std::fs::write(cdir.join("main.cf"), MAIN_CF).unwrap();
    let engine = Engine::start(&cdir, &["--simulate", "--sim-delay", "300"]);
    let server = ServerProc::start(
        dir.path(),
        &format!(
            "[auth]\nenabled = true\npam_service = \"{}\"\nserver_admins = [\"{op}\"]\n\
             [[auth.grant]]\nuser = \"{op}\"\nrole = \"cluster_administrator\"\n\
             [[auth.grant]]\nuser = \"{guest}\"\nrole = \"guest\"\n\
             [[cluster]]\nname = \"kappa\"\naddress = \"{}\"\n",
            users.service, engine.addr
        ),
    );
    let base = format!("https://{}", server.addr);
    let shots = shots();

    // A wrong password is refused on the page, with the reason.
    b.goto(&format!("{base}/c/kappa"));
    b.wait_for("the login page", || {
        b.url().contains("/login?next=").then_some(())
    });
    b.type_into("#user", &op);
    b.type_into("#password", "wrong");
    b.click("#login button[type=submit]");
    b.wait_text("#loginerror", "wrong user name or password");

    // The operator logs in and lands where they were going.
    b.type_into("#password", &OsUsers::password(&op));
    b.click("#login button[type=submit]");
    b.wait_for("the cluster page", || {
        b.url().ends_with("/c/kappa").then_some(())
    });
    b.wait_text("#main", "Service groups (2)");
    b.screenshot_to(&shots.join("cluster.png"));

    // Switch a group to n2 and watch it complete; the command log teaches
    // the CLI.
    b.goto(&format!("{base}/c/kappa/g/web"));
    b.wait_text("#main", "State per system");
    b.wait_for("web online on n1", || {
        state_on(&b, "n1").contains("ONLINE").then_some(())
    });
    b.script("window.confirm = () => true;", serde_json::json!([]));
    b.script(
        "document.getElementById('switchto').value = 'n2';",
        serde_json::json!([]),
    );
    b.click("button.op[data-pick=switchto]");
    let result = b.wait_text("#opresult", "completed");
    assert!(
        result.contains("haven group switch kappa/web --wait --to n2"),
        "{result}"
    );
    b.wait_text("#cmdlog", "haven group switch kappa/web --wait --to n2");
    b.wait_for("web online on n2, live", || {
        state_on(&b, "n2").contains("ONLINE").then_some(())
    });
    b.screenshot_to(&shots.join("group.png"));

    // The summary: nothing wrong, then a fault appears without a reload.
    b.goto(&format!("{base}/"));
    b.wait_text("#main", "Needs attention (0)");
    b.wait_text("#livestate", "live");
    b.script("window.__still_here = true;", serde_json::json!([]));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut client = engine.client().await;
        let result = client
            .command(haven_model::Operation::SimFaultResource {
                resource: "web_ip".into(),
                system: "n2".into(),
            })
            .await
            .unwrap();
        assert!(result.is_accepted(), "{result:?}");
    });
    b.wait_text("#main", "FAULTED RESOURCE");
    assert_eq!(
        b.script(
            "return window.__still_here === true;",
            serde_json::json!([])
        ),
        serde_json::json!(true),
        "the page updated in place, not by reloading"
    );
    b.screenshot_to(&shots.join("summary.png"));
    b.goto(&format!("{base}/admin"));
    b.wait_text("#main", "Roles");
    b.screenshot_to(&shots.join("admin.png"));

    // A Guest: sees the cluster, is offered no operation, and a forged
    // request from their session is refused.
    log_in(&b, &base, &guest);
    b.goto(&format!("{base}/c/kappa/g/web"));
    b.wait_text("#main", "State per system");
    assert_eq!(b.count("button.op"), 0, "no operation buttons for a Guest");
    // WebDriver waits for a returned promise.
    let status = b.script(
        "return fetch('/api/v1/clusters/kappa/operations', {method: 'POST', \
           headers: {'content-type': 'application/json', 'x-haven-csrf': '1'}, \
           body: JSON.stringify({op: 'group_offline', group: 'web'})}) \
         .then(r => r.json().then(j => [r.status, j.code || '']));",
        serde_json::json!([]),
    );
    assert_eq!(status, serde_json::json!([403, "permission_denied"]));
    b.goto(&format!("{base}/admin"));
    b.wait_text("#main", "Only a Server Administrator");
    drop(server);
}
