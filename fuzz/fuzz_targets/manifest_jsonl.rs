//! The manifest reader: JSON Lines of `batch::Record`, as `manifest::read` parses them, and the
//! shard file names `merge` recognises. Any text parses without a panic, and every line is
//! counted once (a record, a bad line, or the partial last line).
#![no_main]

use gradcam::batch::Record;
use gradcam::batch::manifest::shard_of;
use gradcam::io::parse_jsonl;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let read = parse_jsonl::<Record>(&text);
    let lines = text.split('\n').filter(|l| !l.trim().is_empty()).count();
    assert_eq!(
        read.values.len() + read.bad_lines + read.partial_last_line as usize,
        lines
    );
    for r in &read.values {
        let _ = r.line();
    }
    let _ = shard_of(&text);
});
