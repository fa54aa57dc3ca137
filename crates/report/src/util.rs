//! Shared machinery of the reports: period indexing, segments, accumulation grids, quantiles.

use crate::history::{History, View};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;
use waterfall_core::Level;
use waterfall_core::{Period, Timestamp, MICROS_PER_DAY};

/// A map that serializes as a JSON object with keys in the order given (stage model order).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NamedMap<T>(pub Vec<(String, T)>);

impl<T> NamedMap<T> {
    /// The value under a key, if any.
    pub fn get(&self, key: &str) -> Option<&T> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

impl<T: Serialize> Serialize for NamedMap<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// Maps instants to dense period indexes (ascending in time) through a per-day table, so the
/// hot loops never touch the calendar.
pub(crate) struct Periods {
    period: Period,
    first_day: i64,
    day_index: Vec<u32>,
    keys: Vec<i32>,
    slow: HashMap<i32, u32>,
}

/// Spans longer than this (in days) fall back to calendar arithmetic per lookup.
const MAX_TABLE_DAYS: i64 = 200_000;

impl Periods {
    /// Periods covering every instant in `[min_at, max_at]`.
    pub(crate) fn new(period: Period, span: Option<(i64, i64)>) -> Periods {
        let mut p = Periods {
            period,
            first_day: 0,
            day_index: Vec::new(),
            keys: Vec::new(),
            slow: HashMap::new(),
        };
        let Some((lo, hi)) = span else { return p };
        let (d0, d1) = (lo.div_euclid(MICROS_PER_DAY), hi.div_euclid(MICROS_PER_DAY));
        if d1 - d0 > MAX_TABLE_DAYS {
            return p;
        }
        p.first_day = d0;
        p.day_index.reserve((d1 - d0 + 1) as usize);
        for d in d0..=d1 {
            let k = period.key(Timestamp(d.saturating_mul(MICROS_PER_DAY)));
            if p.keys.last() != Some(&k) {
                p.keys.push(k);
            }
            p.day_index.push((p.keys.len() - 1) as u32);
        }
        for (i, &k) in p.keys.iter().enumerate() {
            p.slow.insert(k, i as u32);
        }
        p
    }

    /// An upper bound of the dense indexes (`usize::MAX` when unknown, so grids go sparse).
    pub(crate) fn count_hint(&self) -> usize {
        if self.day_index.is_empty() {
            usize::MAX
        } else {
            self.keys.len()
        }
    }

    /// The dense index of the period containing `at` (which must be within the span given).
    #[inline]
    pub(crate) fn index(&mut self, at: i64) -> u32 {
        let d = at.div_euclid(MICROS_PER_DAY) - self.first_day;
        if let Some(&i) = usize::try_from(d).ok().and_then(|d| self.day_index.get(d)) {
            return i;
        }
        // Slow path, outside the table (huge spans): indexes are then in order of first
        // sight, so output always sorts by `key_of`.
        let k = self.period.key(Timestamp(at));
        let next = self.keys.len() as u32;
        let i = *self.slow.entry(k).or_insert(next);
        if i == next {
            self.keys.push(k);
        }
        i
    }

    /// The label of a dense period index.
    pub(crate) fn label(&self, index: u32) -> String {
        self.period.label_of_key(self.keys[index as usize])
    }

    /// The sortable key of a dense period index.
    pub(crate) fn key_of(&self, index: u32) -> i32 {
        self.keys[index as usize]
    }
}

/// The segment of each person for `--by ATTR`: dense ids sorted by label, `null` last.
pub(crate) struct Segments {
    by: bool,
    of_person: Vec<u32>,
    labels: Vec<String>,
}

impl Segments {
    pub(crate) fn new(history: &History, by: Option<&str>) -> Segments {
        Segments::of_view(&history.view(Level::Person), by)
    }

    pub(crate) fn of_view(view: &View<'_>, by: Option<&str>) -> Segments {
        let Some(by) = by else {
            return Segments {
                by: false,
                of_person: vec![0; view.subjects],
                labels: Vec::new(),
            };
        };
        let mut index: HashMap<String, u32> = HashMap::new();
        let mut raw = Vec::with_capacity(view.subjects);
        for p in 0..view.subjects as u32 {
            let id = match attribute(view.attrs(p), by) {
                Some(label) => match index.get(label.as_ref()) {
                    Some(&i) => i,
                    None => {
                        let n = index.len() as u32;
                        index.insert(label.into_owned(), n);
                        n
                    }
                },
                None => u32::MAX,
            };
            raw.push(id);
        }
        let mut labels: Vec<(String, u32)> = index.into_iter().collect();
        labels.sort();
        let null = labels.len() as u32;
        let mut remap = vec![0u32; labels.len()];
        for (sorted, (_, old)) in labels.iter().enumerate() {
            remap[*old as usize] = sorted as u32;
        }
        let of_person = raw
            .into_iter()
            .map(|r| {
                if r == u32::MAX {
                    null
                } else {
                    remap[r as usize]
                }
            })
            .collect();
        Segments {
            by: true,
            of_person,
            labels: labels.into_iter().map(|(l, _)| l).collect(),
        }
    }

    /// The segment id of a person.
    #[inline]
    pub(crate) fn of(&self, person: u32) -> u32 {
        self.of_person[person as usize]
    }

    /// How many segment ids there are (including `null`).
    pub(crate) fn count(&self) -> usize {
        self.labels.len() + 1
    }

    /// The JSON `segment` value: absent without `--by`, `null` for people without the attribute.
    pub(crate) fn label(&self, id: u32) -> Option<Option<String>> {
        if !self.by {
            return None;
        }
        Some(self.labels.get(id as usize).cloned())
    }
}

/// A person attribute as a segment label: strings as they are, numbers and booleans as their
/// JSON text, `null` or missing as `None`. A dotted name also looks into nested objects.
pub(crate) fn attribute<'a>(
    attrs: &'a serde_json::Map<String, Value>,
    name: &str,
) -> Option<Cow<'a, str>> {
    let mut v = attrs.get(name);
    if v.is_none() && name.contains('.') {
        let mut parts = name.split('.');
        v = attrs.get(parts.next()?);
        for part in parts {
            v = v?.get(part);
        }
    }
    match v? {
        Value::Null => None,
        Value::String(s) => Some(Cow::Borrowed(s.as_str())),
        other => Some(Cow::Owned(other.to_string())),
    }
}

/// Accumulates values under three-part keys: a dense array when the key space is small,
/// a hash map otherwise. Rows come out sorted by key.
pub(crate) struct Grid<T> {
    dims: [usize; 3],
    dense: Option<Vec<u32>>,
    sparse: HashMap<[u32; 3], u32>,
    keys: Vec<[u32; 3]>,
    rows: Vec<T>,
}

const MAX_DENSE_CELLS: usize = 1 << 22;

impl<T: Default> Grid<T> {
    pub(crate) fn new(dims: [usize; 3]) -> Grid<T> {
        let cells = dims
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d.max(1)));
        let dense = match cells {
            Some(c) if c <= MAX_DENSE_CELLS => Some(vec![u32::MAX; c]),
            _ => None,
        };
        Grid {
            dims,
            dense,
            sparse: HashMap::new(),
            keys: Vec::new(),
            rows: Vec::new(),
        }
    }

    #[inline]
    pub(crate) fn get(&mut self, key: [u32; 3]) -> &mut T {
        let slot = match &mut self.dense {
            Some(d) => {
                let i = (key[0] as usize * self.dims[1].max(1) + key[1] as usize)
                    * self.dims[2].max(1)
                    + key[2] as usize;
                &mut d[i]
            }
            None => self.sparse.entry(key).or_insert(u32::MAX),
        };
        if *slot == u32::MAX {
            *slot = self.rows.len() as u32;
            self.keys.push(key);
            self.rows.push(T::default());
        }
        &mut self.rows[*slot as usize]
    }

    /// The rows, sorted by a caller-chosen key of the cell key.
    pub(crate) fn into_sorted_by<K: Ord>(self, f: impl Fn(&[u32; 3]) -> K) -> Vec<([u32; 3], T)> {
        let mut v: Vec<([u32; 3], T)> = self.keys.into_iter().zip(self.rows).collect();
        v.sort_by_key(|(k, _)| f(k));
        v
    }
}

/// The `q` quantile of `values`, interpolated like SQL's `quantile_cont` (reorders `values`).
pub fn quantile_cont(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let pos = (values.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = pos.floor() as usize;
    // Two order statistics in linear time instead of a full sort.
    let (_, &mut a, above) = values.select_nth_unstable_by(lo, f64::total_cmp);
    if pos == lo as f64 || above.is_empty() {
        return Some(a);
    }
    let b = above.iter().copied().min_by(f64::total_cmp).unwrap_or(a);
    Some(a + (b - a) * (pos - lo as f64))
}

/// Days between two instants in microseconds, as a float.
#[inline]
pub(crate) fn days(from: i64, to: i64) -> f64 {
    (to - from) as f64 / MICROS_PER_DAY as f64
}

/// The stages among `names`, in model order (`order`), then any others in order of first sight.
pub(crate) fn used_stages<'a>(
    order: &[String],
    names: impl Iterator<Item = &'a str>,
) -> Vec<String> {
    let mut seen: Vec<&str> = Vec::new();
    for n in names {
        if !seen.contains(&n) {
            seen.push(n);
        }
    }
    let mut out: Vec<String> = order
        .iter()
        .filter(|s| seen.contains(&s.as_str()))
        .cloned()
        .collect();
    for n in seen {
        if !order.iter().any(|s| s == n) {
            out.push(n.to_string());
        }
    }
    out
}
