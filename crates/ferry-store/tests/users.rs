//! Users, roles, sessions and personal tokens in a real SQLite file.

mod common;

use common::Node;
use ferry_store::{StoreError, TokenRole, UserRole};
use std::time::Duration;

const PASSWORD: &str = "correct horse battery";

#[test]
fn passwords_are_argon2id_hashes_and_only_the_right_one_signs_in() {
    let node = Node::new();
    let store = node.open();
    let alice = store
        .create_user("alice", &[UserRole::Modeller, UserRole::Modeller], PASSWORD)
        .unwrap();
    assert_eq!(
        alice.roles,
        vec![UserRole::Modeller],
        "roles are deduplicated"
    );
    let hash: String = node
        .raw_db()
        .query_row(
            "SELECT password_hash FROM users WHERE name = 'alice'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(!hash.contains(PASSWORD));

    assert_eq!(
        store
            .check_password("alice", PASSWORD)
            .unwrap()
            .unwrap()
            .name,
        "alice"
    );
    assert!(
        store
            .check_password("alice", "correct horse battery!")
            .unwrap()
            .is_none()
    );
    assert!(store.check_password("nobody", PASSWORD).unwrap().is_none());

    // Bad input is named; nothing is stored.
    let short = store
        .create_user("bob", &[UserRole::Auditor], "short")
        .unwrap_err();
    assert!(short.to_string().contains("at least 12"), "{short}");
    assert!(
        store
            .create_user("bob", &[], PASSWORD)
            .unwrap_err()
            .to_string()
            .contains("at least one role")
    );
    assert!(
        store
            .create_user("../bob", &[UserRole::Auditor], PASSWORD)
            .is_err()
    );
    assert!(matches!(
        store.create_user("alice", &[UserRole::Auditor], PASSWORD),
        Err(StoreError::AlreadyExists { .. })
    ));
    assert_eq!(store.list_users().unwrap().len(), 1);
    assert!(
        "superuser"
            .parse::<UserRole>()
            .unwrap_err()
            .to_string()
            .contains("data_steward")
    );

    store
        .set_user_password("alice", "another long password")
        .unwrap();
    assert!(store.check_password("alice", PASSWORD).unwrap().is_none());
    assert!(
        store
            .check_password("alice", "another long password")
            .unwrap()
            .is_some()
    );
    let roles = store
        .set_user_roles("alice", &[UserRole::Approver, UserRole::Auditor])
        .unwrap();
    assert_eq!(roles.roles, vec![UserRole::Approver, UserRole::Auditor]);
}

#[test]
fn sessions_expire_end_and_die_with_their_user_and_so_do_personal_tokens() {
    let node = Node::new();
    let store = node.open();
    store
        .create_user("carol", &[UserRole::DataSteward], PASSWORD)
        .unwrap();
    let (secret, session) = store
        .create_session("carol", Duration::from_secs(3600))
        .unwrap();
    assert!(secret.starts_with("frs_"));
    let live = store.session(&secret).unwrap().unwrap();
    assert_eq!(
        (live.user.name.as_str(), live.csrf_token.as_str()),
        ("carol", session.csrf_token.as_str())
    );
    assert!(store.session("frs_guess").unwrap().is_none());
    assert!(store.session("not-a-session").unwrap().is_none());
    let stored: String = node
        .raw_db()
        .query_row("SELECT secret_sha256 FROM user_sessions", [], |r| r.get(0))
        .unwrap();
    assert_ne!(stored, secret, "only the hash is stored");

    let (expiring, _) = store
        .create_session("carol", Duration::from_millis(1))
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert!(store.session(&expiring).unwrap().is_none(), "expired");

    store.end_session(&secret).unwrap();
    assert!(store.session(&secret).unwrap().is_none(), "signed out");

    let (again, _) = store
        .create_session("carol", Duration::from_secs(3600))
        .unwrap();
    let (_, token) = store.create_token("carol-laptop", TokenRole::User).unwrap();
    store.set_token_owner("carol-laptop", "carol").unwrap();
    assert_eq!(
        store.token_owner("carol-laptop").unwrap().as_deref(),
        Some("carol")
    );
    assert!(store.set_token_owner("carol-laptop", "nobody").is_err());

    store.disable_user("carol").unwrap();
    assert!(
        store.session(&again).unwrap().is_none(),
        "a disabled user's sessions end"
    );
    assert!(
        store.verify_token(&token).unwrap().is_none(),
        "and its personal tokens"
    );
    assert!(store.check_password("carol", PASSWORD).unwrap().is_none());
    assert!(
        store
            .create_session("carol", Duration::from_secs(1))
            .is_err()
    );
    assert!(store.disable_user("carol").is_err(), "already disabled");
    assert!(
        store.user("carol").unwrap().disabled_at.is_some(),
        "the record stays"
    );
}
