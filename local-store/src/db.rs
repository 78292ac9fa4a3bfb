//! The store database (`var/kiln/db.sqlite`): the schema, its version, and every query on it.
//!
//! The schema follows Nix's: `ValidPaths` (one row per valid path: NAR hash as
//! `sha256:<base16>`, registration time, deriver, NAR size, content address, signatures), `Refs` (the
//! reference graph between valid paths; a referenced path cannot be deleted while a referrer
//! exists), `DerivationOutputs` (the outputs of each valid `.drv`), and, as Nix's
//! `ca-derivations` schema, `Realisations` (`<drv hash>!<output>` → a valid output path, with
//! signatures; gone with the path) and `RealisationsRefs` (the realisations a realisation
//! depends on). The schema version is kept
//! in SQLite's `user_version`. Connections use WAL so that readers never block the writer, a busy
//! timeout so that concurrent kiln processes wait for each other instead of failing, and
//! `BEGIN IMMEDIATE` for every write so that two writers never deadlock on a lock upgrade.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::error::{LocalStoreError, Result};
use super::path_info::ValidPathInfo;
use kiln_store::hash::{Hash, HashEncoding};
use kiln_store::realisation::{DrvOutput, Realisation};
use kiln_store::store_path::{StoreDir, StorePath};

/// The schema version this code writes and understands.
const SCHEMA_VERSION: i64 = 3;

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

/// Version 2: the signatures of a path (`NAME:base64`, space-separated, as Nix keeps them).
const SCHEMA_V2: &str = "ALTER TABLE ValidPaths ADD COLUMN sigs TEXT;";

/// Version 3: realisations of derivation outputs (content-addressed derivations), as Nix's
/// `ca-specific-schema.sql`: `drvPath` holds the static output hash (`sha256:<base16>`).
const SCHEMA_V3: &str = "
CREATE TABLE IF NOT EXISTS Realisations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    drvPath     TEXT NOT NULL,
    outputName  TEXT NOT NULL,
    outputPath  INTEGER NOT NULL,
    signatures  TEXT,
    FOREIGN KEY (outputPath) REFERENCES ValidPaths(id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX IF NOT EXISTS IndexRealisations ON Realisations(drvPath, outputName);
CREATE TABLE IF NOT EXISTS RealisationsRefs (
    referrer             INTEGER NOT NULL,
    realisationReference INTEGER,
    FOREIGN KEY (referrer) REFERENCES Realisations(id) ON DELETE CASCADE,
    FOREIGN KEY (realisationReference) REFERENCES Realisations(id) ON DELETE RESTRICT
);
CREATE INDEX IF NOT EXISTS IndexRealisationsRefs ON RealisationsRefs(referrer);
CREATE INDEX IF NOT EXISTS IndexRealisationsRefsOnOutputPath ON Realisations(outputPath);
";

/// One open connection to the store database.
pub(crate) struct StoreDb {
    conn: Connection,
    file: PathBuf,
    store_dir: StoreDir,
}

impl StoreDb {
    /// Opens (creating if needed) the database at `file` and brings its schema up to date.
    pub(crate) fn open(file: &Path, store_dir: StoreDir) -> Result<Self> {
        let conn = Connection::open(file).map_err(|source| LocalStoreError::Database {
            db: file.to_path_buf(),
            source,
        })?;
        let mut db = StoreDb {
            conn,
            file: file.to_path_buf(),
            store_dir,
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

    /// Parses a path read from the database.
    fn parse_path(&self, text: &str) -> Result<StorePath> {
        self.store_dir
            .parse(text)
            .map_err(|e| self.corrupt(format!("row path: {e}")))
    }

    fn parse_paths<C: FromIterator<StorePath>>(&self, texts: Vec<String>) -> Result<C> {
        texts.iter().map(|text| self.parse_path(text)).collect()
    }

    /// Runs `sql` with one parameter and returns the first column of every row.
    fn strings(&self, sql: &str, param: impl rusqlite::ToSql) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.wrap(e))?;
        let rows = stmt
            .query_map([param], |row| row.get::<_, String>(0))
            .map_err(|e| self.wrap(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.wrap(e))
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
        self.write_transaction(|tx, wrap| {
            let version: i64 = tx
                .query_row("PRAGMA user_version", [], |row| row.get(0))
                .map_err(wrap)?;
            if version > SCHEMA_VERSION {
                return Err(LocalStoreError::SchemaTooNew {
                    db: file,
                    found: version,
                    supported: SCHEMA_VERSION,
                });
            }
            if version < 1 {
                tx.execute_batch(SCHEMA_V1).map_err(wrap)?;
            }
            if version < 2 {
                tx.execute_batch(SCHEMA_V2).map_err(wrap)?;
            }
            if version < 3 {
                tx.execute_batch(SCHEMA_V3).map_err(wrap)?;
            }
            if version < SCHEMA_VERSION {
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                    .map_err(wrap)?;
            }
            Ok(())
        })
    }

    /// Runs `body` in one immediate (write-locking) transaction, committed when `body`
    /// succeeds and rolled back when it fails; `body` gets the transaction and the function
    /// that names this database in SQLite errors.
    fn write_transaction<T>(
        &mut self,
        body: impl FnOnce(
            &rusqlite::Transaction<'_>,
            &dyn Fn(rusqlite::Error) -> LocalStoreError,
        ) -> Result<T>,
    ) -> Result<T> {
        let file = self.file.clone();
        let wrap = move |source| LocalStoreError::Database {
            db: file.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&wrap)?;
        let value = body(&tx, &wrap)?;
        tx.commit().map_err(&wrap)?;
        Ok(value)
    }

    /// The schema version recorded in the database.
    pub(crate) fn schema_version(&self) -> Result<i64> {
        self.conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(|e| self.wrap(e))
    }

    fn path_id(&self, path: &StorePath) -> Result<Option<i64>> {
        let text = self.store_dir.print(path);
        self.conn
            .prepare_cached("SELECT id FROM ValidPaths WHERE path = ?1")
            .and_then(|mut stmt| stmt.query_row([text], |row| row.get(0)).optional())
            .map_err(|e| self.wrap(e))
    }

    fn require_id(&self, path: &StorePath) -> Result<i64> {
        self.path_id(path)?
            .ok_or_else(|| LocalStoreError::InvalidPath(self.store_dir.print(path)))
    }

    pub(crate) fn is_valid(&self, path: &StorePath) -> Result<bool> {
        Ok(self.path_id(path)?.is_some())
    }

    /// Every valid path.
    pub(crate) fn valid_paths(&self) -> Result<BTreeSet<StorePath>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT path FROM ValidPaths")
            .map_err(|e| self.wrap(e))?;
        let rows = stmt
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(|e| self.wrap(e))?;
        let texts = rows
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.wrap(e))?;
        self.parse_paths(texts)
    }

    pub(crate) fn query_path_info(&self, path: &StorePath) -> Result<Option<ValidPathInfo>> {
        type Row = (
            i64,
            String,
            i64,
            Option<String>,
            Option<i64>,
            Option<String>,
            Option<String>,
        );
        let text = self.store_dir.print(path);
        let row: Option<Row> = self
            .conn
            .prepare_cached(
                "SELECT id, hash, registrationTime, deriver, narSize, ca, sigs \
                 FROM ValidPaths WHERE path = ?1",
            )
            .and_then(|mut stmt| {
                stmt.query_row([&text], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                })
                .optional()
            })
            .map_err(|e| self.wrap(e))?;
        let Some((id, hash, registration_time, deriver, nar_size, ca, sigs)) = row else {
            return Ok(None);
        };
        let nar_hash = Hash::parse_prefixed(&hash)
            .map_err(|e| self.corrupt(format!("`{text}` has the NAR hash `{hash}`: {e}")))?;
        let nar_size = u64::try_from(nar_size.unwrap_or(0))
            .map_err(|_| self.corrupt(format!("`{text}` has a negative NAR size")))?;
        let deriver = deriver.map(|d| self.parse_path(&d)).transpose()?;
        Ok(Some(ValidPathInfo {
            path: path.clone(),
            nar_hash,
            nar_size,
            references: self.references_of_id(id)?,
            deriver,
            registration_time: Some(registration_time),
            ca,
            derivation_outputs: self.outputs_of_id(id)?,
            signatures: split_signatures(sigs.as_deref()),
        }))
    }

    fn references_of_id(&self, id: i64) -> Result<BTreeSet<StorePath>> {
        let texts = self.strings(
            "SELECT v.path FROM Refs r JOIN ValidPaths v ON r.reference = v.id \
             WHERE r.referrer = ?1",
            id,
        )?;
        self.parse_paths(texts)
    }

    fn outputs_of_id(&self, id: i64) -> Result<BTreeMap<String, StorePath>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, path FROM DerivationOutputs WHERE drv = ?1")
            .map_err(|e| self.wrap(e))?;
        let rows = stmt
            .query_map([id], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(|e| self.wrap(e))?;
        let pairs = rows
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.wrap(e))?;
        pairs
            .into_iter()
            .map(|(name, path)| Ok((name, self.parse_path(&path)?)))
            .collect()
    }

    pub(crate) fn references(&self, path: &StorePath) -> Result<BTreeSet<StorePath>> {
        let id = self.require_id(path)?;
        self.references_of_id(id)
    }

    pub(crate) fn referrers(&self, path: &StorePath) -> Result<BTreeSet<StorePath>> {
        let id = self.require_id(path)?;
        let texts = self.strings(
            "SELECT v.path FROM Refs r JOIN ValidPaths v ON r.referrer = v.id \
             WHERE r.reference = ?1",
            id,
        )?;
        self.parse_paths(texts)
    }

    pub(crate) fn derivation_outputs(
        &self,
        drv: &StorePath,
    ) -> Result<BTreeMap<String, StorePath>> {
        let id = self.require_id(drv)?;
        self.outputs_of_id(id)
    }

    pub(crate) fn valid_derivers(&self, output: &StorePath) -> Result<BTreeSet<StorePath>> {
        let texts = self.strings(
            "SELECT v.path FROM DerivationOutputs d JOIN ValidPaths v ON d.drv = v.id \
             WHERE d.path = ?1",
            self.store_dir.print(output),
        )?;
        self.parse_paths(texts)
    }

    /// Registers every path of `infos` in one transaction: either all become valid or none.
    pub(crate) fn register_valid_paths(&mut self, infos: &[ValidPathInfo]) -> Result<()> {
        let store_dir = self.store_dir.clone();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        self.write_transaction(|tx, wrap| {
            let mut ids = BTreeMap::new();
            for info in infos {
                let path = store_dir.print(&info.path);
                let deriver = info.deriver.as_ref().map(|d| store_dir.print(d));
                let hash = info.nar_hash.encode(HashEncoding::Base16, true);
                let nar_size = i64::try_from(info.nar_size).unwrap_or(i64::MAX);
                let time = info.registration_time.unwrap_or(now);
                let sigs = join_signatures(&info.signatures);
                let existing: Option<i64> = tx
                    .prepare_cached("SELECT id FROM ValidPaths WHERE path = ?1")
                    .and_then(|mut s| s.query_row([&path], |r| r.get(0)).optional())
                    .map_err(wrap)?;
                let id = match existing {
                    Some(id) => {
                        tx.prepare_cached(
                            "UPDATE ValidPaths SET hash = ?2, narSize = ?3, ca = ?4, \
                             deriver = coalesce(?5, deriver), sigs = coalesce(?6, sigs) \
                             WHERE id = ?1",
                        )
                        .and_then(|mut s| s.execute(params![id, hash, nar_size, info.ca, deriver, sigs]))
                        .map_err(wrap)?;
                        tx.prepare_cached("DELETE FROM Refs WHERE referrer = ?1")
                            .and_then(|mut s| s.execute([id]))
                            .map_err(wrap)?;
                        id
                    }
                    None => {
                        tx.prepare_cached(
                            "INSERT INTO ValidPaths \
                             (path, hash, registrationTime, deriver, narSize, ca, sigs) \
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        )
                        .and_then(|mut s| {
                            s.execute(params![path, hash, time, deriver, nar_size, info.ca, sigs])
                        })
                        .map_err(wrap)?;
                        tx.last_insert_rowid()
                    }
                };
                for (output_name, output_path) in &info.derivation_outputs {
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO DerivationOutputs (drv, id, path) VALUES (?1, ?2, ?3)",
                    )
                    .and_then(|mut s| s.execute(params![id, output_name, store_dir.print(output_path)]))
                    .map_err(wrap)?;
                }
                ids.insert(&info.path, id);
            }
            for info in infos {
                // Every path of the batch was given an id in the loop above.
                let referrer = ids[&info.path];
                for reference in &info.references {
                    let reference_id = match ids.get(reference) {
                        Some(id) => *id,
                        None => tx
                            .prepare_cached("SELECT id FROM ValidPaths WHERE path = ?1")
                            .and_then(|mut s| {
                                s.query_row([store_dir.print(reference)], |r| r.get(0))
                                    .optional()
                            })
                            .map_err(wrap)?
                            .ok_or_else(|| LocalStoreError::InvalidReference {
                                path: store_dir.print(&info.path),
                                reference: store_dir.print(reference),
                            })?,
                    };
                    tx.prepare_cached(
                        "INSERT OR IGNORE INTO Refs (referrer, reference) VALUES (?1, ?2)",
                    )
                    .and_then(|mut s| s.execute([referrer, reference_id]))
                    .map_err(wrap)?;
                }
            }
            Ok(())
        })
    }

    /// Adds `signatures` to those of the valid `path`.
    pub(crate) fn add_signatures(
        &mut self,
        path: &StorePath,
        signatures: &BTreeSet<String>,
    ) -> Result<()> {
        let id = self.require_id(path)?;
        let existing: Option<String> = self
            .conn
            .prepare_cached("SELECT sigs FROM ValidPaths WHERE id = ?1")
            .and_then(|mut s| s.query_row([id], |r| r.get(0)))
            .map_err(|e| self.wrap(e))?;
        let mut all = split_signatures(existing.as_deref());
        all.extend(signatures.iter().cloned());
        self.conn
            .prepare_cached("UPDATE ValidPaths SET sigs = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![id, join_signatures(&all)]))
            .map_err(|e| self.wrap(e))?;
        Ok(())
    }

    /// Makes `paths` invalid in one transaction. Fails, changing nothing, if a path outside the
    /// set still refers to one of them. Paths that are already invalid are skipped.
    pub(crate) fn invalidate(&mut self, paths: &[StorePath]) -> Result<()> {
        let store_dir = self.store_dir.clone();
        self.write_transaction(|tx, wrap| {
            let mut ids = BTreeMap::new();
            for path in paths {
                let text = store_dir.print(path);
                let id: Option<i64> = tx
                    .prepare_cached("SELECT id FROM ValidPaths WHERE path = ?1")
                    .and_then(|mut s| s.query_row([&text], |r| r.get(0)).optional())
                    .map_err(wrap)?;
                if let Some(id) = id {
                    ids.insert(id, text);
                }
            }
            for (&id, path) in &ids {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT r.referrer, v.path FROM Refs r \
                         JOIN ValidPaths v ON r.referrer = v.id WHERE r.reference = ?1",
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
                            path: path.clone(),
                            referrer: referrer_path,
                        });
                    }
                }
            }
            // The realisations of the paths go with them; first the dependency rows that name
            // them either way (a dependent realisation's path refers to its dependency's, so
            // the path references checked above already keep needed ones).
            for &id in ids.keys() {
                tx.prepare_cached(
                    "DELETE FROM RealisationsRefs WHERE referrer IN \
                     (SELECT id FROM Realisations WHERE outputPath = ?1) \
                     OR realisationReference IN \
                     (SELECT id FROM Realisations WHERE outputPath = ?1)",
                )
                .and_then(|mut s| s.execute([id]))
                .map_err(wrap)?;
            }
            for &id in ids.keys() {
                tx.prepare_cached("DELETE FROM Realisations WHERE outputPath = ?1")
                    .and_then(|mut s| s.execute([id]))
                    .map_err(wrap)?;
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
            Ok(())
        })
    }
}

impl StoreDb {
    /// Registers `realisations` in one transaction. An output realised already at the same path
    /// gains the new signatures; at another path it is a conflict. The output paths must be
    /// valid, and every dependent realisation must be known here at the same path.
    pub(crate) fn register_realisations(&mut self, realisations: &[Realisation]) -> Result<()> {
        let store_dir = self.store_dir.clone();
        self.write_transaction(|tx, wrap| {
            for realisation in realisations {
                let printed = store_dir.print(&realisation.out_path);
                let id_text = realisation.id.to_string();
                let row_id = match realisation_row(tx, &realisation.id).map_err(wrap)? {
                    Some((row_id, existing, signatures)) => {
                        if existing != printed {
                            return Err(LocalStoreError::RealisationConflict {
                                id: id_text,
                                path: printed,
                                existing,
                            });
                        }
                        let mut all = split_signatures(signatures.as_deref());
                        all.extend(realisation.signatures.iter().cloned());
                        tx.prepare_cached("UPDATE Realisations SET signatures = ?2 WHERE id = ?1")
                            .and_then(|mut s| s.execute(params![row_id, join_signatures(&all)]))
                            .map_err(wrap)?;
                        row_id
                    }
                    None => {
                        let path_id: Option<i64> = tx
                            .prepare_cached("SELECT id FROM ValidPaths WHERE path = ?1")
                            .and_then(|mut s| s.query_row([&printed], |r| r.get(0)).optional())
                            .map_err(wrap)?;
                        let path_id = path_id.ok_or_else(|| LocalStoreError::InvalidPath(printed.clone()))?;
                        tx.prepare_cached(
                            "INSERT INTO Realisations (drvPath, outputName, outputPath, signatures) \
                             VALUES (?1, ?2, ?3, ?4)",
                        )
                        .and_then(|mut s| {
                            s.execute(params![
                                realisation.id.hash_text(),
                                realisation.id.output,
                                path_id,
                                join_signatures(&realisation.signatures)
                            ])
                        })
                        .map_err(wrap)?;
                        tx.last_insert_rowid()
                    }
                };
                for (dependency, path) in &realisation.dependent_realisations {
                    let problem = match realisation_row(tx, dependency).map_err(wrap)? {
                        None => Some("does not have"),
                        Some((_, existing, _)) if existing != store_dir.print(path) => {
                            Some("realised at another path")
                        }
                        Some((dependency_id, _, _)) => {
                            tx.prepare_cached(
                                "DELETE FROM RealisationsRefs \
                                 WHERE referrer = ?1 AND realisationReference = ?2",
                            )
                            .and_then(|mut s| s.execute(params![row_id, dependency_id]))
                            .map_err(wrap)?;
                            tx.prepare_cached(
                                "INSERT INTO RealisationsRefs (referrer, realisationReference) \
                                 VALUES (?1, ?2)",
                            )
                            .and_then(|mut s| s.execute(params![row_id, dependency_id]))
                            .map_err(wrap)?;
                            None
                        }
                    };
                    if let Some(problem) = problem {
                        return Err(LocalStoreError::RealisationDependency {
                            id: id_text,
                            dependency: dependency.to_string(),
                            problem,
                        });
                    }
                }
            }
            Ok(())
        })
    }

    /// The realisation of `id`, if this store has one.
    pub(crate) fn query_realisation(&self, id: &DrvOutput) -> Result<Option<Realisation>> {
        let row = realisation_row(&self.conn, id).map_err(|e| self.wrap(e))?;
        let Some((row_id, path, signatures)) = row else {
            return Ok(None);
        };
        self.realisation_from_row(id.clone(), row_id, &path, signatures.as_deref())
            .map(Some)
    }

    /// Every realisation whose output is `path`.
    pub(crate) fn realisations_of_path(&self, path: &StorePath) -> Result<Vec<Realisation>> {
        self.query_realisations("WHERE v.path = ?1", [self.store_dir.print(path)])
    }

    /// Every realisation in the store.
    pub(crate) fn all_realisations(&self) -> Result<Vec<Realisation>> {
        self.query_realisations("", [])
    }

    /// The realisations that `condition` (an SQL `WHERE` clause over `r`, the realisation,
    /// and `v`, its output's valid path, or nothing) selects, oldest first.
    fn query_realisations(
        &self,
        condition: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<Realisation>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT r.id, r.drvPath, r.outputName, v.path, r.signatures FROM Realisations r \
                 JOIN ValidPaths v ON v.id = r.outputPath {condition} ORDER BY r.id"
            ))
            .map_err(|e| self.wrap(e))?;
        let rows = stmt
            .query_map(params, |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            })
            .map_err(|e| self.wrap(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.wrap(e))?;
        rows.into_iter()
            .map(|(row_id, hash, output, path, signatures)| {
                let id = self.parse_drv_output(&hash, &output)?;
                self.realisation_from_row(id, row_id, &path, signatures.as_deref())
            })
            .collect()
    }

    fn parse_drv_output(&self, hash: &str, output: &str) -> Result<DrvOutput> {
        format!("{hash}!{output}")
            .parse()
            .map_err(|e| self.corrupt(format!("realisation `{hash}!{output}`: {e}")))
    }

    fn realisation_from_row(
        &self,
        id: DrvOutput,
        row_id: i64,
        path: &str,
        signatures: Option<&str>,
    ) -> Result<Realisation> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT d.drvPath, d.outputName, v.path FROM RealisationsRefs rr \
                 JOIN Realisations d ON d.id = rr.realisationReference \
                 JOIN ValidPaths v ON v.id = d.outputPath WHERE rr.referrer = ?1",
            )
            .map_err(|e| self.wrap(e))?;
        let rows = stmt
            .query_map([row_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(|e| self.wrap(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.wrap(e))?;
        let mut dependent_realisations = BTreeMap::new();
        for (hash, output, dependency_path) in rows {
            dependent_realisations.insert(
                self.parse_drv_output(&hash, &output)?,
                self.parse_path(&dependency_path)?,
            );
        }
        Ok(Realisation {
            id,
            out_path: self.parse_path(path)?,
            signatures: split_signatures(signatures),
            dependent_realisations,
        })
    }
}

/// The `sigs` column's text: `None` for no signature.
fn join_signatures(signatures: &BTreeSet<String>) -> Option<String> {
    (!signatures.is_empty()).then(|| {
        signatures
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    })
}

fn split_signatures(text: Option<&str>) -> BTreeSet<String> {
    text.unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The row of the realisation of `id`: its row id, output path and signatures.
fn realisation_row(
    conn: &rusqlite::Connection,
    id: &DrvOutput,
) -> rusqlite::Result<Option<(i64, String, Option<String>)>> {
    conn.prepare_cached(
        "SELECT r.id, v.path, r.signatures FROM Realisations r \
         JOIN ValidPaths v ON v.id = r.outputPath \
         WHERE r.drvPath = ?1 AND r.outputName = ?2",
    )
    .and_then(|mut s| {
        s.query_row(params![id.hash_text(), id.output], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()
    })
}
