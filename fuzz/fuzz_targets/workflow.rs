//! The workflow loader on arbitrary text: the YAML layer alone
//! (`workflow::yaml::parse`) and the whole load (`workflow::load_str`:
//! parse, compile regexes, globs, JSONPaths, templates, durations) never
//! panic, hang or overflow the stack.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_workflow as workflow;

/// The agent reloads workflows in `spawn_blocking`, whose threads have 2 MiB
/// stacks (not the 8 MiB of the fuzzer's main thread): check on the same.
const STACK: usize = 2 << 20;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || {
            let _ = workflow::yaml::parse(&text);
            if let Err(errors) = workflow::load_str("fuzz.yaml", &text) {
                // Rendering the errors (source lines, carets) is part of loading.
                let _ = errors.to_string();
            }
        })
        .expect("spawn the loader thread")
        .join()
        .expect("the loader does not panic");
});
