//! A container's start on a machine whose layer list is not in yet (it still mounts its
//! state disk): the start goes at once, and the layers only if the guest finds one
//! missing. Against the fake guest; no VM.

use std::sync::atomic::Ordering::SeqCst;

use serde_json::json;

use super::engine_tests::harness;

#[tokio::test]
async fn a_start_before_the_layer_list_sends_the_layers_only_when_one_is_missing() {
    let h = harness();
    // The starts and layer requests since the last look, in order.
    let exec_and_layer_calls = || {
        let mut calls = h.guest.calls.lock().unwrap();
        let seen: Vec<String> = calls
            .iter()
            .filter(|c| c.starts_with("exec ") || c.starts_with("layers "))
            .cloned()
            .collect();
        calls.clear();
        seen
    };

    // The cache lacks the layer: the guest says so, the layer goes, the start again.
    h.guest.layers_unlisted.store(true, SeqCst);
    h.guest.layers_missing.store(true, SeqCst);
    let c = h.create("first", json!({"Cmd": ["exit", "0"]}));
    h.engine.start(&c).await.unwrap();
    assert_eq!(h.engine.wait(&c, "not-running").unwrap().await.0, 0);
    let exec = format!("exec container {} exit 0", &c.id[..12]);
    assert_eq!(
        exec_and_layer_calls(),
        [exec.clone(), "layers 1".into(), exec],
        "a start that finds a layer missing sends the layers, then starts again"
    );
    let (past, _) = h.engine.events.subscribe();
    assert_eq!(
        h.actions(&past, &c.id),
        ["create", "start", "die"],
        "the first attempt is not a run of its own"
    );

    // The cache has it: no layer request at all, so no round trip for the list.
    h.guest.layers_unlisted.store(true, SeqCst);
    let c = h.create("second", json!({"Cmd": ["exit", "0"]}));
    h.engine.start(&c).await.unwrap();
    assert_eq!(h.engine.wait(&c, "not-running").unwrap().await.0, 0);
    assert_eq!(
        exec_and_layer_calls(),
        [format!("exec container {} exit 0", &c.id[..12])],
        "a start before the list asks nothing about layers when none is missing"
    );

    // With the list at hand the layers are made sure of first, as always.
    h.guest.layers_unlisted.store(false, SeqCst);
    let c = h.create("third", json!({"Cmd": ["exit", "0"]}));
    h.engine.start(&c).await.unwrap();
    assert_eq!(
        exec_and_layer_calls(),
        [
            "layers 1".to_string(),
            format!("exec container {} exit 0", &c.id[..12])
        ],
    );
}
