//! The directory on disk: a SQLite file (WAL) with one row per user, group, membership and SKU,
//! written change by change; and the one-time migration of the legacy JSON data file.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use rand::RngCore as _;
use rusqlite::{Connection, OptionalExtension as _, params};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::SandboxError;
use super::directory::{Change, DirectLicense, Directory, User};

/// What the `format` row of the `meta` table holds.
const FORMAT: &str = "hrsync-sandbox/2";
/// The format of the JSON data file this store replaces.
const LEGACY_FORMAT: &str = "hrsync-sandbox/1";
const SQLITE_MAGIC: &[u8] = b"SQLite format 3\0";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS groups (id TEXT PRIMARY KEY, display_name TEXT NOT NULL, licenses TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS members (group_id TEXT NOT NULL, user_id TEXT NOT NULL, position INTEGER NOT NULL,
                                    PRIMARY KEY (group_id, user_id));
CREATE TABLE IF NOT EXISTS skus (id TEXT PRIMARY KEY, part_number TEXT NOT NULL, units INTEGER NOT NULL);
";

/// An open data file.
pub(crate) struct Store {
    path: PathBuf,
    conn: Connection,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

pub(crate) fn fresh_token_key() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

fn db_err(path: &Path) -> impl Fn(rusqlite::Error) -> SandboxError + '_ {
    move |e| SandboxError::Write {
        path: path.to_owned(),
        source: std::io::Error::other(e),
    }
}

impl Store {
    /// Opens (creating, or migrating a legacy JSON file in place) the data file and loads the
    /// directory it holds.
    pub(crate) fn open(path: &Path) -> Result<(Self, Directory), SandboxError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_private_dir_all(parent).map_err(|source| SandboxError::Write {
                path: path.to_owned(),
                source,
            })?;
        }
        if path.exists() && !is_sqlite(path)? {
            migrate_legacy(path)?;
        }
        create_private_file(path)?;
        let conn = Connection::open(path).map_err(db_err(path))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db_err(path))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db_err(path))?;
        conn.execute_batch(SCHEMA).map_err(db_err(path))?;
        let store = Self {
            path: path.to_owned(),
            conn,
        };
        let directory = store.load(true)?;
        Ok((store, directory))
    }

    /// The directory a data file holds, read without changing the file (a running sandbox may
    /// be writing it): SQLite opened read-only, or a legacy JSON file parsed.
    pub(crate) fn read(path: &Path) -> Result<Directory, SandboxError> {
        if !is_sqlite(path)? {
            let bytes = std::fs::read(path).map_err(|source| SandboxError::Read {
                path: path.to_owned(),
                source,
            })?;
            return legacy_directory(path, &bytes);
        }
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| SandboxError::Read {
                path: path.to_owned(),
                source: std::io::Error::other(e),
            })?;
        let store = Self {
            path: path.to_owned(),
            conn,
        };
        store.load(false)
    }

    fn load(&self, writable: bool) -> Result<Directory, SandboxError> {
        let err = db_err(&self.path);
        let meta = |k: &str| -> Result<Option<String>, SandboxError> {
            self.conn
                .query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0))
                .optional()
                .map_err(db_err(&self.path))
        };
        if let Some(format) = meta("format")?
            && format != FORMAT
        {
            return Err(SandboxError::Parse {
                path: self.path.clone(),
                message: format!("the data file's format is '{format}', not '{FORMAT}'"),
            });
        }
        let token_key = match meta("token_key")? {
            Some(k) if !k.is_empty() => k,
            _ if !writable => String::new(),
            _ => {
                let k = fresh_token_key();
                self.conn
                    .execute(
                        "INSERT OR REPLACE INTO meta (key, value) VALUES ('token_key', ?1)",
                        [&k],
                    )
                    .map_err(&err)?;
                k
            }
        };
        if writable {
            self.conn
                .execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('format', ?1)",
                    [FORMAT],
                )
                .map_err(&err)?;
        }
        let mut dir = Directory::new(token_key);
        let mut stmt = self
            .conn
            .prepare("SELECT id, display_name, licenses FROM groups ORDER BY id")
            .map_err(&err)?;
        let groups = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(&err)?;
        for row in groups {
            let (id, name, licenses) = row.map_err(&err)?;
            let licenses: Vec<String> = serde_json::from_str(&licenses).unwrap_or_default();
            dir.upsert_group(&id, &name, licenses);
        }
        let mut stmt = self
            .conn
            .prepare("SELECT id, part_number, units FROM skus ORDER BY id")
            .map_err(&err)?;
        let skus = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, u32>(2)?,
                ))
            })
            .map_err(&err)?;
        for row in skus {
            let (id, part, units) = row.map_err(&err)?;
            dir.upsert_sku(&id, &part, units);
        }
        let mut stmt = self
            .conn
            .prepare("SELECT seq, data FROM users ORDER BY seq")
            .map_err(&err)?;
        let users = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .map_err(&err)?;
        for row in users {
            let (seq, data) = row.map_err(&err)?;
            let mut user: User = serde_json::from_str(&data).map_err(|e| SandboxError::Parse {
                path: self.path.clone(),
                message: format!("user row {seq}: {e}"),
            })?;
            user.seq = u64::try_from(seq).unwrap_or(0).max(1);
            dir.insert_user(user);
        }
        let mut stmt = self
            .conn
            .prepare("SELECT group_id, user_id, position FROM members ORDER BY group_id, position")
            .map_err(&err)?;
        let members = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(&err)?;
        for row in members {
            let (group, user, position) = row.map_err(&err)?;
            dir.load_member(&group, &user, u64::try_from(position).unwrap_or(0));
        }
        dir.take_journal();
        Ok(dir)
    }

    /// Writes the changed rows in one transaction.
    pub(crate) fn write(
        &mut self,
        dir: &Directory,
        changes: &[Change],
    ) -> Result<(), SandboxError> {
        if changes.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        let err = db_err(&path);
        let tx = self.conn.transaction().map_err(&err)?;
        let mut changes = changes.to_vec();
        changes.sort();
        changes.dedup();
        for change in &changes {
            match change {
                Change::User(seq) => {
                    if let Some(user) = dir.user(*seq) {
                        let data = serde_json::to_string(user).map_err(|e| {
                            err(rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
                        })?;
                        tx.prepare_cached(
                            "INSERT OR REPLACE INTO users (seq, id, data) VALUES (?1, ?2, ?3)",
                        )
                        .and_then(|mut s| {
                            s.execute(params![
                                i64::try_from(*seq).unwrap_or(i64::MAX),
                                user.id().to_ascii_lowercase(),
                                data
                            ])
                        })
                        .map_err(&err)?;
                    }
                }
                Change::UserPurged(id) => {
                    tx.prepare_cached("DELETE FROM users WHERE id = ?1")
                        .and_then(|mut s| s.execute([id]))
                        .map_err(&err)?;
                    tx.prepare_cached("DELETE FROM members WHERE user_id = ?1")
                        .and_then(|mut s| s.execute([id]))
                        .map_err(&err)?;
                }
                Change::Group(id) => {
                    if let Some(g) = dir.group(id) {
                        let licenses = serde_json::to_string(&g.licenses).unwrap_or_default();
                        tx.prepare_cached(
                            "INSERT OR REPLACE INTO groups (id, display_name, licenses) VALUES (?1, ?2, ?3)",
                        )
                        .and_then(|mut s| s.execute(params![id, g.display_name, licenses]))
                        .map_err(&err)?;
                    }
                }
                Change::Member {
                    group,
                    user,
                    position,
                } => {
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO members (group_id, user_id, position) VALUES (?1, ?2, ?3)",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            group,
                            user,
                            i64::try_from(*position).unwrap_or(i64::MAX)
                        ])
                    })
                    .map_err(&err)?;
                }
                Change::MemberRemoved { group, user } => {
                    tx.prepare_cached("DELETE FROM members WHERE group_id = ?1 AND user_id = ?2")
                        .and_then(|mut s| s.execute([group, user]))
                        .map_err(&err)?;
                }
                Change::Sku(id) => {
                    if let Some(sku) = dir.sku(id) {
                        tx.prepare_cached(
                            "INSERT OR REPLACE INTO skus (id, part_number, units) VALUES (?1, ?2, ?3)",
                        )
                        .and_then(|mut s| s.execute(params![id, sku.part_number, sku.units]))
                        .map_err(&err)?;
                    }
                }
            }
        }
        tx.commit().map_err(&err)
    }
}

fn is_sqlite(path: &Path) -> Result<bool, SandboxError> {
    use std::io::Read as _;
    let mut head = [0u8; 16];
    let mut file = std::fs::File::open(path).map_err(|source| SandboxError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut read = 0;
    while read < head.len() {
        match file.read(&mut head[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(source) => {
                return Err(SandboxError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        }
    }
    // An empty file is an empty SQLite database.
    Ok(read == 0 || (read == SQLITE_MAGIC.len() && head == SQLITE_MAGIC))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyDirectory {
    #[serde(default)]
    format: String,
    #[serde(default)]
    token_key: String,
    #[serde(default)]
    users: Vec<LegacyUser>,
    #[serde(default)]
    groups: Vec<LegacyGroup>,
    #[serde(default)]
    skus: Vec<LegacySku>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyUser {
    user: Map<String, Value>,
    #[serde(default)]
    manager_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyGroup {
    id: String,
    display_name: String,
    #[serde(default)]
    members: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacySku {
    sku_id: String,
    sku_part_number: String,
}

/// Units a migrated SKU gets: the legacy file had no units (every assignment was accepted).
const LEGACY_SKU_UNITS: u32 = 10_000;

/// Creates `dir` and its missing parents owner-only (0700); existing folders keep their mode.
fn create_private_dir_all(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Creates the data file empty and owner-only (0600) unless it exists: SQLite would create it
/// with the umask's mode (0644 under the usual 022), and gives its `-wal` and `-shm` files the
/// data file's mode. An existing file keeps its mode.
fn create_private_file(path: &Path) -> Result<(), SandboxError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .map(drop)
        .map_err(|source| SandboxError::Write {
            path: path.to_owned(),
            source,
        })
}

/// Replaces a legacy JSON data file (`"format": "hrsync-sandbox/1"`) with a SQLite file holding
/// the same directory: written to a temp file beside it, then renamed over it.
fn migrate_legacy(path: &Path) -> Result<(), SandboxError> {
    let bytes = std::fs::read(path).map_err(|source| SandboxError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut dir = legacy_directory(path, &bytes)?;
    let token_key = dir.token_key.clone();

    let mut tmp_name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    tmp_name.push(".migrating");
    let tmp = path.with_file_name(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    {
        create_private_file(&tmp)?;
        let conn = Connection::open(&tmp).map_err(db_err(&tmp))?;
        conn.execute_batch(SCHEMA).map_err(db_err(&tmp))?;
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('format', ?1), ('token_key', ?2)",
            params![FORMAT, token_key],
        )
        .map_err(db_err(&tmp))?;
        let mut store = Store {
            path: tmp.clone(),
            conn,
        };
        let changes = dir.take_journal();
        store.write(&dir, &changes)?;
    }
    std::fs::rename(&tmp, path).map_err(|source| SandboxError::Write {
        path: path.to_owned(),
        source,
    })
}

/// The directory a legacy JSON data file holds.
fn legacy_directory(path: &Path, bytes: &[u8]) -> Result<Directory, SandboxError> {
    let legacy: LegacyDirectory =
        serde_json::from_slice(bytes).map_err(|e| SandboxError::Parse {
            path: path.to_owned(),
            message: format!("neither a SQLite sandbox file nor a legacy JSON one: {e}"),
        })?;
    if !legacy.format.is_empty() && legacy.format != LEGACY_FORMAT {
        return Err(SandboxError::Parse {
            path: path.to_owned(),
            message: format!(
                "a JSON data file of format '{}', not '{LEGACY_FORMAT}'",
                legacy.format
            ),
        });
    }
    let token_key = if legacy.token_key.is_empty() {
        fresh_token_key()
    } else {
        legacy.token_key
    };
    let mut dir = Directory::new(token_key);
    for sku in &legacy.skus {
        dir.upsert_sku(&sku.sku_id, &sku.sku_part_number, LEGACY_SKU_UNITS);
    }
    for group in &legacy.groups {
        dir.upsert_group(&group.id, &group.display_name, Vec::new());
    }
    for legacy_user in legacy.users {
        let mut props = legacy_user.user;
        let licenses = props
            .remove("assignedLicenses")
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|l| {
                let sku = l.get("skuId")?.as_str()?.to_ascii_lowercase();
                Some(DirectLicense {
                    sku_id: sku,
                    disabled_plans: l
                        .get("disabledPlans")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                })
            })
            .collect::<Vec<_>>();
        for l in &licenses {
            if dir.sku(&l.sku_id).is_none() {
                let part = format!(
                    "SANDBOX_{}",
                    l.sku_id[..8.min(l.sku_id.len())].to_ascii_uppercase()
                );
                dir.upsert_sku(&l.sku_id, &part, LEGACY_SKU_UNITS);
            }
        }
        let mut user = User::new(props);
        user.manager_id = legacy_user.manager_id;
        user.licenses = licenses;
        dir.insert_user(user);
    }
    for group in &legacy.groups {
        for member in &group.members {
            if let Some(seq) = dir.seq_of(member) {
                dir.add_member(&group.id, seq);
            }
        }
    }
    Ok(dir)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        let metadata =
            std::fs::metadata(path).unwrap_or_else(|e| panic!("{} exists: {e}", path.display()));
        metadata.permissions().mode() & 0o777
    }

    /// The directory holds people's names and accounts: the data file, SQLite's side files
    /// and the folder made for them are the owner's alone, whatever the umask (the test
    /// assumes one that lets others read, like the usual 022).
    #[test]
    fn the_data_file_its_side_files_and_its_folder_are_the_owners_alone() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let folder = dir.path().join(".hrsync");
        let path = folder.join("sandbox.db");
        let (_store, _directory) = Store::open(&path).expect("the data file opens");
        for name in ["sandbox.db", "sandbox.db-wal", "sandbox.db-shm"] {
            let file = folder.join(name);
            assert_eq!(mode(&file), 0o600, "{name}: {:o}", mode(&file));
        }
        assert_eq!(mode(&folder), 0o700, "{:o}", mode(&folder));
    }

    /// A legacy JSON file is migrated to a SQLite file of the owner's alone.
    #[test]
    fn a_migrated_legacy_file_is_the_owners_alone() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("sandbox.db");
        std::fs::write(
            &path,
            r#"{"format": "hrsync-sandbox/1", "users": [], "groups": []}"#,
        )
        .expect("the legacy file is written");
        let (_store, _directory) = Store::open(&path).expect("the legacy file migrates");
        assert!(is_sqlite(&path).expect("readable"));
        assert_eq!(mode(&path), 0o600, "{:o}", mode(&path));
    }
}
