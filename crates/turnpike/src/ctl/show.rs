//! `turnpike ctl`'s human output: tables and one-line summaries of the API's JSON.

use std::fmt::Write as _;

use serde_json::Value;

/// The human form of `answer` to the subcommand `command`.
pub(super) fn human(command: &str, answer: &Value) -> String {
    match command {
        "status" => status(answer),
        "sessions" => sessions(answer),
        "revocations" => revocations(answer),
        "kill" => format!("ended {} session(s)\n", answer["ended"]),
        "revoke" => format!("revoked; ended {} allocation(s)\n", answer["ended"]),
        "unrevoke" => format!("unrevoked {}\n", text(&answer["unrevoked"])),
        "drain" => drain(answer),
        "reload" => format!(
            "reloaded; applied: {}; needs a restart: {}\n",
            list(&answer["applied"]),
            list(&answer["needs_restart"])
        ),
        "log-level" => format!("log level: {}\n", text(&answer["level"])),
        _ => format!("{answer}\n"),
    }
}

/// A JSON value as plain text (strings without quotes, null as `-`).
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// A JSON array of strings as `a, b` (`none` when empty).
fn list(v: &Value) -> String {
    let items: Vec<String> = v
        .as_array()
        .map(|a| a.iter().map(text).collect())
        .unwrap_or_default();
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

/// Rows under a header, each column as wide as its widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (cell, w) in cells.zip(&widths) {
            let _ = write!(l, "{cell:<w$}  ");
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

fn status(s: &Value) -> String {
    let t = &s["totals"];
    let d = &s["drain"];
    let mut out = String::new();
    let mut kv = |k: &str, v: String| {
        let _ = writeln!(out, "{k:<20} {v}");
    };
    kv("version", text(&s["version"]));
    kv("uptime", format!("{} s", s["uptime_secs"]));
    kv("workers", text(&s["workers"]));
    kv("allocations", text(&s["allocations"]));
    kv("redirecting", text(&s["redirecting"]));
    let draining = if s["draining"] == true {
        format!(
            "yes, {} allocation(s) left, deadline in {} s",
            d["allocations"],
            text(&d["deadline_in_secs"])
        )
    } else {
        "no".to_owned()
    };
    kv("draining", draining);
    for key in [
        "allocations_created",
        "allocations_ended",
        "to_peer_packets",
        "to_client_packets",
        "auth_failures",
        "redirected",
        "permissions",
        "channels",
        "open_connections",
        "revocations",
    ] {
        kv(key, text(&t[key]));
    }
    out
}

fn sessions(answer: &Value) -> String {
    let empty = Vec::new();
    let all = answer.as_array().unwrap_or(&empty);
    let usage = |u: &Value| format!("{}p/{}B", u["packets"], u["bytes"]);
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|s| {
            vec![
                text(&s["id"]),
                text(&s["username"]),
                text(&s["transport"]),
                text(&s["client"]),
                list(&s["relayed"]),
                list(&s["permissions"]),
                s["channels"].as_array().map_or(0, Vec::len).to_string(),
                usage(&s["to_peer"]),
                usage(&s["to_client"]),
                format!("{}s", s["age_secs"]),
                format!("{}s", s["expires_in_secs"]),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "ID",
            "USER",
            "TRANSPORT",
            "CLIENT",
            "RELAYED",
            "PERMISSIONS",
            "CHANNELS",
            "TO PEER",
            "TO CLIENT",
            "AGE",
            "EXPIRES",
        ],
        &rows,
    );
    let _ = writeln!(out, "{} session(s)", rows.len());
    out
}

fn revocations(answer: &Value) -> String {
    let empty = Vec::new();
    let rows: Vec<Vec<String>> = answer
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|r| {
            let until = match r["until"].as_u64() {
                Some(u) => u.to_string(),
                None => "until lifted".to_owned(),
            };
            vec![text(&r["name"]), until]
        })
        .collect();
    let mut out = table(&["NAME", "UNTIL (UNIX)"], &rows);
    let _ = writeln!(out, "{} revocation(s)", rows.len());
    out
}

fn drain(d: &Value) -> String {
    format!(
        "draining: {} allocation(s) left, deadline in {} s\n",
        d["allocations"],
        text(&d["deadline_in_secs"])
    )
}
