//! What a node does first with a partner's control message: decode it and, for a proposal,
//! vet the job id, the spec and every component's parameters against the default policy.
//! Any input must end in Ok or Err, never a panic or a hang.
#![no_main]

use ferry_node::node::{Control, decode_control, vet_proposal};
use ferry_node::policy::SecurityPolicy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let policy = SecurityPolicy::default();
    if let Ok(Control::Propose {
        job_id, spec_json, ..
    }) = decode_control(data)
    {
        let _ = vet_proposal(&job_id, &spec_json, &policy);
    }
    // The spec text alone, as YAML or JSON.
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = vet_proposal("job-fuzz", text, &policy);
    }
});
