//! Posting the review on a merge request through GitLab's notes API, against a stand-in server
//! on 127.0.0.1 that keeps notes and records requests: the first run creates the note, later
//! runs update it, however many other notes come before it.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use registry_client::Token;
use tiny_http::{Header, Method, Response, Server};
use trainer::report::{NOTE_MARKER, NoteAction, NoteTarget, NoteToken, upsert_note};

/// Notes per page, small so that the review lands on a later page.
const PAGE: usize = 2;

#[derive(Debug, Default)]
struct GitLab {
    /// (id, body), oldest first.
    notes: Vec<(u64, String)>,
    /// (method, url, token header) of every request.
    requests: Vec<(String, String, Option<String>)>,
}

/// Serves `/api/v4/projects/42/merge_requests/7/notes` until the test ends.
fn start(state: Arc<Mutex<GitLab>>) -> String {
    let server = Server::http("127.0.0.1:0").unwrap();
    let url = format!("http://{}/api/v4", server.server_addr().to_ip().unwrap());
    std::thread::spawn(move || {
        for mut request in server.incoming_requests() {
            let mut body = String::new();
            request.as_reader().read_to_string(&mut body).unwrap();
            let response = answer(&mut state.lock().unwrap(), &request, &body);
            request.respond(response).unwrap();
        }
    });
    url
}

fn answer(
    gitlab: &mut GitLab,
    request: &tiny_http::Request,
    body: &str,
) -> Response<std::io::Cursor<Vec<u8>>> {
    let url = request.url().to_owned();
    let token = request.headers().iter().find(|h| h.field.equiv("PRIVATE-TOKEN"));
    gitlab.requests.push((
        request.method().to_string(),
        url.clone(),
        token.map(|h| h.value.to_string()),
    ));
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let base = "/api/v4/projects/42/merge_requests/7/notes";
    let json = Header::from_bytes("Content-Type", "application/json").unwrap();
    let new_body = || {
        serde_json::from_str::<serde_json::Value>(body).unwrap()["body"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    match (request.method(), path) {
        (Method::Get, p) if p == base => {
            let page: usize =
                query.split('&').find_map(|kv| kv.strip_prefix("page=")).unwrap().parse().unwrap();
            let newest_first: Vec<_> = gitlab.notes.iter().rev().collect();
            let chunk: Vec<_> = newest_first
                .iter()
                .skip((page - 1) * PAGE)
                .take(PAGE)
                .map(|(id, body)| serde_json::json!({ "id": id, "body": body }))
                .collect();
            let next = if page * PAGE < newest_first.len() {
                (page + 1).to_string()
            } else {
                String::new()
            };
            Response::from_string(serde_json::to_string(&chunk).unwrap())
                .with_header(json)
                .with_header(Header::from_bytes("X-Next-Page", next).unwrap())
        }
        (Method::Post, p) if p == base => {
            let id = 100 + gitlab.notes.len() as u64;
            gitlab.notes.push((id, new_body()));
            Response::from_string(serde_json::json!({ "id": id, "body": new_body() }).to_string())
                .with_header(json)
                .with_status_code(201)
        }
        (Method::Put, p) => {
            let id: u64 = p.strip_prefix(&format!("{base}/")).unwrap().parse().unwrap();
            let note = gitlab.notes.iter_mut().find(|(i, _)| *i == id).unwrap();
            note.1 = new_body();
            Response::from_string(serde_json::json!({ "id": id, "body": note.1 }).to_string())
                .with_header(json)
        }
        _ => Response::from_string("not found").with_status_code(404),
    }
}

fn target(api_url: String) -> NoteTarget {
    NoteTarget {
        api_url,
        project_id: "42".into(),
        merge_request: "7".into(),
        token: NoteToken::Private(Token::new("glpat-test")),
    }
}

#[test]
fn the_first_run_creates_the_note_and_later_runs_update_it() {
    let state = Arc::new(Mutex::new(GitLab::default()));
    let target = target(start(state.clone()));

    let first = upsert_note(&target, &format!("{NOTE_MARKER}\nfirst")).unwrap();
    assert_eq!(first, NoteAction::Created(100));
    for body in ["a reviewer's comment", "another comment", "a third comment"] {
        let n = state.lock().unwrap().notes.len() as u64;
        state.lock().unwrap().notes.push((200 + n, body.into()));
    }
    let second = upsert_note(&target, &format!("{NOTE_MARKER}\nsecond")).unwrap();
    assert_eq!(second, NoteAction::Updated(100));

    let gitlab = state.lock().unwrap();
    let reviews: Vec<_> = gitlab.notes.iter().filter(|(_, b)| b.starts_with(NOTE_MARKER)).collect();
    assert_eq!(reviews, [&(100, format!("{NOTE_MARKER}\nsecond"))]);
    let calls: Vec<_> = gitlab
        .requests
        .iter()
        .map(|(m, u, _)| (m.as_str(), u.split('?').next().unwrap()))
        .collect();
    let notes = "/api/v4/projects/42/merge_requests/7/notes";
    let note = format!("{notes}/100");
    assert_eq!(
        calls,
        [("GET", notes), ("POST", notes), ("GET", notes), ("GET", notes), ("PUT", note.as_str())]
    );
    assert!(gitlab.requests.iter().all(|(_, _, t)| t.as_deref() == Some("glpat-test")));
}

#[test]
fn a_refused_request_is_an_error_that_hides_the_token() {
    let target = NoteTarget { project_id: "9".into(), ..target(start(Arc::default())) };
    let error = format!("{:#}", upsert_note(&target, "x").unwrap_err());
    assert!(error.contains("404"), "{error}");
    assert!(!error.contains("glpat-test"), "{error}");
    assert!(!format!("{target:?}").contains("glpat-test"));
}
