//! People as stored: each partition's derived people in one LZ4-packed record
//! (`partition_people`), written whole whenever the partition is derived, like its
//! transitions. One row per partition instead of one per person keeps a large ingest's writes
//! few and small; a person is found through the partition map.

use crate::query::{attrs_of, PersonRow};
use crate::StoreError;
use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use waterfall_core::{Attrs, Timestamp};
use waterfall_engine::PersonState;

/// One stored person. Strings are borrowed when writing and reading alike.
#[derive(Serialize, Deserialize)]
pub(crate) struct StoredPerson<'a> {
    pub(crate) id: &'a str,
    pub(crate) account: Option<&'a str>,
    /// The attributes' JSON text.
    pub(crate) attrs: &'a str,
    pub(crate) stage: &'a str,
    pub(crate) status: Option<&'a str>,
    pub(crate) created_at: i64,
    pub(crate) last_activity: Option<i64>,
    pub(crate) merged_into: Option<&'a str>,
}

impl<'a> StoredPerson<'a> {
    /// A derived person as stored (`attrs`: their attributes as JSON text).
    pub(crate) fn of(p: &'a PersonState, attrs: &'a str) -> Self {
        StoredPerson {
            id: &p.id,
            account: p.account.as_deref(),
            attrs,
            stage: &p.stage,
            status: p.status.as_deref(),
            created_at: p.created_at.0,
            last_activity: p.last_activity.map(|t| t.0),
            merged_into: p.merged_into.as_deref(),
        }
    }
}

/// Encodes a partition's people, packed.
pub(crate) fn encode(people: &[StoredPerson<'_>]) -> Vec<u8> {
    crate::body::pack(&postcard::to_stdvec(people).expect("encoding to memory cannot fail"))
}

/// Which attributes to read.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Attributes<'k> {
    /// None (the rows carry empty attributes).
    None,
    /// All of them.
    All,
    /// Only this one.
    Only(&'k str),
}

/// Decodes a partition's packed people, keeping those `keep` accepts (by id).
pub(crate) fn decode(
    partition: &str,
    packed: &[u8],
    attributes: Attributes<'_>,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<PersonRow>, StoreError> {
    let bytes = crate::body::unpack(packed)?;
    let stored: Vec<StoredPerson<'_>> = postcard::from_bytes(&bytes)
        .map_err(|e| StoreError::Corrupt(format!("stored people of {partition}: {e}")))?;
    stored
        .into_iter()
        .filter(|p| keep(p.id))
        .map(|p| {
            let attrs = match attributes {
                Attributes::None => Attrs::new(),
                Attributes::All => attrs_of(p.attrs)?,
                Attributes::Only(k) => {
                    let mut all = attrs_of(p.attrs)?;
                    all.remove(k)
                        .map(|v| Attrs::from_iter([(k.to_string(), v)]))
                        .unwrap_or_default()
                }
            };
            Ok(PersonRow {
                id: p.id.to_string(),
                partition: partition.to_string(),
                account: p.account.map(str::to_string),
                attrs,
                stage: p.stage.to_string(),
                status: p.status.map(str::to_string),
                created_at: Timestamp(p.created_at),
                last_activity: p.last_activity.map(Timestamp),
                merged_into: p.merged_into.map(str::to_string),
            })
        })
        .collect()
}

/// The people of one partition that `keep` accepts.
pub(crate) fn of_partition(
    conn: &Connection,
    partition: &str,
    attributes: Attributes<'_>,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<PersonRow>, StoreError> {
    let packed: Option<Vec<u8>> = conn
        .prepare_cached("SELECT data FROM partition_people WHERE partition = ?1")?
        .query_row([partition], |r| r.get(0))
        .optional()?;
    match packed {
        None => Ok(Vec::new()),
        Some(p) => decode(partition, &p, attributes, keep),
    }
}

/// Every stored person that `keep` accepts, decoded on all cores.
pub(crate) fn all(
    conn: &Connection,
    attributes: Attributes<'_>,
    keep: impl Fn(&str) -> bool + Sync,
) -> Result<Vec<PersonRow>, StoreError> {
    use rayon::prelude::*;
    let rows: Vec<(String, Vec<u8>)> = {
        let mut st = conn.prepare("SELECT partition, data FROM partition_people")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    let parts: Vec<Vec<PersonRow>> = rows
        .par_iter()
        .map(|(partition, packed)| decode(partition, packed, attributes, &keep))
        .collect::<Result<_, _>>()?;
    Ok(parts.into_iter().flatten().collect())
}

/// The partition a person's derived row lives in: the partition map's answer, else (a
/// person known only as an opportunity's contact, or no one) a search of every partition.
pub(crate) fn partition_of(conn: &Connection, id: &str) -> Result<Option<String>, StoreError> {
    let mapped: Option<String> = conn
        .prepare_cached("SELECT partition FROM person_partition WHERE person = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    if let Some(p) = mapped {
        if !of_partition(conn, &p, Attributes::None, |x| x == id)?.is_empty() {
            return Ok(Some(p));
        }
    }
    Ok(all(conn, Attributes::None, |x| x == id)?
        .into_iter()
        .next()
        .map(|p| p.partition))
}
