//! The HTML page, rendered on the server with leptos: the canvas and its controls, the answer
//! with a bar per class, the feedback buttons, and the served model's lineage. The canvas is
//! driven by `static/app.js`; nothing here needs WebAssembly.

use leptos::prelude::*;

use crate::model_info::ModelInfo;

/// The whole page as an HTML document.
pub fn index(model: Option<ModelInfo>) -> String {
    let body = view! { <Page model=model /> }.to_html();
    format!("<!DOCTYPE html>{body}")
}

#[component]
fn Page(model: Option<ModelInfo>) -> impl IntoView {
    view! {
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <title>"Digit recognizer"</title>
                <link rel="stylesheet" href="/static/style.css" />
                <link rel="icon" href="data:," />
            </head>
            <body>
                <main>
                    <h1>"Draw a digit"</h1>
                    <section class="board">
                        <canvas id="pad" width="280" height="280" aria-label="drawing area"></canvas>
                        <div class="controls">
                            <button id="undo" type="button">"Undo"</button>
                            <button id="clear" type="button">"Clear"</button>
                            <button id="predict" type="button">"Predict"</button>
                            <label><input id="live" type="checkbox" checked=true />" live"</label>
                        </div>
                    </section>
                    <Answer />
                    <Feedback />
                    <ModelPanel model=model />
                    <noscript>"The drawing pad needs JavaScript; the API works without it."</noscript>
                </main>
                <script src="/static/app.js" defer=true></script>
            </body>
        </html>
    }
}

#[component]
fn Answer() -> impl IntoView {
    view! {
        <section class="answer" aria-live="polite">
            <div class="digit"><span id="digit">"?"</span></div>
            <p id="status" class="status">"Draw with a mouse, a finger or a pen."</p>
            <ol id="bars" class="bars">
                {(0..shared::CLASSES)
                    .map(|d| {
                        view! {
                            <li data-digit=d.to_string()>
                                <span class="label">{d}</span>
                                <span class="track"><span class="fill" style="width:0%"></span></span>
                                <span class="value">"0 %"</span>
                            </li>
                        }
                    })
                    .collect_view()}
            </ol>
        </section>
    }
}

#[component]
fn Feedback() -> impl IntoView {
    view! {
        <section class="feedback" id="feedback" hidden=true>
            <p>"Wrong? It was a ..."</p>
            <div class="choices">
                {(0..shared::CLASSES)
                    .map(|d| view! { <button type="button" data-label=d.to_string()>{d}</button> })
                    .collect_view()}
            </div>
            <p id="thanks" class="status"></p>
        </section>
    }
}

#[component]
fn ModelPanel(model: Option<ModelInfo>) -> impl IntoView {
    let Some(m) = model else {
        return view! { <section class="model" id="model"><p>"No model is loaded yet."</p></section> }
            .into_any();
    };
    let commit = m
        .git_commit
        .as_deref()
        .map_or_else(|| "unknown".to_owned(), |c| c.chars().take(10).collect());
    let dirty = if m.git_dirty == Some(true) { " (uncommitted changes)" } else { "" };
    view! {
        <section class="model" id="model">
            <h2>"Model"</h2>
            <dl>
                <dt>"Version"</dt><dd id="model-version">{m.version.clone()}</dd>
                <dt>"Test accuracy"</dt><dd>{format!("{:.2} %", 100.0 * m.test_accuracy)}</dd>
                <dt>"Trained"</dt><dd>{m.created_at.format("%Y-%m-%d %H:%M UTC").to_string()}</dd>
                <dt>"Commit"</dt><dd><code>{commit}</code>{dirty}</dd>
                <dt>"Network"</dt><dd>{format!("{} v{}, {} parameters", m.architecture, m.architecture_version, m.parameters)}</dd>
                <dt>"From"</dt><dd>{m.source}</dd>
            </dl>
        </section>
    }
    .into_any()
}
