//! The store database (`var/kiln/db.sqlite`): the schema, its version, and every query on it.
//!
//! The schema follows Nix's: `ValidPaths` (one row per valid path: NAR hash as
//! `sha256:<base16>`, registration time, deriver, NAR size, content address), `Refs` (the
//! reference graph between valid paths; a referenced path cannot be deleted while a referrer
//! exists) and `DerivationOutputs` (the outputs of each valid `.drv`). The schema version is kept
//! in SQLite's `user_version`. Connections use WAL so that readers never block the writer, a busy
//! timeout so that concurrent kiln processes wait for each other instead of failing, and
//! `BEGIN IMMEDIATE` for every write so that two writers never deadlock on a lock upgrade.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use data_encoding::HEXLOWER_PERMISSIVE;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::error::{LocalStoreError, Result};
use super::path_info::ValidPathInfo;

/// The schema version this code writes and understands.
const SCHEMA_VERSION: i64 = 1;

/// How long a statement waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(600);

const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS ValidPaths (
    id               INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    path             TEXT UNIQUE NOT NULL,
    hash             TEXT NOT NULL,
    registrationTime INTEGER NOT NULL,
    deriver          TEXT,
    narSize          INTEGER,
    ca               TEXT
);
CREATE TABLE IF NOT EXISTS Refs (
    referrer  INTEGER NOT NULL,
    reference INTEGER NOT NULL,
    PRIMARY KEY (referrer, reference),
    FOREIGN KEY (referrer) REFERENCES ValidPaths(id) ON DELETE CASCADE,
    FOREIGN KEY (reference) REFERENCES ValidPaths(id) ON DELETE RESTRICT
);
CREATE INDEX IF NOT EXISTS IndexReferrer ON Refs(referrer);
CREATE INDEX IF NOT EXISTS IndexReference ON Refs(reference);
-- A self-reference must not stop its own path from being deleted.
CREATE TRIGGER IF NOT EXISTS DeleteSelfRefs BEFORE DELETE ON ValidPaths
BEGIN
    DELETE FROM Refs WHERE referrer = old.id AND reference = old.id;
END;
CREATE TABLE IF NOT EXISTS DerivationOutputs (
    drv  INTEGER NOT NULL,
    id   TEXT NOT NULL,
    path TEXT NOT NULL,
    PRIMARY KEY (drv, id),
    FOREIGN KEY (drv) REFERENCES ValidPaths(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS IndexDerivationOutputs ON DerivationOutputs(path);
";

/// One open connection to the store database.
pub(crate) struct StoreDb {
    conn: Connection,
    file: PathBuf,
}

impl StoreDb {
    /// Opens (creating if needed) the database at `file` and brings its schema up to date.
    pub(crate) fn open(file: &Path) -> Result<Self> {
        let conn = Connection::open(file).map_err(|source| LocalStoreError::Database {
            db: file.to_path_buf(),
            source,
        })?;
        let mut db = StoreDb {
            conn,
            file: file.to_path_buf(),
        };
        db.configure().map_err(|e| db.wrap(e))?;
        db.migrate()?;
        Ok(db)
    }

    fn wrap(&self, source: rusqlite::Error) -> LocalStoreError {
        LocalStoreError::Database {
            db: self.file.clone(),
            source,
        }
    }

    fn corrupt(&self, detail: String) -> LocalStoreError {
        LocalStoreError::Corrupt {
            db: self.file.clone(),
            detail,
        }
    }

    fn configure(&self) -> rusqlite::Result<()> {
        self.conn.busy_timeout(BUSY_TIMEOUT)?;
        self.conn.pragma_update(None, "foreign_keys", true)?;
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            self.conn
                .pragma_update_and_check(None, "journal_mode", "wal", |row| {
                    row.get::<_, String>(0)
                })?;
        }
        // With WAL, NORMAL keeps the database consistent across crashes; a commit lost to a
        // power failure only makes its paths invalid again, and invalid paths are rebuilt.
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(())
    }

    fn migrate(&mut self) -> Result<()> {
        let file = self.file.clone();
        let wrap = |source| LocalStoreError::Database {
            db: file.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(wrap)?;
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(wrap)?;
        if version > SCHEMA_VERSION {
            return Err(LocalStoreError::SchemaTooNew {
                db: file.clone(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version < SCHEMA_VERSION {
            tx.execute_batch(SCHEMA_V1).map_err(wrap)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(wrap)?;
        }
        tx.commit().map_err(wrap)
    }

    /// The schema version recorded in the database.
    pub(crate) fn schema_version(&self) -> Result<i64> {
        self.conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(|e| self.wrap(e))
    }

    fn path_id(&self, path: &str) -> Result<Option<i64>> {
        self.conn
            .prepare_cached("SELECT id FROM ValidPaths WHERE path = ?1")
            .and_then(|mut stmt| stmt.query_row([path], |row| row.get(0)).optional())
            .map_err(|e| self.wrap(e))
    }

    fn require_id(&self, path: &str) -> Result<i64> {
        self.path_id(path)?
            .ok_or_else(|| LocalStoreError::InvalidPath(path.to_owned()))
    }

    pub(crate) fn is_valid(&self, path: &str) -> Result<bool> {
        Ok(self.path_id(path)?.is_some())
    }

    /// Every valid path.
    pub(crate) fn valid_paths(&self) -> Result<BTreeSet<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT path FROM ValidPaths")
            .map_err(|e| self.wrap(e))?;
        let rows = stmt
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(|e| self.wrap(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.wrap(e))
    }

    pub(crate) fn query_path_info(&self, path: &str) -> Result<Option<ValidPathInfo>> {
        type Row = (
            i64,
            String,
            i64,
            Option<String>,
            Option<i64>,
            Option<String>,
        );
        let row: Option<Row> = self
            .conn
            .prepare_cached(
                "SELECT id, hash, registrationTime, deriver, narSize, ca \
                 FROM ValidPaths WHERE path = ?1",
            )
            .and_then(|mut stmt| {
                stmt.query_row([path], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                })
                .optional()
            })
            .map_err(|e| self.wrap(e))?;
        let Some((id, hash, registration_time, deriver, nar_size, ca)) = row else {
            return Ok(None);
        };
        let nar_hash = parse_nar_hash(&hash)
            .ok_or_else(|| self.corrupt(format!("`{path}` has the NAR hash `{hash}`")))?;
        let nar_size = u64::try_from(nar_size.unwrap_or(0))
            .map_err(|_| self.corrupt(format!("`{path}` has a negative NAR size")))?;
        Ok(Some(ValidPathInfo {
            path: path.to_owned(),
            nar_hash,
            nar_size,
            references: self.references_of_id(id)?,
            deriver,
            registration_time: Some(registration_time),
            ca,
            derivation_outputs: self.outputs_of_id(id)?,
        }))
    }

    fn references_of_id(&self, id: i64) -> Result<BTreeSet<String>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT v.path FROM Refs r JOIN ValidPaths v ON r.reference = v.id \
                 WHERE r.referrer = ?1",
            )
            .map_err(|e| self.wrap(e))?;
        let rows = stmt
            .query_map([id], |row| row.get::<_, String>(0))
            .map_err(|e| self.wrap(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.wrap(e))
    }

    fn outputs_of_id(&self, id: i64) -> Result<BTreeMap<String, String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, path FROM DerivationOutputs WHERE drv = ?1")
            .map_err(|e| self.wrap(e))?;
        let rows = stmt
            .query_map([id], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(|e| self.wrap(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.wrap(e))
    }

    pub(crate) fn references(&self, path: &str) -> Result<BTreeSet<String>> {
        let id = self.require_id(path)?;
        self.references_of_id(id)
    }

    pub(crate) fn referrers(&self, path: &str) -> Result<BTreeSet<String>> {
        let id = self.require_id(path)?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT v.path FROM Refs r JOIN ValidPaths v ON r.referrer = v.id \
                 WHERE r.reference = ?1",
            )
            .map_err(|e| self.wrap(e))?;
        let rows = stmt
            .query_map([id], |row| row.get::<_, String>(0))
            .map_err(|e| self.wrap(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.wrap(e))
    }

    pub(crate) fn derivation_outputs(&self, drv: &str) -> Result<BTreeMap<String, String>> {
        let id = self.require_id(drv)?;
        self.outputs_of_id(id)
    }

    pub(crate) fn valid_derivers(&self, output: &str) -> Result<BTreeSet<String>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT v.path FROM DerivationOutputs d JOIN ValidPaths v ON d.drv = v.id \
                 WHERE d.path = ?1",
            )
            .map_err(|e| self.wrap(e))?;
        let rows = stmt
            .query_map([output], |row| row.get::<_, String>(0))
            .map_err(|e| self.wrap(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.wrap(e))
    }

    /// Registers every path of `infos` in one transaction: either all become valid or none.
    pub(crate) fn register_valid_paths(&mut self, infos: &[ValidPathInfo]) -> Result<()> {
        let file = self.file.clone();
        let wrap = |source| LocalStoreError::Database {
            db: file.clone(),
            source,
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(wrap)?;
        let mut ids = BTreeMap::new();
        for info in infos {
            let hash = format!("sha256:{}", data_encoding::HEXLOWER.encode(&info.nar_hash));
            let nar_size = i64::try_from(info.nar_size).unwrap_or(i64::MAX);
            let time = info.registration_time.unwrap_or(now);
            let existing: Option<i64> = tx
                .prepare_cached("SELECT id FROM ValidPaths WHERE path = ?1")
                .and_then(|mut s| s.query_row([&info.path], |r| r.get(0)).optional())
                .map_err(wrap)?;
            let id = match existing {
                Some(id) => {
                    tx.prepare_cached(
                        "UPDATE ValidPaths SET hash = ?2, narSize = ?3, ca = ?4, \
                         deriver = coalesce(?5, deriver) WHERE id = ?1",
                    )
                    .and_then(|mut s| s.execute(params![id, hash, nar_size, info.ca, info.deriver]))
                    .map_err(wrap)?;
                    tx.prepare_cached("DELETE FROM Refs WHERE referrer = ?1")
                        .and_then(|mut s| s.execute([id]))
                        .map_err(wrap)?;
                    id
                }
                None => {
                    tx.prepare_cached(
                        "INSERT INTO ValidPaths (path, hash, registrationTime, deriver, narSize, ca) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )
                    .and_then(|mut s| {
                        s.execute(params![info.path, hash, time, info.deriver, nar_size, info.ca])
                    })
                    .map_err(wrap)?;
                    tx.last_insert_rowid()
                }
            };
            for (output_name, output_path) in &info.derivation_outputs {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO DerivationOutputs (drv, id, path) VALUES (?1, ?2, ?3)",
                )
                .and_then(|mut s| s.execute(params![id, output_name, output_path]))
                .map_err(wrap)?;
            }
            ids.insert(info.path.as_str(), id);
        }
        for info in infos {
            let referrer = ids[info.path.as_str()];
            for reference in &info.references {
                let reference_id = match ids.get(reference.as_str()) {
                    Some(id) => *id,
                    None => tx
                        .prepare_cached("SELECT id FROM ValidPaths WHERE path = ?1")
                        .and_then(|mut s| s.query_row([reference], |r| r.get(0)).optional())
                        .map_err(wrap)?
                        .ok_or_else(|| LocalStoreError::InvalidReference {
                            path: info.path.clone(),
                            reference: reference.clone(),
                        })?,
                };
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO Refs (referrer, reference) VALUES (?1, ?2)",
                )
                .and_then(|mut s| s.execute([referrer, reference_id]))
                .map_err(wrap)?;
            }
        }
        tx.commit().map_err(wrap)
    }

    /// Makes `paths` invalid in one transaction. Fails, changing nothing, if a path outside the
    /// set still refers to one of them. Paths that are already invalid are skipped.
    pub(crate) fn invalidate(&mut self, paths: &[String]) -> Result<()> {
        let file = self.file.clone();
        let wrap = |source| LocalStoreError::Database {
            db: file.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(wrap)?;
        let mut ids = BTreeMap::new();
        for path in paths {
            let id: Option<i64> = tx
                .prepare_cached("SELECT id FROM ValidPaths WHERE path = ?1")
                .and_then(|mut s| s.query_row([path], |r| r.get(0)).optional())
                .map_err(wrap)?;
            if let Some(id) = id {
                ids.insert(id, path.as_str());
            }
        }
        for (&id, &path) in &ids {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT r.referrer, v.path FROM Refs r JOIN ValidPaths v ON r.referrer = v.id \
                     WHERE r.reference = ?1",
                )
                .map_err(wrap)?;
            let referrers = stmt
                .query_map([id], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
                })
                .map_err(wrap)?;
            for referrer in referrers {
                let (referrer_id, referrer_path) = referrer.map_err(wrap)?;
                if !ids.contains_key(&referrer_id) {
                    return Err(LocalStoreError::PathInUse {
                        path: path.to_owned(),
                        referrer: referrer_path,
                    });
                }
            }
        }
        for &id in ids.keys() {
            tx.prepare_cached("DELETE FROM Refs WHERE referrer = ?1")
                .and_then(|mut s| s.execute([id]))
                .map_err(wrap)?;
        }
        for &id in ids.keys() {
            tx.prepare_cached("DELETE FROM ValidPaths WHERE id = ?1")
                .and_then(|mut s| s.execute([id]))
                .map_err(wrap)?;
        }
        tx.commit().map_err(wrap)
    }
}

/// Parses the database's `sha256:<base16>` form of a NAR hash.
fn parse_nar_hash(text: &str) -> Option<[u8; 32]> {
    let hex = text.strip_prefix("sha256:")?;
    let bytes = HEXLOWER_PERMISSIVE.decode(hex.as_bytes()).ok()?;
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nar_hash_text_round_trips() {
        let hash = [0xab; 32];
        let text = format!("sha256:{}", data_encoding::HEXLOWER.encode(&hash));
        assert_eq!(parse_nar_hash(&text), Some(hash));
        assert_eq!(parse_nar_hash("md5:00"), None);
        assert_eq!(parse_nar_hash("sha256:abcd"), None);
    }
}
