//! Jobs persisted in SQLite: an accepted job is committed (WAL, `synchronous=FULL`) before the client hears of it,
//! so a crash or restart loses none; unfinished ones are queued again at start. The input and the salt are kept
//! only until the job ends (the salt opens the input commitment; the client has it).

use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, ErrorCode, OptionalExtension};

use crate::api::{GenerationView, JobStatus};

/// Schema version (`PRAGMA user_version`; 2: the `generation_json` column). A version-1 database gains the column
/// (its jobs are kept); any other version is refused, not rewritten.
pub const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id               TEXT PRIMARY KEY,
    model_id         TEXT NOT NULL,
    nonce            TEXT NOT NULL,
    salt             TEXT,
    input_json       TEXT,
    proof_requested  INTEGER NOT NULL,
    status           TEXT NOT NULL,
    outputs_json     TEXT NOT NULL,
    input_commitment TEXT NOT NULL,
    output_scale     REAL NOT NULL,
    bundle           BLOB,
    error            TEXT,
    created_ms       INTEGER NOT NULL,
    finished_ms      INTEGER,
    proving_ms       REAL,
    generation_json  TEXT,
    UNIQUE (model_id, nonce)
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, created_ms);
";

/// A job as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct JobRecord {
    /// Job id (hex).
    pub id: String,
    /// Model id (hex).
    pub model_id: String,
    /// Request nonce (hex).
    pub nonce: String,
    /// Salt (hex), until the job ends.
    pub salt: Option<String>,
    /// The float input, until the job ends.
    pub input: Option<Vec<f32>>,
    /// Whether a proof was asked for.
    pub proof_requested: bool,
    /// Where the job is.
    pub status: JobStatus,
    /// The inference outputs.
    pub outputs: Vec<i64>,
    /// Input commitment (hex).
    pub input_commitment: String,
    /// Float scale of the outputs.
    pub output_scale: f32,
    /// The proof bundle (binary form), once done.
    pub bundle: Option<Vec<u8>>,
    /// Why proving failed.
    pub error: Option<String>,
    /// Unix time of acceptance, ms.
    pub created_ms: u64,
    /// Unix time the job ended, ms.
    pub finished_ms: Option<u64>,
    /// Proving time, ms.
    pub proving_ms: Option<f64>,
    /// A generation's prompt length and tokens (the input is then the proven sequence).
    pub generation: Option<GenerationView>,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// This model already answered this nonce (which job did is not said: it may be another client's).
    #[error("nonce already used for this model")]
    NonceUsed,
    /// The database file belongs to another schema version.
    #[error("the database has schema version {found}, this zkinfer uses {SCHEMA_VERSION}; use another --db file")]
    Version {
        /// Version in the file.
        found: i64,
    },
    /// SQLite failed.
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored value could not be decoded (the file was edited or corrupted).
    #[error("corrupted job {id}: {reason}")]
    Corrupted {
        /// The job.
        id: String,
        /// Why.
        reason: String,
    },
}

/// The job table behind a mutex (SQLite calls are short; one connection keeps writes ordered).
pub struct JobStore {
    conn: Mutex<Connection>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl JobStore {
    /// Opens (or creates) the database at `path`; `:memory:` keeps jobs in memory only.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // WAL keeps readers off the writer's back; FULL makes a commit durable before the answer leaves.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // Deleted inputs and salts are overwritten with zeros, not left in free pages (the WAL is truncated
        // after each job ends, see `forget`).
        conn.pragma_update(None, "secure_delete", "ON")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
        let tables: i64 = conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'jobs'",
            [],
            |row| row.get(0),
        )?;
        if tables > 0 && version == 1 {
            // Version 1 lacked generations: add the column, keep every job.
            conn.execute_batch("ALTER TABLE jobs ADD COLUMN generation_json TEXT")?;
        } else if tables > 0 && version != SCHEMA_VERSION {
            return Err(StoreError::Version { found: version });
        }
        conn.execute_batch(SCHEMA)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        Ok(JobStore { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (every change is one statement).
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stores a new job; refuses a nonce this model already answered.
    pub fn insert(&self, job: &JobRecord) -> Result<(), StoreError> {
        let conn = self.conn();
        let input_json = job.input.as_ref().map(|i| serde_json::to_string(i).unwrap_or_default());
        let outputs_json = serde_json::to_string(&job.outputs).unwrap_or_default();
        let generation_json = job
            .generation
            .as_ref()
            .map(|g| serde_json::to_string(g).unwrap_or_default());
        let inserted = conn.execute(
            "INSERT INTO jobs (id, model_id, nonce, salt, input_json, proof_requested, status, outputs_json,
                               input_commitment, output_scale, bundle, error, created_ms, finished_ms, proving_ms,
                               generation_json)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            params![
                job.id,
                job.model_id,
                job.nonce,
                job.salt,
                input_json,
                job.proof_requested,
                job.status.as_str(),
                outputs_json,
                job.input_commitment,
                job.output_scale as f64,
                job.bundle,
                job.error,
                job.created_ms as i64,
                job.finished_ms.map(|v| v as i64),
                job.proving_ms,
                generation_json,
            ],
        );
        match inserted {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == ErrorCode::ConstraintViolation => {
                Err(StoreError::NonceUsed)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Whether a job of `model_id` already used `nonce`.
    pub fn nonce_used(&self, model_id: &str, nonce: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT 1 FROM jobs WHERE model_id = ?1 AND nonce = ?2",
                params![model_id, nonce],
                |row| row.get::<_, i64>(0),
            )
            .optional()?
            .is_some())
    }

    /// The job `id`, if there is one.
    pub fn get(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let conn = self.conn();
        let row = conn
            .query_row(
                "SELECT id, model_id, nonce, salt, input_json, proof_requested, status, outputs_json,
                        input_commitment, output_scale, bundle, error, created_ms, finished_ms, proving_ms,
                        generation_json
                 FROM jobs WHERE id = ?1",
                params![id],
                |row| {
                    Ok(RawRow {
                        id: row.get(0)?,
                        model_id: row.get(1)?,
                        nonce: row.get(2)?,
                        salt: row.get(3)?,
                        input_json: row.get(4)?,
                        proof_requested: row.get(5)?,
                        status: row.get(6)?,
                        outputs_json: row.get(7)?,
                        input_commitment: row.get(8)?,
                        output_scale: row.get(9)?,
                        bundle: row.get(10)?,
                        error: row.get(11)?,
                        created_ms: row.get(12)?,
                        finished_ms: row.get(13)?,
                        proving_ms: row.get(14)?,
                        generation_json: row.get(15)?,
                    })
                },
            )
            .optional()?;
        row.map(RawRow::decode).transpose()
    }

    /// Marks a job as being proven.
    pub fn mark_proving(&self, id: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE jobs SET status = 'proving' WHERE id = ?1 AND status IN ('queued', 'proving')",
            params![id],
        )?;
        Ok(())
    }

    /// Stores the proof of a job, ends it, and forgets its input and salt.
    pub fn finish(&self, id: &str, outputs: &[i64], bundle: &[u8], proving_ms: f64) -> Result<(), StoreError> {
        let conn = self.conn();
        conn.execute(
            "UPDATE jobs SET status = 'done', outputs_json = ?2, bundle = ?3, proving_ms = ?4, finished_ms = ?5,
                             input_json = NULL, salt = NULL
             WHERE id = ?1",
            params![
                id,
                serde_json::to_string(outputs).unwrap_or_default(),
                bundle,
                proving_ms,
                now_ms() as i64
            ],
        )?;
        forget(&conn)
    }

    /// Ends a job as failed, and forgets its input and salt.
    pub fn fail(&self, id: &str, error: &str) -> Result<(), StoreError> {
        let conn = self.conn();
        conn.execute(
            "UPDATE jobs SET status = 'failed', error = ?2, finished_ms = ?3, input_json = NULL, salt = NULL
             WHERE id = ?1",
            params![id, error, now_ms() as i64],
        )?;
        forget(&conn)
    }

    /// The unfinished jobs (queued, or being proven when the server stopped), oldest first, as (id, model id);
    /// those being proven are set back to queued.
    pub fn take_unfinished(&self) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.conn();
        conn.execute("UPDATE jobs SET status = 'queued' WHERE status = 'proving'", [])?;
        let mut statement =
            conn.prepare("SELECT id, model_id FROM jobs WHERE status = 'queued' ORDER BY created_ms, id")?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// How many jobs are in each status.
    pub fn count(&self, status: JobStatus) -> Result<u64, StoreError> {
        let n: i64 = self.conn().query_row(
            "SELECT count(*) FROM jobs WHERE status = ?1",
            params![status.as_str()],
            |row| row.get(0),
        )?;
        Ok(n as u64)
    }
}

/// Makes deleted values unrecoverable from the files: `secure_delete` zeroes them in the database pages, and a
/// truncating checkpoint copies those pages into the database and empties the WAL, whose older frames still held
/// them. (This connection is the only one, so the checkpoint is never blocked by a reader.)
fn forget(conn: &Connection) -> Result<(), StoreError> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

/// A row before decoding its JSON columns.
struct RawRow {
    id: String,
    model_id: String,
    nonce: String,
    salt: Option<String>,
    input_json: Option<String>,
    proof_requested: bool,
    status: String,
    outputs_json: String,
    input_commitment: String,
    output_scale: f64,
    bundle: Option<Vec<u8>>,
    error: Option<String>,
    created_ms: i64,
    finished_ms: Option<i64>,
    proving_ms: Option<f64>,
    generation_json: Option<String>,
}

impl RawRow {
    fn decode(self) -> Result<JobRecord, StoreError> {
        let corrupted = |reason: String| StoreError::Corrupted {
            id: self.id.clone(),
            reason,
        };
        let status = JobStatus::parse(&self.status).ok_or_else(|| corrupted(format!("status `{}`", self.status)))?;
        let outputs = serde_json::from_str(&self.outputs_json).map_err(|e| corrupted(format!("outputs: {e}")))?;
        let input = self
            .input_json
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| corrupted(format!("input: {e}")))?;
        let generation = self
            .generation_json
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| corrupted(format!("generation: {e}")))?;
        Ok(JobRecord {
            id: self.id,
            model_id: self.model_id,
            nonce: self.nonce,
            salt: self.salt,
            input,
            proof_requested: self.proof_requested,
            status,
            outputs,
            input_commitment: self.input_commitment,
            output_scale: self.output_scale as f32,
            bundle: self.bundle,
            error: self.error,
            created_ms: self.created_ms.max(0) as u64,
            finished_ms: self.finished_ms.map(|v| v.max(0) as u64),
            proving_ms: self.proving_ms,
            generation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, nonce: &str) -> JobRecord {
        JobRecord {
            id: id.into(),
            model_id: "m".into(),
            nonce: nonce.into(),
            salt: Some("05".into()),
            input: Some(vec![0.5, -1.0]),
            proof_requested: true,
            status: JobStatus::Queued,
            outputs: vec![3, -4],
            input_commitment: "c".into(),
            output_scale: 0.25,
            bundle: None,
            error: None,
            created_ms: 1,
            finished_ms: None,
            proving_ms: None,
            generation: None,
        }
    }

    #[test]
    fn jobs_survive_reopening_and_unfinished_ones_come_back_queued() {
        let dir = std::env::temp_dir().join(format!("zkinfer-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("jobs.sqlite");
        let _ = std::fs::remove_file(&path);
        {
            let store = JobStore::open(&path).unwrap();
            store.insert(&job("a", "n1")).unwrap();
            store.insert(&job("b", "n2")).unwrap();
            store.insert(&job("c", "n3")).unwrap();
            store.mark_proving("a").unwrap();
            store.finish("c", &[3, -4], b"proof", 12.5).unwrap();
        }
        let store = JobStore::open(&path).unwrap();
        assert_eq!(store.get("a").unwrap().unwrap().status, JobStatus::Proving);
        let unfinished = store.take_unfinished().unwrap();
        assert_eq!(unfinished, vec![("a".into(), "m".into()), ("b".into(), "m".into())]);
        assert_eq!(store.get("a").unwrap().unwrap().status, JobStatus::Queued);
        let done = store.get("c").unwrap().unwrap();
        assert_eq!(done.status, JobStatus::Done);
        assert_eq!(done.bundle.as_deref(), Some(&b"proof"[..]));
        assert_eq!(
            (done.input, done.salt),
            (None, None),
            "input and salt are forgotten when a job ends"
        );
        assert_eq!(store.get("a").unwrap().unwrap().input, Some(vec![0.5, -1.0]));
        assert!(store.get("zzz").unwrap().is_none());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_nonce_is_answered_once_per_model() {
        let store = JobStore::open(Path::new(":memory:")).unwrap();
        store.insert(&job("a", "n1")).unwrap();
        assert!(store.nonce_used("m", "n1").unwrap());
        assert!(!store.nonce_used("m", "n2").unwrap());
        match store.insert(&job("b", "n1")) {
            Err(e @ StoreError::NonceUsed) => assert!(!e.to_string().contains("job"), "{e}"),
            other => panic!("expected NonceUsed, got {other:?}"),
        }
        let mut other_model = job("c", "n1");
        other_model.model_id = "m2".into();
        store.insert(&other_model).unwrap();
        store.fail("c", "boom").unwrap();
        let failed = store.get("c").unwrap().unwrap();
        assert_eq!(
            (failed.status, failed.error.as_deref()),
            (JobStatus::Failed, Some("boom"))
        );
        assert_eq!(store.count(JobStatus::Queued).unwrap(), 1);
    }

    /// Once a job ends, neither the database file nor its WAL holds its input or salt, in any page.
    #[test]
    fn ended_jobs_leave_no_input_or_salt_in_the_files() {
        let dir = std::env::temp_dir().join(format!("zkinfer-store-secure-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("jobs.sqlite");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        let secret_input = vec![0.123_456_79_f32, -7.654_321];
        let secret_salt = "5ec2e75a17c0ffee5ec2e75a17c0ffee";
        let marker_input = serde_json::to_string(&secret_input).unwrap();
        let secret = |id: &str, nonce: &str| JobRecord {
            input: Some(secret_input.clone()),
            salt: Some(secret_salt.into()),
            ..job(id, nonce)
        };
        let store = JobStore::open(&path).unwrap();
        let files = || -> Vec<u8> {
            ["", "-wal"]
                .iter()
                .flat_map(|suffix| std::fs::read(format!("{}{suffix}", path.display())).unwrap_or_default())
                .collect()
        };
        let holds = |bytes: &[u8], needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
        store.insert(&secret("a", "n1")).unwrap();
        store.insert(&secret("b", "n2")).unwrap();
        let before = files();
        assert!(
            holds(&before, &marker_input) && holds(&before, secret_salt),
            "the files should hold a queued job's input and salt (else this test proves nothing)"
        );
        store.finish("a", &[1, 2], b"proof", 1.0).unwrap();
        store.fail("b", "boom").unwrap();
        let after = files();
        assert!(
            !holds(&after, &marker_input),
            "an ended job's input lingers in the files"
        );
        assert!(!holds(&after, secret_salt), "an ended job's salt lingers in the files");
        drop(store);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_version_1_database_gains_generations_and_keeps_its_jobs() {
        let dir = std::env::temp_dir().join(format!("zkinfer-store-v1-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("jobs.sqlite");
        let _ = std::fs::remove_file(&path);
        {
            // The version-1 schema: this one without the generation column.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(&SCHEMA.replace("generation_json  TEXT,", ""))
                .unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute(
                "INSERT INTO jobs (id, model_id, nonce, proof_requested, status, outputs_json, input_commitment,
                                   output_scale, created_ms) VALUES ('old', 'm', '01', 0, 'done', '[1]', 'c', 1.0, 5)",
                [],
            )
            .unwrap();
        }
        let store = JobStore::open(&path).unwrap();
        let old = store.get("old").unwrap().expect("kept");
        assert_eq!((old.outputs, old.generation), (vec![1], None));
        let mut new = job("new", "02");
        new.generation = Some(GenerationView {
            prompt_len: 3,
            tokens: vec![4, 5],
        });
        store.insert(&new).unwrap();
        assert_eq!(store.get("new").unwrap(), Some(new));
        drop(store);
        let version: i64 = Connection::open(&path)
            .unwrap()
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_database_of_another_schema_version_is_refused() {
        let dir = std::env::temp_dir().join(format!("zkinfer-store-v-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("jobs.sqlite");
        let _ = std::fs::remove_file(&path);
        JobStore::open(&path).unwrap();
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        assert!(matches!(JobStore::open(&path), Err(StoreError::Version { found: 99 })));
        std::fs::remove_dir_all(&dir).ok();
    }
}
