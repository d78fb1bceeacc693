//! Blinding keys: fresh per run, or derived from a cached long-term secret.
//!
//! A key is `G::random_key(ChaCha20(seed'))` with `seed' = SHA-256(domain, group, purpose,
//! parties, seed)`. Deriving through a seed keeps this generic over [`EcdhGroup`] (the trait
//! has no key serialisation) and lets the n-party protocol hand the hosts' common key to the
//! other hosts as 32 bytes.

use crate::{KeyMode, PsiError};
use ferry_context::PartyId;
use ferry_crypto::ecdh::EcdhGroup;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

pub(crate) type Seed = [u8; 32];

/// 32 bytes from the OS-seeded generator.
pub(crate) fn fresh_seed() -> Seed {
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    seed
}

/// A generator for shuffles: seeded from the OS, never from a cached key, so the order of
/// what a party sends is fresh in every run.
pub(crate) fn shuffle_rng() -> ChaCha20Rng {
    ChaCha20Rng::from_seed(fresh_seed())
}

/// The key for `purpose` among `parties` under `mode`.
///
/// With a cached secret the key depends on the group, the purpose and the sorted party names,
/// so one cache file never yields the same key towards two different sets of peers (which
/// would let those peers link the elements they each received).
pub(crate) fn party_seed(
    mode: &KeyMode,
    group: &str,
    purpose: &str,
    parties: &[PartyId],
) -> Result<Seed, PsiError> {
    match mode {
        KeyMode::Fresh => Ok(fresh_seed()),
        KeyMode::Cached { file } => {
            let secret = load_or_create(file)?;
            let mut names: Vec<&str> = parties.iter().map(PartyId::as_str).collect();
            names.sort_unstable();
            let mut h = Sha256::new();
            h.update(b"ferry/psi/v1/cached-key\0");
            h.update(group.as_bytes());
            h.update([0]);
            h.update(purpose.as_bytes());
            h.update([0]);
            for n in names {
                h.update(n.as_bytes());
                h.update([0]);
            }
            h.update(secret);
            Ok(h.finalize().into())
        }
    }
}

/// The group key derived from a seed.
pub(crate) fn key_from_seed<G: EcdhGroup>(seed: &Seed) -> G::Key {
    let mut h = Sha256::new();
    h.update(b"ferry/psi/v1/key\0");
    h.update(G::NAME.as_bytes());
    h.update([0]);
    h.update(seed);
    let derived: Seed = h.finalize().into();
    G::random_key(&mut ChaCha20Rng::from_seed(derived))
}

/// Reads the secret in `file`, or creates it there if the file does not exist.
///
/// Creation is atomic: the secret is written and synced to a private temporary file in the
/// same directory, which is then hard-linked into place. A concurrent reader (another run
/// using the same cache) therefore sees either no file or the complete key, never a
/// half-written one, and if two runs create at once exactly one secret wins and both use it.
fn load_or_create(file: &Path) -> Result<Seed, PsiError> {
    let err = |reason: String| PsiError::KeyCache {
        file: file.to_path_buf(),
        reason,
    };
    let read_existing = || -> Result<Seed, PsiError> {
        let text = std::fs::read_to_string(file).map_err(|e| err(format!("cannot read: {e}")))?;
        parse_hex(text.trim()).ok_or_else(|| {
            err(
                "expected 64 hexadecimal digits (a key this program wrote); \
                 delete the file to start a new key"
                    .into(),
            )
        })
    };
    if file.exists() {
        return read_existing();
    }
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let mut staged = tempfile::Builder::new()
        .prefix(".psi-key-")
        .tempfile_in(&dir)
        .map_err(|e| err(format!("cannot create a new key in {}: {e}", dir.display())))?;
    // tempfile creates the file with mode 0600 on Unix.
    let secret = fresh_seed();
    let text: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    staged
        .write_all(format!("{text}\n").as_bytes())
        .and_then(|_| staged.as_file().sync_all())
        .map_err(|e| err(format!("cannot write a new key: {e}")))?;
    match std::fs::hard_link(staged.path(), file) {
        Ok(()) => Ok(secret),
        // Another run created the key first: use the one that is now in place.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_existing(),
        Err(e) => Err(err(format!("cannot create: {e}"))),
    }
    // `staged` is removed when dropped; the key lives on under `file`.
}

fn parse_hex(text: &str) -> Option<Seed> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_crypto::ecdh::Ristretto255;

    fn parties(names: &[&str]) -> Vec<PartyId> {
        names.iter().map(|n| PartyId::new(*n).unwrap()).collect()
    }

    #[test]
    fn cached_keys_persist_per_party_set_and_fresh_keys_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("psi.key");
        let mode = KeyMode::Cached { file: file.clone() };
        let ab = parties(&["a", "b"]);
        let first = party_seed(&mode, "g", "2p", &ab).unwrap();
        assert!(file.exists());
        let again = party_seed(&mode, "g", "2p", &parties(&["b", "a"])).unwrap();
        assert_eq!(first, again, "same secret, same party set");
        let other_peer = party_seed(&mode, "g", "2p", &parties(&["a", "c"])).unwrap();
        assert_ne!(first, other_peer);
        let k1 = key_from_seed::<Ristretto255>(&first);
        let k2 = key_from_seed::<Ristretto255>(&again);
        assert_eq!(
            Ristretto255::blind(&k1, b"x"),
            Ristretto255::blind(&k2, b"x")
        );

        let f1 = party_seed(&KeyMode::Fresh, "g", "2p", &ab).unwrap();
        let f2 = party_seed(&KeyMode::Fresh, "g", "2p", &ab).unwrap();
        assert_ne!(f1, f2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "key file must not be readable by others");
        }
    }

    #[test]
    fn runs_creating_the_same_cache_at_once_all_get_the_one_key_written() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("shared.key");
            let seeds: Vec<Seed> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..4)
                    .map(|_| s.spawn(|| load_or_create(&file).unwrap()))
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            assert!(seeds.iter().all(|x| *x == seeds[0]), "one secret wins");
            assert_eq!(load_or_create(&file).unwrap(), seeds[0]);
            let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
            assert_eq!(leftovers, 1, "no temporary files are left behind");
        }
    }

    #[test]
    fn a_corrupt_cache_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.key");
        std::fs::write(&file, "not hex").unwrap();
        let e = party_seed(&KeyMode::Cached { file }, "g", "2p", &parties(&["a", "b"]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bad.key") && e.contains("64 hexadecimal digits"),
            "{e}"
        );
    }
}
